//! [`RedbStore`]: the default embedded store, one redb file.
//!
//! Layout (version [`SCHEMA_VERSION`](crate::SCHEMA_VERSION)), one table each:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `&str` | `u64`: `schema_version`, `outbox_next`, `tail_start` (the first log position whose append `heads` does not hold) |
//! | `log` | position (from 0, in commit order) | one append: the position of the document's previous append (8 bytes, `u64::MAX` for none), the seq of its first record (8), its record count (4), the document id's length (4) and bytes, then the records as a JSON array; all numbers big-endian |
//! | `heads` | document id | (stream length, position of the document's last append), as of the last checkpoint |
//! | `index` | document id | the index row as JSON |
//! | `index_by_state` | (state, document id) | `()` |
//! | `index_by_reviewer` | (reviewer, document id) | `()` |
//! | `index_by_due` | (due time in Unix seconds, document id) | `()` |
//! | `outbox` | item id (from 1, never reused) | the notification as JSON |
//! | `workflows` | workflow hash | the definition's source text |
//!
//! Why a log: a group commit of 100 decisions on 100 documents used to insert into 100 places
//! of one large table keyed by document, each a B-tree leaf copied and written at commit. In
//! the log the 100 appends land side by side at the end (a few leaves). A stream is read by
//! following the `previous` positions back from its head.
//!
//! Why checkpoints: a document's head is a row in the middle of `heads`, so writing it with
//! every append dirtied a second leaf (and its branch) per commit: a single durable append
//! wrote 30 KB instead of the 21 KB of one redb insert. An append now writes only its log
//! entry; the heads of the appends after `tail_start` (the log's *tail*) are kept in memory
//! ([`Tail`]) and written to `heads` at a checkpoint, in the transaction of the batch that
//! crosses [`CHECKPOINT_DOCS`] documents or [`CHECKPOINT_APPENDS`] appends. Opening a store
//! rebuilds the tail from the log entries from `tail_start` on (`load_tail`).
//!
//! Layout version 1 kept appends in `events`, keyed by (document id, seq of the append's
//! first record), valued by the record count (4 bytes) and the JSON array; version 2 wrote
//! `heads` with every append and had no `tail_start`. Opening a store of either migrates it
//! in place (`migrate`).

// redb's own error type is large; it lives only inside this module, on the writer and
// blocking threads, and becomes a `StoreError` before it reaches a caller.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use redb::{
    Database, ReadableTable, StorageBackend, Table, TableDefinition, TableError, WriteTransaction,
};
use signoff_core::notify::Notification;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::{Record, Timestamp};

use crate::codec::{StoredEntry, check_records, encode_notifications};
use crate::contain::contain;
use crate::readonly::ReadOnlyFile;
use crate::writer::{Backend, Done, Op, Writer, WriterStats, blocking};
use crate::{Damaged, Durability, LocalStore, OpenError, SCHEMA_VERSION, StoreConfig};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const HEADS: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("heads");
/// Layout version 1's table of appends, read only to migrate.
const EVENTS_V1: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("events");
const INDEX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("index");
const BY_STATE: TableDefinition<'_, (&str, &str), ()> = TableDefinition::new("index_by_state");
const BY_REVIEWER: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("index_by_reviewer");
const BY_DUE: TableDefinition<'_, (i64, &str), ()> = TableDefinition::new("index_by_due");
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");
const WORKFLOWS: TableDefinition<'_, &str, &str> = TableDefinition::new("workflows");

const SCHEMA_KEY: &str = "schema_version";
const OUTBOX_NEXT: &str = "outbox_next";
/// The first log position whose append `heads` does not hold yet: where the tail starts.
const TAIL_START: &str = "tail_start";

/// A checkpoint is written when the tail holds more documents than this. It bounds the
/// tail's memory and the size of a checkpoint's transaction (its rows land all over
/// `heads`: one leaf each, in a large store).
const CHECKPOINT_DOCS: usize = 512;
/// ... or more appends than this: it bounds the scan of the log when a store opens.
const CHECKPOINT_APPENDS: u64 = 4096;

/// The default store: streams, index, outbox and workflow definitions in one redb file.
///
/// Writes go through a dedicated writer thread (see [`StoreConfig`]); reads run on tokio's
/// blocking pool. Dropping the store finishes the queued writes and closes the file.
#[derive(Debug)]
pub struct RedbStore {
    // Declared first so that it is dropped first: the writer thread ends (and drops its
    // handle on the database) before ours goes. `None` when opened read-only.
    writer: Option<Writer>,
    db: Arc<Db>,
    tail: Arc<Mutex<Tail>>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens the store at `path`, creating it (and its layout) when the file does not exist.
    ///
    /// A new store is built under a temporary name and linked into place complete, so that a
    /// crash during creation leaves either no store or an empty, valid one, never a file
    /// that cannot be opened.
    pub fn create(path: impl AsRef<Path>, config: StoreConfig) -> Result<RedbStore, OpenError> {
        let path = path.as_ref();
        if !path.exists() {
            create_new(path)?;
        }
        let db = guard(path, || Database::builder().create(path))?;
        RedbStore::start(db, path, Some(config))
    }

