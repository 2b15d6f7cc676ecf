//! The interim store over a key-value store behaves like core's `MemoryStore` where the app
//! relies on it: conflicts, reads from a position, the index, the outbox.

use approvals::block::block_on;
use approvals::interim::KvsStore;
use signoff_core::event::Action;
use signoff_core::notify::notifications;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::{Command, DocState, Timestamp, Workflow};

use crate::fake::MemKvs;

#[test]
fn appends_conflict_reads_start_anywhere_and_the_outbox_acks() {
    let store = KvsStore::new(MemKvs::default());
    let wf = Workflow::from_text(crate::app::REVIEW, "review.yaml").unwrap();
    let cmd = |by: &str, action| Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    };
    let create = cmd(
        "alice",
        Action::Create {
            title: "T".into(),
            content_hash: "h1".into(),
            page_owner: None,
            space_admins: vec![],
        },
    );
    let now = Timestamp(1_000);
    let d = DocState::create(&wf, "page-1", &create, now).unwrap();
    assert_eq!(block_on(store.append("page-1", 0, &d.records)), Ok(1));
    assert!(matches!(
        block_on(store.append("page-1", 0, &d.records)),
        Err(StoreError::Conflict { actual: 1, .. })
    ));
    let s = d
        .state
        .decide(&wf, &cmd("alice", Action::Submit), now)
        .unwrap();
    let n = block_on(store.append("page-1", 1, &s.records)).unwrap();
    assert_eq!(n, 1 + s.records.len() as u64);
    assert_eq!(block_on(store.read("page-1", 0)).unwrap().len() as u64, n);
    assert_eq!(block_on(store.read("page-1", 2)).unwrap()[0].seq, 2);
    // A document whose id extends another's is a different stream.
    assert!(block_on(store.read("page-12", 0)).unwrap().is_empty());

    block_on(store.upsert(IndexEntry::of(&s.state, &wf))).unwrap();
    assert_eq!(block_on(store.by_reviewer("bob")).unwrap(), ["page-1"]);
    assert_eq!(block_on(store.by_state("in_review")).unwrap(), ["page-1"]);
    assert!(block_on(store.due_before(now)).unwrap().is_empty());

    let notes: Vec<_> = s
        .records
        .iter()
        .flat_map(|r| notifications(&s.state, r))
        .collect();
    assert!(!notes.is_empty());
    block_on(store.enqueue(&notes)).unwrap();
    let pending = block_on(store.pending(100)).unwrap();
    assert_eq!(pending.len(), notes.len());
    block_on(store.ack(pending[0].0)).unwrap();
    assert_eq!(
        block_on(store.ack(pending[0].0)),
        Err(StoreError::UnknownOutboxItem(pending[0].0))
    );
    assert_eq!(block_on(store.pending(100)).unwrap().len(), notes.len() - 1);
}
