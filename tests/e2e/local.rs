//! The README's local session on a fresh redb store: create, submit, approve, status, verify,
//! then the refusals and the errors a new user meets.

use signoff_e2e::signoff;

/// A store path of its own for each test, in the system's temporary folder.
fn store(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("signoff-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("signoff.redb").display().to_string()
}

#[test]
fn the_readme_session_works_on_a_fresh_store() {
    let db = store("session");
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--store", db.as_str()]);
        signoff(&all)
    };
    let steps: [&[&str]; 5] = [
        &[
            "doc",
            "create",
            "travel-policy",
            "--workflow",
            "crates/core/templates/basic.yaml",
            "--by",
            "alice",
        ],
        &["doc", "submit", "travel-policy", "--by", "alice"],
        &[
            "doc",
            "approve",
            "travel-policy",
            "--by",
            "bob",
            "--comment",
            "Looks right",
        ],
        &["doc", "status", "travel-policy"],
        &["audit", "verify"],
    ];
    let mut outputs = Vec::new();
    for step in steps {
        let run = s(step);
        assert_eq!(run.code, 0, "{step:?}: {run:?}");
        outputs.push(run.stdout);
    }
    assert!(
        outputs[1].contains("waiting for bob, carol"),
        "{}",
        outputs[1]
    );
    assert!(outputs[2].contains("state approved"), "{}", outputs[2]);
    assert!(
        outputs[3].contains("last approved: version 1"),
        "{}",
        outputs[3]
    );
    assert_eq!(
        outputs[4],
        "ok: 1 documents, 8 records, every hash chain verifies\n"
    );
    // A second decision on a final state is refused and changes nothing.
    let again = s(&["doc", "approve", "travel-policy", "--by", "bob"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("approve refused"), "{}", again.stderr);
    assert_eq!(s(&["audit", "verify"]).stdout, outputs[4]);
    // The trail exports as JSON lines, one record per line.
    let export = s(&["audit", "export", "--format", "jsonl"]);
    assert_eq!(export.stdout.lines().count(), 8);
    for line in export.stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[test]
fn unknown_documents_and_damaged_stores_are_named() {
    let db = store("errors");
    let missing = signoff(&["doc", "status", "nope", "--store", &db]);
    assert_eq!(missing.code, 2, "{missing:?}");
    std::fs::write(&db, b"this is not a store").unwrap();
    let damaged = signoff(&["doc", "status", "x", "--store", &db]);
    assert_eq!(damaged.code, 2);
    assert!(damaged.stderr.contains(&db), "{}", damaged.stderr);
}
