//! The hosted adapter beyond the conformance suite: the platform's limits (a `MemoryKvs`
//! refuses what the platform refuses, so every test here also shows the adapter stays
//! inside them), large records, unusual names, injected failures, damaged values, and
//! writers on separate instances.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use signoff_core::notify::Notification;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::{Record, Timestamp};
use signoff_storage::hosted::{
    HostedStore, KeyPolicy, Kvs, KvsError, KvsOp, MAX_NAME_BYTES, MAX_SNAPSHOT_BYTES,
    MAX_TRANSACTION_OPS, MAX_VALUE_BYTES, MemoryKvs, Snapshot, StreamHead,
};
use signoff_storage::{DocumentIndex, EventStore, LocalStore, Outbox};

use crate::support::*;

/// Runs a future to completion on this thread (the adapter never waits on anything).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn entry(doc: &str, state: &str, reviewers: &[&str], due: Option<i64>) -> IndexEntry {
    IndexEntry {
        doc: doc.into(),
        state: state.into(),
        pending_reviewers: reviewers.iter().map(|r| r.to_string()).collect(),
        due_at: due.map(Timestamp),
    }
}

fn set(key: &str, value: &str) -> KvsOp {
    KvsOp::Set {
        key: key.into(),
        value: value.into(),
        policy: KeyPolicy::Overwrite,
    }
}

/// Checks that a call on `kvs` is refused with `code` and changes nothing.
fn refused<T: std::fmt::Debug>(
    kvs: &MemoryKvs,
    code: &str,
    call: impl FnOnce(&MemoryKvs) -> Result<T, KvsError>,
) {
    let before = kvs.entries();
    let got = call(kvs);
    match got {
        Err(e) => assert_eq!(e.code, code, "{e}"),
        Ok(v) => panic!("expected {code}, got {v:?}"),
    }
    assert_eq!(
        kvs.entries(),
        before,
        "a refused {code} call changed the store"
    );
}

#[test]
fn memory_kvs_refuses_what_the_platform_refuses() {
    let kvs = MemoryKvs::new();
    kvs.set("taken", "1", KeyPolicy::Overwrite).unwrap();
    refused(&kvs, "KEY_TOO_SHORT", |k| k.get("a"));
    refused(&kvs, "KEY_TOO_SHORT", |k| k.get(""));
    refused(&kvs, "KEY_TOO_LONG", |k| k.get(&"k".repeat(501)));
    assert_eq!(kvs.get(&"k".repeat(500)), Ok(None));
    refused(&kvs, "INVALID_KEY", |k| k.get("a/b"));
    refused(&kvs, "INVALID_KEY", |k| k.get("ключ"));
    refused(&kvs, "INVALID_KEY", |k| k.get("   "));
    assert_eq!(kvs.get("a:b.c_d#e-f 1"), Ok(None));
    let big = format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES - 1));
    refused(&kvs, "MAX_SIZE", |k| {
        k.set("big", &big, KeyPolicy::Overwrite)
    });
    refused(&kvs, "INVALID_VALUE", |k| {
        k.set("bad", "{oops", KeyPolicy::Overwrite)
    });
    let deep = format!("{}1{}", "[".repeat(31), "]".repeat(31));
    refused(&kvs, "VALUE_TOO_DEEP", |k| {
        k.set("deep", &deep, KeyPolicy::Overwrite)
    });
    let ok_deep = format!("{}1{}", "[".repeat(30), "]".repeat(30));
    kvs.set("deep", &ok_deep, KeyPolicy::Overwrite).unwrap();
    refused(&kvs, "KEY_CONFLICT", |k| {
        k.set("taken", "2", KeyPolicy::FailIfExists)
    });
    let many: Vec<KvsOp> = (0..=MAX_TRANSACTION_OPS)
        .map(|i| set(&format!("k{i}"), "1"))
        .collect();
    refused(&kvs, "TOO_MANY_OPERATIONS", |k| k.transact(many));
    refused(&kvs, "DUPLICATE_KEY_IN_TRANSACTION", |k| {
        k.transact(vec![set("k1", "1"), KvsOp::Delete { key: "k1".into() }])
    });
    let large = format!("\"{}\"", "y".repeat(MAX_VALUE_BYTES - 10));
    let too_large: Vec<KvsOp> = (0..18).map(|i| set(&format!("l{i}"), &large)).collect();
    refused(&kvs, "TRANSACTION_TOO_LARGE", |k| k.transact(too_large));
    // One bad operation refuses the whole transaction.
    refused(&kvs, "KEY_CONFLICT", |k| {
        k.transact(vec![
            set("fresh", "1"),
            KvsOp::Set {
                key: "taken".into(),
                value: "3".into(),
                policy: KeyPolicy::FailIfExists,
            },
        ])
    });
    refused(&kvs, "INVALID_LIMIT", |k| k.query("k", 0, None));
    refused(&kvs, "INVALID_LIMIT", |k| k.query("k", 101, None));
    refused(&kvs, "INVALID_CURSOR", |k| k.query("k", 10, Some("zz")));

    // Pages of at most 100, in key order, with a cursor that only its own query accepts.
    let kvs = MemoryKvs::new();
    for chunk in (0..250).collect::<Vec<_>>().chunks(25) {
        let ops = chunk
            .iter()
            .map(|i| set(&format!("p:{i:03}"), &i.to_string()))
            .collect();
        kvs.transact(ops).unwrap();
    }
    kvs.set("q:1", "1", KeyPolicy::Overwrite).unwrap();
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let page = kvs.query("p:", 100, cursor.as_deref()).unwrap();
        assert!(page.entries.len() <= 100);
        seen.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.cursor {
            Some(c) => {
                refused(&kvs, "INVALID_CURSOR", |k| k.query("q:", 10, Some(&c)));
                cursor = Some(c);
            }
            None => break,
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("p:{i:03}")).collect();
    assert_eq!(seen, want);

    // Injected failures: the next N calls fail and change nothing, then calls work again.
    kvs.fail_after(1, 1);
    assert_eq!(kvs.get("p:000"), Ok(Some("0".into())));
    refused(&kvs, KvsError::STORAGE_UNAVAILABLE, |k| {
        k.set("p:000", "9", KeyPolicy::Overwrite)
    });
    assert_eq!(kvs.get("p:000"), Ok(Some("0".into())));
}

