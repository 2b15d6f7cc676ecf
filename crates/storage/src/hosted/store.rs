//! [`HostedStore`]: core's storage traits over any [`Kvs`], inside the platform's limits.
//!
//! The layout and the reasoning behind it are described on [`HostedStore`]; the keys
//! themselves are built in `keys.rs`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use signoff_core::audit::sha256_hex;
use signoff_core::notify::Notification;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::{Record, Timestamp};

use super::keys::{self, Keys, component};
use super::{
    KeyPolicy, Kvs, KvsError, KvsOp, MAX_KEY_LEN, MAX_PAGE, MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_OPS, MAX_VALUE_BYTES,
};
use crate::LocalStore;

/// The namespace of [`HostedStore::new`].
pub const DEFAULT_PREFIX: &str = "signoff";

/// The longest document id, state, reviewer or workflow hash the store accepts, in bytes.
/// Longer names are refused with a [`StoreError::Backend`] that names them; names up to this
/// size always fit in keys (long ones are hashed) and in values.
pub const MAX_NAME_BYTES: usize = 8 * 1024;

/// How often a write is retried when a marker key it takes (`FAIL_IF_EXISTS`) was taken by a
/// concurrent writer of the same index row or outbox batch, and the stream did not move.
const MAX_ATTEMPTS: u32 = 64;

/// Notifications per outbox batch: the low 16 bits of an outbox id.
const BATCH_ITEMS: usize = 1 << 16;

/// Core's storage traits ([`EventStore`], [`DocumentIndex`], [`Outbox`], and the crate's
/// [`LocalStore`]) over one installation's hosted key-value store.
///
/// Every key is `PREFIX:KIND:...` (the prefix is [`DEFAULT_PREFIX`] unless chosen with
/// [`HostedStore::with_prefix`]); `D` is the document id as a key component (escaped into
/// the key alphabet, or hashed when long: see the crate README):
///
/// | key | value |
/// | --- | --- |
/// | `P:h:D` | the stream head: `{"doc", "len", "last"}` (`last`: the hash of the last record), and the caller's snapshot of the document with its SHA-256 (`"snap"`, `"snap_sha"`) when the last append left one ([`HostedStore::commit_with_snapshot`]) |
/// | `P:a:D:FIRST` | one append, taken with `FAIL_IF_EXISTS`: `{"doc", "first", "count", "records": [...]}`, or `{..., "parts", "sha"}` when it is split |
/// | `P:x:D:FIRST:SHA16:I` | part `I` of a split append: a JSON string, a slice of the records' JSON text |
/// | `P:r:D` | the index row: `{"doc", "state", "pending_reviewers", "due_at", "rev"}`, with a `"journal"` while a large change settles |
/// | `P:rm:D:REV` | taken (`FAIL_IF_EXISTS`) by the write of row revision `REV`; never deleted |
/// | `P:s:STATE:D`, `P:u:USER:D`, `P:t:DUE:D` | the index by state, reviewer and due time: the document id |
/// | `P:on` | the last outbox batch number handed out |
/// | `P:oa:BATCH` | taken by the enqueue whose first batch is `BATCH`; never deleted |
/// | `P:o:BATCH` | an outbox batch: `{"batch", "rev", "items": [[I, notification], ...]}`; item id = `BATCH << 16 \| I` |
/// | `P:om:BATCH:REV` | taken by the acknowledgement that makes revision `REV` of a batch; never deleted |
/// | `P:w:HASH`, `P:wx:HASH:SHA16:I` | workflow sources, split like appends when large |
///
/// Numbers (`FIRST`, `REV`, `BATCH`, `DUE`) are 16 hex digits, so that keys sort like them.
///
/// An append is one transaction: its record key (`FAIL_IF_EXISTS` at the expected
/// position, so two writers at the same position cannot both win), the new head, the index
/// row with its changed index keys (those that do not fit settle right after: see
/// `settle`), and the notifications. Records too large for one value
/// are split into parts; parts that do not fit in that transaction are written first in
/// transactions of their own, under keys nothing refers to until the append is published.
///
/// Calls run on the caller's task: a [`Kvs`] is synchronous (a wasm guest's imports, the
/// simulator's store, or [`MemoryKvs`](super::MemoryKvs)).
#[derive(Debug, Clone)]
pub struct HostedStore<K> {
    kvs: K,
    keys: Keys,
}

/// A namespace prefix that [`HostedStore::with_prefix`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{prefix}` cannot namespace a hosted store: use 1 to {max} characters from [a-zA-Z0-9._-]",
    max = keys::MAX_PREFIX
)]
pub struct InvalidPrefix {
    pub prefix: String,
}

impl<K: Kvs> HostedStore<K> {
    /// A store under [`DEFAULT_PREFIX`].
    pub fn new(kvs: K) -> HostedStore<K> {
        HostedStore {
            kvs,
            keys: Keys::new(DEFAULT_PREFIX),
        }
    }

    /// A store whose keys all begin with `prefix:`, so that several stores can share one
    /// installation's key-value store without seeing each other.
    pub fn with_prefix(kvs: K, prefix: &str) -> Result<HostedStore<K>, InvalidPrefix> {
        if !keys::valid_prefix(prefix) {
            return Err(InvalidPrefix {
                prefix: prefix.to_owned(),
            });
        }
        Ok(HostedStore {
            kvs,
            keys: Keys::new(prefix),
        })
    }

    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    pub fn kvs(&self) -> &K {
        &self.kvs
    }

