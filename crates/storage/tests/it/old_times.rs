//! Stores written by a version of core without a range of time: it wrote a deadline past
//! 9999-12-31 with a five-digit year (issue #13), which then failed every read of the store.
//! Such text reads back to the exact instant, so the damaged document's chain still
//! verifies and replays, its deadline never fires, and other documents are untouched.

use signoff_core::event::{Action, Event};
use signoff_core::store::IndexEntry;
use signoff_core::{DocState, Record, Timestamp, Workflow, audit};
use signoff_storage::hosted::{HostedStore, MemoryKvs};
use signoff_storage::{LocalStore, RedbStore, StoreConfig};

use crate::support::*;

/// One stage, and a state due P14D after it is entered.
const WORKFLOW: &str = "\
name: due-in-review
initial: draft
groups: { team: [bob] }
states:
  - { name: draft, on: { submit: review } }
  - name: review
    due: P14D
    on: { approved: done, rejected: draft, expired: draft }
    approval: { stages: [{ name: s, groups: [{ name: g, reviewers: [{ group: team }] }] }] }
  - { name: done, final: true }
";

/// What the old code computed for P14D from 9999-12-20, and wrote as `10000-01-03T00:00:00Z`.
fn old_due() -> Timestamp {
    Timestamp(t("9999-12-20T00:00:00Z").0 + 14 * 86_400)
}

/// A document created at 9999-12-20 and submitted, with the records the old code wrote:
/// the due date past the range, and the hash chain computed over that text.
fn old_records(wf: &Workflow, doc: &str) -> (Vec<Record>, IndexEntry) {
    let at = t("9999-12-20T00:00:00Z");
    let c = DocState::create(wf, doc, &cmd("alice", create_action()), at).unwrap();
    let s = c
        .state
        .decide(wf, &cmd("alice", Action::Submit), at)
        .unwrap();
    let mut records: Vec<Record> = c.records.into_iter().chain(s.records).collect();
    let mut prev = audit::GENESIS.to_owned();
    for r in &mut records {
        if let Event::StateChanged { due_at, .. } = &mut r.event {
            if due_at.is_some() {
                *due_at = Some(old_due());
            }
        }
        r.prev_hash = prev;
        r.hash = audit::record_hash(r);
        prev = r.hash.clone();
    }
    // `Display` writes an out-of-range instant exactly as the old code did (a property
    // test in core compares the two for every i64), so these are the old bytes.
    let json = serde_json::to_string(&records).unwrap();
    assert!(
        json.contains(r#""due_at":"10000-01-03T00:00:00Z""#),
        "{json}"
    );
    let entry = IndexEntry {
        doc: doc.into(),
        state: "review".into(),
        pending_reviewers: vec!["bob".into()],
        due_at: Some(old_due()),
    };
    (records, entry)
}

/// Writes a healthy document and a damaged one into `store`.
async fn fill(store: &(impl LocalStore + ?Sized), wf: &Workflow) {
    store.put_workflow(wf.hash(), WORKFLOW).await.unwrap();
    let (_, lives, _) = basic_life("good");
    let basic = basic();
    store
        .put_workflow(
            basic.hash(),
            include_str!("../../../core/templates/basic.yaml"),
        )
        .await
        .unwrap();
    let mut seq = 0;
    for records in lives {
        seq = store.append("good", seq, &records).await.unwrap();
    }
    let (records, entry) = old_records(wf, "damaged");
    store
        .commit("damaged", 0, &records, Some(entry), &[])
        .await
        .unwrap();
}

/// Reads both documents back from a store opened afresh.
async fn check(store: &(impl LocalStore + ?Sized), wf: &Workflow) {
    let mut docs: Vec<String> = store
        .documents()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    docs.sort();
    assert_eq!(docs, ["damaged", "good"]);

    let good = store.read("good", 0).await.unwrap();
    audit::verify(&good).unwrap();
    let state = DocState::replay(&basic(), &good).unwrap();
    assert_eq!(state.state_name(&basic()), "approved");

    // The damaged document reads, verifies and replays: its deadline is kept as written,
    // past anything a tick can reach.
    let damaged = store.read("damaged", 0).await.unwrap();
    audit::verify(&damaged).unwrap();
    let state = DocState::replay(wf, &damaged).unwrap();
    audit::verify_head(&damaged, &state.head).unwrap();
    assert_eq!(state.due_at, Some(old_due()));
    assert!(!old_due().in_range());
    assert_eq!(old_due().to_string(), "10000-01-03T00:00:00Z");
    assert!(state.tick(wf, Timestamp::MAX).is_none());
    assert!(
        store
            .due_before(Timestamp::MAX)
            .await
            .unwrap()
            .iter()
            .all(|d| d != "damaged")
    );
    assert_eq!(store.by_reviewer("bob").await.unwrap(), ["damaged"]);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_redb_store_with_a_five_digit_year_reads_back() {
    let dir = TempDir::new("old-times");
    let path = dir.path().join("signoff.redb");
    let wf = Workflow::from_text(WORKFLOW, "due.yaml").unwrap();
    {
        let store = RedbStore::create(&path, StoreConfig::durable()).unwrap();
        block_on(fill(&store, &wf));
    }
    let store = RedbStore::open(&path, StoreConfig::durable()).unwrap();
    block_on(check(&store, &wf));
}

#[test]
fn hosted_values_with_a_five_digit_year_read_back() {
    let kvs = MemoryKvs::new();
    let wf = Workflow::from_text(WORKFLOW, "due.yaml").unwrap();
    block_on(fill(&HostedStore::new(kvs.clone()), &wf));
    // The append is a hosted value of its own, with the old text in it (the index row
    // keeps its due time as a number).
    let append = kvs
        .entries()
        .into_iter()
        .find(|(k, _)| k.starts_with("signoff:a:damaged:"))
        .map(|(_, v)| v)
        .unwrap();
    assert!(append.contains("10000-01-03T00:00:00Z"), "{append}");
    block_on(check(&HostedStore::new(kvs.clone()), &wf));
}
