//! The engine's store as the app uses it ([`AppStore`]): core's storage traits, plus what
//! `HostedStore` offers beyond them to make a call cheaper (document snapshots in the
//! stream's head, acknowledgements of a whole outbox batch at once).

use signoff_core::Record;
use signoff_core::notify::Notification;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_storage::LocalStore;
use signoff_storage::hosted::{HostedStore, Kvs, Snapshot, StreamHead};

use crate::block::block_on;

/// The engine's store as the app uses it: core's traits, plus a stream's head (with the
/// snapshot the last commit left), a commit that leaves one, and acknowledgements in bulk.
/// The provided methods keep no snapshots and acknowledge one item at a time, so any
/// [`LocalStore`] qualifies; [`HostedStore`] keeps snapshots in the head and acknowledges
/// a whole outbox batch in one transaction.
pub trait AppStore: LocalStore {
    /// The stream's length, last record hash and snapshot.
    fn stream_head(&self, doc: &str) -> Result<StreamHead, StoreError> {
        let records = block_on(self.read(doc, 0))?;
        Ok(StreamHead {
            len: records.len() as u64,
            last: records.last().map(|r| r.hash.clone()),
            snapshot: Snapshot::None,
        })
    }

    /// [`LocalStore::commit`], leaving `snapshot` for the next call.
    #[allow(clippy::too_many_arguments)]
    fn commit_with_snapshot(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
        snapshot: &str,
    ) -> Result<u64, StoreError> {
        let _ = snapshot;
        block_on(self.commit(doc, expected, records, entry, notifications))
    }

    /// Acknowledges delivered outbox items; every one that can be is, then the first
    /// failure is returned.
    fn ack_all(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut first = Ok(());
        for &id in ids {
            let result = block_on(self.ack(id));
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

impl<K: Kvs> AppStore for HostedStore<K> {
    fn stream_head(&self, doc: &str) -> Result<StreamHead, StoreError> {
        HostedStore::stream_head(self, doc)
    }

    fn commit_with_snapshot(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
        snapshot: &str,
    ) -> Result<u64, StoreError> {
        HostedStore::commit_with_snapshot(
            self,
            doc,
            expected,
            records,
            entry.as_ref(),
            notifications,
            snapshot,
        )
    }

    fn ack_all(&self, ids: &[u64]) -> Result<(), StoreError> {
        HostedStore::ack_all(self, ids)
    }
}