    pub fn into_inner(self) -> K {
        self.kvs
    }

    /// What `doc`'s head says, from one strongly consistent `get`: the stream's length, the
    /// hash of its last record, and the snapshot the last append left (see
    /// [`HostedStore::commit_with_snapshot`]). A snapshot whose checksum does not hold is
    /// reported as [`Snapshot::Corrupt`], never returned.
    pub fn stream_head(&self, doc: &str) -> Result<StreamHead, StoreError> {
        let key = self.keys.head(&component(doc));
        let Some(h) = self.get_json::<Head>(&key)? else {
            return Ok(StreamHead::default());
        };
        if h.doc != doc {
            return Err(corrupt(
                &key,
                format!("holds the head of {}, not {doc}", h.doc),
            ));
        }
        let snapshot = match (h.snap, h.snap_sha) {
            (Some(text), Some(sha)) if sha256_hex(text.as_bytes()) == sha => Snapshot::Kept(text),
            (None, None) => Snapshot::None,
            _ => Snapshot::Corrupt,
        };
        Ok(StreamHead {
            len: h.len,
            last: h.last,
            snapshot,
        })
    }

    /// [`LocalStore::commit`], leaving `snapshot` (any text, for example the document's
    /// state as JSON) in the stream's head, in the same transaction as the records. It is
    /// kept only as long as nothing else is appended: any later append writes a head of its
    /// own, with its own snapshot or none. A snapshot over [`MAX_SNAPSHOT_BYTES`] is not
    /// kept, and neither is one that would not fit in the transaction; the commit goes on
    /// without it. Nothing is kept when there are no records.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_with_snapshot(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<&IndexEntry>,
        notifications: &[Notification],
        snapshot: &str,
    ) -> Result<u64, StoreError> {
        let snapshot = (snapshot.len() <= MAX_SNAPSHOT_BYTES).then_some(snapshot);
        self.commit_now(doc, expected, records, entry, notifications, snapshot)
    }
}

impl<K: Kvs> HostedStore<K> {
    /// [`Outbox::ack`] of several items: one read and one transaction per outbox batch
    /// (instead of one of each per item), so one revision marker per batch. Every item that
    /// is pending is acknowledged; then the first id that named no pending item, if any, is
    /// reported ([`StoreError::UnknownOutboxItem`]).
    pub fn ack_all(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut by_batch: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
        for &id in ids {
            by_batch
                .entry(id >> 16)
                .or_default()
                .insert((id & 0xffff) as u32);
        }
        let mut unknown = None;
        for (batch, items) in by_batch {
            let missing = if batch == 0 {
                items.first().copied()
            } else {
                self.ack_in_batch(batch, &items)?
            };
            if let Some(i) = missing {
                unknown = unknown.or(Some(batch << 16 | u64::from(i)));
            }
        }
        unknown.map_or(Ok(()), |id| Err(StoreError::UnknownOutboxItem(id)))
    }

    /// Acknowledges the `items` of outbox batch `batch` that are pending, in one transaction;
    /// returns the first of them that was not.
    fn ack_in_batch(&self, batch: u64, items: &BTreeSet<u32>) -> Result<Option<u32>, StoreError> {
        let key = self.keys.outbox(batch);
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut b) = self.get_json::<Batch>(&key)? else {
                return Ok(items.first().copied());
            };
            let missing = items
                .iter()
                .find(|i| !b.items.iter().any(|(j, _)| j == *i))
                .copied();
            let before = b.items.len();
            b.items.retain(|(i, _)| !items.contains(i));
            if b.items.len() == before {
                return Ok(missing);
            }
            b.rev += 1;
            let ops = vec![
                set_new(self.keys.outbox_ack_mark(batch, b.rev), "1"),
                if b.items.is_empty() {
                    KvsOp::Delete { key: key.clone() }
                } else {
                    set(key.clone(), to_json(&b)?)
                },
            ];
            match self.kvs.transact(ops) {
                Ok(()) => return Ok(missing),
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    return Err(refused(e, &format!("acknowledging outbox batch {batch}")));
                }
            }
        }
        Err(gave_up(&format!("outbox batch {batch}")))
    }
}

/// The longest snapshot [`HostedStore::commit_with_snapshot`] keeps, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;

/// A stream's head: see [`HostedStore::stream_head`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHead {
    /// How many records the stream holds (0: there is no stream).
    pub len: u64,
    /// The hash of the stream's last record, when the last append recorded it (heads
    /// written before it was recorded have none).
    pub last: Option<String>,
    pub snapshot: Snapshot,
}

/// The snapshot a stream's head holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Snapshot {
    /// The last append left none.
    #[default]
    None,
    /// The text the last append left, matching its checksum.
    Kept(String),
    /// A snapshot whose text does not match its checksum (or half of one): not returned.
    Corrupt,
}

#[async_trait]
impl<K: Kvs> EventStore for HostedStore<K> {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        self.commit_now(doc, expected, records, None, &[], None)
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        self.read_now(doc, from)
    }
}

