//! A stand-in for `signoff_storage::hosted::HostedStore` until it lands: core's storage
//! traits over the hosted key-value store, simply. One key per append, one per index row,
//! one per outbox item, all under the `es:` prefix; the index is scanned rather than
//! indexed. It keeps the component runnable end to end; the app logic is generic over the
//! traits, so swapping in `HostedStore<GuestKvs>` touches only the component glue.
//!
//! Layout: `es:h:<doc>` the stream's length; `es:s:<doc>:<from, 10 digits>` one append (a
//! JSON array of records, written with `FAIL_IF_EXISTS` in the same transaction as the
//! length, so two racing appends at one position cannot both succeed); `es:i:<doc>` the
//! index row; `es:o:<id, 12 digits>` an outbox item and `es:o-next` the last id given.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use signoff_core::Record;
use signoff_core::notify::Notification;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::time::Timestamp;
use signoff_storage::hosted::{KeyPolicy, Kvs, KvsError, KvsOp, MAX_PAGE, MAX_TRANSACTION_OPS};

/// Core's storage traits over a [`Kvs`].
#[derive(Debug)]
pub struct KvsStore<K> {
    kvs: K,
}

#[derive(Serialize, Deserialize)]
struct Row {
    state: String,
    pending: Vec<String>,
    due: Option<Timestamp>,
}

impl<K: Kvs> KvsStore<K> {
    pub fn new(kvs: K) -> KvsStore<K> {
        KvsStore { kvs }
    }

    fn head(&self, doc: &str) -> Result<u64, StoreError> {
        Ok(
            match self.kvs.get(&format!("es:h:{doc}")).map_err(backend)? {
                Some(v) => {
                    serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?
                }
                None => 0,
            },
        )
    }

    /// Every entry under `prefix`, page by page.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .kvs
                .query(prefix, MAX_PAGE, cursor.as_deref())
                .map_err(backend)?;
            out.extend(page.entries);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    fn rows(&self) -> Result<Vec<(String, Row)>, StoreError> {
        self.scan("es:i:")?
            .into_iter()
            .map(|(k, v)| {
                let row: Row =
                    serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok((k["es:i:".len()..].to_owned(), row))
            })
            .collect()
    }

    fn select(&self, keep: impl Fn(&Row) -> bool) -> Result<Vec<String>, StoreError> {
        Ok(self
            .rows()?
            .into_iter()
            .filter(|(_, r)| keep(r))
            .map(|(d, _)| d)
            .collect())
    }
}

#[async_trait]
impl<K: Kvs> EventStore for KvsStore<K> {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        let actual = self.head(doc)?;
        let conflict = |actual| StoreError::Conflict {
            doc: doc.to_owned(),
            expected,
            actual,
        };
        if actual != expected {
            return Err(conflict(actual));
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
        let len = expected + records.len() as u64;
        let value =
            serde_json::to_string(records).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ops = vec![
            KvsOp::Set {
                key: format!("es:s:{doc}:{expected:010}"),
                value,
                policy: KeyPolicy::FailIfExists,
            },
            KvsOp::Set {
                key: format!("es:h:{doc}"),
                value: len.to_string(),
                policy: KeyPolicy::Overwrite,
            },
        ];
        match self.kvs.transact(ops) {
            Ok(()) => Ok(len),
            Err(e) if e.is_conflict() => Err(conflict(self.head(doc)?)),
            Err(e) => Err(backend(e)),
        }
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for (_, v) in self.scan(&format!("es:s:{doc}:"))? {
            let records: Vec<Record> =
                serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?;
            out.extend(records.into_iter().filter(|r| r.seq >= from));
        }
        Ok(out)
    }
}

#[async_trait]
impl<K: Kvs> DocumentIndex for KvsStore<K> {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        let row = Row {
            state: entry.state,
            pending: entry.pending_reviewers,
            due: entry.due_at,
        };
        let value = serde_json::to_string(&row).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.kvs
            .set(&format!("es:i:{}", entry.doc), &value, KeyPolicy::Overwrite)
            .map_err(backend)
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        self.select(|r| r.state == state)
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.select(|r| r.pending.iter().any(|p| p == user))
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        self.select(|r| r.due.is_some_and(|d| d <= t))
    }
}

#[async_trait]
impl<K: Kvs> Outbox for KvsStore<K> {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        for chunk in items.chunks(MAX_TRANSACTION_OPS - 1) {
            let last: u64 = match self.kvs.get("es:o-next").map_err(backend)? {
                Some(v) => v
                    .parse()
                    .map_err(|_| StoreError::Backend(format!("es:o-next is {v}")))?,
                None => 0,
            };
            let mut ops = Vec::with_capacity(chunk.len() + 1);
            for (i, n) in chunk.iter().enumerate() {
                let value =
                    serde_json::to_string(n).map_err(|e| StoreError::Backend(e.to_string()))?;
                ops.push(KvsOp::Set {
                    key: format!("es:o:{:012}", last + 1 + i as u64),
                    value,
                    policy: KeyPolicy::FailIfExists,
                });
            }
            ops.push(KvsOp::Set {
                key: "es:o-next".into(),
                value: (last + chunk.len() as u64).to_string(),
                policy: KeyPolicy::Overwrite,
            });
            self.kvs.transact(ops).map_err(backend)?;
        }
        Ok(())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let limit = u32::try_from(limit.clamp(1, MAX_PAGE as usize)).unwrap_or(MAX_PAGE);
        let page = self.kvs.query("es:o:", limit, None).map_err(backend)?;
        page.entries
            .into_iter()
            .map(|(k, v)| {
                let id = k["es:o:".len()..]
                    .parse()
                    .map_err(|_| StoreError::Backend(format!("bad outbox key {k}")))?;
                let n = serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok((id, n))
            })
            .collect()
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        let key = format!("es:o:{id:012}");
        if self.kvs.get(&key).map_err(backend)?.is_none() {
            return Err(StoreError::UnknownOutboxItem(id));
        }
        self.kvs.delete(&key).map_err(backend)
    }
}

fn backend(e: KvsError) -> StoreError {
    StoreError::Backend(e.to_string())
}
