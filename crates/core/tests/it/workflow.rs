//! Loading and validating workflow definitions: templates, and each error at its place.

use signoff_core::Workflow;

use crate::{crate_dir, read};

/// Loads `src` as `wf.yaml` and compares the diagnostics, rendered `line:col code: message`.
fn check(src: &str, expect: &[&str]) {
    let got: Vec<String> = match Workflow::from_text(src, "wf.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| {
                let p = d.pos.unwrap_or_default();
                format!("{}:{} {}: {}", p.line, p.column, d.code, d.message)
            })
            .collect(),
    };
    assert_eq!(got, expect, "\n{src}");
}

const HEAD: &str = "name: t\ninitial: draft\nstates:\n";

#[test]
fn templates_validate_and_show() {
    let dir = crate_dir().join("templates");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        let wf =
            Workflow::from_text(&read(&dir.join(&name)), &name).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(format!("diagram_{name}"), wf.diagram());
    }
}

#[test]
fn the_hash_pins_the_definition_not_its_layout() {
    let a = Workflow::from_text(&read(&crate_dir().join("templates/basic.yaml")), "a").unwrap();
    let json = serde_json::to_string_pretty(a.def()).unwrap();
    let b = Workflow::from_text(&json, "b.json").unwrap();
    assert_eq!(a.hash(), b.hash());
    let c = Workflow::from_text(&json.replace("\"any\"", "\"all\""), "c.json").unwrap();
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn unknown_state_in_a_transition() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    on:\n      submit: reviw\n  - name: done\n    final: true\n"
        ),
        // `done` is unreachable only because of the typo: a follow-on, not reported.
        &["6:15 unknown_state: state \"draft\": `submit` leads to \"reviw\", which is not defined"],
    );
}

#[test]
fn duplicate_keys_are_errors() {
    // A second `initial:` must not silently make documents start approved.
    check(
        "name: t\ninitial: draft\ninitial: done\nstates:\n  - name: draft\n    on: { submit: done }\n  - name: done\n    final: true\n",
        &["3:1 duplicate_key: duplicate key `initial` (first at 2:1)"],
    );
    // In a block inside a list. What the rest of the file would be judged on is ambiguous,
    // so only the duplicates are reported (fix them, then validate again).
    check(
        &format!(
            "{HEAD}  - name: draft\n    final: true\n    final: false\n    on: {{ submit: nowhere }}\n"
        ),
        &["6:5 duplicate_key: duplicate key `final` (first at 5:5)"],
    );
}

#[test]
fn unknown_initial_state() {
    check(
        "name: t\ninitial: nope\nstates:\n  - name: done\n    final: true\n",
        &["2:10 unknown_state: initial state \"nope\" is not defined"],
    );
}

#[test]
fn unreachable_state() {
    check(
        &format!("{HEAD}  - name: draft\n    final: true\n  - name: orphan\n    final: true\n"),
        &["6:11 unreachable_state: state \"orphan\" cannot be reached from \"draft\""],
    );
}

#[test]
fn dead_end() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    on: {{ submit: stuck, withdraw: done }}\n  - name: stuck\n  - name: done\n    final: true\n    on: {{ edit: draft }}\n"
        ),
        &["6:11 dead_end: state \"stuck\" is a dead end: it is not final and nothing leaves it"],
    );
}

#[test]
fn cycle_without_exit() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    on: {{ submit: a }}\n  - name: a\n    on: {{ withdraw: draft }}\n  - name: done\n    final: true\n"
        ),
        &[
            "4:11 no_exit: state \"draft\" cannot reach any final state (a cycle without an exit)",
            "6:11 no_exit: state \"a\" cannot reach any final state (a cycle without an exit)",
            "8:11 unreachable_state: state \"done\" cannot be reached from \"draft\"",
        ],
    );
}

#[test]
fn missing_final_state() {
    check(
        &format!("{HEAD}  - name: draft\n    on: {{ submit: draft }}\n"),
        &["4:3 no_final_state: no state is marked `final: true`"],
    );
}

#[test]
fn duplicate_state_name() {
    check(
        &format!("{HEAD}  - name: draft\n    final: true\n  - name: draft\n    final: true\n"),
        &["6:11 duplicate_name: state \"draft\" is defined twice"],
    );
}

