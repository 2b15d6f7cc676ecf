//! The engine through its API: refusal messages, refusals that change nothing, the clock,
//! pinning, notifications, and the scenario runner's own failure reports.

use signoff_core::event::Action;
use signoff_core::notify::{NotificationKind, notifications};
use signoff_core::state::ReplayError;
use signoff_core::{Command, DocState, Engine, FixedClock, Timestamp, scenario};

use crate::template;

fn at(s: &str) -> FixedClock {
    FixedClock(s.parse::<Timestamp>().unwrap())
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

fn create() -> Action {
    Action::Create {
        title: "T".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    }
}

/// A basic-approval document "d" by alice, submitted; bob and carol review.
fn submitted() -> Engine {
    let mut e = Engine::new();
    let wf = e.register(template("basic.yaml"));
    e.create(
        "d",
        wf.hash(),
        &cmd("alice", create()),
        &at("2026-01-01T00:00:00Z"),
    )
    .unwrap();
    e.execute(
        "d",
        &cmd("alice", Action::Submit),
        &at("2026-01-01T01:00:00Z"),
    )
    .unwrap();
    e
}

#[test]
fn refusals_say_what_to_do_about_them() {
    let mut e = submitted();
    let t = at("2026-01-02T00:00:00Z");
    e.execute(
        "d",
        &cmd(
            "bob",
            Action::Edit {
                content_hash: "h2".into(),
                changed: None,
            },
        ),
        &t,
    )
    .unwrap();
    let approve = |v| Action::Approve {
        version: v,
        signature: None,
    };
    let cases = [
        (
            cmd("bob", approve(2)),
            "approve refused: bob is the author of version 2 (separation of duties)",
        ),
        (
            cmd("carol", approve(1)),
            "approve refused: version 1 is stale: the current version is 2",
        ),
        (
            cmd("zed", approve(2)),
            "approve refused: zed is not a pending reviewer of the current stage",
        ),
        (
            cmd("zed", Action::Withdraw),
            "withdraw refused: zed is not allowed to: withdraw the document (author, page owner or space administrator only)",
        ),
    ];
    for (c, expect) in cases {
        let before = e.doc("d").unwrap().clone();
        let err = e.execute("d", &c, &t).unwrap_err();
        assert_eq!(err.to_string(), expect);
        // A refused command changes nothing.
        let after = e.doc("d").unwrap();
        assert_eq!(after.state, before.state);
        assert_eq!(after.records, before.records);
    }
}

#[test]
fn the_clock_may_not_go_backwards() {
    let mut e = submitted();
    let err = e
        .execute(
            "d",
            &cmd("alice", Action::Withdraw),
            &at("2025-12-31T00:00:00Z"),
        )
        .unwrap_err();
    assert_eq!(err.reason.code(), "clock_went_backwards");
    // A tick in the past is simply not due.
    assert!(e.tick("2025-12-31T00:00:00Z".parse().unwrap()).is_empty());
}

#[test]
fn documents_need_a_registered_workflow() {
    let mut e = Engine::new();
    let err = e
        .create(
            "d",
            "feed",
            &cmd("alice", create()),
            &at("2026-01-01T00:00:00Z"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "create refused: workflow feed is not registered"
    );
    assert!(e.doc("d").is_none());
}

#[test]
fn a_document_stays_pinned_to_its_workflow() {
    let e = submitted();
    let d = e.doc("d").unwrap();
    let other = template("two-stage.yaml");
    assert!(matches!(
        DocState::replay(&other, &d.records),
        Err(ReplayError::WrongWorkflow { .. })
    ));
    assert_eq!(DocState::replay(&d.workflow, &d.records).unwrap(), d.state);
}

#[test]
fn notifications_follow_the_records() {
    let e = submitted();
    let d = e.doc("d").unwrap();
    let kinds: Vec<(NotificationKind, Vec<String>)> = d
        .records
        .iter()
        .flat_map(|r| notifications(&d.state, r))
        .map(|n| (n.kind, n.to))
        .collect();
    assert_eq!(
        kinds,
        [
            (NotificationKind::StateChanged, vec!["alice".to_owned()]),
            (
                NotificationKind::Assigned,
                vec!["bob".to_owned(), "carol".to_owned()]
            ),
        ]
    );
}

#[test]
fn the_scenario_runner_reports_each_failure_at_its_place() {
    let text = "\
workflow:
  name: w
  initial: draft
  states:
    - { name: draft, final: true }
steps:
  - { at: 2026-01-01T00:00:00Z, do: create, by: alice, title: T, content_hash: h }
  - expect: { state: published, version: 1 }
  - { do: submit, by: alice }
  - { do: archive, by: alice, refused: not_permitted }
  - { at: yesterday, do: submit, by: alice }
  - { do: withdraw, by: alice, coment: typo }
";
    let report = scenario::run(text, "s.yaml", &mut |_| Err("no files".into())).unwrap();
    let got: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "s.yaml:8:22: state: expected published, got draft",
            "s.yaml:9:5: unexpected refusal: submit refused: the document is in the final state \"draft\"",
            "s.yaml:10:40: expected refusal not_permitted, got final_state: archive refused: the document is in the final state \"draft\"",
            "s.yaml:11:11: \"yesterday\" is not a UTC time like 2026-01-05T09:00:00Z",
            "s.yaml:12:32: unknown key `coment` in a `withdraw` step",
        ]
    );
    assert_eq!(report.expectations, 3);
}

