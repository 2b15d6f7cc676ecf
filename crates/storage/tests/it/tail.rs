//! The redb store's heads between checkpoints: an append writes only its log entry, the
//! heads of the log's tail live in memory and are rebuilt from the log on open, and
//! `heads` is written at checkpoints. Reads, conflict checks and `documents()` must be
//! right before, across and after checkpoints, after reopening, after a failed commit, and
//! for readers running while the writer commits and checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use signoff_core::store::StoreError;
use signoff_storage::{
    Durability, EventStore, GroupCommit, LocalStore, OpenError, RedbStore, StoreConfig,
};

use crate::crash::{Failing, Fault};
use crate::support::*;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const HEADS: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("heads");

const FAST: StoreConfig = StoreConfig {
    durability: Durability::None,
    group_commit: GroupCommit::UpTo(64),
};

/// The stream lengths a store should hold, by document (the records are `recs(doc, 0, len)`).
type Lens = BTreeMap<String, u64>;

/// Checks every answer that depends on the heads: `documents()`, each stream read from
/// several positions, and conflicts on either side of each stream's length.
async fn check(store: &RedbStore, lens: &Lens, context: &str) {
    check_reads(store, lens, context).await;
    for (doc, &len) in lens {
        for wrong in [len + 1, len.wrapping_sub(1)] {
            if wrong == u64::MAX {
                continue;
            }
            let e = store.append(doc, wrong, &recs(doc, wrong, 1)).await;
            assert_eq!(
                e,
                Err(StoreError::Conflict {
                    doc: doc.clone(),
                    expected: wrong,
                    actual: len,
                }),
                "{context}: {doc} at {wrong}"
            );
        }
    }
}

/// The reading half of [`check`].
async fn check_reads(store: &RedbStore, lens: &Lens, context: &str) {
    let listed: Lens = store.documents().await.unwrap().into_iter().collect();
    assert_eq!(&listed, lens, "{context}: documents()");
    for (doc, &len) in lens {
        assert_eq!(
            store.read(doc, 0).await.unwrap(),
            recs(doc, 0, len),
            "{context}: {doc}"
        );
        for from in [1, len / 2, len.saturating_sub(1), len, len + 1] {
            let want = recs(doc, from.min(len), len - from.min(len));
            assert_eq!(
                store.read(doc, from).await.unwrap(),
                want,
                "{context}: {doc} from {from}"
            );
        }
    }
}

/// Appends `rounds` appends of 1 to 3 records to each of `docs` documents, round by round
/// (so that the documents' appends interleave in the log), one concurrent caller per
/// document.
async fn append_rounds(store: &Arc<RedbStore>, lens: &mut Lens, docs: &[String], rounds: u64) {
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let store = store.clone();
            let doc = doc.clone();
            let len = lens.get(&doc).copied().unwrap_or(0);
            let n = 1 + (i as u64 + round) % 3;
            tasks.push(tokio::spawn(async move {
                let got = store.append(&doc, len, &recs(&doc, len, n)).await.unwrap();
                assert_eq!(got, len + n);
                (doc, got)
            }));
        }
        for t in tasks {
            let (doc, len) = t.await.unwrap();
            lens.insert(doc, len);
        }
    }
}

