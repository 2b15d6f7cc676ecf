//! [`SledStore`]: the sled adapter, with durability made explicit.
//!
//! sled 0.34 (its last release, 2021) writes to its log in memory and persists it when
//! `flush()` is called or every 500 ms in the background. Under
//! [`Durability::Immediate`] this adapter calls `flush()` after every commit and then
//! fsyncs sled's log file itself (on Linux, sled's flush ends with `sync_file_range`, which
//! does not reach the device's write cache), before answering; under [`Durability::None`]
//! it relies on the background flush, so a crash may lose the last half second of
//! acknowledged writes.
//!
//! Layout (version [`SCHEMA_VERSION`](crate::SCHEMA_VERSION)), where `lp(s)` is `s` with a
//! 4-byte big-endian length prefix: trees `meta` (`schema_version` → u64 big-endian),
//! `events` (`lp(doc)` ++ seq big-endian → record JSON), `index` (`e` ++ `lp(doc)` → row
//! JSON; `s` ++ `lp(state)` ++ doc, `r` ++ `lp(reviewer)` ++ doc, `d` ++ due time
//! (order-preserving 8 bytes) ++ doc → empty), `outbox` (`n` → next id; `i` ++ id → notification
//! JSON), `workflows` (hash → source). An append with its index row and notifications is one
//! sled transaction over `events`, `index` and `outbox`, so no partial record, row or
//! notification is ever visible; the stream length is the last key of the document's range.
//!
//! Noticing loss: sled 0.34 opens a truncated, emptied or damaged store as a smaller (even
//! empty) one, silently. So every append also writes, in its own transaction, `meta`'s
//! `manifest` (document count, record count, and an XOR of a 64-bit FNV-1a hash of each
//! document's (id, length)) and the document's head `h` ++ id → length. That catches loss
//! inside sled's state, but not sled recovering to an *earlier* consistent state: a flipped
//! byte or a zeroed page in sled's log makes its recovery stop there and drop every later
//! commit, manifest included. So a store also has a journal outside sled's files,
//! `PATH/signoff-store`, created with the store: after each commit is durable in sled, the
//! writer appends one line per append (`LENGTH JSON-ID`) and syncs it. The journal may lag
//! sled (a crash between the two) but never lead it, so opening a store refuses it as
//! [`OpenError::Corrupted`] when the journal exists without sled's data, when a document is
//! shorter than the journal says (naming it), or when the streams do not match the manifest
//! and heads (one scan of `events`' keys). The journal grows by a line per append until it
//! holds more than [`SLED_JOURNAL_COMPACT_LINES`] lines and twice as many as it had after its last
//! compaction; then the writer makes sled durable, writes one line per document from sled's
//! heads to a new file, syncs it and renames it over the journal (at open, or after a
//! commit), so it stays within about twice the number of documents.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use signoff_core::notify::Notification;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::{Record, Timestamp};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::codec::{
    StoredEntry, encode_notifications, encode_records, from_json, ordered_i64, push_str, read_str,
    to_json,
};
use crate::writer::{Backend, Done, Op, Writer, WriterStats, blocking};
use crate::{Durability, LocalStore, OpenError, SCHEMA_VERSION, StoreConfig};

const SCHEMA_KEY: &[u8] = b"schema_version";
/// `meta`: (documents, records, digest of heads), 24 bytes big-endian.
const MANIFEST: &[u8] = b"manifest";
/// The journal of heads written beside sled's files (see the module docs).
const MARKER: &str = "signoff-store";
/// The journal's first line.
const JOURNAL_HEADER: &str =
    "signoff sled store: the heads of its appends, see crates/storage/README.md";
const OUTBOX_NEXT: &[u8] = b"n";
/// The journal is compacted once it has more lines than this and twice as many as it had
/// after its last compaction (so a compaction, a scan of the heads, comes after at least as
/// many appends as there are documents).
pub const SLED_JOURNAL_COMPACT_LINES: u64 = 4096;

/// The sled store: one sled directory.
#[derive(Debug)]
pub struct SledStore {
    // Dropped first: the writer thread ends before the trees go.
    writer: Writer,
    trees: Trees,
    path: PathBuf,
}

#[derive(Debug, Clone)]
struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    events: sled::Tree,
    index: sled::Tree,
    outbox: sled::Tree,
    workflows: sled::Tree,
}

