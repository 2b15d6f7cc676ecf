//! The async storage seams and the in-memory store, polled without a runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use signoff_core::event::Action;
use signoff_core::notify::notifications;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, MemoryStore, Outbox, StoreError};
use signoff_core::{Command, DocState, Timestamp};

use crate::template;

/// Polls a future to completion. The in-memory store never waits, so a no-op waker is enough.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

#[test]
fn decide_append_apply_with_optimistic_concurrency() {
    let wf = template("basic.yaml");
    // Object safety: the engine's service layer holds the traits as trait objects.
    let store = Arc::new(MemoryStore::new());
    let events: Arc<dyn EventStore> = store.clone();
    let index: Arc<dyn DocumentIndex> = store.clone();
    let outbox: Arc<dyn Outbox> = store.clone();

    let create = Action::Create {
        title: "T".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    };
    let created =
        DocState::create(&wf, "d", &cmd("alice", create), t("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(block_on(events.append("d", 0, &created.records)), Ok(1));
    let state = created.state;

    // Two writers decide on the same state; the second append conflicts and stores nothing.
    let submit = state
        .decide(
            &wf,
            &cmd("alice", Action::Submit),
            t("2026-01-01T01:00:00Z"),
        )
        .unwrap();
    let withdraw_first = state
        .decide(
            &wf,
            &cmd(
                "alice",
                Action::Edit {
                    content_hash: "h2".into(),
                    changed: None,
                },
            ),
            t("2026-01-01T01:00:00Z"),
        )
        .unwrap();
    assert_eq!(
        block_on(events.append("d", state.seq, &submit.records)),
        Ok(4)
    );
    assert_eq!(
        block_on(events.append("d", state.seq, &withdraw_first.records)),
        Err(StoreError::Conflict {
            doc: "d".into(),
            expected: 1,
            actual: 4
        })
    );
    let stored = block_on(events.read("d", 0)).unwrap();
    assert_eq!(stored.len(), 4);
    signoff_core::audit::verify(&stored).unwrap();
    assert_eq!(DocState::replay(&wf, &stored).unwrap(), submit.state);
    assert_eq!(block_on(events.read("d", 3)).unwrap(), stored[3..]);
    assert!(block_on(events.read("nope", 0)).unwrap().is_empty());

    // Records that do not continue the stream are refused too.
    assert!(matches!(
        block_on(events.append("d", 4, &stored[..1])),
        Err(StoreError::BadRecords { .. })
    ));

    // Index and outbox follow the new state.
    block_on(index.upsert(IndexEntry::of(&submit.state, &wf))).unwrap();
    assert_eq!(block_on(index.by_state("in_approval")).unwrap(), ["d"]);
    assert_eq!(block_on(index.by_reviewer("carol")).unwrap(), ["d"]);
    assert!(block_on(index.by_reviewer("alice")).unwrap().is_empty());
    assert!(
        block_on(index.due_before(t("2030-01-01T00:00:00Z")))
            .unwrap()
            .is_empty()
    );

    let notes: Vec<_> = submit
        .records
        .iter()
        .flat_map(|r| notifications(&submit.state, r))
        .collect();
    block_on(outbox.enqueue(&notes)).unwrap();
    let pending = block_on(outbox.pending(10)).unwrap();
    assert_eq!(pending.len(), 2);
    block_on(outbox.ack(pending[0].0)).unwrap();
    assert_eq!(block_on(outbox.pending(10)).unwrap().len(), 1);
    assert_eq!(
        block_on(outbox.ack(pending[0].0)),
        Err(StoreError::UnknownOutboxItem(pending[0].0))
    );
}

#[test]
fn the_index_finds_overdue_documents() {
    let store = MemoryStore::new();
    for (doc, due) in [
        ("a", Some("2026-01-05T00:00:00Z")),
        ("b", None),
        ("c", Some("2026-02-01T00:00:00Z")),
    ] {
        block_on(store.upsert(IndexEntry {
            doc: doc.into(),
            state: "s".into(),
            pending_reviewers: vec![],
            due_at: due.map(t),
        }))
        .unwrap();
    }
    assert_eq!(
        block_on(store.due_before(t("2026-01-10T00:00:00Z"))).unwrap(),
        ["a"]
    );
    assert_eq!(block_on(store.by_state("s")).unwrap(), ["a", "b", "c"]);
}

#[test]
fn the_reviewer_index_names_delegates_and_readers_check_the_delegation_at_their_time() {
    let wf = template("two-stage.yaml");
    let create = Action::Create {
        title: "T".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    };
    let at = t("2026-03-02T09:00:00Z");
    let mut state = DocState::create(&wf, "spec", &cmd("alice", create), at)
        .unwrap()
        .state;
    for (by, action) in [
        ("alice", Action::Submit),
        (
            "bob",
            Action::Delegate {
                to: "frank".into(),
                until: t("2026-03-09T00:00:00Z"),
                reason: "Vacation".into(),
            },
        ),
    ] {
        state = state.decide(&wf, &cmd(by, action), at).unwrap().state;
    }
    let store = MemoryStore::new();
    let entry = IndexEntry::of(&state, &wf);
    assert_eq!(
        entry.pending_reviewers,
        ["bob", "carol", "dave", "erin", "frank"]
    );
    block_on(store.upsert(entry)).unwrap();
    assert_eq!(block_on(store.by_reviewer("frank")).unwrap(), ["spec"]);

    let during = state.pending_for(&wf, "frank", t("2026-03-05T00:00:00Z"));
    assert_eq!(during.len(), 1);
    assert_eq!(during[0].on_behalf_of.as_deref(), Some("bob"));
    assert_eq!(during[0].review.reviewer, "bob");
    // The delegation has ended: the index row still names frank, the state does not.
    assert!(
        state
            .pending_for(&wf, "frank", t("2026-03-09T00:00:00Z"))
            .is_empty()
    );
    assert_eq!(
        state.actors(&wf, t("2026-03-09T00:00:00Z")),
        ["bob", "carol", "dave", "erin"]
    );
    let own = state.pending_for(&wf, "bob", t("2026-03-05T00:00:00Z"));
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].on_behalf_of, None);
}
