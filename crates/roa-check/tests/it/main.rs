//! Integration tests for roa-check: one binary, a module per feature.

mod check_corpus;
mod cli;
mod diff_corpus;
mod props;

use std::path::{Path, PathBuf};

/// The crate's test data folder.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}