#[async_trait]
impl<K: Kvs> DocumentIndex for HostedStore<K> {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        check_entry(&entry)?;
        let what = format!("the index row of {}", entry.doc);
        for _ in 0..MAX_ATTEMPTS {
            let Some(change) = self.index_change(&entry)? else {
                return Ok(());
            };
            let (ops, rest) = change.ops(&self.keys, MAX_TRANSACTION_OPS - 2)?;
            check_transaction(&ops, &what)?;
            match self.kvs.transact(ops) {
                Ok(()) => {
                    self.settle(&change, rest);
                    return Ok(());
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(refused(e, &format!("writing {what}"))),
            }
        }
        Err(gave_up(&what))
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        self.docs_under(&self.keys.by_state_prefix(&component(state)), None)
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.docs_under(&self.keys.by_reviewer_prefix(&component(user)), None)
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        self.docs_under(&self.keys.by_due_prefix(), Some(t.0))
    }
}

#[async_trait]
impl<K: Kvs> Outbox for HostedStore<K> {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let batches = batches(items)?;
        for _ in 0..MAX_ATTEMPTS {
            let ops = self.outbox_ops(&batches)?;
            check_transaction(&ops, "the outbox")?;
            match self.kvs.transact(ops) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(refused(e, "enqueueing notifications")),
            }
        }
        Err(gave_up("the outbox"))
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = self.keys.outboxes();
        self.scan(&prefix, |key, value| {
            let batch: Batch = parse(key, value)?;
            if key != self.keys.outbox(batch.batch) {
                return Err(corrupt(key, format!("holds batch {}", batch.batch)));
            }
            for (i, n) in batch.items {
                out.push((outbox_id(batch.batch, i, key)?, n));
                if out.len() == limit {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(out)
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        let (batch, i) = (id >> 16, (id & 0xffff) as u32);
        if batch == 0 {
            return Err(StoreError::UnknownOutboxItem(id));
        }
        let key = self.keys.outbox(batch);
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut b) = self.get_json::<Batch>(&key)? else {
                return Err(StoreError::UnknownOutboxItem(id));
            };
            let Some(pos) = b.items.iter().position(|(j, _)| *j == i) else {
                return Err(StoreError::UnknownOutboxItem(id));
            };
            b.items.remove(pos);
            b.rev += 1;
            let mut ops = vec![set_new(self.keys.outbox_ack_mark(batch, b.rev), "1")];
            ops.push(if b.items.is_empty() {
                KvsOp::Delete { key: key.clone() }
            } else {
                set(key.clone(), to_json(&b)?)
            });
            match self.kvs.transact(ops) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(refused(e, &format!("acknowledging outbox item {id}"))),
            }
        }
        Err(gave_up(&format!("outbox item {id}")))
    }
}

#[async_trait]
impl<K: Kvs> LocalStore for HostedStore<K> {
    async fn commit(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        self.commit_now(doc, expected, records, entry.as_ref(), notifications, None)
    }

    async fn documents(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = self.keys.heads();
        let mut out = Vec::new();
        self.scan(&prefix, |key, value| {
            let head: HeadLen = parse(key, value)?;
            if key[prefix.len()..] != component(&head.doc) {
                return Err(corrupt(key, format!("holds the head of {}", head.doc)));
            }
            out.push((head.doc, head.len));
            Ok(true)
        })?;
        out.sort();
        Ok(out)
    }

    async fn put_workflow(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        check_name("workflow hash", hash)?;
        let h = component(hash);
        let inline = to_json(&WorkflowValue {
            hash: hash.to_owned(),
            source: Some(source.to_owned()),
            parts: None,
            sha: None,
        })?;
        let what = format!("workflow {hash}");
        if inline.len() <= MAX_VALUE_BYTES {
            let ops = vec![set(self.keys.workflow(&h), inline)];
            return self
                .kvs
                .transact(ops)
                .map_err(|e| refused(e, &format!("storing {what}")));
        }
        let sha = sha256_hex(source.as_bytes());
        let parts: Vec<KvsOp> = split(source)?
            .into_iter()
            .enumerate()
            .map(|(i, piece)| set(self.keys.workflow_part(&h, &sha, i as u32), piece))
            .collect();
        let header = to_json(&WorkflowValue {
            hash: hash.to_owned(),
            source: None,
            parts: Some(parts.len() as u32),
            sha: Some(sha),
        })?;
        // Parts are named by their content: writing them again is harmless, and the header
        // that makes them visible goes last.
        self.transact_in_groups(parts, &what)?;
        self.kvs
            .transact(vec![set(self.keys.workflow(&h), header)])
            .map_err(|e| refused(e, &format!("storing {what}")))
    }

    async fn workflow(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let h = component(hash);
        let key = self.keys.workflow(&h);
        let Some(w) = self.get_json::<WorkflowValue>(&key)? else {
            return Ok(None);
        };
        if w.hash != hash {
            return Err(corrupt(&key, format!("holds workflow {}", w.hash)));
        }
        match (w.source, w.parts, w.sha) {
            (Some(source), _, _) => Ok(Some(source)),
            (None, Some(n), Some(sha)) => {
                check_sha(&key, &sha)?;
                let keys = (0..n).map(|i| self.keys.workflow_part(&h, &sha, i));
                self.join(&key, keys, &sha).map(Some)
            }
            _ => Err(corrupt(&key, "has neither a source nor parts")),
        }
    }
}