    /// Opens an existing store; fails with [`OpenError::Missing`] when there is none.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<RedbStore, OpenError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(OpenError::Missing {
                path: path.to_owned(),
            });
        }
        let db = guard(path, || Database::builder().open(path))?;
        RedbStore::start(db, path, Some(config))
    }

    /// Opens an existing store for reading only: the file is opened without write access
    /// and never written, whatever redb does (see [`ReadOnlyFile`]: repair and migration
    /// happen in memory, closing writes nothing), so it works on a file without write
    /// permission. Writes fail with [`StoreError::Backend`]. A missing or empty file, or a
    /// redb file without signoff's layout, is an error naming it.
    ///
    /// It takes no lock: a read that races a writer's commit in another process may report
    /// the store as damaged; reading again after the writer is done gives the right answer.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<RedbStore, OpenError> {
        let path = path.as_ref();
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let file = match ReadOnlyFile::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io(e)),
        };
        if std::fs::metadata(path).map_err(io)?.len() == 0 {
            // redb would initialize a new database in an empty file.
            return Err(OpenError::NotAStore {
                path: path.to_owned(),
                detail: "the file is empty".into(),
            });
        }
        let db = guard(path, move || Database::builder().create_with_backend(file))?;
        RedbStore::start(db, path, None)
    }

    /// Creates or opens a store on a storage backend of the caller's (for example one that
    /// injects IO errors, in tests). `path` only names the store in errors.
    pub fn with_backend(
        backend: impl StorageBackend,
        path: impl AsRef<Path>,
        config: StoreConfig,
    ) -> Result<RedbStore, OpenError> {
        let path = path.as_ref();
        let db = guard(path, move || {
            Database::builder().create_with_backend(backend)
        })?;
        RedbStore::start(db, path, Some(config))
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions the writer thread committed, and how many operations they
    /// carried (their ratio is the mean group-commit batch).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.as_ref().map(Writer::stats).unwrap_or_default()
    }

    /// Whether the store was opened with [`RedbStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// For tests: write a checkpoint when the tail holds more than `docs` documents or
    /// `appends` appends, instead of the defaults, so that a small workload crosses many
    /// checkpoints. Not meant for anything else; it lasts until the store is closed.
    #[doc(hidden)]
    pub fn set_checkpoint_limits(&self, docs: usize, appends: u64) {
        let mut tail = lock(&self.tail);
        tail.max_docs = docs;
        tail.max_appends = appends;
    }

    /// Checks (or writes) the layout, rebuilds the tail and starts the writer; `config` is
    /// `None` for a read-only store, which gets no writer and never creates a layout.
    fn start(
        db: Database,
        path: &Path,
        config: Option<StoreConfig>,
    ) -> Result<RedbStore, OpenError> {
        let db = Db(Some(db));
        let corrupted = |detail| OpenError::Corrupted {
            path: path.to_owned(),
            detail,
        };
        contain(|| init_layout(&db, path, config.is_none())).map_err(corrupted)??;
        let (tail_start, heads) = contain(|| load_tail(&db))
            .map_err(corrupted)?
            .map_err(|e| open_error(path, e))?;
        let tail = Arc::new(Mutex::new(Tail {
            heads,
            max_docs: CHECKPOINT_DOCS,
            max_appends: CHECKPOINT_APPENDS,
        }));
        let db = Arc::new(db);
        let writer = match config {
            None => None,
            Some(config) => {
                let backend = RedbWriter {
                    db: db.clone(),
                    path: path.to_owned(),
                    durability: config.durability,
                    tail: tail.clone(),
                    tail_start,
                };
                let writer =
                    Writer::start("redb", path, backend, config.max_batch()).map_err(|e| {
                        OpenError::Io {
                            path: path.to_owned(),
                            source: e,
                        }
                    })?;
                Some(writer)
            }
        };
        Ok(RedbStore {
            writer,
            db,
            tail,
            path: path.to_owned(),
        })
    }

    /// The head of `doc` in the tail, if it was appended to since the last checkpoint. Called
    /// before the read transaction begins: see [`Tail`] for why that order matters.
    fn tail_head(&self, doc: &str) -> Option<Head> {
        lock(&self.tail).heads.get(doc).copied()
    }

    /// Runs `f` in a read transaction on the blocking pool.
    ///
    /// A panic of redb's inside (a damaged page) is contained and, like redb's own
    /// corruption errors, reported as [`Damaged`], naming `doc` when the read was of one
    /// document and the log position `f` last stored in `at`, if any.
    async fn read_with<T, F>(&self, doc: Option<&str>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction, &Position) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = self.db.clone();
        let path = self.path.clone();
        let doc = doc.map(str::to_owned);
        blocking(move || {
            let at = Position::default();
            let damaged = |detail| Damaged {
                path: path.clone(),
                document: doc.clone(),
                position: at.get(),
                detail,
            };
            match contain(|| {
                db.begin_read()
                    .map_err(redb::Error::from)
                    .and_then(|t| f(&t, &at))
            }) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(redb::Error::Corrupted(detail))) => Err(damaged(detail).into()),
                Ok(Err(e)) => Err(backend(e)),
                Err(panic) => Err(damaged(panic).into()),
            }
        })
        .await
    }

    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        match &self.writer {
            Some(writer) => writer.submit(op).await,
            None => Err(StoreError::Backend(format!(
                "the store {} was opened read-only",
                self.path.display()
            ))),
        }
    }
}