/// A realistic workload (real commits with index rows and notifications, big appends, long
/// and unusual names) never makes the store refuse anything.
#[test]
fn normal_work_stays_inside_the_limits() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    block_on(async {
        for n in 0..12 {
            let doc = format!("policy {n}/ünïcode {}", "long ".repeat(n * 15));
            let (wf, steps, _) = basic_life(&doc);
            let mut len = 0;
            let mut records: Vec<Record> = Vec::new();
            for step in &steps {
                records.extend(step.iter().cloned());
                let state = signoff_core::DocState::replay(&wf, &records).unwrap();
                let notes: Vec<Notification> = step.iter().map(|r| note(&doc, r.seq)).collect();
                len = store
                    .commit(&doc, len, step, Some(IndexEntry::of(&state, &wf)), &notes)
                    .await
                    .unwrap();
            }
            // Thousands of records at once: split into parts; staged, then published, when
            // they do not fit in one transaction.
            let size = match n {
                4 => 2_000,
                8 => 15_000,
                _ => 0,
            };
            store
                .append(&doc, len, &recs(&doc, len, size))
                .await
                .unwrap();
        }
        let pending = store.pending(1_000).await.unwrap();
        for (id, _) in pending.iter().take(30) {
            store.ack(*id).await.unwrap();
        }
    });
    let stats = kvs.stats();
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(
        stats.max_transaction_ops <= MAX_TRANSACTION_OPS,
        "{stats:?}"
    );
    assert!(stats.max_value_bytes <= MAX_VALUE_BYTES, "{stats:?}");
    assert!(stats.max_key_chars <= 500, "{stats:?}");
    // The big appends were split: some values are close to the limit.
    assert!(stats.max_value_bytes > MAX_VALUE_BYTES / 2, "{stats:?}");
}