/// A stream head.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    doc: String,
    len: u64,
    /// The hash of the last record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<String>,
    /// The snapshot the append left, and its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snap_sha: Option<String>,
}

/// A stream head without its snapshot (skipped, not copied, when only the length is needed).
#[derive(Debug, Deserialize)]
struct HeadLen {
    doc: String,
    len: u64,
}

/// An append's value, without its records (they are skipped when not needed).
#[derive(Debug, Deserialize)]
struct AppendHeader {
    doc: String,
    first: u64,
    count: u64,
    #[serde(default)]
    parts: Option<u32>,
    #[serde(default)]
    sha: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AppendRecords {
    records: Vec<Record>,
}

#[derive(Debug, Serialize)]
struct PartsHeader<'a> {
    doc: &'a str,
    first: u64,
    count: u64,
    parts: u32,
    sha: &'a str,
}

/// An append ready to be published: its value, and its parts when it is split.
#[derive(Debug)]
struct Body {
    count: u64,
    value: String,
    sha: Option<String>,
    parts: Vec<KvsOp>,
}

/// An index row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    doc: String,
    state: String,
    pending_reviewers: Vec<String>,
    due_at: Option<i64>,
    rev: u64,
    /// Index keys that this row's write had no room for in its transaction: not yet known
    /// to match the row. Empty once the change has settled.
    #[serde(default, skip_serializing_if = "Journal::is_empty")]
    journal: Journal,
}

/// Index keys still to set (to the document id) or delete for a row to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Journal {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    set: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    delete: Vec<String>,
}

/// The writes that make an index entry its document's row: the row at its next revision,
/// the revision's marker, and the index keys that change.
#[derive(Debug)]
struct IndexChange {
    d: String,
    row: Row,
    /// Deletes first, then sets.
    index: Vec<KvsOp>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    batch: u64,
    rev: u64,
    items: Vec<(u32, Notification)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WorkflowValue {
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<String>,
}

impl<K: Kvs> HostedStore<K> {
    /// An append with its index row and notifications, in one transaction (plus the
    /// transactions that stage the parts of a large append beforehand).
    fn commit_now(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<&IndexEntry>,
        notifications: &[Notification],
        snapshot: Option<&str>,
    ) -> Result<u64, StoreError> {
        check_name("document id", doc)?;
        let in_order = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.doc == doc && expected.checked_add(i as u64) == Some(r.seq));
        if !in_order {
            return Err(StoreError::BadRecords {
                doc: doc.to_owned(),
                expected,
            });
        }
        if let Some(e) = entry {
            check_entry(e)?;
        }
        let d = component(doc);
        let body = if records.is_empty() {
            None
        } else {
            Some(self.body(doc, &d, expected, records)?)
        };
        let batches = batches(notifications)?;
        let what = format!("the append to {doc} at {expected}");
        let snapshot_sha = snapshot.map(|t| sha256_hex(t.as_bytes()));
        let head = |len: u64, snapshot: Option<&str>| Head {
            doc: doc.to_owned(),
            len,
            last: records.last().map(|r| r.hash.clone()),
            snap: snapshot.map(str::to_owned),
            snap_sha: snapshot.and(snapshot_sha.clone()),
        };
        let mut staged = false;
        let result = (|| {
            for _ in 0..MAX_ATTEMPTS {
                let len = self.head_len(doc, &d)?;
                if len != expected {
                    return Err(StoreError::Conflict {
                        doc: doc.to_owned(),
                        expected,
                        actual: len,
                    });
                }
                let mut ops = Vec::new();
                let mut new_len = len;
                if let Some(b) = &body {
                    new_len = len.checked_add(b.count).ok_or_else(|| {
                        StoreError::Backend(format!("{doc}: the stream would exceed 2^64 records"))
                    })?;
                    ops.push(set_new(self.keys.append(&d, expected), b.value.clone()));
                    ops.push(set(self.keys.head(&d), to_json(&head(new_len, snapshot))?));
                }
                if !batches.is_empty() {
                    ops.extend(self.outbox_ops(&batches)?);
                }
                let change = match entry {
                    Some(e) => self.index_change(e)?,
                    None => None,
                };
                if ops.is_empty() && change.is_none() {
                    return Ok(len);
                }
                // Parts go in this transaction when everything fits; otherwise they are
                // staged first, and index keys that still do not fit settle afterwards.
                if let Some(b) = body.as_ref().filter(|b| !staged && !b.parts.is_empty()) {
                    // With the index row and its marker, if there is one.
                    let (index_ops, index_bytes) = match &change {
                        None => (0, 0),
                        Some(c) => (
                            c.index.len() + 2,
                            c.index.iter().map(op_bytes).sum::<usize>() + to_json(&c.row)?.len(),
                        ),
                    };
                    let count = ops.len() + b.parts.len() + index_ops;
                    let bytes = ops.iter().chain(&b.parts).map(op_bytes).sum::<usize>();
                    if count <= MAX_TRANSACTION_OPS && bytes + index_bytes <= MAX_TRANSACTION_BYTES
                    {
                        ops.extend(b.parts.iter().cloned());
                    } else {
                        staged = true;
                        self.transact_in_groups(b.parts.clone(), &what)?;
                    }
                }
                let mut rest = Vec::new();
                if let Some(c) = &change {
                    let room = MAX_TRANSACTION_OPS.saturating_sub(ops.len() + 2);
                    let (index, later) = c.ops(&self.keys, room)?;
                    ops.extend(index);
                    rest = later;
                }
                if snapshot.is_some() && body.is_some() && check_transaction(&ops, &what).is_err() {
                    // The snapshot is an optimisation: the records go in without it.
                    let key = self.keys.head(&d);
                    for op in &mut ops {
                        if op_key(op) == key {
                            *op = set(key.clone(), to_json(&head(new_len, None))?);
                        }
                    }
                }
                check_transaction(&ops, &what)?;
                match self.kvs.transact(ops) {
                    Ok(()) => {
                        if let Some(c) = &change {
                            self.settle(c, rest);
                        }
                        return Ok(new_len);
                    }
                    // The stream moved (answered as a conflict above), or a concurrent writer
                    // took the next revision of the same index row or outbox batch: again.
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(refused(e, &format!("writing {what}"))),
                }
            }
            Err(gave_up(&what))
        })();
        if let (Err(_), Some(b)) = (&result, &body) {
            if staged {
                self.unstage(&d, expected, b);
            }
        }
        result
    }