#[async_trait]
impl EventStore for RedbStore {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        self.commit(doc, expected, records, None, &[]).await
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let name = doc.to_owned();
        let doc = doc.to_owned();
        let in_tail = self.tail_head(&doc);
        let raw = self
            .read_with(Some(&name), move |txn, at| {
                let heads = txn.open_table(HEADS)?;
                let checkpointed = heads.get(doc.as_str())?.map(|v| v.value());
                let Some((len, last)) = newer(in_tail, checkpointed) else {
                    return Ok(Vec::new());
                };
                if from >= len {
                    return Ok(Vec::new());
                }
                // From the last append back to the one that holds `from`.
                let log = txn.open_table(LOG)?;
                let mut out = Vec::new();
                let mut pos = last;
                loop {
                    at.set(Some(pos));
                    let value = log.get(pos)?.ok_or_else(|| {
                        redb::Error::Corrupted(format!(
                            "append {pos} of document {doc:?} is missing from the log"
                        ))
                    })?;
                    let entry = LogEntry::parse(value.value(), pos, &doc)?;
                    out.push((pos, entry.first, entry.records.to_vec()));
                    match entry.prev {
                        Some(prev) if entry.first > from => pos = prev,
                        _ => break,
                    }
                }
                out.reverse();
                Ok(out)
            })
            .await?;
        let mut records = Vec::new();
        for (pos, first, body) in raw {
            let chunk: Vec<Record> = serde_json::from_slice(&body).map_err(|e| Damaged {
                path: self.path.clone(),
                document: Some(name.clone()),
                position: Some(pos),
                detail: format!("its records do not decode: {e}"),
            })?;
            let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
            records.extend(chunk.into_iter().skip(skip));
        }
        Ok(records)
    }
}

#[async_trait]
impl DocumentIndex for RedbStore {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        self.write(Op::Upsert(entry)).await.map(|_| ())
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        let state = state.to_owned();
        self.read_with(None, move |txn, _| {
            prefix_docs(&txn.open_table(BY_STATE)?, &state)
        })
        .await
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let user = user.to_owned();
        self.read_with(None, move |txn, _| {
            prefix_docs(&txn.open_table(BY_REVIEWER)?, &user)
        })
        .await
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        let mut docs = self
            .read_with(None, move |txn, _| {
                let table = txn.open_table(BY_DUE)?;
                let mut out = Vec::new();
                for row in table.range((i64::MIN, "")..)? {
                    let (key, _) = row?;
                    let (due, doc) = key.value();
                    if due > t.0 {
                        break;
                    }
                    out.push(doc.to_owned());
                }
                Ok(out)
            })
            .await?;
        // Every query answers in document order, like the in-memory index.
        docs.sort();
        Ok(docs)
    }
}

#[async_trait]
impl Outbox for RedbStore {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        let items = encode_notifications(items)?;
        self.write(Op::Enqueue(items)).await.map(|_| ())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let raw = self
            .read_with(None, move |txn, _| {
                let t = txn.open_table(OUTBOX)?;
                let mut out = Vec::new();
                for row in t.iter()?.take(limit) {
                    let (id, n) = row?;
                    out.push((id.value(), n.value().to_vec()));
                }
                Ok(out)
            })
            .await?;
        raw.into_iter()
            .map(|(id, b)| {
                let n = serde_json::from_slice(&b).map_err(|e| Damaged {
                    path: self.path.clone(),
                    document: None,
                    position: None,
                    detail: format!("outbox item {id} does not decode: {e}"),
                })?;
                Ok((id, n))
            })
            .collect()
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        self.write(Op::Ack(id)).await.map(|_| ())
    }
}

#[async_trait]
impl LocalStore for RedbStore {
    async fn commit(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        check_records(doc, expected, records)?;
        let op = Op::Append {
            doc: doc.to_owned(),
            expected,
            count: records.len() as u64,
            records: if records.is_empty() {
                Vec::new()
            } else {
                vec![log_value(doc, expected, records)?]
            },
            entry,
            notifications: encode_notifications(notifications)?,
        };
        match self.write(op).await? {
            Done::Len(n) => Ok(n),
            Done::Unit => Err(StoreError::Backend(
                "the writer answered out of turn".into(),
            )),
        }
    }

    async fn documents(&self) -> Result<Vec<(String, u64)>, StoreError> {
        // The tail first, then the snapshot (see `Tail`).
        let in_tail: Vec<(String, u64)> = lock(&self.tail)
            .heads
            .iter()
            .map(|(doc, (len, _))| (doc.clone(), *len))
            .collect();
        self.read_with(None, move |txn, _| {
            let heads = txn.open_table(HEADS)?;
            let mut out = BTreeMap::new();
            for row in heads.iter()? {
                let (doc, head) = row?;
                out.insert(doc.value().to_owned(), head.value().0);
            }
            for (doc, len) in in_tail {
                let known = out.entry(doc).or_insert(len);
                *known = (*known).max(len);
            }
            Ok(out.into_iter().collect())
        })
        .await
    }

    async fn put_workflow(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.write(Op::PutWorkflow {
            hash: hash.to_owned(),
            source: source.to_owned(),
        })
        .await
        .map(|_| ())
    }

