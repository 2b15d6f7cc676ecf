//! The writer thread: one per store, the only place that writes. It takes the operations
//! queued by async callers, commits up to `max_batch` of them in one transaction (group
//! commit), and answers each caller after that commit returned.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use signoff_core::store::{IndexEntry, StoreError};
use tokio::sync::oneshot;

use crate::Damaged;
use crate::contain::contain;

/// One write, already validated and encoded by the caller (encoding runs in parallel on the
/// callers' threads; the writer thread only writes).
#[derive(Debug)]
pub(crate) enum Op {
    /// Append encoded records to `doc` if it holds `expected` records; with the index row
    /// and notifications of the same unit of work, if any.
    Append {
        doc: String,
        expected: u64,
        /// How many records are appended.
        count: u64,
        /// The encoded records: one value per record (sled), or one value holding all of
        /// them (redb's log entry, whose header the writer completes).
        records: Vec<Vec<u8>>,
        entry: Option<IndexEntry>,
        notifications: Vec<Vec<u8>>,
    },
    Upsert(IndexEntry),
    Enqueue(Vec<Vec<u8>>),
    Ack(u64),
    PutWorkflow {
        hash: String,
        source: String,
    },
}

/// What a successful operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    /// The new length of the stream.
    Len(u64),
    Unit,
}

/// A backend that can commit a batch of operations atomically.
pub(crate) trait Backend: Send + 'static {
    /// Applies `ops` in order and commits them in one transaction. Returns one result per
    /// operation (an operation that fails, e.g. on a conflict, stores nothing and does not
    /// affect the others), or an error for all when the commit itself failed, in which case
    /// none of them must count as written.
    fn commit(&mut self, ops: &mut [Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError>;
    /// Called once when the store closes, after the last batch: makes everything written so
    /// far durable, whatever the durability of the commits was.
    fn close(&mut self);
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The handle to a writer thread. Dropping it lets the thread finish the queued operations
/// and waits for it to end, so that the store can be reopened right after.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Counters>,
}

/// What the writer thread has done so far, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Transactions committed (or attempted: failed ones count too).
    pub commits: u64,
    /// Operations they carried.
    pub operations: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    operations: AtomicU64,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("op", &self.op).finish()
    }
}

impl Writer {
    /// Starts the writer thread of the store at `path` (named in errors).
    pub fn start<B: Backend>(
        name: &str,
        path: &Path,
        mut backend: B,
        max_batch: usize,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Request>();
        let stats = Arc::new(Counters::default());
        let counters = stats.clone();
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("signoff-{name}-writer"))
            .spawn(move || {
                let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let (mut ops, replies): (Vec<Op>, Vec<_>) =
                        batch.drain(..).map(|r| (r.op, r.reply)).unzip();
                    let _span = tracing::trace_span!("commit", ops = ops.len()).entered();
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    counters
                        .operations
                        .fetch_add(ops.len() as u64, Ordering::Relaxed);
                    // The engine may panic on a damaged store: every caller of the batch
                    // gets the error, and nothing of the batch counts as written.
                    let committed = contain(|| backend.commit(&mut ops)).unwrap_or_else(|panic| {
                        Err(Damaged {
                            path: path.clone(),
                            document: None,
                            position: None,
                            detail: panic,
                        }
                        .into())
                    });
                    match committed {
                        Ok(results) => {
                            for (reply, result) in replies.into_iter().zip(results) {
                                // A caller that stopped waiting (a dropped future) does not
                                // undo the write; there is nobody left to tell.
                                let _ = reply.send(result);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, ops = ops.len(), "commit failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
                if let Err(panic) = contain(|| backend.close()) {
                    tracing::warn!(panic, "closing the store failed");
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            operations: self.stats.operations.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` and waits, without blocking the executor, for the commit that carries it.
    pub async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(Request { op, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            // A panic in the writer was already reported to the callers as an error.
            let _ = t.join();
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer thread has stopped".into())
}

/// Runs blocking work (a read) on tokio's blocking pool, or inline without a runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Backend(format!("a storage read failed: {e}")))?,
        Err(_) => f(),
    }
}
