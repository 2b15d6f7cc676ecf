//! A store written by a version without a range of time (issue #13): one document holds a
//! deadline with a five-digit year. Every `signoff` command that reads the whole store
//! used to fail; now the other documents work as before, and the damaged one reads,
//! verifies and never fires its deadline.

use std::path::Path;

use crate::{Dir, command, sh};
use signoff_core::event::{Action, Event};
use signoff_core::store::IndexEntry;
use signoff_core::{DocState, Record, Timestamp, Workflow, audit};
use signoff_storage::{LocalStore, RedbStore, StoreConfig};

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

/// Writes, with the storage API, the document the old code left: created at 9999-12-20,
/// submitted, its due date written as 10000-01-03T00:00:00Z and hashed over that text.
fn write_damaged(store: &Path) {
    let wf = Workflow::from_text(WORKFLOW, "due.yaml").unwrap();
    let at: Timestamp = "9999-12-20T00:00:00Z".parse().unwrap();
    let create = Action::Create {
        title: "Late".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: Vec::new(),
    };
    let c = DocState::create(&wf, "damaged", &command("alice", create), at).unwrap();
    let s = c
        .state
        .decide(&wf, &command("alice", Action::Submit), at)
        .unwrap();
    let old_due = Timestamp(at.0 + 14 * 86_400);
    let mut records: Vec<Record> = c.records.into_iter().chain(s.records).collect();
    let mut prev = audit::GENESIS.to_owned();
    for r in &mut records {
        if let Event::StateChanged { due_at, .. } = &mut r.event
            && due_at.is_some()
        {
            *due_at = Some(old_due);
        }
        r.prev_hash = prev;
        r.hash = audit::record_hash(r);
        prev = r.hash.clone();
    }
    let entry = IndexEntry {
        doc: "damaged".into(),
        state: "review".into(),
        pending_reviewers: vec!["bob".into()],
        due_at: Some(old_due),
    };
    let store = RedbStore::open(store, StoreConfig::durable()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            store.put_workflow(wf.hash(), WORKFLOW).await.unwrap();
            store
                .commit("damaged", 0, &records, Some(entry), &[])
                .await
                .unwrap();
        });
}

#[test]
fn a_five_digit_year_no_longer_breaks_the_store() {
    let dir =
        Dir(std::env::temp_dir().join(format!("signoff-cli-old-times-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let store = dir.0.join("signoff.redb");
    let s = store.display();
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/templates/basic.yaml");
    let basic = basic.display();
    let at = "--at 2026-01-05T09:00:00Z";
    for args in [
        format!(
            "doc create good --workflow {basic} --title Good --content-hash h1 --by alice {at} --store {s}"
        ),
        format!("doc submit good --by alice {at} --store {s}"),
    ] {
        let (code, _, err) = sh(&args);
        assert_eq!(code, 0, "{args}: {err}");
    }
    write_damaged(&store);

    let (code, out, err) = sh(&format!("audit verify --store {s}"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("ok: 2 documents, 8 records, every hash chain verifies"),
        "{out}"
    );

    let (code, out, err) = sh(&format!("doc status good --store {s}"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("state:         in_approval\n"), "{out}");
    assert!(out.contains("(chain verified)"), "{out}");

    // The damaged document reads too; its due date is shown as it was written.
    let (code, out, err) = sh(&format!("doc status damaged --store {s}"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("state:         review\n"), "{out}");
    assert!(
        out.contains("due:           10000-01-03T00:00:00Z\n"),
        "{out}"
    );
    assert!(out.contains("(chain verified)"), "{out}");

    let (code, out, err) = sh(&format!(
        "pending --user bob --at 2026-01-06T00:00:00Z --store {s}"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("good\t") && out.contains("damaged\t"), "{out}");

    let (code, out, err) = sh(&format!("audit export --store {s}"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 8, "{out}");
    assert!(out.contains(r#""due_at":"10000-01-03T00:00:00Z""#), "{out}");

    // Its deadline is past the last tick there can be: nothing fires.
    let (code, out, err) = sh(&format!("tick --now 9999-12-31T23:59:59Z --store {s}"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "tick 9999-12-31T23:59:59Z: 0 records\n");

    // And no new input may name a time outside the range.
    let (code, _, err) = sh(&format!("tick --now 10000-01-03T00:00:00Z --store {s}"));
    assert_eq!(code, 2);
    assert!(
        err.contains("is outside the range of time signoff keeps"),
        "{err}"
    );
}
