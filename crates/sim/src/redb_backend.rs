//! A realm's hosted storage as a redb file: each realm of a simulation is its own file, so
//! realms are physically separate.
//!
//! Writes commit with redb's `Eventual` durability: a simulation's data directory is
//! scratch space, so a commit does not wait for the disk, and a crash of the simulator may
//! lose its last writes (never part of one).

use std::path::Path;

use redb::{Database, ReadableTableMetadata, TableDefinition};

use crate::kvs::{Backend, BackendError};

const TABLE: TableDefinition<'static, &str, &str> = TableDefinition::new("kvs");

/// One realm's store in a redb file.
#[derive(Debug)]
pub struct RedbBackend {
    db: Database,
}

fn fail(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

impl RedbBackend {
    /// Opens or creates the file, creating its folder when needed.
    pub fn open(path: &Path) -> Result<RedbBackend, BackendError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        }
        // redb asserts (panics) on some damaged files; a damaged realm file must be an
        // error the app sees, not a crash of the simulator.
        let opened =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Database::create(path)))
                .map_err(|_| fail(format!("{}: the file is damaged", path.display())))?;
        let db = opened.map_err(|e| fail(format!("{}: {e}", path.display())))?;
        Ok(RedbBackend { db })
    }

    /// Opens an existing file for reading only (`signoff sim inspect`): it is copied into
    /// memory and redb works on the copy, so the file is never written (redb 2.6 has no
    /// read-only mode; it repairs in place and writes on close) and may lack write
    /// permission. A missing or empty file is an error naming it, never a new database.
    /// Realm files are a simulation's scratch data, small enough to copy.
    pub fn open_read_only(path: &Path) -> Result<RedbBackend, BackendError> {
        let bytes = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        if bytes.is_empty() {
            return Err(fail(format!(
                "{}: the file is empty, not a realm's store",
                path.display()
            )));
        }
        let opened = signoff_storage::contain::contain(|| {
            let backend = redb::backends::InMemoryBackend::new();
            // The in-memory backend writes only inside its current length.
            redb::StorageBackend::set_len(&backend, bytes.len() as u64)?;
            redb::StorageBackend::write(&backend, 0, &bytes)?;
            Database::builder().create_with_backend(backend)
        })
        .map_err(|panic| fail(format!("{}: the file is damaged: {panic}", path.display())))?;
        let db = opened.map_err(|e| fail(format!("{}: {e}", path.display())))?;
        Ok(RedbBackend { db })
    }
}

impl Backend for RedbBackend {
    fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        let tx = self.db.begin_read().map_err(fail)?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        Ok(table.get(key).map_err(fail)?.map(|v| v.value().to_string()))
    }

    fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, BackendError> {
        let tx = self.db.begin_read().map_err(fail)?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(fail(e)),
        };
        let iter = match after {
            Some(a) => {
                table.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            }
            None => table.range::<&str>(prefix..),
        }
        .map_err(fail)?;
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(fail)?;
            let key = k.value();
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    fn apply(&mut self, writes: Vec<(String, Option<String>)>) -> Result<(), BackendError> {
        let mut tx = self.db.begin_write().map_err(fail)?;
        tx.set_durability(redb::Durability::Eventual);
        {
            let mut table = tx.open_table(TABLE).map_err(fail)?;
            for (k, v) in &writes {
                match v {
                    Some(v) => {
                        table.insert(k.as_str(), v.as_str()).map_err(fail)?;
                    }
                    None => {
                        table.remove(k.as_str()).map_err(fail)?;
                    }
                }
            }
        }
        tx.commit().map_err(fail)
    }

    fn len(&self) -> Result<usize, BackendError> {
        let tx = self.db.begin_read().map_err(fail)?;
        match tx.open_table(TABLE) {
            Ok(t) => Ok(t.len().map_err(fail)? as usize),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(fail(e)),
        }
    }
}
