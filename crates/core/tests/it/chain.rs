//! chain tests.
