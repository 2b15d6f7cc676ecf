//! Storage seams: the async traits that adapters implement, and an in-memory implementation.
//!
//! The traits are object-safe (`Box<dyn EventStore>` works) and `Send + Sync`. Core has no
//! runtime: adapters bring their own, and tests poll the futures by hand.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::event::Record;
use crate::notify::Notification;
use crate::state::DocState;
use crate::time::Timestamp;
use crate::workflow::Workflow;

/// Append-only streams of records, one per document, with optimistic concurrency.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `records` to `doc`'s stream if it holds exactly `expected` records now;
    /// otherwise fails with [`StoreError::Conflict`] and stores nothing. Returns the new
    /// length of the stream.
    async fn append(&self, doc: &str, expected: u64, records: &[Record])
    -> Result<u64, StoreError>;
    /// The records of `doc` from position `from` on (empty for an unknown document).
    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError>;
}

/// Lookups over documents, kept up to date by whoever appends.
#[async_trait]
pub trait DocumentIndex: Send + Sync {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError>;
    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError>;
    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError>;
    /// Documents whose deadline is at or before `t`.
    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError>;
}

/// Notifications waiting for delivery. Delivery is at least once: an item stays until acked.
#[async_trait]
pub trait Outbox: Send + Sync {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError>;
    /// Up to `limit` unacknowledged items, oldest first, with their ids.
    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError>;
    async fn ack(&self, id: u64) -> Result<(), StoreError>;
}

/// One document's row in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub doc: String,
    pub state: String,
    /// The users who may act on the current stage: its pending reviewers and, while their
    /// delegations last, the users they delegated to ([`DocState::actors`] at the time of
    /// the last record). An index row is written at each append, so it can name a delegate
    /// whose delegation has since ended: readers check validity at their own time
    /// ([`DocState::pending_for`]).
    pub pending_reviewers: Vec<String>,
    pub due_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("append to {doc} expected {expected} records, but the stream has {actual}")]
    Conflict {
        doc: String,
        expected: u64,
        actual: u64,
    },
    #[error("records to append to {doc} do not start at position {expected}")]
    BadRecords { doc: String, expected: u64 },
    #[error("outbox item {0} does not exist or was already acknowledged")]
    UnknownOutboxItem(u64),
    #[error("storage backend: {0}")]
    Backend(String),
}

impl IndexEntry {
    pub fn of(state: &DocState, wf: &Workflow) -> IndexEntry {
        IndexEntry {
            doc: state.doc.clone(),
            state: state.state_name(wf).to_owned(),
            pending_reviewers: state.actors(wf, state.last_at),
            due_at: state.deadline(),
        }
    }
}

/// Streams, index and outbox in memory, for tests and the simulator.
#[derive(Debug, Default)]
pub struct MemoryStore {
    streams: Mutex<HashMap<String, Vec<Record>>>,
    index: Mutex<BTreeMap<String, IndexEntry>>,
    outbox: Mutex<(u64, BTreeMap<u64, Notification>)>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        let mut streams = lock(&self.streams);
        let stream = streams.entry(doc.to_owned()).or_default();
        let actual = stream.len() as u64;
        if actual != expected {
            return Err(StoreError::Conflict {
                doc: doc.to_owned(),
                expected,
                actual,
            });
        }
        let in_order = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.doc == doc && r.seq == expected + i as u64);
        if !in_order {
            return Err(StoreError::BadRecords {
                doc: doc.to_owned(),
                expected,
            });
        }
        stream.extend_from_slice(records);
        Ok(stream.len() as u64)
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let streams = lock(&self.streams);
        Ok(streams.get(doc).map_or_else(Vec::new, |s| {
            s.get(usize::try_from(from).unwrap_or(usize::MAX)..)
                .unwrap_or_default()
                .to_vec()
        }))
    }
}

#[async_trait]
impl DocumentIndex for MemoryStore {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        lock(&self.index).insert(entry.doc.clone(), entry);
        Ok(())
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.select(|e| e.state == state))
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.select(|e| e.pending_reviewers.iter().any(|r| r == user)))
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        Ok(self.select(|e| e.due_at.is_some_and(|d| d <= t)))
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        let mut outbox = lock(&self.outbox);
        for item in items {
            outbox.0 += 1;
            let id = outbox.0;
            outbox.1.insert(id, item.clone());
        }
        Ok(())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let outbox = lock(&self.outbox);
        Ok(outbox
            .1
            .iter()
            .take(limit)
            .map(|(id, n)| (*id, n.clone()))
            .collect())
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        lock(&self.outbox)
            .1
            .remove(&id)
            .map(|_| ())
            .ok_or(StoreError::UnknownOutboxItem(id))
    }
}

impl MemoryStore {
    fn select(&self, keep: impl Fn(&IndexEntry) -> bool) -> Vec<String> {
        lock(&self.index)
            .values()
            .filter(|e| keep(e))
            .map(|e| e.doc.clone())
            .collect()
    }
}

/// A poisoned lock still holds consistent data here: every critical section is a single
/// push, insert or remove.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