/// The structure of a scenario is checked before anything runs; every problem is named.
#[test]
fn a_scenario_that_is_ambiguous_does_not_run() {
    let text = "\
workflow:
  name: w
  initial: draft
  states:
    - { name: draft, final: true }
colour: red
doc: a
doc: b
steps:
  - { at: 2026-01-02T00:00:00Z, do: create, by: alice, title: T, content_hash: h }
  - expect: { state: draft, colour: red }
  - { tick: 2026-01-01T00:00:00Z }
  - { tick: 2026-01-03T00:00:00Z, do: submit, by: alice }
  - { tick: 2026-01-03T00:00:00Z, emit: [] }
  - { expect: { version: 1 }, by: bob }
  - expect: { history: { decisions: [bob approve] } }
  - { nothing: here }
  - { at: 2026-01-03T00:00:00Z, do: submit, by: alice }
  - { at: 2026-01-02T12:00:00Z, do: withdraw, by: alice }
";
    let err = scenario::run(text, "s.yaml", &mut |_| Err("no files".into())).unwrap_err();
    let got: Vec<String> = err.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "s.yaml:8:1: duplicate_key: duplicate key `doc` (first at 7:1)",
            "s.yaml:6:1: schema: unknown key `colour` at the top level (known: workflow, doc, steps, credentials)",
            "s.yaml:11:29: schema: unknown expectation `colour` (known: state, version, last_approved, pending, pending_for, by_state, overdue, history, verifies, manifestation, delegations)",
            "s.yaml:12:13: schema: the tick 2026-01-01T00:00:00Z goes back in time (the clock is at 2026-01-02T00:00:00Z)",
            "s.yaml:13:5: schema: a step is one of a command (`do:`), a `tick:` or an `expect:`, not `do:` and `tick:`",
            "s.yaml:14:35: schema: unknown key `emit` in a `tick` step (known: tick, emits)",
            "s.yaml:15:31: schema: unknown key `by` in a `expect` step (known: expect, at)",
            "s.yaml:16:24: schema: `history` needs `version:`",
            "s.yaml:17:5: schema: a step needs `do:` (a command), `tick:` or `expect:`",
            "s.yaml:19:11: schema: `at:` 2026-01-02T12:00:00Z goes back in time (the clock is at 2026-01-03T00:00:00Z)",
        ]
    );
}

