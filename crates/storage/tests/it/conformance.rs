//! The conformance suite: one generic test per behaviour, instantiated for every adapter.

use std::sync::Arc;

use signoff_core::audit;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::{DocState, Timestamp};
use signoff_storage::{
    DocumentIndex, Durability, EventStore, GroupCommit, Outbox, Store, StoreConfig,
};

use crate::support::*;

macro_rules! conformance {
    ($name:ident, $adapter:ty) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stream_append_and_read() {
                super::stream_append_and_read::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expected_version_conflicts() {
                super::expected_version_conflicts::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn indexes() {
                super::indexes::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn outbox() {
                super::outbox::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reopen_after_close() {
                super::reopen_after_close::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn large_document() {
                super::large_document::<$adapter>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers() {
                super::concurrent_writers::<$adapter>(GroupCommit::Off).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers_group_commit() {
                super::concurrent_writers::<$adapter>(GroupCommit::UpTo(16)).await
            }
            #[test]
            fn without_a_runtime() {
                super::without_a_runtime::<$adapter>()
            }
        }
    };
}

conformance!(memory, Memory);
conformance!(redb, Redb);
conformance!(redb_checkpoints, RedbCheckpoints);
conformance!(sled, Sled);
conformance!(hosted, Hosted);
#[cfg(feature = "postgres")]
conformance!(postgres, Pg);
#[cfg(feature = "postgres")]
conformance!(postgres_shared, PgShared);

async fn stream_append_and_read<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let store = A::open(dir.path(), StoreConfig::durable());
    let (wf, steps, state) = basic_life("travel");
    let mut len = 0;
    for step in &steps {
        len = store.append("travel", len, step).await.unwrap();
    }
    assert_eq!(len, state.seq);
    let all: Vec<_> = steps.concat();
    let stored = store.read("travel", 0).await.unwrap();
    assert_eq!(stored, all);
    audit::verify_head(&stored, &state.head).unwrap();
    assert_eq!(DocState::replay(&wf, &stored).unwrap(), state);
    assert_eq!(store.read("travel", 2).await.unwrap(), all[2..]);
    assert!(store.read("travel", len).await.unwrap().is_empty());
    assert!(store.read("travel", u64::MAX).await.unwrap().is_empty());
    assert!(store.read("unknown", 0).await.unwrap().is_empty());
    // Streams are separate, also when one id is a prefix of another.
    store
        .append("travel-2", 0, &recs("travel-2", 0, 2))
        .await
        .unwrap();
    store.append("t", 0, &recs("t", 0, 1)).await.unwrap();
    assert_eq!(store.read("travel", 0).await.unwrap().len() as u64, len);
    assert_eq!(
        store.read("travel-2", 0).await.unwrap(),
        recs("travel-2", 0, 2)
    );
    // An empty append at the right position changes nothing.
    assert_eq!(store.append("travel", len, &[]).await, Ok(len));
}

async fn expected_version_conflicts<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let store = A::open(dir.path(), StoreConfig::durable());
    assert_eq!(store.append("d", 0, &recs("d", 0, 3)).await, Ok(3));
    for expected in [0, 2, 4, u64::MAX] {
        assert_eq!(
            store.append("d", expected, &[rec("d", expected)]).await,
            Err(StoreError::Conflict {
                doc: "d".into(),
                expected,
                actual: 3
            })
        );
    }
    assert_eq!(
        store.append("new", 1, &recs("new", 1, 1)).await,
        Err(StoreError::Conflict {
            doc: "new".into(),
            expected: 1,
            actual: 0
        })
    );
    // Records that do not continue the stream, or belong elsewhere, are refused.
    assert!(matches!(
        store.append("d", 3, &recs("d", 4, 1)).await,
        Err(StoreError::BadRecords { .. })
    ));
    assert!(matches!(
        store.append("d", 3, &recs("other", 3, 1)).await,
        Err(StoreError::BadRecords { .. })
    ));
    let mut gap = recs("d", 3, 2);
    gap[1].seq = 5;
    assert!(matches!(
        store.append("d", 3, &gap).await,
        Err(StoreError::BadRecords { .. })
    ));
    // Nothing of the refused appends was stored.
    assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 3));
    assert!(store.read("new", 0).await.unwrap().is_empty());
    assert_eq!(store.append("d", 3, &recs("d", 3, 2)).await, Ok(5));
}

fn entry(doc: &str, state: &str, reviewers: &[&str], due: Option<i64>) -> IndexEntry {
    IndexEntry {
        doc: doc.into(),
        state: state.into(),
        pending_reviewers: reviewers.iter().map(|r| r.to_string()).collect(),
        due_at: due.map(Timestamp),
    }
}

async fn indexes<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let store = A::open(dir.path(), StoreConfig::durable());
    store
        .upsert(entry("c", "review", &["bob", "carol"], Some(300)))
        .await
        .unwrap();
    store
        .upsert(entry("a", "review", &["bob"], Some(100)))
        .await
        .unwrap();
    store.upsert(entry("b", "draft", &[], None)).await.unwrap();
    store
        .upsert(entry("d", "review", &["bo"], Some(-5)))
        .await
        .unwrap();
    assert_eq!(store.by_state("review").await.unwrap(), ["a", "c", "d"]);
    assert_eq!(store.by_state("draft").await.unwrap(), ["b"]);
    assert!(store.by_state("rev").await.unwrap().is_empty());
    assert_eq!(store.by_reviewer("bob").await.unwrap(), ["a", "c"]);
    assert_eq!(store.by_reviewer("bo").await.unwrap(), ["d"]);
    assert!(store.by_reviewer("alice").await.unwrap().is_empty());
    assert_eq!(store.due_before(Timestamp(100)).await.unwrap(), ["a", "d"]);
    assert_eq!(store.due_before(Timestamp(99)).await.unwrap(), ["d"]);
    assert_eq!(
        store.due_before(Timestamp(-6)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.due_before(Timestamp(i64::MAX)).await.unwrap(),
        ["a", "c", "d"]
    );

    // An upsert replaces the row: the old state, reviewers and due time no longer match.
    store
        .upsert(entry("c", "approved", &["dave"], None))
        .await
        .unwrap();
    assert_eq!(store.by_state("review").await.unwrap(), ["a", "d"]);
    assert_eq!(store.by_state("approved").await.unwrap(), ["c"]);
    assert_eq!(store.by_reviewer("bob").await.unwrap(), ["a"]);
    assert_eq!(
        store.by_reviewer("carol").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.by_reviewer("dave").await.unwrap(), ["c"]);
    assert_eq!(
        store.due_before(Timestamp(i64::MAX)).await.unwrap(),
        ["a", "d"]
    );

    // The row computed by core from a real state.
    let (wf, steps, _) = basic_life("real");
    let submitted = DocState::replay(&wf, &[steps[0].clone(), steps[1].clone()].concat()).unwrap();
    store.upsert(IndexEntry::of(&submitted, &wf)).await.unwrap();
    assert_eq!(store.by_reviewer("carol").await.unwrap(), ["real"]);
    assert_eq!(store.by_state("in_approval").await.unwrap(), ["real"]);
}

async fn outbox<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let store = A::open(dir.path(), StoreConfig::durable());
    assert!(store.pending(10).await.unwrap().is_empty());
    store
        .enqueue(&[note("a", 0), note("b", 1), note("c", 2)])
        .await
        .unwrap();
    store.enqueue(&[]).await.unwrap();
    let first = store.pending(2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(
        (first[0].1.doc.as_str(), first[1].1.doc.as_str()),
        ("a", "b")
    );
    assert!(first[0].0 < first[1].0);
    store.ack(first[0].0).await.unwrap();
    assert_eq!(
        store.ack(first[0].0).await,
        Err(StoreError::UnknownOutboxItem(first[0].0))
    );
    assert_eq!(
        store.ack(9_999).await,
        Err(StoreError::UnknownOutboxItem(9_999))
    );
    let rest = store.pending(10).await.unwrap();
    assert_eq!(
        rest.iter().map(|(_, n)| n.doc.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(rest[1].1, note("c", 2));
    // Ids are never reused, even once everything was acknowledged.
    for (id, _) in &rest {
        store.ack(*id).await.unwrap();
    }
    store.enqueue(&[note("d", 3)]).await.unwrap();
    let d = store.pending(10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert!(d[0].0 > rest[1].0);
}

async fn reopen_after_close<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let config = StoreConfig::durable();
    let store = A::open(dir.path(), config);
    let (wf, steps, state) = basic_life("doc");
    let mut len = 0;
    for step in &steps {
        len = store.append("doc", len, step).await.unwrap();
    }
    store.upsert(IndexEntry::of(&state, &wf)).await.unwrap();
    store
        .upsert(entry("other", "review", &["bob"], Some(10)))
        .await
        .unwrap();
    store
        .enqueue(&[note("doc", 0), note("doc", 1)])
        .await
        .unwrap();
    let first_id = store.pending(1).await.unwrap()[0].0;
    store.ack(first_id).await.unwrap();

    let store = A::reopen(store, dir.path(), config);
    let stored = store.read("doc", 0).await.unwrap();
    assert_eq!(stored, steps.concat());
    audit::verify_head(&stored, &state.head).unwrap();
    assert_eq!(store.by_state("approved").await.unwrap(), ["doc"]);
    assert_eq!(store.by_reviewer("bob").await.unwrap(), ["other"]);
    assert_eq!(store.due_before(Timestamp(10)).await.unwrap(), ["other"]);
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, note("doc", 1));
    // The stream goes on where it was, and outbox ids keep growing.
    assert!(matches!(
        store.append("doc", 0, &recs("doc", 0, 1)).await,
        Err(StoreError::Conflict { actual, .. }) if actual == len
    ));
    store.enqueue(&[note("doc", 2)]).await.unwrap();
    let after = store.pending(10).await.unwrap();
    assert!(after[1].0 > pending[0].0);
    // Twice, to see that a reopened store closes cleanly too.
    let store = A::reopen(store, dir.path(), config);
    assert_eq!(store.read("doc", 0).await.unwrap().len() as u64, len);
}

/// 100,000 events in one stream, appended in batches of 1,000. The persistent adapters run
/// it with `Durability::None` to keep the suite fast (100 fsyncs would be fine, but the data
/// volume, about 25 MB of JSON, is the point here, not durability).
async fn large_document<A: Adapter>() {
    const N: u64 = 100_000;
    const BATCH: u64 = 1_000;
    let dir = TempDir::new(A::NAME);
    let config = StoreConfig {
        durability: Durability::None,
        ..StoreConfig::default()
    };
    let store = A::open(dir.path(), config);
    let mut len = 0;
    while len < N {
        len = store
            .append("big", len, &recs("big", len, BATCH))
            .await
            .unwrap();
    }
    assert_eq!(len, N);
    let store = A::reopen(store, dir.path(), config);
    let all = store.read("big", 0).await.unwrap();
    assert_eq!(all.len() as u64, N);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u64 && r.doc == "big")
    );
    assert_eq!(all[54_321], rec("big", 54_321));
    assert_eq!(
        store.read("big", N - 10).await.unwrap(),
        recs("big", N - 10, 10)
    );
    assert!(matches!(
        store.append("big", N - 1, &recs("big", N - 1, 1)).await,
        Err(StoreError::Conflict { actual: N, .. })
    ));
}

