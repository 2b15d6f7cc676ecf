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

/// A store found damaged while it was in use (reading or writing after it opened): the
/// engine reported corruption or failed on it (a contained panic). Names the store, and the
/// document and log position when they are known. Core's [`StoreError`] has no variant for
/// it, so the storage traits carry it as [`StoreError::Backend`] with this text.
///
/// [`StoreError`]: signoff_core::store::StoreError
/// [`StoreError::Backend`]: signoff_core::store::StoreError::Backend
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store {} is damaged{}: {detail}", path.display(), place(document.as_deref(), *position))]
pub struct Damaged {
    pub path: PathBuf,
    pub document: Option<String>,
    pub position: Option<u64>,
    pub detail: String,
}

impl From<Damaged> for signoff_core::store::StoreError {
    fn from(d: Damaged) -> Self {
        signoff_core::store::StoreError::Backend(d.to_string())
    }
}

fn place(document: Option<&str>, position: Option<u64>) -> String {
    match (document, position) {
        (Some(d), Some(p)) => format!(" (document {d}, log position {p})"),
        (Some(d), None) => format!(" (document {d})"),
        (None, Some(p)) => format!(" (log position {p})"),
        (None, None) => String::new(),
    }
}