#[test]
fn a_scenario_with_a_bad_workflow_file_is_an_error() {
    let text = "workflow: wf.yaml\nsteps: []\n";
    let err = scenario::run(text, "s.yaml", &mut |_| {
        Ok("name: w\ninitial: nowhere\nstates: []\n".into())
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wf.yaml:3:9: no_states: the workflow has no states"
    );
    let err = scenario::run(text, "s.yaml", &mut |_| Err("not found".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.yaml:1:11: unreadable: cannot read workflow wf.yaml: not found"
    );
}

/// A stage restarted by an edit asks its reviewers again.
#[test]
fn a_restarted_stage_notifies_its_reviewers() {
    let text = "\
workflow:
  name: w
  initial: draft
  groups: { team: [r1, r2] }
  states:
    - { name: draft, on: { submit: review } }
    - name: review
      on: { approved: done, rejected: draft }
      approval:
        on_new_version: reset
        stages: [{ name: s, groups: [{ name: team, reviewers: [{ group: team }], rule: all }] }]
    - { name: done, final: true }
steps:
  - { at: 2026-01-01T00:00:00Z, do: create, by: alice, title: T, content_hash: h1 }
  - { do: submit, by: alice }
  - { do: approve, by: r1, version: 1 }
  - { do: edit, by: alice, content_hash: h2, emits: [edited, stage_started] }
";
    let report = scenario::run(text, "s.yaml", &mut |_| Err("no files".into())).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let d = report.engine.doc("doc").unwrap();
    let last = d.records.last().unwrap();
    let notes = notifications(&d.state, last);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NotificationKind::Assigned);
    assert_eq!(notes[0].to, ["r1", "r2"]);
    assert!(notes[0].text.contains("started again"), "{}", notes[0].text);
}

#[test]
fn the_scenario_runner_refuses_times_outside_the_range() {
    let text = "\
workflow:
  name: w
  initial: draft
  states:
    - { name: draft, on: { submit: done } }
    - { name: done, final: true }
steps:
  - { at: 10026-01-01T00:00:00Z, do: create, by: alice, title: T, content_hash: h }
  - { at: 9999-12-31T23:59:59Z, do: create, by: alice, title: T, content_hash: h }
  - { tick: +10000-01-01T00:00:00Z }
  - { tick: 0000-12-31T00:00:00Z }
  - { do: delegate, by: alice, to: bob, until: 10026-01-01T00:00:00Z, reason: Away }
  - expect: { state: draft }
";
    let report = scenario::run(text, "s.yaml", &mut |_| Err("no files".into())).unwrap();
    let got: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    let range =
        "is outside the range of time signoff keeps (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)";
    assert_eq!(
        got,
        [
            format!("s.yaml:8:11: \"10026-01-01T00:00:00Z\" {range}"),
            format!("s.yaml:10:13: \"+10000-01-01T00:00:00Z\" {range}"),
            format!("s.yaml:11:13: \"0000-12-31T00:00:00Z\" {range}"),
            format!("s.yaml:12:48: \"10026-01-01T00:00:00Z\" {range}"),
        ]
    );
}

/// Steps of a scenario over the basic template, followed by `last`.
fn many_steps(n: usize, step: &str) -> String {
    let mut text = "workflow:\n  name: w\n  initial: draft\n  states:\n    - { name: draft, final: true }\nsteps:\n".to_owned();
    for _ in 0..n {
        text.push_str(step);
    }
    text
}

#[test]
fn scenario_limits_are_checked_before_the_run() {
    let tick = "  - { tick: 2026-01-01T00:00:00Z }\n";
    let ok = scenario::run(
        &many_steps(scenario::MAX_STEPS, tick),
        "s.yaml",
        &mut |_| Err("no files".into()),
    )
    .unwrap();
    assert_eq!(ok.steps, scenario::MAX_STEPS);
    let err = scenario::run(
        &many_steps(scenario::MAX_STEPS + 1, tick),
        "s.yaml",
        &mut |_| Err("no files".into()),
    )
    .unwrap_err();
    assert_eq!(err.diagnostics[0].code, "too_many_steps");
    assert_eq!(
        err.to_string(),
        format!(
            "s.yaml:{}:5: too_many_steps: the scenario has 2001 steps; at most 2000 are run",
            6 + scenario::MAX_STEPS + 1
        )
    );

    // Two thousand steps of three expectations each: over the limit at the 667th.
    let expect = "  - expect: { state: draft, version: 0, by_state: { draft: [] } }\n";
    let err = scenario::run(&many_steps(2_000, expect), "s.yaml", &mut |_| {
        Err("no files".into())
    })
    .unwrap_err();
    assert_eq!(err.diagnostics[0].code, "too_many_expectations");
    assert_eq!(
        err.to_string(),
        format!(
            "s.yaml:{}:5: too_many_expectations: the scenario has more than 2000 expectations by this step; at most 2000 are checked",
            6 + 667
        )
    );
}

/// A clock or a delegation's end outside the range of time is refused at the door, so no
/// record can carry a timestamp that cannot be read back.
#[test]
fn times_outside_the_range_are_refused_at_the_door() {
    let mut e = Engine::new();
    let wf = e.register(crate::template("basic.yaml"));
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
            content_hash: "h".into(),
            page_owner: None,
            space_admins: vec![],
        },
    );
    let late = FixedClock(Timestamp(Timestamp::MAX.0 + 1));
    let err = e.create("d", wf.hash(), &create, &late).unwrap_err();
    assert_eq!(err.reason.code(), "time_out_of_range");
    let now = FixedClock("2026-01-01T00:00:00Z".parse().unwrap());
    e.create("d", wf.hash(), &create, &now).unwrap();
    let away = cmd(
        "bob",
        Action::Delegate {
            to: "carol".into(),
            until: Timestamp(Timestamp::MAX.0 + 86_400),
            reason: "Away".into(),
        },
    );
    let err = e.execute("d", &away, &now).unwrap_err();
    assert_eq!(err.reason.code(), "time_out_of_range");
    let err = e
        .execute("d", &cmd("alice", Action::Submit), &late)
        .unwrap_err();
    assert_eq!(err.reason.code(), "time_out_of_range");
    assert_eq!(e.doc("d").unwrap().records.len(), 1);
}