impl SledStore {
    /// Opens the store in the directory `path`, creating it when it does not exist.
    pub fn create(path: impl AsRef<Path>, config: StoreConfig) -> Result<SledStore, OpenError> {
        SledStore::start(path.as_ref(), config)
    }

    /// Opens an existing store; fails with [`OpenError::Missing`] when there is none.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<SledStore, OpenError> {
        let path = path.as_ref();
        if !path.join("conf").exists() && !path.join(MARKER).exists() {
            return Err(OpenError::Missing {
                path: path.to_owned(),
            });
        }
        SledStore::start(path, config)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions the writer thread committed, and how many operations they
    /// carried (their ratio is the mean group-commit batch).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    fn start(path: &Path, config: StoreConfig) -> Result<SledStore, OpenError> {
        let corrupted = |detail: String| OpenError::Corrupted {
            path: path.to_owned(),
            detail,
        };
        if path.exists() && !path.is_dir() {
            return Err(OpenError::NotAStore {
                path: path.to_owned(),
                detail: "a sled store is a directory, and this is a file".into(),
            });
        }
        let marked = path.join(MARKER).exists();
        let log_len = std::fs::metadata(path.join("db")).map_or(0, |m| m.len());
        if marked && (!path.join("conf").exists() || log_len == 0) {
            return Err(corrupted(
                "sled's files are missing or empty, but the store was created here: its data is lost".into(),
            ));
        }
        // sled's background IO threads release the file lock shortly after the last handle
        // of an earlier open in this process goes: wait up to a second before calling the
        // store locked.
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new()
                .path(path)
                .open()
                .map_err(|e| open_error(path, e))
            {
                Err(OpenError::Locked { .. }) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(path, e));
        let meta = tree("meta")?;
        let trees = Trees {
            meta: meta.clone(),
            events: tree("events")?,
            index: tree("index")?,
            outbox: tree("outbox")?,
            workflows: tree("workflows")?,
            db: db.clone(),
        };
        match meta.get(SCHEMA_KEY).map_err(|e| open_error(path, e))? {
            Some(v) => {
                let found = u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    OpenError::Corrupted {
                        path: path.to_owned(),
                        detail: "the schema version is not 8 bytes".into(),
                    }
                })?);
                if found > SCHEMA_VERSION {
                    return Err(OpenError::NewerSchema {
                        path: path.to_owned(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 2 changed redb's layout only: a version 1 sled store is a version
                // 2 one, and is marked so (older builds then refuse it, as they would a
                // version 2 redb store).
                if found < SCHEMA_VERSION {
                    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                        .map_err(|e| open_error(path, e))?;
                    db.flush().map_err(|e| open_error(path, e))?;
                }
            }
            None => {
                if !trees.events.is_empty() || !trees.index.is_empty() {
                    return Err(OpenError::NotAStore {
                        path: path.to_owned(),
                        detail: "a sled database without signoff's schema version".into(),
                    });
                }
                if marked {
                    return Err(corrupted(
                        "sled opened it as an empty database, but the store was created here: its data is lost".into(),
                    ));
                }
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| open_error(path, e))?;
                meta.insert(MANIFEST, &Manifest::default().to_bytes()[..])
                    .map_err(|e| open_error(path, e))?;
                db.flush().map_err(|e| open_error(path, e))?;
                // Written after the store's first durable flush: from now on, a store here
                // that sled opens as empty has lost its data.
                std::fs::write(path.join(MARKER), format!("{JOURNAL_HEADER}\n")).map_err(
                    |source| OpenError::Io {
                        path: path.to_owned(),
                        source,
                    },
                )?;
            }
        }
        let (journal_heads, journal_lines) =
            read_journal(&path.join(MARKER)).map_err(|source| OpenError::Io {
                path: path.to_owned(),
                source,
            })?;
        check_manifest(&trees, &journal_heads).map_err(|e| match e {
            Ok(detail) => corrupted(detail),
            Err(e) => open_error(path, e),
        })?;
        let journal = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path.join(MARKER))
            .map_err(|source| OpenError::Io {
                path: path.to_owned(),
                source,
            })?;
        // sled's log file, to fsync after sled's own flush (see `SledWriter::commit`).
        let log = std::fs::File::open(path.join("db")).map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut backend = SledWriter {
            trees: trees.clone(),
            durability: config.durability,
            log,
            journal,
            dir: path.to_owned(),
            journal_lines,
            compacted_lines: journal_heads.len() as u64,
        };
        backend.maybe_compact();
        let writer = Writer::start("sled", path, backend, config.max_batch()).map_err(|e| {
            OpenError::Io {
                path: path.to_owned(),
                source: e,
            }
        })?;
        Ok(SledStore {
            writer,
            trees,
            path: path.to_owned(),
        })
    }

    async fn read_with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Trees) -> Result<T, sled::Error> + Send + 'static,
    {
        let trees = self.trees.clone();
        let path = self.path.clone();
        // sled panics on some damaged stores too: the caller gets an error naming the store.
        blocking(move || {
            crate::contain::contain(|| f(&trees).map_err(backend)).unwrap_or_else(|panic| {
                Err(crate::Damaged {
                    path,
                    document: None,
                    position: None,
                    detail: panic,
                }
                .into())
            })
        })
        .await
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        self.commit(doc, expected, records, None, &[]).await
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let doc = doc.to_owned();
        let raw: Vec<Vec<u8>> = self
            .read_with(move |t| {
                let start = event_key(&doc, from);
                let end = event_key(&doc, u64::MAX);
                t.events
                    .range(start..=end)
                    .map(|row| row.map(|(_, v)| v.to_vec()))
                    .collect()
            })
            .await?;
        raw.iter().map(|b| from_json(b, "record")).collect()
    }
}