    async fn workflow(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_owned();
        self.read_with(None, move |txn, _| {
            Ok(txn
                .open_table(WORKFLOWS)?
                .get(hash.as_str())?
                .map(|v| v.value().to_owned()))
        })
        .await
    }
}

/// The heads of the documents appended to since the last checkpoint (the log's tail, from
/// `tail_start` on), which `heads` does not hold yet; shared by the writer thread and the
/// readers.
///
/// An append writes only its log entry; the writer writes `heads` at checkpoints, in the
/// transaction of a batch, with the tail's heads and the batch's (and moves `tail_start`
/// past that batch). Readers take a document's head from here or from `heads`, whichever is
/// longer (`newer`). That view is never torn, because of two orders:
///
/// - The writer changes the tail only after the transaction that wrote what it describes
///   has committed: a batch's heads are added after the batch's commit, and the tail is
///   emptied only after the commit of the checkpoint that put its heads in `heads`.
/// - Readers copy what they need from the tail *before* they begin their read transaction.
///
/// So a head copied from the tail was committed before the reader's snapshot was taken: the
/// log entries it leads to are in the snapshot, and so is the row of `heads`, whichever of
/// the two the reader takes. Nothing acknowledged is missed either: the writer answers the
/// callers of a batch after it changed the tail, so an append acknowledged before the read
/// began is in the tail when the reader copies it, or was emptied out of it by a checkpoint
/// that committed before, and is then in the snapshot's `heads`. At worst a reader misses a
/// batch that committed a moment ago and whose callers have not been answered yet.
#[derive(Debug)]
struct Tail {
    heads: HashMap<String, Head>,
    /// A checkpoint is written when the tail would hold more documents than this...
    max_docs: usize,
    /// ...or more appends than this.
    max_appends: u64,
}

/// A document's head: its stream length and the log position of its last append.
type Head = (u64, u64);

/// The log position a read was at, for the error when it meets damage there.
#[derive(Debug, Default)]
struct Position(std::cell::Cell<Option<u64>>);

impl Position {
    fn set(&self, pos: Option<u64>) {
        self.0.set(pos);
    }

    fn get(&self) -> Option<u64> {
        self.0.get()
    }
}

/// The database, closed under [`contain`]: redb's `Drop` writes the allocator state back
/// and can panic on a damaged file, and a store that is being closed must not take the
/// process down (nor, for a read-only store, write anything: see [`ReadOnlyFile`]).
#[derive(Debug)]
struct Db(Option<Database>);

impl std::ops::Deref for Db {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("the database is taken only when it is dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let db = self.0.take();
        if let Err(panic) = contain(move || drop(db)) {
            tracing::warn!(panic, "closing the redb file failed; it may need repair");
        }
    }
}

/// The writer thread's side: commits batches in one redb write transaction.
struct RedbWriter {
    db: Arc<Db>,
    /// The store's file, named when a commit meets damage.
    path: PathBuf,
    durability: Durability,
    tail: Arc<Mutex<Tail>>,
    /// The first log position that `heads` does not cover (`tail_start` in `meta`).
    tail_start: u64,
}

impl Backend for RedbWriter {
    fn commit(&mut self, ops: &mut [Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        // redb's corruption errors name nothing: say which store.
        let path = self.path.clone();
        let backend = move |e: redb::Error| match e {
            redb::Error::Corrupted(detail) => Damaged {
                path: path.clone(),
                document: None,
                position: None,
                detail,
            }
            .into(),
            e => backend(e),
        };
        let mut txn = self.db.begin_write().map_err(|e| backend(e.into()))?;
        txn.set_durability(match self.durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::None => redb::Durability::None,
        });
        let mut results = Vec::with_capacity(ops.len());
        let (changed, checkpoint) = {
            // Each table is opened once per batch, when an operation first needs it.
            let mut tables = Tables::new(&txn, &self.tail);
            for op in ops.iter_mut() {
                // An error from redb inside the transaction leaves it in an unknown state:
                // give up the whole batch (the transaction aborts when dropped).
                results.push(tables.apply(op).map_err(&backend)?);
            }
            let checkpoint = tables.checkpoint(self.tail_start).map_err(&backend)?;
            (tables.changed, checkpoint)
        };
        txn.commit().map_err(|e| backend(e.into()))?;
        // Only now that the batch is committed may readers see its heads (see `Tail`). A
        // batch that failed returned above and left the tail as it was.
        let mut tail = lock(&self.tail);
        match checkpoint {
            Some(start) => {
                tail.heads.clear();
                self.tail_start = start;
            }
            None => tail.heads.extend(changed),
        }
        Ok(results)
    }

    fn close(&mut self) {
        if self.durability == Durability::Immediate {
            return;
        }
        // Non-durable commits reach the disk only with a later durable one: an empty
        // durable commit makes a clean close keep everything.
        let done = (|| -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate);
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = done {
            tracing::warn!(error = %e, "the final durable commit failed");
        }
    }
}

type Pairs<'t> = Table<'t, (&'static str, &'static str), ()>;