    /// Encodes the records of an append: inline when they fit in one value, else in parts.
    fn body(&self, doc: &str, d: &str, first: u64, records: &[Record]) -> Result<Body, StoreError> {
        let text = serde_json::to_string(records).map_err(encode_error)?;
        let count = records.len() as u64;
        let inline = format!(
            r#"{{"doc":{},"first":{first},"count":{count},"records":{text}}}"#,
            to_json(&doc)?
        );
        if inline.len() <= MAX_VALUE_BYTES {
            return Ok(Body {
                count,
                value: inline,
                sha: None,
                parts: Vec::new(),
            });
        }
        let sha = sha256_hex(text.as_bytes());
        let parts: Vec<KvsOp> = split(&text)?
            .into_iter()
            .enumerate()
            .map(|(i, piece)| set(self.keys.append_part(d, first, &sha, i as u32), piece))
            .collect();
        let value = to_json(&PartsHeader {
            doc,
            first,
            count,
            parts: parts.len() as u32,
            sha: &sha,
        })?;
        Ok(Body {
            count,
            value,
            sha: Some(sha),
            parts,
        })
    }

    /// Removes the staged parts of an append that lost its position to a different append:
    /// once `P:a:D:FIRST` holds another checksum, nothing can ever refer to these parts.
    /// Otherwise (the position is still free, or taken by an append of the same content,
    /// whose parts are the same keys) they stay: a concurrent writer of the same content may
    /// publish them, and a retry reuses them. Best effort: parts left behind are invisible,
    /// only space.
    fn unstage(&self, d: &str, first: u64, body: &Body) {
        let Ok(Some(value)) = self.kvs.get(&self.keys.append(d, first)) else {
            return;
        };
        match serde_json::from_str::<AppendHeader>(&value) {
            Ok(published) if published.sha != body.sha => {}
            _ => return,
        }
        let deletes = body
            .parts
            .iter()
            .map(|op| KvsOp::Delete {
                key: op_key(op).to_owned(),
            })
            .collect();
        let _ = self.transact_in_groups(deletes, "removing staged parts");
    }

    fn read_now(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let d = component(doc);
        let len = self.head_len(doc, &d)?;
        let mut out = Vec::new();
        if from >= len {
            return Ok(out);
        }
        // One query lists the appends (with their values); the head, read first, says where
        // the stream ends. The query may lag behind (it is eventually consistent on the
        // platform): a gap is filled with a `get` of the key it must have.
        let prefix = self.keys.appends(&d);
        let mut listed: BTreeMap<u64, (String, String)> = BTreeMap::new();
        self.scan(&prefix, |key, value| {
            let first = u64::from_str_radix(&key[prefix.len()..], 16)
                .map_err(|_| corrupt(key, "is not an append key"))?;
            if first < len {
                listed.insert(first, (key.to_owned(), value.to_owned()));
            }
            Ok(true)
        })?;
        let mut pos = 0u64;
        while pos < len {
            let (key, value) = match listed.remove(&pos) {
                Some(kv) => kv,
                None => {
                    let key = self.keys.append(&d, pos);
                    match self.kvs.get(&key) {
                        Ok(Some(v)) => (key, v),
                        Ok(None) => {
                            return Err(corrupt(
                                &key,
                                format!("is missing, but the head of {doc} says {len} records"),
                            ));
                        }
                        Err(e) => return Err(refused(e, &format!("reading {key}"))),
                    }
                }
            };
            let header: AppendHeader = parse(&key, &value)?;
            let end = pos.checked_add(header.count).filter(|_| header.count > 0);
            let Some(end) = end.filter(|_| header.doc == doc && header.first == pos) else {
                return Err(corrupt(
                    &key,
                    format!(
                        "holds {} records of {} from {}, not an append of {doc} at {pos}",
                        header.count, header.doc, header.first
                    ),
                ));
            };
            if end > from {
                let records = match (&header.parts, &header.sha) {
                    (None, _) => parse::<AppendRecords>(&key, &value)?.records,
                    (Some(n), Some(sha)) => {
                        check_sha(&key, sha)?;
                        let parts = (0..*n).map(|i| self.keys.append_part(&d, pos, sha, i));
                        let text = self.join(&key, parts, sha)?;
                        parse(&key, &text)?
                    }
                    (Some(_), None) => return Err(corrupt(&key, "has parts but no checksum")),
                };
                let fits = records.len() as u64 == header.count
                    && records
                        .iter()
                        .enumerate()
                        .all(|(i, r)| r.doc == doc && r.seq == pos + i as u64);
                if !fits {
                    return Err(corrupt(&key, format!("does not hold records {pos}..{end}")));
                }
                let skip = usize::try_from(from.saturating_sub(pos)).unwrap_or(usize::MAX);
                out.extend(records.into_iter().skip(skip));
            }
            pos = end;
        }
        if pos != len {
            return Err(corrupt(
                &self.keys.head(&d),
                format!("says {len} records, but the appends end at {pos}"),
            ));
        }
        Ok(out)
    }