#[async_trait]
impl DocumentIndex for SledStore {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        self.writer.submit(Op::Upsert(entry)).await.map(|_| ())
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        let mut prefix = vec![b's'];
        push_str(&mut prefix, state);
        self.read_with(move |t| prefix_docs(&t.index, &prefix))
            .await
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let mut prefix = vec![b'r'];
        push_str(&mut prefix, user);
        self.read_with(move |t| prefix_docs(&t.index, &prefix))
            .await
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        let mut docs = self
            .read_with(move |trees| {
                let mut end = vec![b'd'];
                end.extend_from_slice(&ordered_i64(t.0));
                // Every key of a due time at or before `t` sorts below `end` + 0xff.
                end.push(0xff);
                let mut out = Vec::new();
                for row in trees.index.range(&b"d"[..]..end.as_slice()) {
                    let (key, _) = row?;
                    out.push(doc_after(&key, 9)?);
                }
                Ok(out)
            })
            .await?;
        docs.sort();
        Ok(docs)
    }
}

#[async_trait]
impl Outbox for SledStore {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        let items = encode_notifications(items)?;
        self.writer.submit(Op::Enqueue(items)).await.map(|_| ())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let raw = self
            .read_with(move |t| {
                let mut out = Vec::new();
                for row in t.outbox.scan_prefix(b"i").take(limit) {
                    let (k, v) = row?;
                    let id = k
                        .get(1..9)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes);
                    out.push((id, v.to_vec()));
                }
                Ok(out)
            })
            .await?;
        raw.into_iter()
            .map(|(id, b)| {
                let id = id.ok_or_else(|| {
                    StoreError::Backend("corrupted outbox key in the store".into())
                })?;
                Ok((id, from_json(&b, "notification")?))
            })
            .collect()
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        self.writer.submit(Op::Ack(id)).await.map(|_| ())
    }
}

#[async_trait]
impl LocalStore for SledStore {
    async fn commit(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        let op = Op::Append {
            doc: doc.to_owned(),
            expected,
            count: records.len() as u64,
            records: encode_records(doc, expected, records)?,
            entry,
            notifications: encode_notifications(notifications)?,
        };
        match self.writer.submit(op).await? {
            Done::Len(n) => Ok(n),
            Done::Unit => Err(StoreError::Backend(
                "the writer answered out of turn".into(),
            )),
        }
    }