/// A record far larger than a value (and than a transaction) is split, staged and read back
/// exactly, also by a new adapter over the same store.
#[test]
fn a_huge_record_is_split_across_keys_and_read_back() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    let mut first = rec("huge", 0);
    // Escaped characters and multi-byte ones, so that pieces are cut by escaped size and at
    // character boundaries.
    first.comment = Some("quote \" backslash \\ tab \t nul \u{0} é 日本 🦀 ".repeat(120_000));
    let mut second = rec("huge", 1);
    second.comment = Some("z".repeat(300_000));
    let records = vec![first, second];
    let transactions = kvs.stats().transactions;
    block_on(async {
        assert_eq!(store.append("huge", 0, &records).await, Ok(2));
        assert_eq!(store.read("huge", 0).await.unwrap(), records);
        assert_eq!(store.read("huge", 1).await.unwrap(), records[1..]);
        let again = HostedStore::new(kvs.clone());
        assert_eq!(again.read("huge", 0).await.unwrap(), records);
        assert_eq!(again.documents().await.unwrap(), [("huge".to_owned(), 2)]);
        // Still one stream that goes on, with conflicts as usual.
        assert!(matches!(
            again.append("huge", 1, &recs("huge", 1, 1)).await,
            Err(StoreError::Conflict { actual: 2, .. })
        ));
        assert_eq!(again.append("huge", 2, &recs("huge", 2, 1)).await, Ok(3));

        // A workflow definition larger than a value.
        let source = format!("# {}\n", "definition ".repeat(60_000));
        store.put_workflow("wf-hash", &source).await.unwrap();
        assert_eq!(again.workflow("wf-hash").await.unwrap(), Some(source));
        assert_eq!(again.workflow("other").await.unwrap(), None);
    });
    let stats = kvs.stats();
    assert_eq!(stats.refused, 0, "{stats:?}");
    // About 19 MB of JSON: many parts, written in several transactions before the publish.
    assert!(stats.transactions - transactions > 5, "{stats:?}");
    let parts = kvs
        .entries()
        .iter()
        .filter(|(k, _)| k.starts_with("signoff:x:"))
        .count();
    assert!(parts > MAX_TRANSACTION_OPS, "{parts} parts");
}