const APPROVAL: &str = "name: t\ninitial: draft\ngroups:\n  qa: [q1, q2]\nstates:\n  - name: draft\n    on: { submit: review }\n  - name: done\n    final: true\n  - name: review\n    on: { approved: done, rejected: draft }\n    approval:\n      stages:\n        - name: s1\n          groups:\n";

#[test]
fn group_without_reviewers() {
    check(
        &format!("{APPROVAL}            - name: g\n              reviewers: []\n"),
        &["17:26 no_reviewers: group \"g\" of stage \"s1\" has no reviewers"],
    );
}

#[test]
fn stage_without_groups() {
    check(
        "name: t\ninitial: draft\nstates:\n  - name: draft\n    on: { submit: review }\n  - name: done\n    final: true\n  - name: review\n    on: { approved: done, rejected: draft }\n    approval:\n      stages:\n        - name: s1\n          groups: []\n",
        &["13:19 no_reviewers: stage \"s1\" has no groups of reviewers"],
    );
}

#[test]
fn min_larger_than_a_fixed_group() {
    check(
        &format!(
            "{APPROVAL}            - name: g\n              reviewers: [{{ group: qa }}, {{ user: q1 }}]\n              rule: {{ min: 3 }}\n"
        ),
        &["18:28 min_too_large: group \"g\" needs 3 approvals but has only 2 reviewers"],
    );
}

#[test]
fn unknown_group_and_bad_percent() {
    check(
        &format!(
            "{APPROVAL}            - name: g\n              reviewers: [{{ group: qb }}]\n              rule: {{ percent: 0 }}\n"
        ),
        &[
            "17:27 unknown_group: group \"qb\" is not defined under `groups`",
            "18:32 bad_rule: group \"g\": `percent` must be between 1 and 100",
        ],
    );
}

#[test]
fn duplicate_group_name() {
    check(
        &format!(
            "{APPROVAL}            - name: g\n              reviewers: [{{ user: a }}]\n            - name: g\n              reviewers: [{{ user: b }}]\n"
        ),
        &["18:21 duplicate_name: group \"g\" is defined twice in stage \"s1\""],
    );
}

#[test]
fn approval_without_its_transitions() {
    check(
        "name: t\ninitial: draft\nstates:\n  - name: draft\n    on: { submit: review }\n  - name: review\n    on: { withdraw: draft, expired: done }\n    due: P3D\n    approval:\n      stages:\n        - name: s1\n          groups:\n            - { name: g, reviewers: [{ user: a }] }\n  - name: done\n    final: true\n",
        &[
            "7:9 missing_transition: state \"review\" runs an approval but has no `on.approved` transition",
            "7:9 missing_transition: state \"review\" runs an approval but has no `on.rejected` transition",
        ],
    );
}

#[test]
fn due_date_without_expiry_and_approval_keys_without_approval() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    due: P3D\n    on: {{ submit: done, approved: done }}\n  - name: done\n    final: true\n"
        ),
        &[
            "6:9 missing_transition: state \"draft\" has a due date but has no `on.expired` transition",
            "6:35 no_approval: state \"draft\" has an `on.approved` transition but runs no approval",
        ],
    );
}

#[test]
fn unknown_key_is_a_schema_error_at_its_place() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    on:\n      submitt: done\n  - name: done\n    final: true\n"
        ),
        &[
            "6:7 schema: states[0].on.submitt: unknown field `submitt`, expected one of `submit`, `withdraw`, `approved`, `rejected`, `changes_requested`, `expired`, `review_due`, `mark_up_to_date`, `archive`, `edit`",
        ],
    );
}

#[test]
fn bad_duration_is_a_schema_error_at_its_place() {
    check(
        &format!("{HEAD}  - name: draft\n    final: true\n    due: 14 days\n"),
        &[
            "6:10 schema: states[0].due: \"14 days\" is not an ISO 8601 duration like P14D, PT4H or P1Y",
        ],
    );
}

#[test]
fn bad_rule_is_a_schema_error() {
    check(
        &format!(
            "{APPROVAL}            - name: g\n              reviewers: [{{ user: a }}]\n              rule: most\n"
        ),
        &[
            "18:21 schema: states[2].approval.stages[0].groups[0].rule: unknown variant `most`, expected one of `all`, `any`, `majority`, `min`, `percent`",
        ],
    );
}

#[test]
fn yaml_syntax_error() {
    check(
        &format!("{HEAD}  - name: [draft\n"),
        &["5:1 syntax: while parsing a flow sequence, expected ',' or ']'"],
    );
}