    async fn documents(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read_with(|t| {
            let mut out: Vec<(String, u64)> = Vec::new();
            // One step per document: jump from each stream's last key to the next stream.
            let mut from: Vec<u8> = Vec::new();
            loop {
                let Some(row) = t.events.range(from.as_slice()..).next() else {
                    break;
                };
                let (key, _) = row?;
                let Some((doc, _)) = read_str(&key, 0) else {
                    break;
                };
                let doc = doc.to_owned();
                let len = stream_len(&t.events, &doc)?;
                from = event_key(&doc, u64::MAX);
                from.push(0);
                out.push((doc, len));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn put_workflow(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.writer
            .submit(Op::PutWorkflow {
                hash: hash.to_owned(),
                source: source.to_owned(),
            })
            .await
            .map(|_| ())
    }

    async fn workflow(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_owned();
        let raw = self
            .read_with(move |t| Ok(t.workflows.get(hash.as_bytes())?.map(|v| v.to_vec())))
            .await?;
        raw.map(|b| {
            String::from_utf8(b)
                .map_err(|_| StoreError::Backend("corrupted workflow in the store".into()))
        })
        .transpose()
    }
}

struct SledWriter {
    trees: Trees,
    durability: Durability,
    log: std::fs::File,
    /// The journal of heads outside sled (see the module docs), opened for appending.
    journal: std::fs::File,
    /// The store's directory (the journal is `dir/signoff-store`).
    dir: PathBuf,
    /// Lines in the journal after its header (torn or unreadable ones included).
    journal_lines: u64,
    /// Lines it had after its last compaction (at open: the documents it named).
    compacted_lines: u64,
}

impl Backend for SledWriter {
    fn commit(&mut self, ops: &mut [Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops.iter() {
            results.push(self.apply(op)?);
        }
        if self.durability == Durability::Immediate {
            // Everything above is in sled's memory; `flush` writes its log. On Linux, sled
            // 0.34 then calls `sync_file_range`, which neither flushes the device's write
            // cache nor the file's metadata, so we fsync the log file ourselves. Only then
            // are the callers answered.
            self.trees.db.flush().map_err(backend)?;
            self.log
                .sync_all()
                .map_err(|e| StoreError::Backend(format!("fsync of sled's log: {e}")))?;
        }
        // After sled's commit, so the journal never leads sled. A failure here leaves the
        // journal behind, which only weakens what the next open can notice: the appends are
        // committed, and their callers are told so.
        if let Err(e) = self.journal(ops, &results) {
            tracing::warn!(error = %e, "the sled store's journal of heads was not written");
        }
        Ok(results)
    }

    fn close(&mut self) {
        if let Err(e) = self.trees.db.flush() {
            tracing::warn!(error = %e, "the final flush failed");
        }
    }
}

impl SledWriter {
    /// Appends the heads of the batch's successful appends to the journal.
    fn journal(&mut self, ops: &[Op], results: &[Result<Done, StoreError>]) -> std::io::Result<()> {
        use std::io::Write;
        let mut lines = String::new();
        for (op, result) in ops.iter().zip(results) {
            if let (Op::Append { doc, count, .. }, Ok(Done::Len(len))) = (op, result)
                && *count > 0
            {
                let id = serde_json::to_string(doc).map_err(std::io::Error::other)?;
                lines.push_str(&format!("{len} {id}\n"));
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.journal.write_all(lines.as_bytes())?;
        if self.durability == Durability::Immediate {
            self.journal.sync_data()?;
        }
        self.journal_lines += lines.bytes().filter(|b| *b == b'\n').count() as u64;
        self.maybe_compact();
        Ok(())
    }

    /// Compacts the journal when it has grown enough (see [`SLED_JOURNAL_COMPACT_LINES`]). A failure
    /// leaves the old journal in place (it is still right) and is retried after as many
    /// lines again. It runs after a batch is committed: even a panic of sled here (a damaged
    /// store) is caught, so the batch's callers are never told that what was written failed.
    fn maybe_compact(&mut self) {
        if self.journal_lines <= SLED_JOURNAL_COMPACT_LINES.max(2 * self.compacted_lines) {
            return;
        }
        let failed = match crate::contain::contain(|| self.compact()) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic,
        };
        tracing::warn!(error = %failed, "the sled store's journal of heads was not compacted");
        self.compacted_lines = self.journal_lines;
    }

    /// Rewrites the journal as one line per document, from sled's heads: sled is made
    /// durable first, so the new journal, like the old one, never leads it. The new file is
    /// written and synced beside the old one, then renamed over it: a crash leaves one or
    /// the other, both right.
    fn compact(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.trees.db.flush().map_err(std::io::Error::other)?;
        self.log.sync_all()?;
        let tmp = self.dir.join(format!("{MARKER}.compacting"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(out, "{JOURNAL_HEADER}")?;
        let mut lines = 0u64;
        for row in self.trees.meta.scan_prefix(b"h") {
            let (key, value) = row.map_err(std::io::Error::other)?;
            let (Some((doc, _)), Ok(bytes)) =
                (read_str(&key, 1), <[u8; 8]>::try_from(value.as_ref()))
            else {
                // A damaged head: left out, which only weakens the next open's check.
                continue;
            };
            let id = serde_json::to_string(doc).map_err(std::io::Error::other)?;
            writeln!(out, "{} {id}", u64::from_be_bytes(bytes))?;
            lines += 1;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(MARKER))?;
        // From the rename on, the journal is the new file: append there even if what follows
        // fails (the old one is gone from the directory).
        self.journal = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(MARKER))?;
        self.journal_lines = lines;
        self.compacted_lines = lines;
        // The rename made durable; if that fails, a crash may bring back the old journal,
        // which is right too (it lags).
        if let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "the sled store's directory was not synced after compacting its journal");
        }
        Ok(())
    }

    fn apply(&self, op: &Op) -> Result<Result<Done, StoreError>, StoreError> {
        let t = &self.trees;
        match op {
            Op::Append {
                doc,
                expected,
                records,
                entry,
                notifications,
                ..
            } => {
                // The writer thread is the only writer, so the length read here cannot change
                // before the transaction below.
                let actual = stream_len(&t.events, doc).map_err(backend)?;
                if actual != *expected {
                    return Ok(Err(StoreError::Conflict {
                        doc: doc.clone(),
                        expected: *expected,
                        actual,
                    }));
                }
                // Records, index row and notifications in one transaction over the three
                // trees: all or none after a crash.
                (&t.events, &t.index, &t.outbox, &t.meta)
                    .transaction(|(events, index, outbox, meta)| {
                        for (i, r) in records.iter().enumerate() {
                            events.insert(event_key(doc, expected + i as u64), r.as_slice())?;
                        }
                        if !records.is_empty() {
                            // The manifest and the head change with the records: see the
                            // module docs for why.
                            let mut m = meta
                                .get(MANIFEST)?
                                .map_or_else(Manifest::default, |v| Manifest::from_bytes(&v));
                            let len = expected + records.len() as u64;
                            m.add(doc, *expected, len);
                            meta.insert(MANIFEST, &m.to_bytes()[..])?;
                            meta.insert(head_key(doc), &len.to_be_bytes()[..])?;
                        }
                        if let Some(entry) = entry {
                            upsert(index, entry)?;
                        }
                        enqueue(outbox, notifications)?;
                        Ok(())
                    })
                    .map_err(tx_error)?;
                Ok(Ok(Done::Len(expected + records.len() as u64)))
            }
            Op::Upsert(entry) => {
                t.index
                    .transaction(|index| upsert(index, entry))
                    .map_err(tx_error)?;
                Ok(Ok(Done::Unit))
            }
            Op::Enqueue(items) => {
                t.outbox
                    .transaction(|outbox| enqueue(outbox, items))
                    .map_err(tx_error)?;
                Ok(Ok(Done::Unit))
            }
            Op::Ack(id) => {
                let removed = t.outbox.remove(outbox_key(*id)).map_err(backend)?;
                Ok(match removed {
                    Some(_) => Ok(Done::Unit),
                    None => Err(StoreError::UnknownOutboxItem(*id)),
                })
            }
            Op::PutWorkflow { hash, source } => {
                t.workflows
                    .insert(hash.as_bytes(), source.as_bytes())
                    .map_err(backend)?;
                Ok(Ok(Done::Unit))
            }
        }
    }
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;

/// Replaces `entry`'s row and its secondary keys, inside a transaction.
fn upsert(index: &TransactionalTree, entry: &IndexEntry) -> TxResult {
    let doc = entry.doc.as_str();
    let mut main = vec![b'e'];
    push_str(&mut main, doc);
    if let Some(old) = index.get(&main)? {
        let old: StoredEntry =
            from_json(&old, "index row").map_err(ConflictableTransactionError::Abort)?;
        for key in secondary_keys(&old, doc) {
            index.remove(key)?;
        }
    }
    let stored = StoredEntry::of(entry);
    for key in secondary_keys(&stored, doc) {
        index.insert(key, &[][..])?;
    }
    let row = to_json(&stored).map_err(ConflictableTransactionError::Abort)?;
    index.insert(main, row)?;
    Ok(())
}

/// Adds `items` to the outbox under the next ids, inside a transaction.
fn enqueue(outbox: &TransactionalTree, items: &[Vec<u8>]) -> TxResult {
    if items.is_empty() {
        return Ok(());
    }
    let mut next = match outbox.get(OUTBOX_NEXT)? {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
            ConflictableTransactionError::Abort(StoreError::Backend(
                "corrupted outbox counter in the store".into(),
            ))
        })?),
        None => 1,
    };
    for item in items {
        outbox.insert(outbox_key(next).to_vec(), item.as_slice())?;
        next += 1;
    }
    outbox.insert(OUTBOX_NEXT, &next.to_be_bytes()[..])?;
    Ok(())
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

fn secondary_keys(e: &StoredEntry, doc: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut k = vec![b's'];
    push_str(&mut k, &e.state);
    k.extend_from_slice(doc.as_bytes());
    keys.push(k);
    for r in &e.pending_reviewers {
        let mut k = vec![b'r'];
        push_str(&mut k, r);
        k.extend_from_slice(doc.as_bytes());
        keys.push(k);
    }
    if let Some(due) = e.due_at {
        let mut k = vec![b'd'];
        k.extend_from_slice(&ordered_i64(due));
        k.extend_from_slice(doc.as_bytes());
        keys.push(k);
    }
    keys
}

fn event_key(doc: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(doc.len() + 12);
    push_str(&mut k, doc);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn outbox_key(id: u64) -> [u8; 9] {
    let mut k = [b'i'; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The length of `doc`'s stream: one past the seq of its last key.
fn stream_len(events: &sled::Tree, doc: &str) -> Result<u64, sled::Error> {
    let mut prefix = Vec::new();
    push_str(&mut prefix, doc);
    let prefix_len = prefix.len();
    Ok(match events.scan_prefix(&prefix).next_back() {
        Some(row) => {
            let (k, _) = row?;
            let seq: [u8; 8] = k[prefix_len..].try_into().unwrap_or([0xff; 8]);
            u64::from_be_bytes(seq).saturating_add(1)
        }
        None => 0,
    })
}

/// The document ids of the keys under `prefix`, in document order (each key is `prefix` ++
/// the document id, unprefixed, so that keys sort like the ids).
fn prefix_docs(index: &sled::Tree, prefix: &[u8]) -> Result<Vec<String>, sled::Error> {
    let mut out = Vec::new();
    for row in index.scan_prefix(prefix) {
        let (k, _) = row?;
        out.push(doc_after(&k, prefix.len())?);
    }
    Ok(out)
}

/// The document id that ends an index key, from `at` on.
fn doc_after(key: &[u8], at: usize) -> Result<String, sled::Error> {
    key.get(at..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
        .ok_or_else(|| sled::Error::Unsupported("corrupted index key in the store".into()))
}

fn open_error(path: &Path, e: sled::Error) -> OpenError {
    let path = path.to_owned();
    match e {
        sled::Error::Io(source)
            if source.kind() == std::io::ErrorKind::WouldBlock
                || source.to_string().contains("lock") =>
        {
            OpenError::Locked { path }
        }
        sled::Error::Io(source) => OpenError::Io { path, source },
        sled::Error::Corruption { .. } => OpenError::Corrupted {
            path,
            detail: e.to_string(),
        },
        e => OpenError::Backend {
            path,
            detail: e.to_string(),
        },
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What an append keeps beside the records so that an open notices lost ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Manifest {
    documents: u64,
    records: u64,
    /// XOR of `fnv(doc, len)` over the documents: order-free and updated in O(1).
    digest: u64,
}

impl Manifest {
    fn add(&mut self, doc: &str, old: u64, new: u64) {
        if old == 0 {
            self.documents += 1;
        } else {
            self.digest ^= fnv(doc, old);
        }
        self.digest ^= fnv(doc, new);
        self.records += new - old;
    }

    fn to_bytes(self) -> [u8; 24] {
        let mut out = [0; 24];
        out[..8].copy_from_slice(&self.documents.to_be_bytes());
        out[8..16].copy_from_slice(&self.records.to_be_bytes());
        out[16..].copy_from_slice(&self.digest.to_be_bytes());
        out
    }

    /// A value that is not 24 bytes reads as all ones, which no store matches.
    fn from_bytes(b: &[u8]) -> Manifest {
        let at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map_or(u64::MAX, u64::from_be_bytes)
        };
        if b.len() != 24 {
            return Manifest {
                documents: u64::MAX,
                records: u64::MAX,
                digest: u64::MAX,
            };
        }
        Manifest {
            documents: at(0),
            records: at(8),
            digest: at(16),
        }
    }
}

/// FNV-1a over the document id and its length: stable across builds (std's hasher is not).
fn fnv(doc: &str, len: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.as_bytes().iter().chain(&[0]).chain(&len.to_be_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn head_key(doc: &str) -> Vec<u8> {
    let mut k = b"h".to_vec();
    push_str(&mut k, doc);
    k
}

/// Compares the streams with the manifest and the heads. `Err(Ok(detail))` is damage,
/// `Err(Err(e))` sled's own error. A store without a manifest (written before there was
/// one) gets it now, from what it holds.
fn check_manifest(
    t: &Trees,
    journal: &std::collections::BTreeMap<String, u64>,
) -> Result<(), Result<String, sled::Error>> {
    let mut lens: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut records = 0u64;
    for row in t.events.iter().keys() {
        let key = row.map_err(Err)?;
        let Some((doc, at)) = read_str(&key, 0) else {
            return Err(Ok("a record key in `events` is damaged".into()));
        };
        let seq = key
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| Ok(format!("a record key of document {doc} is damaged")))?;
        records += 1;
        let len = lens.entry(doc.to_owned()).or_default();
        *len = (*len).max(seq + 1);
    }
    let mut found = Manifest::default();
    for (doc, len) in &lens {
        found.add(doc, 0, *len);
    }
    // The journal never leads sled: a document shorter than it says lost records.
    let behind: Vec<String> = journal
        .iter()
        .filter_map(|(doc, len)| {
            let has = lens.get(doc).copied().unwrap_or(0);
            (has < *len).then(|| format!("{doc} (has {has} of {len} records)"))
        })
        .collect();
    if !behind.is_empty() {
        return Err(Ok(format!(
            "sled recovered an earlier state than its journal of heads records; documents that lost records: {}",
            behind.join(", ")
        )));
    }
    let Some(kept) = t.meta.get(MANIFEST).map_err(Err)? else {
        t.meta
            .insert(MANIFEST, &found.to_bytes()[..])
            .map_err(Err)?;
        for (doc, len) in &lens {
            t.meta
                .insert(head_key(doc), &len.to_be_bytes()[..])
                .map_err(Err)?;
        }
        return Ok(());
    };
    let kept = Manifest::from_bytes(&kept);
    // Documents whose head says more than their stream holds, or gaps in a stream.
    let mut lost = Vec::new();
    for row in t.meta.scan_prefix(b"h") {
        let (key, value) = row.map_err(Err)?;
        let (Some((doc, _)), Ok(bytes)) = (read_str(&key, 1), <[u8; 8]>::try_from(value.as_ref()))
        else {
            lost.push("(a damaged head)".to_owned());
            continue;
        };
        let head = u64::from_be_bytes(bytes);
        let has = lens.get(doc).copied().unwrap_or(0);
        if has != head {
            lost.push(format!("{doc} (has {has} of {head} records)"));
        }
    }
    if records != lens.values().sum::<u64>() {
        lost.push("a stream with a gap".to_owned());
    }
    if lost.is_empty() && kept == found {
        return Ok(());
    }
    Err(Ok(format!(
        "it holds {} documents and {} records where its manifest says {} and {}{}",
        found.documents,
        found.records,
        kept.documents,
        kept.records,
        if lost.is_empty() {
            String::new()
        } else {
            format!("; documents that lost records: {}", lost.join(", "))
        }
    )))
}

/// A journal's heads: document id → length.
type JournalHeads = std::collections::BTreeMap<String, u64>;

/// The journal's heads, folded (the longest per document), and its number of lines after
/// the header; none when there is no journal. A torn last line (a crash while it was
/// written) is ignored: the journal may lag.
fn read_journal(path: &Path) -> std::io::Result<(JournalHeads, u64)> {
    let mut heads = std::collections::BTreeMap::new();
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((heads, 0)),
        Err(e) => return Err(e),
    };
    let lines = text.lines().count().saturating_sub(1) as u64;
    for line in text.lines().skip(1) {
        let Some((len, id)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(len), Ok(id)) = (len.parse::<u64>(), serde_json::from_str::<String>(id)) else {
            continue;
        };
        let head = heads.entry(id).or_insert(0);
        *head = len.max(*head);
    }
    Ok((heads, lines))
}
