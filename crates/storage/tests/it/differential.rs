//! Differential property test: random operation sequences against each adapter and against
//! a `BTreeMap` model; every answer agrees after every step, and after reopening.
//!
//! Outbox ids are compared through a mapping learned after each enqueue: the contract is that
//! ids increase and are never reused, not that they are dense (the hosted adapter numbers
//! them by batch).
//!
//! `PROPTEST_CASES=N` runs a longer search (default 24 cases of up to 60 steps per adapter).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use signoff_core::notify::Notification;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::{Record, Timestamp};
use signoff_storage::{DocumentIndex, Durability, EventStore, GroupCommit, Outbox, StoreConfig};

use crate::support::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` records to `doc`, at the right position shifted by `skew`.
    Append {
        doc: u8,
        skew: i8,
        n: u8,
    },
    Read {
        doc: u8,
        from: u8,
    },
    Upsert {
        doc: u8,
        state: u8,
        reviewers: Vec<u8>,
        due: Option<u8>,
    },
    ByState(u8),
    ByReviewer(u8),
    DueBefore(u8),
    Enqueue(u8),
    Pending(u8),
    /// Ack the `i`-th pending item (modulo), or an id that does not exist.
    Ack(Option<u8>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u8, prop_oneof![8 => Just(0i8), 1 => -2..3i8], 0..4u8)
            .prop_map(|(doc, skew, n)| Op::Append { doc, skew, n }),
        2 => (0..4u8, 0..8u8).prop_map(|(doc, from)| Op::Read { doc, from }),
        3 => (0..4u8, 0..3u8, proptest::collection::vec(0..3u8, 0..3), proptest::option::of(0..10u8))
            .prop_map(|(doc, state, reviewers, due)| Op::Upsert { doc, state, reviewers, due }),
        1 => (0..3u8).prop_map(Op::ByState),
        1 => (0..3u8).prop_map(Op::ByReviewer),
        1 => (0..10u8).prop_map(Op::DueBefore),
        2 => (0..3u8).prop_map(Op::Enqueue),
        1 => (0..4u8).prop_map(Op::Pending),
        2 => proptest::option::of(0..4u8).prop_map(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

/// The reference: plain maps.
#[derive(Debug, Default)]
struct Model {
    streams: BTreeMap<String, Vec<Record>>,
    index: BTreeMap<String, IndexEntry>,
    outbox: BTreeMap<u64, Notification>,
    next_id: u64,
}

/// One step's answer, from the model or from a store.
#[derive(Debug, PartialEq)]
enum Answer {
    Len(Result<u64, StoreError>),
    Records(Vec<Record>),
    Docs(Vec<String>),
    Unit(Result<(), StoreError>),
    Pending(Vec<(u64, Notification)>),
    Reopened,
}

fn doc_id(d: u8) -> String {
    // Ids where one is a prefix of another, to catch key-encoding mistakes.
    ["a", "ab", "b", "a\u{0}b"][d as usize % 4].to_owned()
}

fn name(prefix: &str, i: u8) -> String {
    format!("{prefix}{i}")
}

impl Model {
    fn entry(doc: u8, state: u8, reviewers: &[u8], due: Option<u8>) -> IndexEntry {
        let mut pending_reviewers: Vec<String> =
            reviewers.iter().map(|r| name("user", *r)).collect();
        pending_reviewers.sort();
        pending_reviewers.dedup();
        IndexEntry {
            doc: doc_id(doc),
            state: name("state", state),
            pending_reviewers,
            due_at: due.map(|d| Timestamp(i64::from(d) * 100 - 300)),
        }
    }

    fn records(&self, doc: u8, skew: i8, n: u8) -> (String, u64, Vec<Record>) {
        let id = doc_id(doc);
        let len = self.streams.get(&id).map_or(0, |s| s.len() as u64);
        let expected = len.saturating_add_signed(i64::from(skew));
        (id.clone(), expected, recs(&id, expected, u64::from(n)))
    }

    fn step(&mut self, op: &Op, pending_ids: &[u64]) -> Answer {
        match op {
            Op::Append { doc, skew, n } => {
                let (id, expected, records) = self.records(*doc, *skew, *n);
                let stream = self.streams.entry(id.clone()).or_default();
                let actual = stream.len() as u64;
                if actual != expected {
                    return Answer::Len(Err(StoreError::Conflict {
                        doc: id,
                        expected,
                        actual,
                    }));
                }
                stream.extend(records);
                Answer::Len(Ok(stream.len() as u64))
            }
            Op::Read { doc, from } => Answer::Records(
                self.streams
                    .get(&doc_id(*doc))
                    .map(|s| s.iter().skip(usize::from(*from)).cloned().collect())
                    .unwrap_or_default(),
            ),
            Op::Upsert {
                doc,
                state,
                reviewers,
                due,
            } => {
                let e = Model::entry(*doc, *state, reviewers, *due);
                self.index.insert(e.doc.clone(), e);
                Answer::Unit(Ok(()))
            }
            Op::ByState(s) => Answer::Docs(self.select(|e| e.state == name("state", *s))),
            Op::ByReviewer(r) => {
                Answer::Docs(self.select(|e| e.pending_reviewers.contains(&name("user", *r))))
            }
            Op::DueBefore(t) => {
                let t = Timestamp(i64::from(*t) * 100 - 300);
                Answer::Docs(self.select(|e| e.due_at.is_some_and(|d| d <= t)))
            }
            Op::Enqueue(n) => {
                for i in 0..*n {
                    self.next_id += 1;
                    self.outbox
                        .insert(self.next_id, note(&doc_id(i), u64::from(i)));
                }
                Answer::Unit(Ok(()))
            }
            Op::Pending(limit) => Answer::Pending(
                self.outbox
                    .iter()
                    .take(usize::from(*limit))
                    .map(|(id, n)| (*id, n.clone()))
                    .collect(),
            ),
            Op::Ack(which) => {
                let id = ack_id(*which, pending_ids);
                Answer::Unit(
                    self.outbox
                        .remove(&id)
                        .map(|_| ())
                        .ok_or(StoreError::UnknownOutboxItem(id)),
                )
            }
            Op::Reopen => Answer::Reopened,
        }
    }

    fn select(&self, keep: impl Fn(&IndexEntry) -> bool) -> Vec<String> {
        self.index
            .values()
            .filter(|e| keep(e))
            .map(|e| e.doc.clone())
            .collect()
    }
}

/// Model outbox ids and the store's, both ways.
#[derive(Debug, Default)]
struct Ids {
    to_store: BTreeMap<u64, u64>,
    to_model: BTreeMap<u64, u64>,
}

impl Ids {
    /// Learns the ids of the `n` items just enqueued: the store's `n` newest ids, which must be
    /// larger than every id it handed out before.
    fn learn(&mut self, model_next: u64, n: u8, store_ids: &[u64]) {
        let newest = self.to_model.keys().next_back().copied();
        let fresh: Vec<u64> = store_ids
            .iter()
            .copied()
            .filter(|id| newest.is_none_or(|m| *id > m))
            .collect();
        assert_eq!(fresh.len(), usize::from(n), "new outbox ids {fresh:?}");
        for (m, s) in (model_next + 1..).zip(fresh) {
            self.to_store.insert(m, s);
            self.to_model.insert(s, m);
        }
    }

    fn store(&self, model: u64) -> u64 {
        self.to_store.get(&model).copied().unwrap_or(model)
    }

    fn model(&self, store: u64) -> u64 {
        self.to_model.get(&store).copied().unwrap_or(store)
    }

    fn pending(&self, items: Vec<(u64, Notification)>) -> Vec<(u64, Notification)> {
        items
            .into_iter()
            .map(|(id, n)| (self.model(id), n))
            .collect()
    }
}

fn ack_id(which: Option<u8>, pending_ids: &[u64]) -> u64 {
    match which {
        Some(i) if !pending_ids.is_empty() => pending_ids[usize::from(i) % pending_ids.len()],
        _ => 1_000_000,
    }
}

async fn store_step<A: Adapter>(
    store: &mut Option<A::S>,
    dir: &std::path::Path,
    config: StoreConfig,
    model: &Model,
    op: &Op,
    pending_ids: &[u64],
    ids: &mut Ids,
) -> Answer {
    if let Op::Reopen = op {
        let s = store.take().unwrap();
        *store = Some(A::reopen(s, dir, config));
        return Answer::Reopened;
    }
    let s = store.as_ref().unwrap();
    match op {
        Op::Append { doc, skew, n } => {
            let (id, expected, records) = model.records(*doc, *skew, *n);
            Answer::Len(s.append(&id, expected, &records).await)
        }
        Op::Read { doc, from } => {
            Answer::Records(s.read(&doc_id(*doc), u64::from(*from)).await.unwrap())
        }
        Op::Upsert {
            doc,
            state,
            reviewers,
            due,
        } => Answer::Unit(s.upsert(Model::entry(*doc, *state, reviewers, *due)).await),
        Op::ByState(x) => Answer::Docs(s.by_state(&name("state", *x)).await.unwrap()),
        Op::ByReviewer(r) => Answer::Docs(s.by_reviewer(&name("user", *r)).await.unwrap()),
        Op::DueBefore(t) => Answer::Docs(
            s.due_before(Timestamp(i64::from(*t) * 100 - 300))
                .await
                .unwrap(),
        ),
        Op::Enqueue(n) => {
            let items: Vec<_> = (0..*n).map(|i| note(&doc_id(i), u64::from(i))).collect();
            let done = s.enqueue(&items).await;
            if done.is_ok() {
                let all = ids.pending(s.pending(usize::MAX).await.unwrap());
                let store_ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
                ids.learn(model.next_id, *n, &store_ids);
            }
            Answer::Unit(done)
        }
        Op::Pending(limit) => {
            Answer::Pending(ids.pending(s.pending(usize::from(*limit)).await.unwrap()))
        }
        Op::Ack(which) => Answer::Unit(
            s.ack(ids.store(ack_id(*which, pending_ids)))
                .await
                .map_err(|e| match e {
                    StoreError::UnknownOutboxItem(id) => {
                        StoreError::UnknownOutboxItem(ids.model(id))
                    }
                    e => e,
                }),
        ),
        Op::Reopen => unreachable!("handled above"),
    }
}

fn run<A: Adapter>() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let dir = TempDir::new(A::NAME);
            // Durability does not change what a store answers; `None` keeps the search fast.
            // Group commit is on, so that the batching path is the one under test.
            let config = StoreConfig {
                durability: Durability::None,
                group_commit: GroupCommit::UpTo(8),
            };
            rt.block_on(async {
                let mut store = Some(A::open(dir.path(), config));
                let mut model = Model::default();
                let mut ids = Ids::default();
                for (i, op) in ops.iter().enumerate() {
                    // The ids an ack may pick from, as the store lists them now.
                    let pending_ids: Vec<u64> = model.outbox.keys().copied().collect();
                    // The store goes first: the operation's records are computed from the
                    // model as it was before the step.
                    let got = store_step::<A>(
                        &mut store,
                        dir.path(),
                        config,
                        &model,
                        op,
                        &pending_ids,
                        &mut ids,
                    )
                    .await;
                    let expected = model.step(op, &pending_ids);
                    prop_assert_eq!(&got, &expected, "step {} ({:?}) of {:?}", i, op, ops);
                }
                // And everything once more after a final reopen.
                let s = A::reopen(store.take().unwrap(), dir.path(), config);
                for (doc, records) in &model.streams {
                    prop_assert_eq!(&s.read(doc, 0).await.unwrap(), records);
                }
                let all = ids.pending(s.pending(usize::MAX).await.unwrap());
                let want: Vec<_> = model.outbox.iter().map(|(k, v)| (*k, v.clone())).collect();
                prop_assert_eq!(all, want);
                for st in 0..3 {
                    let docs = s.by_state(&name("state", st)).await.unwrap();
                    prop_assert_eq!(docs, model.select(|e| e.state == name("state", st)));
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn memory_agrees_with_the_model() {
    run::<Memory>();
}

#[test]
fn redb_agrees_with_the_model() {
    run::<Redb>();
}

#[test]
fn redb_with_frequent_checkpoints_agrees_with_the_model() {
    run::<RedbCheckpoints>();
}

#[test]
fn sled_agrees_with_the_model() {
    run::<Sled>();
}

#[test]
fn hosted_agrees_with_the_model() {
    run::<Hosted>();
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_agrees_with_the_model() {
    run::<Pg>();
}
