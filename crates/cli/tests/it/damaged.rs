//! One damaged document never stops the rest (issue #13): `audit verify`, `audit export`,
//! `pending` and `tick` report each damaged document (store, document, what is wrong), go on
//! with the others, and exit 1 to say that something was damaged.

use std::path::Path;

use crate::{Dir, command, sh};
use signoff_core::event::Action;
use signoff_core::store::IndexEntry;
use signoff_core::{DocState, Timestamp, Workflow};
use signoff_storage::{LocalStore, RedbStore, StoreConfig};

/// A workflow whose text is not in the store: documents pinned to it cannot be loaded.
const LOST: &str = "\
name: lost
initial: draft
groups: { team: [bob] }
states:
  - { name: draft, on: { submit: review } }
  - name: review
    due: P1D
    on: { approved: done, rejected: draft, expired: draft }
    approval: { stages: [{ name: s, groups: [{ name: g, reviewers: [{ group: team }] }] }] }
  - { name: done, final: true }
";

/// Writes `orphan` (pinned to a workflow the store lacks, pending for bob, due) and `edited`
/// (a record changed after it was hashed, pending for bob, due), next to healthy documents.
fn damage(store: &Path) {
    let kept = Workflow::from_text(LOST, "lost.yaml").unwrap();
    let lost_text = LOST.replace("name: lost", "name: lost-forever");
    let lost = Workflow::from_text(&lost_text, "lost.yaml").unwrap();
    let at: Timestamp = "2026-01-05T09:00:00Z".parse().unwrap();
    let create = |id: &str, wf: &Workflow| {
        let action = Action::Create {
            title: id.into(),
            content_hash: "h1".into(),
            page_owner: None,
            space_admins: Vec::new(),
        };
        let c = DocState::create(wf, id, &command("alice", action), at).unwrap();
        let s = c
            .state
            .decide(wf, &command("alice", Action::Submit), at)
            .unwrap();
        let records: Vec<_> = c.records.into_iter().chain(s.records).collect();
        (records, IndexEntry::of(&s.state, wf))
    };
    let (orphan, orphan_entry) = create("orphan", &lost);
    let (mut edited, edited_entry) = create("edited", &kept);
    edited[1].comment = Some("inserted later".into());
    let store = RedbStore::open(store, StoreConfig::durable()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            store
                .commit("orphan", 0, &orphan, Some(orphan_entry), &[])
                .await
                .unwrap();
            store.put_workflow(kept.hash(), LOST).await.unwrap();
            store
                .commit("edited", 0, &edited, Some(edited_entry), &[])
                .await
                .unwrap();
        });
}

#[test]
fn one_damaged_document_never_stops_the_rest() {
    let dir = Dir(std::env::temp_dir().join(format!("signoff-cli-damaged-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let store = dir.0.join("signoff.redb");
    let s = store.display();
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/templates/basic.yaml");
    let basic = basic.display();
    let at = "--at 2026-01-05T09:00:00Z";
    for id in ["a-good", "z-good"] {
        for args in [
            format!("doc create {id} --workflow {basic} --by alice {at} --store {s}"),
            format!("doc submit {id} --by alice {at} --store {s}"),
        ] {
            let (code, _, err) = sh(&args);
            assert_eq!(code, 0, "{args}: {err}");
        }
    }
    damage(&store);

    let (code, out, err) = sh(&format!("audit verify --store {s}"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("edited: record 1 (seq 1): its content does not match its hash"),
        "{out}"
    );
    assert!(out.contains("orphan: orphan: workflow "), "{out}");
    assert!(
        out.contains("FAILED: 2 of 4 documents do not verify"),
        "{out}"
    );

    let (code, out, err) = sh(&format!("audit export --store {s}"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("document edited: damaged: exported, but record 1"),
        "{err}"
    );
    assert!(
        err.contains("1 damaged document (reported above); the others were done"),
        "{err}"
    );
    for id in ["a-good", "edited", "orphan", "z-good"] {
        assert!(
            out.contains(&format!("\"doc\":\"{id}\"")),
            "{id} missing from the export"
        );
    }

    // The orphan cannot be loaded: pending and tick report it and do the others.
    let (code, out, err) = sh(&format!(
        "pending --user bob --at 2026-01-05T10:00:00Z --store {s}"
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("a-good\t") && out.contains("edited\t") && out.contains("z-good\t"),
        "{out}"
    );
    assert!(
        err.contains(&format!(
            "signoff: {s}: document orphan: damaged: orphan: workflow "
        )),
        "{err}"
    );
    let (code, out, err) = sh(&format!("tick --now 2026-01-07T00:00:00Z --store {s}"));
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("edited: state_changed"), "{out}");
    assert!(err.contains("document orphan: damaged"), "{err}");
    assert!(err.contains("1 damaged document (reported above)"), "{err}");

    // A copy takes the sound documents and leaves the damaged ones out, naming them.
    let copy = dir.0.join("copy.redb");
    let c = copy.display();
    let (code, out, err) = sh(&format!("store copy {s} {c}"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "4 documents in {s}: 2 copied, 0 caught up, 0 already there, 2 left out;"
        )),
        "{out}"
    );
    assert!(
        err.contains("document edited: damaged: the audit chain does not verify: record 1"),
        "{err}"
    );
    assert!(
        err.contains("document orphan: damaged: orphan: workflow "),
        "{err}"
    );
    assert!(
        err.contains(
            "left out (reported above): 2 damaged documents in the source, 0 documents the \
             destination holds otherwise"
        ),
        "{err}"
    );
    let (code, out, err) = sh(&format!("audit verify --store {c}"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 2 documents"), "{out}");
}