/// What the file says about its heads, read with redb while no store has it open: where
/// the tail starts, how many entries the log holds and how many rows `heads` has.
fn on_disk(path: &std::path::Path) -> (u64, u64, u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let start = txn
        .open_table(META)
        .unwrap()
        .get("tail_start")
        .unwrap()
        .unwrap()
        .value();
    let log = txn.open_table(LOG).unwrap().len().unwrap();
    let heads = txn.open_table(HEADS).unwrap().len().unwrap();
    (start, log, heads)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_that_never_reached_a_checkpoint_are_found_after_reopening() {
    let dir = TempDir::new("tail");
    let path = dir.path().join("s.redb");
    let store = Arc::new(RedbStore::create(&path, StoreConfig::durable()).unwrap());
    let docs = names("d", 12);
    let mut lens = Lens::new();
    append_rounds(&store, &mut lens, &docs, 4).await;
    check(&store, &lens, "before reopening").await;
    drop(store);
    // Nothing went to `heads`: every head is in the log's tail.
    assert_eq!(on_disk(&path), (0, 48, 0));

    let store = Arc::new(RedbStore::open(&path, StoreConfig::durable()).unwrap());
    check(&store, &lens, "after reopening").await;
    // The rebuilt tail takes appends where the streams ended.
    append_rounds(&store, &mut lens, &docs[..5], 2).await;
    check(&store, &lens, "after more appends").await;
    drop(store);
    let store = RedbStore::open(&path, StoreConfig::durable()).unwrap();
    check(&store, &lens, "after reopening again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_documents_than_the_tail_holds_cross_a_checkpoint() {
    let dir = TempDir::new("tail");
    let path = dir.path().join("s.redb");
    let store = Arc::new(RedbStore::create(&path, FAST).unwrap());
    // 600 documents: more than the 512 the tail holds before a checkpoint.
    let docs = names("d", 600);
    let mut lens = Lens::new();
    append_rounds(&store, &mut lens, &docs, 1).await;
    append_rounds(&store, &mut lens, &docs[..40], 2).await;
    check(&store, &lens, "after the checkpoint").await;
    drop(store);
    let (start, log, heads) = on_disk(&path);
    assert!(
        start > 512 && start < log && heads > 512 && heads < 600,
        "tail_start {start}, {log} log entries, {heads} heads"
    );

    let store = Arc::new(RedbStore::open(&path, FAST).unwrap());
    check(&store, &lens, "after reopening").await;
    append_rounds(&store, &mut lens, &docs[500..], 1).await;
    check(&store, &lens, "after more appends").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_checkpointing_every_few_appends_reopens_right() {
    let dir = TempDir::new("tail");
    let path = dir.path().join("s.redb");
    let docs = names("d", 9);
    let mut lens = Lens::new();
    // Every combination of a checkpoint just written, a few appends after one, and none.
    for (round, limits) in [(2, 3), (0, 0), (4, 1_000), (1_000, 7)]
        .into_iter()
        .enumerate()
    {
        let store = Arc::new(RedbStore::create(&path, FAST).unwrap());
        store.set_checkpoint_limits(limits.0, limits.1);
        append_rounds(&store, &mut lens, &docs[round..], 3).await;
        check(&store, &lens, &format!("round {round}")).await;
        drop(store);
        let store = RedbStore::open(&path, FAST).unwrap();
        check(&store, &lens, &format!("round {round}, reopened")).await;
    }
}

#[test]
fn a_log_entry_that_does_not_continue_its_stream_is_reported_at_open() {
    let dir = TempDir::new("tail");
    let path = dir.path().join("s.redb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = RedbStore::create(&path, StoreConfig::durable()).unwrap();
        for len in 0..3 {
            store.append("d", len, &recs("d", len, 1)).await.unwrap();
        }
    });
    {
        // Entry 2 says it starts at record 5.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(LOG).unwrap();
            let mut value = log.get(2).unwrap().unwrap().value().to_vec();
            value[8..16].copy_from_slice(&5u64.to_be_bytes());
            log.insert(2, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let e = RedbStore::open(&path, StoreConfig::durable()).unwrap_err();
    assert!(matches!(e, OpenError::Corrupted { .. }), "{e:?}");
    assert!(e.to_string().contains("log entry 2"), "{e}");
}

/// A commit that fails (an injected IO error, at a page write or at the fsync) must leave
/// the tail as it was: readers of the same store go on seeing exactly the acknowledged
/// streams (redb 2.6 publishes a commit to readers only once it succeeded, and this store
/// is small enough for its pages to stay in redb's cache, so reads still work), never a
/// head without its log entry. After reopening, the failed append may be found whole, when
/// its pages reached the file before the error (as in the crash tests), never in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_leaves_the_tail_as_it_was() {
    for (round, (fault, limits)) in [
        (Fault::Sync, (1_000, 1_000)),
        (Fault::Write, (1_000, 1_000)),
        (Fault::Sync, (2, 3)),
        (Fault::Write, (2, 3)),
        (Fault::Sync, (0, 0)),
        (Fault::Any, (1, 1_000)),
    ]
    .into_iter()
    .enumerate()
    {
        let context = format!("round {round}: {fault:?}, checkpoint limits {limits:?}");
        let dir = TempDir::new("tail");
        let path = dir.path().join("s.redb");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let budget = Arc::new(AtomicI64::new(i64::MAX));
        let backend = Failing {
            inner: redb::backends::FileBackend::new(file).unwrap(),
            fault,
            budget: budget.clone(),
        };
        let store = RedbStore::with_backend(backend, &path, StoreConfig::durable()).unwrap();
        store.set_checkpoint_limits(limits.0, limits.1);
        let docs = names("d", 4);
        let mut lens = Lens::new();
        // Appends of 2 records in turn to each document until one fails.
        budget.store(12 + 3 * round as i64, Ordering::SeqCst);
        let failed = 'write: loop {
            for doc in &docs {
                let len = lens.get(doc).copied().unwrap_or(0);
                match store.append(doc, len, &recs(doc, len, 2)).await {
                    Ok(n) => {
                        lens.insert(doc.clone(), n);
                    }
                    Err(e) => break 'write (doc.clone(), e),
                }
            }
        };
        assert!(
            matches!(&failed.1, StoreError::Backend(m) if m.contains("injected IO error")),
            "{context}: {failed:?}"
        );
        let (failed, _) = failed;
        assert!(!lens.is_empty(), "{context}: the first commit failed");
        budget.store(i64::MAX, Ordering::SeqCst);
        // (Writes are refused until the store is reopened: no conflicts to check here.)
        check_reads(&store, &lens, &format!("{context}, after the failure")).await;
        drop(store);
        let store = RedbStore::open(&path, StoreConfig::durable()).unwrap();
        let listed: Lens = store.documents().await.unwrap().into_iter().collect();
        for doc in &docs {
            let (len, acked) = (listed.get(doc), lens.get(doc));
            let whole = len == acked
                || (*doc == failed && len.copied() == Some(acked.copied().unwrap_or(0) + 2));
            assert!(whole, "{context}: reopened: {doc} has {len:?}");
        }
        check(&store, &listed, &format!("{context}, reopened")).await;
    }
}

/// Readers running while writers append (with checkpoints every few appends) only ever see
/// whole prefixes of each stream, never shorter than what was acknowledged before the read
/// began, and never shrinking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_see_prefixes() {
    let dir = TempDir::new("tail");
    let path = dir.path().join("s.redb");
    let store = Arc::new(RedbStore::create(&path, FAST).unwrap());
    store.set_checkpoint_limits(3, 5);
    let docs = names("d", 8);
    let acked: Arc<Vec<AtomicU64>> = Arc::new(docs.iter().map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, acked, docs) = (store.clone(), acked.clone(), docs.clone());
        writers.push(tokio::spawn(async move {
            // Each writer owns two documents.
            for round in 0..300u64 {
                for i in [w, w + 4] {
                    let doc = &docs[i];
                    let len = acked[i].load(Ordering::SeqCst);
                    let n = 1 + round % 2;
                    let got = store.append(doc, len, &recs(doc, len, n)).await.unwrap();
                    acked[i].store(got, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let (store, acked, docs, done) = (store.clone(), acked.clone(), docs.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = vec![0u64; docs.len()];
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                reads += 1;
                let i = (reads * 3 + r) % docs.len();
                let doc = &docs[i];
                let floor = acked[i].load(Ordering::SeqCst);
                let records = store.read(doc, 0).await.unwrap();
                let len = records.len() as u64;
                assert_eq!(records, recs(doc, 0, len), "{doc}: not a prefix");
                assert!(len >= floor, "{doc}: {len} records, {floor} acknowledged");
                assert!(len >= seen[i], "{doc}: {len} records after {}", seen[i]);
                seen[i] = len;
                let from = len / 2;
                let tail = store.read(doc, from).await.unwrap();
                assert!(tail.len() as u64 >= len - from, "{doc} from {from}");
                assert_eq!(
                    tail,
                    recs(doc, from, tail.len() as u64),
                    "{doc} from {from}"
                );

                let floors: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
                let listed: BTreeMap<String, u64> =
                    store.documents().await.unwrap().into_iter().collect();
                for (j, doc) in docs.iter().enumerate() {
                    let len = listed.get(doc).copied().unwrap_or(0);
                    assert!(len >= floors[j], "documents(): {doc} has {len}");
                }
            }
            reads
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    let lens: Lens = docs
        .iter()
        .zip(acked.iter())
        .map(|(d, a)| (d.clone(), a.load(Ordering::SeqCst)))
        .collect();
    check(&store, &lens, "at the end").await;
}
