//! Errors opening a store, each naming the file and saying what a person can do.

use std::path::PathBuf;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no store at {path} (create one first, e.g. with `signoff doc create`)")]
    Missing { path: PathBuf },
    #[error("the store {path} is in use by another process (or another handle in this one)")]
    Locked { path: PathBuf },
    #[error("the store {path} is corrupted: {detail}")]
    Corrupted { path: PathBuf, detail: String },
    #[error("{path} is not a signoff store: {detail}")]
    NotAStore { path: PathBuf, detail: String },
    #[error(
        "the store {path} has on-disk layout version {found}, but this build of signoff reads \
         version {supported} at most: use a newer signoff, or export and re-import (see \
         crates/storage/README.md, \"Migrating\")"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("cannot open the store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store {path}: {detail}")]
    Backend { path: PathBuf, detail: String },
}
