//! scenarios tests.