/// Document ids, states and user names with any characters, of any length up to
/// `MAX_NAME_BYTES`, work everywhere; names that differ only in escaping stay apart.
#[test]
fn unusual_names_work_everywhere() {
    let long = "L".repeat(600);
    let longer = format!("{long}!");
    let names = [
        "résumé/2026 Q1",
        "a:b#c",
        "  spaces  ",
        "",
        "日本語の文書",
        "_41",
        "A",
        "a\u{0}b",
        "#hash-like",
        "../../etc/passwd",
        long.as_str(),
        longer.as_str(),
    ];
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    block_on(async {
        for (i, name) in names.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!(store.append(name, 0, &recs(name, 0, n)).await, Ok(n));
            let user = format!("{name} (user)");
            let state = format!("state {name}");
            store
                .upsert(entry(name, &state, &[&user, "bob"], Some(i as i64)))
                .await
                .unwrap();
        }
        for (i, name) in names.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!(
                store.read(name, 0).await.unwrap(),
                recs(name, 0, n),
                "{name:?}"
            );
            let user = format!("{name} (user)");
            assert_eq!(store.by_reviewer(&user).await.unwrap(), [*name], "{name:?}");
            let state = format!("state {name}");
            assert_eq!(store.by_state(&state).await.unwrap(), [*name], "{name:?}");
            assert_eq!(
                store.due_before(Timestamp(i as i64)).await.unwrap().len(),
                i + 1
            );
        }
        let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        all.sort();
        assert_eq!(store.by_reviewer("bob").await.unwrap(), all);
        let docs = store.documents().await.unwrap();
        assert_eq!(docs.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(), all);

        // Beyond MAX_NAME_BYTES: refused, naming the id, and nothing is stored.
        let huge = "h".repeat(MAX_NAME_BYTES + 1);
        let before = kvs.entries();
        match store.append(&huge, 0, &recs(&huge, 0, 1)).await {
            Err(StoreError::Backend(m)) => assert!(m.contains("document id of 8193 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(kvs.entries(), before);
    });
    assert_eq!(kvs.stats().refused, 0);
    assert!(kvs.entries().iter().all(|(k, _)| k.chars().count() <= 500));
}

/// The store as the traits show it: streams, index answers, outbox, documents.
async fn visible(store: &HostedStore<MemoryKvs>, docs: &[&str]) -> String {
    let mut out = String::new();
    for d in docs {
        out += &format!("{d}: {:?}\n", store.read(d, 0).await.map(|r| r.len()));
    }
    for s in ["draft", "review", "approved"] {
        out += &format!("{s}: {:?}\n", store.by_state(s).await);
    }
    out += &format!("bob: {:?}\n", store.by_reviewer("bob").await);
    out += &format!("due: {:?}\n", store.due_before(Timestamp(1_000)).await);
    out += &format!("pending: {:?}\n", store.pending(100).await);
    out += &format!("documents: {:?}\n", store.documents().await);
    out
}

/// Every call of a write, in turn, fails with `STORAGE_UNAVAILABLE`: the write reports it,
/// and the store is exactly as before (for a staged append: nothing visible, and what the
/// staging left is only unreferenced parts). Then the same write succeeds.
#[test]
fn injected_failures_leave_nothing_partial() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    block_on(async {
        store
            .commit(
                "d",
                0,
                &recs("d", 0, 2),
                Some(entry("d", "draft", &["bob"], Some(500))),
                &[note("d", 0)],
            )
            .await
            .unwrap();
    });
    let first_id = block_on(store.pending(1)).unwrap()[0].0;
    type Write = Box<dyn Fn(&HostedStore<MemoryKvs>) -> Result<(), StoreError>>;
    let writes: Vec<(&str, Write)> = vec![
        (
            "commit",
            Box::new(|s| {
                block_on(s.commit(
                    "d",
                    2,
                    &recs("d", 2, 3),
                    Some(entry("d", "review", &["carol"], Some(900))),
                    &[note("d", 2), note("d", 3)],
                ))
                .map(|_| ())
            }),
        ),
        (
            "staged append",
            Box::new(|s| block_on(s.append("d", 5, &recs("d", 5, 3_000))).map(|_| ())),
        ),
        (
            "upsert",
            Box::new(|s| block_on(s.upsert(entry("e", "approved", &["bob"], None)))),
        ),
        (
            "enqueue",
            Box::new(|s| block_on(s.enqueue(&[note("e", 0), note("e", 1)]))),
        ),
        ("ack", Box::new(move |s| block_on(s.ack(first_id)))),
        (
            "workflow",
            Box::new(|s| block_on(s.put_workflow("w", &"w".repeat(600_000)))),
        ),
    ];
    for (name, write) in &writes {
        let mut failures = 0;
        for k in 0.. {
            let before = kvs.entries();
            let shown = block_on(visible(&store, &["d", "e"]));
            kvs.fail_after(k, 1);
            let result = write(&store);
            kvs.fail_next(0);
            let Err(e) = result else {
                break;
            };
            failures += 1;
            assert!(
                matches!(&e, StoreError::Backend(m) if m.contains("STORAGE_UNAVAILABLE")),
                "{name}, call {k}: {e}"
            );
            assert_eq!(
                block_on(visible(&store, &["d", "e"])),
                shown,
                "{name}, call {k}"
            );
            let after = kvs.entries();
            let added: Vec<_> = after.iter().filter(|kv| !before.contains(kv)).collect();
            let removed: Vec<_> = before.iter().filter(|kv| !after.contains(kv)).collect();
            assert!(removed.is_empty(), "{name}, call {k}: removed {removed:?}");
            assert!(
                added
                    .iter()
                    .all(|(key, _)| key.starts_with("signoff:x:") || key.starts_with("signoff:wx:")),
                "{name}, call {k}: added {:?}",
                added.iter().map(|(key, _)| key).collect::<Vec<_>>()
            );
        }
        assert!(failures > 0, "{name}: no failure was injected");
    }
    block_on(async {
        assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 3_005));
        assert_eq!(store.by_state("review").await.unwrap(), ["d"]);
        assert_eq!(store.by_reviewer("bob").await.unwrap(), ["e"]);
        assert_eq!(store.pending(100).await.unwrap().len(), 4);
        assert_eq!(
            store.workflow("w").await.unwrap(),
            Some("w".repeat(600_000))
        );
    });
}

