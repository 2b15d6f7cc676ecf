//! The integration tests of signoff-core, in one binary to keep link times low.

mod anchor;
mod chain;
mod diagram;
mod engine;
mod next_tick;
mod offer;
mod props;
mod scenarios;
mod store;
mod workflow;

use std::path::{Path, PathBuf};

/// The directory of this crate.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a template shipped under `crates/core/templates/`.
pub fn template(name: &str) -> signoff_core::Workflow {
    let path = crate_dir().join("templates").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    signoff_core::Workflow::from_text(&text, name).unwrap()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
