//! Group commit: concurrent callers share transactions, each is answered with its own
//! result, and a conflict inside a batch fails that operation only.

use std::sync::Arc;

use signoff_core::store::StoreError;
use signoff_storage::{
    Durability, EventStore, GroupCommit, RedbStore, SledStore, StoreConfig, WriterStats,
};

use crate::support::*;

const CONFIG: StoreConfig = StoreConfig {
    durability: Durability::Immediate,
    group_commit: GroupCommit::UpTo(64),
};

/// 64 callers append at once, half of them to the same position of one stream: exactly one
/// of those wins, the others get a conflict; the stats show fewer commits than operations.
async fn batches<S: EventStore + 'static>(store: Arc<S>, stats: impl Fn(&S) -> WriterStats) {
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let doc = format!("own-{i}");
                store.append(&doc, 0, &recs(&doc, 0, 2)).await
            } else {
                store.append("contested", 0, &recs("contested", 0, 1)).await
            }
        }));
    }
    let mut won = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(len) if i % 2 == 0 => assert_eq!(len, 2),
            Ok(len) => {
                assert_eq!(len, 1);
                won += 1;
            }
            Err(StoreError::Conflict { actual: 1, .. }) if i % 2 == 1 => {}
            other => panic!("caller {i}: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.read("contested", 0).await.unwrap().len(), 1);
    for i in (0..64).step_by(2) {
        let doc = format!("own-{i}");
        assert_eq!(store.read(&doc, 0).await.unwrap(), recs(&doc, 0, 2));
    }
    let s = stats(&store);
    assert_eq!(s.operations, 64);
    // 64 callers queue faster than one fsync completes: some commits carry several.
    assert!(s.commits < s.operations, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_batches_concurrent_callers() {
    let dir = TempDir::new("group");
    let store = Arc::new(RedbStore::create(dir.path().join("s.redb"), CONFIG).unwrap());
    batches(store, RedbStore::writer_stats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_batches_concurrent_callers() {
    let dir = TempDir::new("group");
    let store = Arc::new(SledStore::create(dir.path().join("s.sled"), CONFIG).unwrap());
    batches(store, SledStore::writer_stats).await;
}

/// Without group commit, every operation is its own commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_group_commit_every_operation_commits_alone() {
    let dir = TempDir::new("group");
    let store =
        Arc::new(RedbStore::create(dir.path().join("s.redb"), StoreConfig::durable()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let doc = format!("d{i}");
            store.append(&doc, 0, &recs(&doc, 0, 1)).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = store.writer_stats();
    assert_eq!((s.commits, s.operations), (16, 16));
}