/// A damaged value (not JSON, or JSON of the wrong shape) is reported as a backend error
/// naming its key, never a panic and never skipped.
#[test]
fn damaged_values_are_reported_with_their_key() {
    let setup = || {
        let kvs = MemoryKvs::new();
        let store = HostedStore::new(kvs.clone());
        block_on(async {
            store
                .commit(
                    "d",
                    0,
                    &recs("d", 0, 2),
                    Some(entry("d", "review", &["bob"], Some(5))),
                    &[note("d", 0)],
                )
                .await
                .unwrap();
            store.append("d", 2, &recs("d", 2, 2_000)).await.unwrap();
            store.put_workflow("w", &"w".repeat(300_000)).await.unwrap();
        });
        (kvs, store)
    };
    let (kvs, _) = setup();
    let keys: Vec<String> = kvs.entries().into_iter().map(|(k, _)| k).collect();
    let mut checked = BTreeSet::new();
    for key in &keys {
        // Markers are never read: damage to them changes nothing.
        if key.contains(":rm:") || key.contains(":oa:") || key.ends_with(":on") {
            continue;
        }
        for garbage in ["{not json", "\"a string\"", "{\"doc\": 7}"] {
            let (kvs, store) = setup();
            kvs.damage(key, garbage);
            let results: Vec<Result<String, StoreError>> = block_on(async {
                vec![
                    store.read("d", 0).await.map(|r| format!("{}", r.len())),
                    store.by_state("review").await.map(|d| d.join(",")),
                    store.by_reviewer("bob").await.map(|d| d.join(",")),
                    store.due_before(Timestamp(10)).await.map(|d| d.join(",")),
                    store.pending(10).await.map(|p| format!("{}", p.len())),
                    store.documents().await.map(|d| format!("{d:?}")),
                    store
                        .workflow("w")
                        .await
                        .map(|w| format!("{:?}", w.map(|s| s.len()))),
                    store
                        .upsert(entry("d", "approved", &[], None))
                        .await
                        .map(|_| "upserted".into()),
                ]
            });
            let errors: Vec<String> = results
                .into_iter()
                .filter_map(|r| match r {
                    Err(StoreError::Backend(m)) => Some(m),
                    Err(e) => panic!("{key} = {garbage}: {e:?}"),
                    Ok(_) => None,
                })
                .collect();
            // A string where a document id is expected is still a document id.
            if garbage == "\"a string\""
                && ["s", "u", "t"]
                    .iter()
                    .any(|k| key.contains(&format!("signoff:{k}:")))
            {
                continue;
            }
            assert!(!errors.is_empty(), "{key} = {garbage}: nothing noticed");
            // A part that still holds a string is caught by its append's checksum.
            let named = |m: &String| {
                m.contains(key.as_str())
                    || (key.contains(":x:") || key.contains(":wx:")) && m.contains("checksum")
            };
            assert!(errors.iter().all(named), "{key} = {garbage}: {errors:?}");
            checked.insert(key.clone());
        }
    }
    // Heads, appends, parts, the row, the index keys, the outbox, the workflow.
    for kind in [
        ":h:", ":a:", ":x:", ":r:", ":s:", ":u:", ":t:", ":o:", ":w:",
    ] {
        assert!(
            checked.iter().any(|k| k.contains(kind)),
            "no damaged {kind} key was checked: {checked:?}"
        );
    }
}