#[test]
fn json_definitions_have_positions_too() {
    let src = "{\n  \"name\": \"t\",\n  \"initial\": \"draft\",\n  \"states\": [\n    {\"name\": \"draft\", \"on\": {\"submit\": \"nowhere\"}},\n    {\"name\": \"done\", \"final\": true}\n  ]\n}\n";
    let err = Workflow::from_text(src, "wf.json").unwrap_err();
    let lines: Vec<String> = err.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "wf.json:5:40: unknown_state: state \"draft\": `submit` leads to \"nowhere\", which is not defined"
        ]
    );
}

#[test]
fn a_due_date_that_cannot_fit_in_the_range_of_time() {
    // P9000Y fits from year 1 (a deadline counted from 2026 is clamped at run time);
    // P9999Y cannot fit from any start.
    check(
        &format!(
            "{HEAD}  - name: draft\n    due: P9000Y\n    on: {{ expired: done }}\n  - name: done\n    final: true\n    due: P9999Y\n    on: {{ expired: draft }}\n"
        ),
        &[
            "9:10 duration_too_long: state \"done\": `due` P9999Y is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
        ],
    );
}

#[test]
fn every_duration_of_a_workflow_is_checked() {
    let long = "P3652059D"; // one day more than 0001-01-01 to 9999-12-31
    check(
        &format!(
            "name: t\ninitial: draft\ngroups:\n  qa: [q1, q2]\nstates:\n  - name: draft\n    on: {{ submit: review }}\n  - name: done\n    final: true\n    review: {{ every: P9998Y12M }}\n    on: {{ review_due: draft }}\n  - name: idle\n    final: true\n    review: {{ idle: {long} }}\n    on: {{ review_due: draft }}\n  - name: review\n    on: {{ approved: done, rejected: draft, expired: draft, withdraw: idle }}\n    approval:\n      stages:\n        - name: s1\n          due: {long}\n          groups:\n            - name: g\n              reviewers: [{{ group: qa }}]\n              remind_every: {long}\n              escalate: {{ after: {long}, to: [{{ user: lead }}] }}\n"
        ),
        &[
            "10:22 duration_too_long: state \"done\": `review.every` P9999Y is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
            "14:21 duration_too_long: state \"idle\": `review.idle` P3652059D is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
            "21:16 duration_too_long: stage \"s1\": `due` P3652059D is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
            "25:29 duration_too_long: group \"g\": `remind_every` P3652059D is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
            "26:34 duration_too_long: group \"g\": `escalate.after` P3652059D is too long: even counted from 0001-01-01T00:00:00Z it ends after 9999-12-31T23:59:59Z, the last time signoff can keep (at most about 9998 years)",
        ],
    );
}

#[test]
fn the_longest_duration_that_fits_is_accepted() {
    check(
        &format!(
            "{HEAD}  - name: draft\n    due: P9998Y11M30DT23H59M59S\n    on: {{ expired: done }}\n  - name: done\n    final: true\n"
        ),
        &[],
    );
}

#[test]
fn a_workflow_built_in_code_names_the_path() {
    let text = format!(
        "{HEAD}  - name: draft\n    due: P9999Y\n    on: {{ expired: done }}\n  - name: done\n    final: true\n"
    );
    let def = Workflow::from_text(&text.replace("P9999Y", "P1D"), "wf.yaml")
        .unwrap()
        .def()
        .clone();
    let mut long = def.clone();
    long.states[0].due = Some("P9999Y".parse().unwrap());
    let err = Workflow::from_def(long).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].code, "duration_too_long");
    assert!(
        err.diagnostics[0]
            .message
            .starts_with("states[0].due: state \"draft\": `due` P9999Y is too long"),
        "{}",
        err.diagnostics[0].message
    );
}

#[test]
fn a_file_that_is_no_workflow_is_not_echoed() {
    // A `workflow:` path pointing at the wrong file must not print that file's content.
    let passwd =
        "root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
    check(
        passwd,
        &[
            "1:1 schema: (top level): invalid type: string of 79 characters, expected a workflow (a mapping with name, initial, states)",
        ],
    );
    // What the author typed stays in the message when it is short.
    check(
        "name: t\ninitial: draft\nstates: maybe\n",
        &["3:9 schema: states: invalid type: string \"maybe\", expected a sequence"],
    );
}