    /// The length of `doc`'s stream (0 when it has none).
    fn head_len(&self, doc: &str, d: &str) -> Result<u64, StoreError> {
        let key = self.keys.head(d);
        match self.get_json::<HeadLen>(&key)? {
            None => Ok(0),
            Some(h) if h.doc == doc => Ok(h.len),
            Some(h) => Err(corrupt(
                &key,
                format!("holds the head of {}, not {doc}", h.doc),
            )),
        }
    }

    /// What writing `entry` as its document's row changes, from the stored row; `None` when
    /// the row holds it already. A row whose last change has not settled (its journal is
    /// not empty) is finished by this change: its journal's keys are set or deleted again
    /// as the new row needs.
    fn index_change(&self, entry: &IndexEntry) -> Result<Option<IndexChange>, StoreError> {
        let d = component(&entry.doc);
        let key = self.keys.row(&d);
        let old = self.get_json::<Row>(&key)?;
        if let Some(o) = &old {
            if o.doc != entry.doc {
                return Err(corrupt(&key, format!("holds the row of {}", o.doc)));
            }
        }
        let rev = old.as_ref().map_or(0, |o| o.rev) + 1;
        let mut reviewers = entry.pending_reviewers.clone();
        reviewers.sort();
        reviewers.dedup();
        let row = Row {
            doc: entry.doc.clone(),
            state: entry.state.clone(),
            pending_reviewers: reviewers,
            due_at: entry.due_at.map(|t| t.0),
            rev,
            journal: Journal::default(),
        };
        if old
            .as_ref()
            .is_some_and(|o| Row { rev, ..o.clone() } == row)
        {
            return Ok(None);
        }
        let new_keys = self.index_keys(&d, &row);
        // Keys the old row has (as far as we know), and keys that may be there.
        let (present, maybe) = match &old {
            None => (BTreeSet::new(), BTreeSet::new()),
            Some(o) => {
                let keys = self.index_keys(&d, o);
                let unsure: BTreeSet<&String> = o.journal.set.iter().collect();
                let present = keys
                    .iter()
                    .filter(|k| !unsure.contains(k))
                    .cloned()
                    .collect();
                let maybe = keys
                    .into_iter()
                    .chain(o.journal.delete.iter().cloned())
                    .collect();
                (present, maybe)
            }
        };
        let doc_json = to_json(&entry.doc)?;
        let mut index: Vec<KvsOp> = maybe
            .difference(&new_keys)
            .map(|k| KvsOp::Delete { key: k.clone() })
            .collect();
        index.extend(
            new_keys
                .difference(&present)
                .map(|k| set(k.clone(), doc_json.clone())),
        );
        Ok(Some(IndexChange { d, row, index }))
    }

    /// Applies the index keys that a row's first transaction had no room for, in
    /// transactions of their own, each writing the next revision of the row with what is
    /// left in its journal. Stops quietly when a concurrent writer takes the row's next
    /// revision (its write finishes the journal) or a call fails (the next write of the
    /// document does): the row and the append it came with are stored either way.
    fn settle(&self, change: &IndexChange, mut rest: Vec<KvsOp>) {
        let mut row = change.row.clone();
        while !rest.is_empty() {
            let later = rest.split_off(rest.len().min(MAX_TRANSACTION_OPS - 2));
            row.rev += 1;
            row.journal = Journal::of(&later);
            let Ok(value) = to_json(&row) else { return };
            let mut ops = vec![
                set(self.keys.row(&change.d), value),
                set_new(self.keys.row_mark(&change.d, row.rev), "1"),
            ];
            ops.append(&mut rest);
            if check_transaction(&ops, "").is_err() || self.kvs.transact(ops).is_err() {
                return;
            }
            rest = later;
        }
    }