/// Eight tasks append to their own documents and race for a shared one, retrying on
/// conflicts: every successful append is there once, in order, and nothing else is.
async fn concurrent_writers<A: Adapter>(group_commit: GroupCommit) {
    const TASKS: usize = 8;
    const ROUNDS: u64 = 20;
    let dir = TempDir::new(A::NAME);
    let config = StoreConfig {
        group_commit,
        ..StoreConfig::default()
    };
    let store = Arc::new(A::open(dir.path(), config));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let own = format!("own-{task}");
            let mut conflicts = 0u64;
            for round in 0..ROUNDS {
                store
                    .append(&own, round, &recs(&own, round, 1))
                    .await
                    .unwrap();
                // The shared stream: read its length, append one record marked as ours.
                loop {
                    let len = store.read("shared", 0).await.unwrap().len() as u64;
                    let mut r = rec("shared", len);
                    r.actor = format!("task-{task}");
                    match store.append("shared", len, &[r]).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let store = A::reopen(Arc::into_inner(store).unwrap(), dir.path(), config);
    for task in 0..TASKS {
        let own = format!("own-{task}");
        assert_eq!(store.read(&own, 0).await.unwrap(), recs(&own, 0, ROUNDS));
    }
    let shared = store.read("shared", 0).await.unwrap();
    assert_eq!(shared.len(), TASKS * ROUNDS as usize);
    for task in 0..TASKS {
        let mine = shared
            .iter()
            .filter(|r| r.actor == format!("task-{task}"))
            .count();
        assert_eq!(mine, ROUNDS as usize, "task {task}");
    }
    assert!(shared.iter().enumerate().all(|(i, r)| r.seq == i as u64));
}

/// The traits also work when polled outside any tokio runtime (reads then run inline).
fn without_a_runtime<A: Adapter>() {
    let dir = TempDir::new(A::NAME);
    let store = A::open(dir.path(), StoreConfig::durable());
    let run = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>| {
        futures_block_on(f)
    };
    run(Box::pin(async {
        assert_eq!(store.append("d", 0, &recs("d", 0, 2)).await, Ok(2));
        assert_eq!(store.read("d", 1).await.unwrap(), recs("d", 1, 1));
    }));
}

/// A minimal executor: parks the thread until the waker fires.
fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[allow(dead_code)]
fn _store_is_object_safe(s: Arc<dyn Store>) -> Arc<dyn Store> {
    s
}