/// The tables of one write transaction, opened lazily and kept for the whole batch.
struct Tables<'t> {
    txn: &'t WriteTransaction,
    tail: &'t Mutex<Tail>,
    /// The heads this batch changed, newer than the tail's and `heads`' rows.
    changed: HashMap<String, Head>,
    meta: Option<Table<'t, &'static str, u64>>,
    log: Option<Table<'t, u64, &'static [u8]>>,
    heads: Option<Table<'t, &'static str, (u64, u64)>>,
    /// The next free position of the log, once read in this batch.
    next_pos: Option<u64>,
    index: Option<Table<'t, &'static str, &'static [u8]>>,
    by_state: Option<Pairs<'t>>,
    by_reviewer: Option<Pairs<'t>>,
    by_due: Option<Table<'t, (i64, &'static str), ()>>,
    outbox: Option<Table<'t, u64, &'static [u8]>>,
    workflows: Option<Table<'t, &'static str, &'static str>>,
}

/// Opens `$def` into `$slot` unless it is open, and yields the table.
macro_rules! table {
    ($self:ident . $slot:ident, $def:expr) => {{
        if $self.$slot.is_none() {
            $self.$slot = Some($self.txn.open_table($def)?);
        }
        $self.$slot.as_mut().expect("opened just above")
    }};
}

impl<'t> Tables<'t> {
    fn new(txn: &'t WriteTransaction, tail: &'t Mutex<Tail>) -> Tables<'t> {
        Tables {
            txn,
            tail,
            changed: HashMap::new(),
            meta: None,
            log: None,
            heads: None,
            next_pos: None,
            index: None,
            by_state: None,
            by_reviewer: None,
            by_due: None,
            outbox: None,
            workflows: None,
        }
    }

    /// Applies one operation. The outer error is redb's (abort the batch); the inner one is
    /// the operation's own (a conflict: it wrote nothing).
    fn apply(&mut self, op: &mut Op) -> Result<Result<Done, StoreError>, redb::Error> {
        match op {
            Op::Append {
                doc,
                expected,
                count,
                records,
                entry,
                notifications,
            } => {
                let (actual, last) = self.head(doc)?.unwrap_or((0, NO_PREV));
                if actual != *expected {
                    return Ok(Err(StoreError::Conflict {
                        doc: doc.clone(),
                        expected: *expected,
                        actual,
                    }));
                }
                // One value per append (the caller built it with `log_value`), at the end
                // of the log, linked to the document's previous append.
                if let Some(value) = records.first_mut() {
                    value[..8].copy_from_slice(&last.to_be_bytes());
                    let pos = self.next_pos()?;
                    table!(self.log, LOG).insert(pos, value.as_slice())?;
                    self.changed.insert(doc.clone(), (*expected + *count, pos));
                }
                if let Some(entry) = entry {
                    self.upsert(entry)?;
                }
                self.enqueue(notifications)?;
                Ok(Ok(Done::Len(*expected + *count)))
            }
            Op::Upsert(entry) => {
                self.upsert(entry)?;
                Ok(Ok(Done::Unit))
            }
            Op::Enqueue(items) => {
                self.enqueue(items)?;
                Ok(Ok(Done::Unit))
            }
            Op::Ack(id) => {
                let removed = table!(self.outbox, OUTBOX).remove(*id)?.is_some();
                Ok(if removed {
                    Ok(Done::Unit)
                } else {
                    Err(StoreError::UnknownOutboxItem(*id))
                })
            }
            Op::PutWorkflow { hash, source } => {
                table!(self.workflows, WORKFLOWS).insert(hash.as_str(), source.as_str())?;
                Ok(Ok(Done::Unit))
            }
        }
    }

    /// The head of `doc`: as this batch left it, else as the tail has it, else the row of
    /// `heads` (the newest first).
    fn head(&mut self, doc: &str) -> Result<Option<Head>, redb::Error> {
        if let Some(head) = self.changed.get(doc) {
            return Ok(Some(*head));
        }
        if let Some(head) = lock(self.tail).heads.get(doc).copied() {
            return Ok(Some(head));
        }
        Ok(table!(self.heads, HEADS).get(doc)?.map(|v| v.value()))
    }

    /// Ends the batch with a checkpoint when the tail, with this batch's heads, would hold
    /// more documents or appends than its limits: writes every head of the tail and of
    /// the batch into `heads`, and the log position after the batch as `tail_start`.
    /// Returns that position when it did. A batch without appends changes nothing.
    fn checkpoint(&mut self, tail_start: u64) -> Result<Option<u64>, redb::Error> {
        let Some(end) = self.next_pos else {
            return Ok(None);
        };
        let mut rows: BTreeMap<String, Head> = {
            let tail = lock(self.tail);
            let added = self
                .changed
                .keys()
                .filter(|doc| !tail.heads.contains_key(doc.as_str()))
                .count();
            if tail.heads.len() + added <= tail.max_docs && end - tail_start <= tail.max_appends {
                return Ok(None);
            }
            // Copied out, so that readers do not wait for the inserts below.
            tail.heads
                .iter()
                .map(|(doc, head)| (doc.clone(), *head))
                .collect()
        };
        rows.extend(self.changed.iter().map(|(doc, head)| (doc.clone(), *head)));
        // In key order: neighbouring rows go to the same leaf one after the other.
        let heads = table!(self.heads, HEADS);
        for (doc, head) in &rows {
            heads.insert(doc.as_str(), *head)?;
        }
        table!(self.meta, META).insert(TAIL_START, end)?;
        Ok(Some(end))
    }

    /// Takes the next position of the log (the last key + 1, read once per batch).
    fn next_pos(&mut self) -> Result<u64, redb::Error> {
        let pos = match self.next_pos {
            Some(pos) => pos,
            None => table!(self.log, LOG)
                .last()?
                .map_or(0, |(key, _)| key.value() + 1),
        };
        self.next_pos = Some(pos + 1);
        Ok(pos)
    }

    fn upsert(&mut self, entry: &IndexEntry) -> Result<(), redb::Error> {
        let doc = entry.doc.as_str();
        let new = StoredEntry::of(entry);
        let bytes = serde_json::to_vec(&new).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        let old = table!(self.index, INDEX)
            .get(doc)?
            .map(|v| v.value().to_vec());
        if old.as_deref() == Some(bytes.as_slice()) {
            return Ok(());
        }
        // A row that does not decode was not written by us; its secondary keys cannot be
        // found, and would only be stale hits.
        let old = old.and_then(|old| serde_json::from_slice::<StoredEntry>(&old).ok());
        let (old_state, old_reviewers, old_due) = match &old {
            Some(o) => (
                Some(o.state.as_str()),
                o.pending_reviewers.as_slice(),
                o.due_at,
            ),
            None => (None, &[][..], None),
        };
        // Only the secondary keys that change are written: a decision usually takes one
        // reviewer off the list and leaves the state and the due time alone, and every key
        // removed or inserted dirties a page of its table.
        if old_state != Some(new.state.as_str()) {
            let by_state = table!(self.by_state, BY_STATE);
            if let Some(state) = old_state {
                by_state.remove((state, doc))?;
            }
            by_state.insert((new.state.as_str(), doc), ())?;
        }
        let gone = old_reviewers
            .iter()
            .filter(|r| !new.pending_reviewers.contains(r));
        let added = new
            .pending_reviewers
            .iter()
            .filter(|r| !old_reviewers.contains(r));
        let by_reviewer = table!(self.by_reviewer, BY_REVIEWER);
        for r in gone {
            by_reviewer.remove((r.as_str(), doc))?;
        }
        for r in added {
            by_reviewer.insert((r.as_str(), doc), ())?;
        }
        if old_due != new.due_at {
            let by_due = table!(self.by_due, BY_DUE);
            if let Some(due) = old_due {
                by_due.remove((due, doc))?;
            }
            if let Some(due) = new.due_at {
                by_due.insert((due, doc), ())?;
            }
        }
        table!(self.index, INDEX).insert(doc, bytes.as_slice())?;
        Ok(())
    }

    fn enqueue(&mut self, items: &[Vec<u8>]) -> Result<(), redb::Error> {
        if items.is_empty() {
            return Ok(());
        }
        let meta = table!(self.meta, META);
        let mut next = meta.get(OUTBOX_NEXT)?.map_or(1, |v| v.value());
        let first = next;
        next += items.len() as u64;
        meta.insert(OUTBOX_NEXT, next)?;
        let outbox = table!(self.outbox, OUTBOX);
        for (i, item) in items.iter().enumerate() {
            outbox.insert(first + i as u64, item.as_slice())?;
        }
        Ok(())
    }
}