    fn index_keys(&self, d: &str, row: &Row) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        keys.insert(self.keys.by_state(&component(&row.state), d));
        for r in &row.pending_reviewers {
            keys.insert(self.keys.by_reviewer(&component(r), d));
        }
        if let Some(due) = row.due_at {
            keys.insert(self.keys.by_due(due, d));
        }
        keys
    }

    /// The writes that enqueue `batches` under the next batch numbers.
    fn outbox_ops(&self, batches: &[Vec<Notification>]) -> Result<Vec<KvsOp>, StoreError> {
        let next_key = self.keys.outbox_next();
        let last: u64 = self.get_json(&next_key)?.unwrap_or(0);
        let first = last + 1;
        let end = last
            .checked_add(batches.len() as u64)
            .filter(|n| *n < 1 << 48)
            .ok_or_else(|| corrupt(&next_key, format!("says {last} batches, too many")))?;
        let mut ops = vec![
            set(next_key, to_json(&end)?),
            set_new(self.keys.outbox_mark(first), "1"),
        ];
        for (n, items) in (first..).zip(batches) {
            let batch = Batch {
                batch: n,
                rev: 0,
                items: (0..).zip(items.iter().cloned()).collect(),
            };
            ops.push(set(self.keys.outbox(n), to_json(&batch)?));
        }
        Ok(ops)
    }

    /// The document ids stored under `prefix` (an index), in order; for the due-time index,
    /// only those due at or before `until`.
    fn docs_under(&self, prefix: &str, until: Option<i64>) -> Result<Vec<String>, StoreError> {
        let mut docs = Vec::new();
        self.scan(prefix, |key, value| {
            if let Some(t) = until {
                let due = key
                    .get(prefix.len()..prefix.len() + 16)
                    .and_then(keys::parse_signed)
                    .ok_or_else(|| corrupt(key, "is not a due-time key"))?;
                if due > t {
                    return Ok(false);
                }
            }
            docs.push(parse::<String>(key, value)?);
            Ok(true)
        })?;
        docs.sort();
        docs.dedup();
        Ok(docs)
    }

    /// Visits every entry under `prefix` in key order, a page at a time, until `visit`
    /// returns `false`.
    fn scan(
        &self,
        prefix: &str,
        mut visit: impl FnMut(&str, &str) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .kvs
                .query(prefix, MAX_PAGE, cursor.as_deref())
                .map_err(|e| refused(e, &format!("listing {prefix}")))?;
            for (key, value) in &page.entries {
                if !visit(key, value)? {
                    return Ok(());
                }
            }
            match page.cursor {
                Some(c) if !page.entries.is_empty() => cursor = Some(c),
                _ => return Ok(()),
            }
        }
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.kvs.get(key) {
            Ok(None) => Ok(None),
            Ok(Some(v)) => parse(key, &v).map(Some),
            Err(e) => Err(refused(e, &format!("reading {key}"))),
        }
    }

    /// The text that the parts under `keys` hold, checked against `sha`.
    fn join(
        &self,
        header: &str,
        keys: impl Iterator<Item = String>,
        sha: &str,
    ) -> Result<String, StoreError> {
        let mut text = String::new();
        for key in keys {
            let piece: String = self
                .get_json(&key)?
                .ok_or_else(|| corrupt(&key, format!("is missing (a part of {header})")))?;
            text.push_str(&piece);
        }
        if sha256_hex(text.as_bytes()) != sha {
            return Err(corrupt(header, "has parts that do not match its checksum"));
        }
        Ok(text)
    }

    /// Writes `ops` in as few transactions as the limits allow (each one all or nothing).
    fn transact_in_groups(&self, ops: Vec<KvsOp>, what: &str) -> Result<(), StoreError> {
        let mut group: Vec<KvsOp> = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let n = op_bytes(&op);
            if !group.is_empty()
                && (group.len() == MAX_TRANSACTION_OPS || bytes + n > MAX_TRANSACTION_BYTES)
            {
                self.transact_checked(std::mem::take(&mut group), what)?;
                bytes = 0;
            }
            group.push(op);
            bytes += n;
        }
        if group.is_empty() {
            return Ok(());
        }
        self.transact_checked(group, what)
    }

    fn transact_checked(&self, ops: Vec<KvsOp>, what: &str) -> Result<(), StoreError> {
        check_transaction(&ops, what)?;
        self.kvs
            .transact(ops)
            .map_err(|e| refused(e, &format!("writing {what}")))
    }
}

impl IndexChange {
    /// The row (with what does not fit in its journal), its marker and the first `room`
    /// index writes; and the index writes left for [`HostedStore::settle`].
    fn ops(&self, keys: &Keys, room: usize) -> Result<(Vec<KvsOp>, Vec<KvsOp>), StoreError> {
        let mut now = self.index.clone();
        let rest = now.split_off(now.len().min(room));
        let row = Row {
            journal: Journal::of(&rest),
            ..self.row.clone()
        };
        let mut ops = vec![
            set(keys.row(&self.d), to_json(&row)?),
            set_new(keys.row_mark(&self.d, row.rev), "1"),
        ];
        ops.extend(now);
        Ok((ops, rest))
    }
}

impl Journal {
    fn of(ops: &[KvsOp]) -> Journal {
        let mut j = Journal::default();
        for op in ops {
            match op {
                KvsOp::Set { key, .. } => j.set.push(key.clone()),
                KvsOp::Delete { key } => j.delete.push(key.clone()),
            }
        }
        j
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// Cuts JSON text into JSON string values of at most [`MAX_VALUE_BYTES`] each (escaping
/// counted), at character boundaries.
fn split(text: &str) -> Result<Vec<String>, StoreError> {
    let budget = MAX_VALUE_BYTES - 2;
    let bytes = text.as_bytes();
    let (mut pieces, mut start, mut size, mut i) = (Vec::new(), 0, 0, 0);
    while i < bytes.len() {
        let n = escaped_len(bytes[i]);
        if size + n > budget {
            let mut cut = i;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            pieces.push(to_json(&text[start..cut])?);
            (start, size, i) = (cut, 0, cut);
            continue;
        }
        size += n;
        i += 1;
    }
    pieces.push(to_json(&text[start..])?);
    Ok(pieces)
}

/// The length of a byte inside a JSON string, as serde_json writes it.
fn escaped_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
        0..0x20 => 6,
        _ => 1,
    }
}