/// Writers on separate adapter instances (separate invocations of an app) over one store:
/// at the same expected version exactly one wins, the others get a conflict with the
/// actual length; concurrent index rows and outbox writers lose nothing and leave no stale
/// index keys.
#[test]
fn writers_on_separate_instances_conflict_cleanly() {
    const WRITERS: usize = 6;
    let kvs = MemoryKvs::new();
    for (round, size) in [1u64, 20_000].into_iter().enumerate() {
        let doc = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (kvs, barrier, doc) = (kvs.clone(), barrier.clone(), doc.clone());
                std::thread::spawn(move || {
                    let store = HostedStore::new(kvs);
                    let mut records = recs(&doc, 0, size);
                    records[0].actor = format!("writer-{w}");
                    barrier.wait();
                    block_on(store.append(&doc, 0, &records))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        for r in &results {
            match r {
                Ok(n) => assert_eq!(*n, size),
                Err(e) => assert_eq!(
                    e,
                    &StoreError::Conflict {
                        doc: doc.clone(),
                        expected: 0,
                        actual: size
                    }
                ),
            }
        }
        let stored = block_on(HostedStore::new(kvs.clone()).read(&doc, 0)).unwrap();
        assert_eq!(stored.len() as u64, size);
        // The losers' staged parts are gone: only the winner's checksum has parts.
        let part_prefix = format!("signoff:x:{doc}:");
        let shas: BTreeSet<String> = kvs
            .entries()
            .into_iter()
            .filter_map(|(k, _)| Some(k.strip_prefix(&part_prefix)?.split(':').nth(1)?.to_owned()))
            .collect();
        assert_eq!(shas.len(), usize::from(size > 1), "{shas:?}");
    }

    // Concurrent rows of one document and concurrent outbox writers.
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (kvs, barrier) = (kvs.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = HostedStore::new(kvs);
                barrier.wait();
                for i in 0..10 {
                    let state = format!("s{w}-{i}");
                    let user = format!("u{w}-{i}");
                    block_on(store.upsert(entry("row", &state, &[&user], Some(i))))?;
                    block_on(store.enqueue(&[note(&state, 0), note(&state, 1)]))?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let index_keys = kvs
        .entries()
        .into_iter()
        .filter(|(k, _)| {
            ["s", "u", "t"]
                .iter()
                .any(|p| k.starts_with(&format!("signoff:{p}:")))
        })
        .filter(|(_, v)| v == "\"row\"")
        .count();
    assert_eq!(
        index_keys, 3,
        "exactly the last row's state, reviewer and due keys"
    );
    let store = HostedStore::new(kvs.clone());
    let pending = block_on(store.pending(usize::MAX)).unwrap();
    assert_eq!(pending.len(), WRITERS * 10 * 2);
    let ids: BTreeSet<u64> = pending.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), pending.len(), "outbox ids are unique");
    // Concurrent acknowledgements of items of the same batches all count.
    let pending = Arc::new(pending);
    let handles: Vec<_> = (0..2)
        .map(|half| {
            let (kvs, pending) = (kvs.clone(), pending.clone());
            std::thread::spawn(move || {
                let store = HostedStore::new(kvs);
                for (id, _) in pending.iter().skip(half).step_by(2) {
                    block_on(store.ack(*id)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(block_on(store.pending(10)).unwrap().is_empty());
    assert_eq!(
        block_on(store.ack(pending[0].0)),
        Err(StoreError::UnknownOutboxItem(pending[0].0))
    );
}

/// Stores under different prefixes share a key-value store without seeing each other.
#[test]
fn prefixes_keep_stores_apart() {
    let kvs = MemoryKvs::new();
    let a = HostedStore::with_prefix(kvs.clone(), "app-a").unwrap();
    let b = HostedStore::with_prefix(kvs.clone(), "app-a.b").unwrap();
    block_on(async {
        a.append("d", 0, &recs("d", 0, 2)).await.unwrap();
        b.append("d", 0, &recs("d", 0, 1)).await.unwrap();
        a.enqueue(&[note("d", 0)]).await.unwrap();
        assert_eq!(a.read("d", 0).await.unwrap().len(), 2);
        assert_eq!(b.read("d", 0).await.unwrap().len(), 1);
        assert_eq!(a.pending(10).await.unwrap().len(), 1);
        assert!(b.pending(10).await.unwrap().is_empty());
    });
    assert_eq!(b.prefix(), "app-a.b");
    assert!(
        kvs.entries()
            .iter()
            .all(|(k, _)| k.starts_with("app-a:") || k.starts_with("app-a.b:"))
    );
    for bad in ["", "a:b", "ü", "a b", &"p".repeat(65)] {
        let e = HostedStore::with_prefix(kvs.clone(), bad).unwrap_err();
        assert_eq!(e.prefix, bad);
    }
}

/// The index keys of a row change that has no room in its transaction (here 30 reviewers at
/// once) settle in transactions of their own right after it; when that is interrupted, the
/// row keeps a journal and the document's next write finishes it.
#[test]
fn a_large_index_change_settles_after_its_commit() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    let names = |tag: &str| -> Vec<String> { (0..30).map(|i| format!("{tag}-{i:02}")).collect() };
    let (first, second) = (names("a"), names("b"));
    let refs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let index_keys = |kvs: &MemoryKvs| -> usize {
        kvs.entries()
            .iter()
            .filter(|(k, _)| {
                ["s", "u", "t"]
                    .iter()
                    .any(|p| k.starts_with(&format!("signoff:{p}:")))
            })
            .count()
    };
    let row = |kvs: &MemoryKvs| kvs.get("signoff:r:d").unwrap().unwrap();
    let with = |reviewers: &[String], state: &str| IndexEntry {
        doc: "d".into(),
        state: state.into(),
        pending_reviewers: refs(reviewers),
        due_at: Some(Timestamp(10)),
    };
    block_on(async {
        let notes = [note("d", 0), note("d", 1)];
        assert_eq!(
            store
                .commit(
                    "d",
                    0,
                    &recs("d", 0, 2),
                    Some(with(&first, "review")),
                    &notes
                )
                .await,
            Ok(2)
        );
        for r in &first {
            assert_eq!(store.by_reviewer(r).await.unwrap(), ["d"], "{r}");
        }
        assert_eq!(index_keys(&kvs), 32);
        assert!(!row(&kvs).contains("journal"), "{}", row(&kvs));

        // Another 30 replace them: 60 index keys change (and a big append is staged).
        let big = recs("d", 2, 15_000);
        assert_eq!(
            store
                .commit("d", 2, &big, Some(with(&second, "second")), &[])
                .await,
            Ok(15_002)
        );
        assert!(store.by_reviewer("a-00").await.unwrap().is_empty());
        assert_eq!(store.by_reviewer("b-29").await.unwrap(), ["d"]);
        assert_eq!(store.by_state("second").await.unwrap(), ["d"]);
        assert!(store.by_state("review").await.unwrap().is_empty());
        assert_eq!(index_keys(&kvs), 32);

        // Interrupted settling: the commit is stored (and answered), the row keeps a journal.
        // Calls: the head, the outbox counter, the row, the commit; then the settling.
        kvs.fail_after(4, 1);
        assert_eq!(
            store
                .commit(
                    "d",
                    15_002,
                    &recs("d", 15_002, 1),
                    Some(with(&first, "third")),
                    &[note("d", 9)]
                )
                .await,
            Ok(15_003)
        );
        kvs.fail_next(0);
        assert!(row(&kvs).contains("journal"), "{}", row(&kvs));
        assert_eq!(store.read("d", 15_002).await.unwrap(), recs("d", 15_002, 1));
        // The next write of the row finishes it, even when it changes nothing else.
        store.upsert(with(&first, "third")).await.unwrap();
        assert!(!row(&kvs).contains("journal"), "{}", row(&kvs));
        assert_eq!(index_keys(&kvs), 32);
        for r in &first {
            assert_eq!(store.by_reviewer(r).await.unwrap(), ["d"], "{r}");
        }
        for r in &second {
            assert!(store.by_reviewer(r).await.unwrap().is_empty(), "{r}");
        }
        assert_eq!(store.by_state("third").await.unwrap(), ["d"]);
        // And a plain upsert of a large change settles the same way.
        store.upsert(with(&second, "fourth")).await.unwrap();
        assert_eq!(store.by_reviewer("b-00").await.unwrap(), ["d"]);
        assert!(store.by_reviewer("a-00").await.unwrap().is_empty());
        assert_eq!(index_keys(&kvs), 32);
    });
    let stats = kvs.stats();
    assert_eq!(stats.refused, 1, "only the injected failure: {stats:?}");
    assert!(stats.max_transaction_ops <= MAX_TRANSACTION_OPS);
}

/// A snapshot left by `commit_with_snapshot` lives in the stream's head, in the same
/// transaction as the records: it comes back with its length and the last record's hash;
/// any later append without one drops it; one whose checksum fails is reported, not returned;
/// one too large for the head is not kept (the records go in all the same).
#[test]
fn snapshots_live_in_the_head_and_go_with_the_next_append() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    assert_eq!(store.stream_head("s").unwrap(), StreamHead::default());

    let first = recs("s", 0, 2);
    let transactions = kvs.stats().transactions;
    let len = store
        .commit_with_snapshot(
            "s",
            0,
            &first,
            Some(&entry("s", "draft", &[], None)),
            &[],
            r#"{"n":2}"#,
        )
        .unwrap();
    assert_eq!(len, 2);
    assert_eq!(
        kvs.stats().transactions - transactions,
        1,
        "one transaction"
    );
    let head = store.stream_head("s").unwrap();
    assert_eq!(head.len, 2);
    assert_eq!(head.last.as_deref(), Some(first[1].hash.as_str()));
    assert_eq!(head.snapshot, Snapshot::Kept(r#"{"n":2}"#.into()));
    block_on(async {
        assert_eq!(store.read("s", 0).await.unwrap(), first);
        assert_eq!(store.documents().await.unwrap(), [("s".to_owned(), 2)]);
    });

    // A plain append writes a head of its own: no snapshot to go stale.
    block_on(store.append("s", 2, &recs("s", 2, 1))).unwrap();
    let head = store.stream_head("s").unwrap();
    assert_eq!((head.len, head.snapshot), (3, Snapshot::None));
    assert_eq!(head.last, Some(rec("s", 2).hash));

    // A snapshot changed behind the store's back fails its checksum.
    store
        .commit_with_snapshot("s", 3, &recs("s", 3, 1), None, &[], r#"{"state":1}"#)
        .unwrap();
    let (key, value) = kvs
        .entries()
        .into_iter()
        .find(|(k, _)| k == "signoff:h:s")
        .unwrap();
    let tampered = value.replace(r#"{\"state\":1}"#, r#"{\"state\":0}"#);
    assert_ne!(tampered, value);
    kvs.set(&key, &tampered, KeyPolicy::Overwrite).unwrap();
    let head = store.stream_head("s").unwrap();
    assert_eq!((head.len, head.snapshot), (4, Snapshot::Corrupt));

    // Too large to keep: committed without it.
    let big = format!(r#""{}""#, "x".repeat(MAX_SNAPSHOT_BYTES));
    store
        .commit_with_snapshot("s", 4, &recs("s", 4, 1), None, &[], &big)
        .unwrap();
    let head = store.stream_head("s").unwrap();
    assert_eq!((head.len, head.snapshot), (5, Snapshot::None));

    // Nothing to append, nothing kept; a conflict is a conflict.
    assert_eq!(
        store.commit_with_snapshot("s", 5, &[], None, &[], "{}"),
        Ok(5)
    );
    assert_eq!(store.stream_head("s").unwrap().snapshot, Snapshot::None);
    assert!(matches!(
        store.commit_with_snapshot("s", 4, &recs("s", 4, 1), None, &[], "{}"),
        Err(StoreError::Conflict { actual: 5, .. })
    ));
    assert_eq!(kvs.stats().refused, 0);
}

/// `ack_all` acknowledges a whole outbox batch in one transaction (one revision marker),
/// whatever the number of its items; ids that name nothing pending are reported after the
/// rest are acknowledged.
#[test]
fn ack_all_takes_one_transaction_per_batch() {
    let kvs = MemoryKvs::new();
    let store = HostedStore::new(kvs.clone());
    let pending = |store: &HostedStore<MemoryKvs>| -> Vec<u64> {
        block_on(store.pending(100))
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    block_on(async {
        store
            .enqueue(&[note("a", 0), note("a", 1), note("a", 2)])
            .await
            .unwrap();
        store.enqueue(&[note("b", 0), note("b", 1)]).await.unwrap();
    });
    let ids = pending(&store);
    assert_eq!(ids.len(), 5);
    let (transactions, marks_before) = (kvs.stats().transactions, marks(&kvs));
    // All of the first batch and one of the second.
    store.ack_all(&ids[..4]).unwrap();
    assert_eq!(kvs.stats().transactions - transactions, 2);
    assert_eq!(marks(&kvs) - marks_before, 2);
    assert_eq!(pending(&store), ids[4..]);
    // Acknowledged already, or never handed out: reported, and the rest still acknowledged.
    assert_eq!(
        store.ack_all(&[ids[0], ids[4], 7]),
        Err(StoreError::UnknownOutboxItem(7))
    );
    assert!(pending(&store).is_empty());
    assert_eq!(
        store.ack_all(&[ids[4]]),
        Err(StoreError::UnknownOutboxItem(ids[4]))
    );
    assert_eq!(store.ack_all(&[]), Ok(()));
    assert_eq!(kvs.stats().refused, 0);

    fn marks(kvs: &MemoryKvs) -> usize {
        kvs.entries()
            .iter()
            .filter(|(k, _)| k.starts_with("signoff:om:"))
            .count()
    }
}
