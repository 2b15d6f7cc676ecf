//! Runs every scenario under `tests/scenarios/` through one `check`, with a snapshot of
//! each document's audit trail.

use std::path::Path;

use signoff_core::{DocState, Record, audit, scenario};

use crate::{crate_dir, read};

#[test]
fn scenarios() {
    let dir = crate_dir().join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let failures: Vec<String> = files.iter().flat_map(|f| check(f)).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(files.len() >= 40, "only {} scenarios", files.len());
}

/// Runs one scenario: its own expectations, then the invariants every run must keep (the
/// chain verifies, a replay gives the same state), then the trail snapshot.
fn check(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let dir = path.parent().unwrap().to_owned();
    let report = scenario::run(&read(path), &name, &mut |p| {
        std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(report.expectations > 0, "{name} checks nothing");
    let mut trail = String::new();
    for (id, doc) in report.engine.docs() {
        if let Err(e) = audit::verify_head(&doc.records, &doc.state.head) {
            failures.push(format!("{name}: {id}: chain does not verify: {e}"));
        }
        let replayed = DocState::replay(&doc.workflow, &doc.records).unwrap();
        if replayed != doc.state {
            failures.push(format!("{name}: {id}: replay differs from the live state"));
        }
        let json = serde_json::to_string(&doc.state).unwrap();
        if serde_json::from_str::<DocState>(&json).ok().as_ref() != Some(&doc.state) {
            failures.push(format!(
                "{name}: {id}: the state does not round-trip through JSON"
            ));
        }
        trail.push_str(&format!("== {id}\n{}", render(&doc.records)));
    }
    let snapshot = name.trim_end_matches(".yaml").to_owned();
    insta::with_settings!({ snapshot_path => "scenarios/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(snapshot, trail);
    });
    failures
}

/// One line per record, as a person reads a trail; the last line pins the chain's head.
fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        let who = match &r.on_behalf_of {
            Some(p) => format!("{} for {p}", r.actor),
            None => r.actor.clone(),
        };
        let states = if r.from_state == r.to_state {
            format!("[{}]", r.to_state)
        } else {
            format!("[{} -> {}]", r.from_state, r.to_state)
        };
        let detail = serde_json::to_value(&r.event)
            .ok()
            .and_then(|v| v.get("detail").map(ToString::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "#{} {} {who} {} v{}:{} {states} {detail}",
            r.seq,
            r.at,
            r.event.action(),
            r.version,
            r.content_hash
        ));
        if let Some(c) = &r.comment {
            out.push_str(&format!(" comment={c:?}"));
        }
        if let Some(s) = &r.signature {
            out.push_str(&format!(" signature={}", serde_json::to_string(s).unwrap()));
        }
        out.push('\n');
    }
    if let Some(last) = records.last() {
        out.push_str(&format!("head {}\n", last.hash));
    }
    out
}