/// Groups notifications into outbox batches that each fit in one value.
fn batches(items: &[Notification]) -> Result<Vec<Vec<Notification>>, StoreError> {
    // Room for the batch's own fields and, per item, its index and brackets.
    const BATCH_OVERHEAD: usize = 64;
    const ITEM_OVERHEAD: usize = 16;
    let mut out: Vec<Vec<Notification>> = Vec::new();
    let mut size = BATCH_OVERHEAD;
    for item in items {
        let n = to_json(item)?.len() + ITEM_OVERHEAD;
        if BATCH_OVERHEAD + n > MAX_VALUE_BYTES {
            return Err(StoreError::Backend(format!(
                "the notification about {} (record {}) is {n} bytes of JSON; the hosted store \
                 keeps values of at most {MAX_VALUE_BYTES} bytes",
                item.doc, item.seq
            )));
        }
        match out.last_mut() {
            Some(last) if size + n <= MAX_VALUE_BYTES && last.len() < BATCH_ITEMS => {
                last.push(item.clone());
                size += n;
            }
            _ => {
                out.push(vec![item.clone()]);
                size = BATCH_OVERHEAD + n;
            }
        }
    }
    Ok(out)
}

fn outbox_id(batch: u64, i: u32, key: &str) -> Result<u64, StoreError> {
    if batch == 0 || batch >= 1 << 48 || i as usize >= BATCH_ITEMS {
        return Err(corrupt(key, format!("holds item {i} of batch {batch}")));
    }
    Ok(batch << 16 | u64::from(i))
}

fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(StoreError::Backend(format!(
            "a {what} of {} bytes (beginning {:?}) is longer than the hosted store supports \
             ({MAX_NAME_BYTES} bytes)",
            name.len(),
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

fn check_entry(e: &IndexEntry) -> Result<(), StoreError> {
    check_name("document id", &e.doc)?;
    check_name("state", &e.state)?;
    e.pending_reviewers
        .iter()
        .try_for_each(|r| check_name("reviewer", r))
}

fn check_sha(key: &str, sha: &str) -> Result<(), StoreError> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(corrupt(key, format!("has a malformed checksum {sha:?}")))
    }
}

/// Refuses a transaction that the platform would refuse, naming what it was for. The layout
/// keeps writes inside the limits; this catches the extreme ones (a row larger than a value,
/// notifications in more batches than a transaction holds).
fn check_transaction(ops: &[KvsOp], what: &str) -> Result<(), StoreError> {
    let limit = |detail: String| {
        StoreError::Backend(format!(
            "{what} does not fit in one hosted-store transaction: {detail}"
        ))
    };
    if ops.len() > MAX_TRANSACTION_OPS {
        return Err(limit(format!(
            "{} operations, at most {MAX_TRANSACTION_OPS}",
            ops.len()
        )));
    }
    let bytes: usize = ops.iter().map(op_bytes).sum();
    if bytes > MAX_TRANSACTION_BYTES {
        return Err(limit(format!(
            "{bytes} bytes, at most {MAX_TRANSACTION_BYTES}"
        )));
    }
    for op in ops {
        let key = op_key(op);
        if key.chars().count() > MAX_KEY_LEN {
            return Err(limit(format!("key `{key}` is longer than {MAX_KEY_LEN}")));
        }
        if let KvsOp::Set { value, .. } = op {
            if value.len() > MAX_VALUE_BYTES {
                return Err(limit(format!(
                    "the value of `{key}` is {} bytes, at most {MAX_VALUE_BYTES}",
                    value.len()
                )));
            }
        }
    }
    Ok(())
}

fn op_key(op: &KvsOp) -> &str {
    match op {
        KvsOp::Set { key, .. } | KvsOp::Delete { key } => key,
    }
}

fn op_bytes(op: &KvsOp) -> usize {
    match op {
        KvsOp::Set { key, value, .. } => key.len() + value.len(),
        KvsOp::Delete { key } => key.len(),
    }
}

fn set(key: String, value: String) -> KvsOp {
    KvsOp::Set {
        key,
        value,
        policy: KeyPolicy::Overwrite,
    }
}

fn set_new(key: String, value: impl Into<String>) -> KvsOp {
    KvsOp::Set {
        key,
        value: value.into(),
        policy: KeyPolicy::FailIfExists,
    }
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(encode_error)
}

fn encode_error(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("cannot encode for the hosted store: {e}"))
}

fn parse<T: DeserializeOwned>(key: &str, value: &str) -> Result<T, StoreError> {
    serde_json::from_str(value).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!(
        "corrupted value at `{key}` in the hosted store: {detail}"
    ))
}

fn refused(e: KvsError, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "the hosted store refused {what}: {}: {}",
        e.code, e.message
    ))
}

fn gave_up(what: &str) -> StoreError {
    StoreError::Backend(format!(
        "gave up on {what} after {MAX_ATTEMPTS} attempts: concurrent writers kept taking the \
         same keys"
    ))
}
