//! Integration tests for roa-check.