/// The document ids under `prefix` in a (prefix, doc) table, in document order.
fn prefix_docs(
    table: &impl ReadableTable<(&'static str, &'static str), ()>,
    prefix: &str,
) -> Result<Vec<String>, redb::Error> {
    let mut out = Vec::new();
    for row in table.range((prefix, "")..)? {
        let (key, _) = row?;
        let (p, doc) = key.value();
        if p != prefix {
            break;
        }
        out.push(doc.to_owned());
    }
    Ok(out)
}

/// Checks the layout version of an existing store, or writes the layout of a new one
/// (never when `read_only`: a file without the layout is then not a store).
fn init_layout(db: &Database, path: &Path, read_only: bool) -> Result<(), OpenError> {
    let found = {
        let txn = db.begin_read().map_err(|e| open_error(path, e))?;
        match txn.open_table(META) {
            Ok(meta) => meta
                .get(SCHEMA_KEY)
                .map_err(|e| open_error(path, e))?
                .map(|v| v.value()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(open_error(path, e)),
        }
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(OpenError::NewerSchema {
            path: path.to_owned(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(SCHEMA_VERSION) => Ok(()),
        Some(v @ (1 | 2)) => migrate(db, v).map_err(|e| open_error(path, e)),
        Some(v) => Err(OpenError::NotAStore {
            path: path.to_owned(),
            detail: format!("layout version {v}, which no signoff wrote"),
        }),
        None if read_only => Err(OpenError::NotAStore {
            path: path.to_owned(),
            detail: "a redb file without signoff's `meta` table".into(),
        }),
        None => {
            let txn = db.begin_write().map_err(|e| open_error(path, e))?;
            let has_tables = txn
                .list_tables()
                .map_err(|e| open_error(path, e))?
                .next()
                .is_some();
            if has_tables {
                return Err(OpenError::NotAStore {
                    path: path.to_owned(),
                    detail: "a redb file without signoff's `meta` table".into(),
                });
            }
            let create = |txn: &WriteTransaction| -> Result<(), redb::Error> {
                let mut meta = txn.open_table(META)?;
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                meta.insert(TAIL_START, 0)?;
                txn.open_table(LOG)?;
                txn.open_table(HEADS)?;
                txn.open_table(INDEX)?;
                txn.open_table(BY_STATE)?;
                txn.open_table(BY_REVIEWER)?;
                txn.open_table(BY_DUE)?;
                txn.open_table(OUTBOX)?;
                txn.open_table(WORKFLOWS)?;
                Ok(())
            };
            create(&txn).map_err(|e| open_error(path, e))?;
            txn.commit().map_err(|e| open_error(path, e))
        }
    }
}

/// Builds an empty store at a temporary name beside `path`, makes it durable, and links it
/// to `path` unless something else got there first (`hard_link` never replaces a file).
fn create_new(path: &Path) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".creating-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // A leftover of a crash during an earlier creation by a process of the same id.
    let _ = std::fs::remove_file(&tmp);
    {
        let db = guard(&tmp, || Database::builder().create(&tmp))?;
        init_layout(&db, &tmp, false)?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io(e)),
    }
    // The new directory entry must reach the disk too.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Opens the database, turning redb's assertion failures on some damaged files (redb 2.6
/// asserts, for example, that a file is at least as long as its header says) into
/// [`OpenError::Corrupted`]: a damaged file must give an error, never take the caller down.
fn guard(
    path: &Path,
    open: impl FnOnce() -> Result<Database, redb::DatabaseError>,
) -> Result<Database, OpenError> {
    match contain(open) {
        Ok(result) => result.map_err(|e| open_error(path, e)),
        Err(detail) => Err(OpenError::Corrupted {
            path: path.to_owned(),
            detail,
        }),
    }
}

fn open_error(path: &Path, e: impl Into<redb::Error>) -> OpenError {
    let path = path.to_owned();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => OpenError::Locked { path },
        redb::Error::Corrupted(detail) => OpenError::Corrupted { path, detail },
        redb::Error::UpgradeRequired(v) => OpenError::NotAStore {
            path,
            detail: format!("a redb file of format version {v}, which this redb cannot read"),
        },
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::WouldBlock => {
            OpenError::Locked { path }
        }
        redb::Error::Io(source) => OpenError::Io { path, source },
        e => OpenError::Backend {
            path,
            detail: e.to_string(),
        },
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

/// Migrates a store of layout version `from` (1 or 2) to this version, in place, in one
/// durable write transaction that runs each step from `from` on and then sets
/// `schema_version`. A crash or an error before the commit leaves the store as it was.
fn migrate(db: &Database, from: u64) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    if from < 2 {
        v1_to_v2(&txn)?;
    }
    v2_to_v3(&txn)?;
    txn.open_table(META)?.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
    txn.commit()?;
    Ok(())
}

/// Layout 1 to 2: every append of `events` moves to the log, document by document (so a
/// stream's appends stay in order and link back to each other), `heads` gets each
/// document's length and last append, and `events` is deleted.
fn v1_to_v2(txn: &WriteTransaction) -> Result<(), redb::Error> {
    {
        let events = txn.open_table(EVENTS_V1)?;
        let mut log = txn.open_table(LOG)?;
        let mut heads = txn.open_table(HEADS)?;
        let start = log.last()?.map_or(0, |(key, _)| key.value() + 1);
        // The document being moved: its id, length so far and last position.
        let mut current: Option<(String, u64, u64)> = None;
        for (pos, row) in (start..).zip(events.iter()?) {
            let (key, value) = row?;
            let (doc, first) = key.value();
            let value = value.value();
            let count = value
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(|b| u64::from(u32::from_be_bytes(b)))
                .ok_or_else(|| {
                    redb::Error::Corrupted(format!(
                        "append {first} of document {doc:?} in the version 1 events table has no count"
                    ))
                })?;
            let prev = match &current {
                Some((d, len, last)) if d == doc => {
                    if *len != first {
                        return Err(redb::Error::Corrupted(format!(
                            "document {doc:?} has a gap in the version 1 events table: an append at {first} after {len} records"
                        )));
                    }
                    *last
                }
                _ => {
                    if let Some((d, len, last)) = current.take() {
                        heads.insert(d.as_str(), (len, last))?;
                    }
                    NO_PREV
                }
            };
            let mut entry = log_header(doc, first, count, value.len())?;
            entry[..8].copy_from_slice(&prev.to_be_bytes());
            entry.extend_from_slice(&value[4..]);
            log.insert(pos, entry.as_slice())?;
            current = Some((doc.to_owned(), first + count, pos));
        }
        if let Some((d, len, last)) = current {
            heads.insert(d.as_str(), (len, last))?;
        }
    }
    txn.delete_table(EVENTS_V1)?;
    Ok(())
}

/// Layout 2 to 3: layout 2 wrote `heads` with every append, so it holds the whole log; the
/// tail starts after the log's last entry.
fn v2_to_v3(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let end = txn
        .open_table(LOG)?
        .last()?
        .map_or(0, |(key, _)| key.value() + 1);
    txn.open_table(META)?.insert(TAIL_START, end)?;
    Ok(())
}

/// Reads where the log's tail starts (`tail_start` in `meta`) and the heads of the
/// documents appended to from there on, from the log's entries (at most about
/// [`CHECKPOINT_APPENDS`] of them). Each entry must continue its document's stream where
/// the tail or `heads` left it, or the store is reported as damaged.
fn load_tail(db: &Database) -> Result<(u64, HashMap<String, Head>), redb::Error> {
    let txn = db.begin_read()?;
    let start = txn
        .open_table(META)?
        .get(TAIL_START)?
        .map(|v| v.value())
        .ok_or_else(|| redb::Error::Corrupted("`meta` has no `tail_start`".into()))?;
    let log = txn.open_table(LOG)?;
    let heads = txn.open_table(HEADS)?;
    let mut tail: HashMap<String, Head> = HashMap::new();
    for row in log.range(start..)? {
        let (pos, value) = row?;
        let pos = pos.value();
        let value = value.value();
        let entry = LogEntry::read(value, pos)?;
        let doc = entry.doc;
        let head = match tail.get(doc) {
            Some(head) => Some(*head),
            None => heads.get(doc)?.map(|v| v.value()),
        };
        let (len, last) = head.unwrap_or((0, NO_PREV));
        if entry.first != len || entry.prev.unwrap_or(NO_PREV) != last {
            return Err(redb::Error::Corrupted(format!(
                "log entry {pos} does not continue document {doc:?}: it starts at record {} \
                 and follows position {:?}, where the stream has {len} records and its last \
                 append is at {:?}",
                entry.first,
                entry.prev,
                (last != NO_PREV).then_some(last),
            )));
        }
        tail.insert(doc.to_owned(), (len + entry.count, pos));
    }
    Ok((start, tail))
}

/// The longer of two heads of one document (they grow together: the longer is the later).
fn newer(a: Option<Head>, b: Option<Head>) -> Option<Head> {
    a.max(b)
}

/// Locks the tail. A panic while it was locked cannot have left it half changed (every
/// change is one insert, extend or clear), so a poisoned lock is used as it is.
fn lock(tail: &Mutex<Tail>) -> MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(PoisonError::into_inner)
}

/// "No previous append", in a log entry's first 8 bytes.
const NO_PREV: u64 = u64::MAX;

/// The bytes before the records in a log entry: 8 + 8 + 4 + 4 bytes and the document id.
const HEADER: usize = 24;

/// The stored form of one append, built on the caller's task: the log entry's header (its
/// `previous` field left for the writer to fill, the only thing it knows), then the records
/// as one JSON array serialized straight into the same buffer (no value per record to join).
fn log_value(doc: &str, first: u64, records: &[Record]) -> Result<Vec<u8>, StoreError> {
    // About 400 bytes per record; a good guess saves the reallocations.
    let mut out = log_header(doc, first, records.len() as u64, 400 * records.len())
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    serde_json::to_writer(&mut out, records)
        .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// A log entry's header with room for `body` more bytes.
fn log_header(doc: &str, first: u64, count: u64, body: usize) -> Result<Vec<u8>, redb::Error> {
    let count = u32::try_from(count)
        .map_err(|_| redb::Error::Corrupted(format!("{count} records in one append")))?;
    let doc_len = u32::try_from(doc.len())
        .map_err(|_| redb::Error::Corrupted("a document id longer than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(HEADER + doc.len() + body);
    out.extend_from_slice(&NO_PREV.to_be_bytes());
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&doc_len.to_be_bytes());
    out.extend_from_slice(doc.as_bytes());
    Ok(out)
}

/// A log entry, read.
struct LogEntry<'v> {
    /// The document the append belongs to.
    doc: &'v str,
    /// The position of the document's previous append.
    prev: Option<u64>,
    first: u64,
    /// How many records the append holds.
    count: u64,
    /// The records' JSON array.
    records: &'v [u8],
}

impl<'v> LogEntry<'v> {
    /// Reads the entry at `pos`, which `doc`'s stream led to: it must belong to `doc`, and
    /// its previous append must come before it (so that following the links always ends).
    fn parse(value: &'v [u8], pos: u64, doc: &str) -> Result<LogEntry<'v>, redb::Error> {
        let entry = LogEntry::read(value, pos)?;
        if entry.doc != doc {
            return Err(redb::Error::Corrupted(format!(
                "log entry {pos} of {doc:?} is damaged"
            )));
        }
        Ok(entry)
    }

    /// Reads the entry at `pos`, whatever document it belongs to; its previous append must
    /// come before it.
    fn read(value: &'v [u8], pos: u64) -> Result<LogEntry<'v>, redb::Error> {
        let damaged = || redb::Error::Corrupted(format!("log entry {pos} is damaged"));
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(value.get(at..at + 8)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?))
        };
        let prev = u64_at(0).ok_or_else(damaged)?;
        let first = u64_at(8).ok_or_else(damaged)?;
        let count = u32_at(16).ok_or_else(damaged)?;
        let doc_len = u32_at(20).ok_or_else(damaged)? as usize;
        let doc = value
            .get(HEADER..HEADER + doc_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(damaged)?;
        if prev != NO_PREV && prev >= pos {
            return Err(damaged());
        }
        Ok(LogEntry {
            doc,
            prev: (prev != NO_PREV).then_some(prev),
            first,
            count: u64::from(count),
            records: &value[HEADER + doc_len..],
        })
    }
}
