//! Scenarios (issue #5, item 9): the examples in `examples/scenarios/` pass, replay with
//! their seed, and bad scenario files are refused with the file, line and column.

use std::path::{Path, PathBuf};

use signoff_sim::scenario::{RunOptions, Scenario};

use super::host::loaded;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios")
}

/// The error a scenario text gets, with the file name `s.yaml`.
fn check_error(text: &str, expect: &str) {
    let e = Scenario::parse("s.yaml", &examples(), text.as_bytes())
        .expect_err("the scenario is refused");
    assert_eq!(e.to_string(), expect);
}

const HEAD: &str = "
sites:
  acme: {realm: EU, users: [alice]}
apps:
  hello: {manifest: apps/hello.yml, component: ../../guests/target/wasm32-wasip2/release/hello.wasm}
installs:
  i: {app: hello, site: acme}
";

#[test]
fn bad_scenarios_point_at_the_place() {
    check_error(
        "sites: {}\napps: {}\nbogus: 1\n",
        "s.yaml:3:1: unknown key `bogus` (expected one of: name, seed, flows, sites, apps, installs, steps, expect, end)",
    );
    check_error("apps: {}\n", "s.yaml:1:1: missing `sites`");
    check_error(
        "sites:\n  acme: {realm: MARS}\napps: {}\n",
        "s.yaml:2:17: unknown realm `MARS` (expected one of US, EU, DE, AU, SG, CA, IN, KR, JP, GB, CH, GLOBAL)",
    );
    check_error(
        &format!("{HEAD}steps:\n  - at: 1 day\n    consent: {{install: i}}\n"),
        "s.yaml:9:9: `1 day` is not a duration (e.g. 500ms, 90s, 5m, 2h, 30d, 1w, 1d12h)",
    );
    check_error(
        &format!("{HEAD}steps:\n  - consent: {{install: j}}\n"),
        "s.yaml:9:24: no installation `j` (known: i)",
    );
    check_error(
        &format!("{HEAD}steps:\n  - edit-page: {{page: p, as: alice, body: x}}\n"),
        "s.yaml:9:23: no page `p`: name it in an earlier create-page (`name: p`)",
    );
    check_error(
        &format!(
            "{HEAD}steps:\n  - create-page: {{site: acme, as: mallory, space: S, title: T}}\n"
        ),
        "s.yaml:9:35: no user `mallory` on site acme.atlassian.net",
    );
    check_error(
        &format!("{HEAD}steps:\n  - consent: {{install: i}}\n    admin: {{install: i}}\n"),
        "s.yaml:9:5: a step has exactly one action (one of: create-page, edit-page, trash-page, restore-page, view-page, call, web-trigger, push, deploy, consent, admin, migrate, fault, expect)",
    );
    check_error(
        &format!("{HEAD}expect:\n  - deliveries: {{handler: event}}\n"),
        "s.yaml:9:17: say `count`, `at-least` or `at-most`",
    );
    check_error(
        &format!("{HEAD}steps:\n  - fault: {{install: i, storage-errors: 1, timeouts: 2}}\n"),
        "s.yaml:9:12: a fault is one of storage-errors, timeouts, duplicate-events",
    );
    check_error(
        &format!(
            "{HEAD}steps:\n  - every: 1d\n    until: 3d\n    do:\n      - at: 1h\n        consent: {{install: i}}\n"
        ),
        "s.yaml:12:9: a step inside `do` takes its time from `every`",
    );
    check_error(
        &format!("{HEAD}steps:\n  - every: 1d\n    until: 100000000000000000w\n    do: []\n"),
        "s.yaml:10:12: `100000000000000000w` is not a duration (e.g. 500ms, 90s, 5m, 2h, 30d, 1w, 1d12h)",
    );
    check_error(
        "sites: [\n",
        "s.yaml:2:1: invalid YAML: while parsing a node, did not find expected node content",
    );
}

#[test]
fn a_missing_component_is_an_error_at_its_path() {
    let text = HEAD.replace("hello.wasm", "nope.wasm");
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let e = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .expect_err("no component");
    let shown = e.to_string();
    assert!(shown.starts_with("s.yaml:5:48: "), "{shown}");
    assert!(shown.contains("cargo xtask guests"), "{shown}");
}

#[test]
fn the_leaky_example_is_caught_and_replays() {
    let s = Scenario::load(&examples().join("leaky.yaml")).unwrap();
    let run = |seed| {
        s.run_on(
            loaded().runtime.clone(),
            RunOptions {
                seed,
                ..RunOptions::default()
            },
        )
        .unwrap()
    };
    let a = run(None);
    assert!(a.passed(), "{}", a.to_text());
    assert_eq!(a.seed, 3);
    let text = a.to_text();
    assert!(
        text.contains("observed: NOT eligible — page content sent to undeclared host collector.example.net (blocked 3 times)"),
        "{text}"
    );
    let b = run(None);
    assert_eq!(a.trace_json().to_string(), b.trace_json().to_string());
    let c = run(Some(4));
    assert_ne!(a.trace_json().to_string(), c.trace_json().to_string());
    let mut summary = serde_json::to_value(a.summary()).unwrap();
    summary["scenario"] = "[path]".into();
    insta::assert_json_snapshot!("leaky_summary", summary);
}

#[test]
fn failed_expectations_name_the_place_and_the_seed_reproduces_them() {
    let text = format!(
        "{HEAD}steps:\n  - at: 1h\n    create-page: {{site: acme, as: alice, space: S, title: T, name: p}}\nexpect:\n  - page: {{page: p, version: 2}}\n  - deliveries: {{install: i, handler: event, count: 1}}\n"
    );
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let out = s
        .run_on(
            loaded().runtime.clone(),
            RunOptions {
                seed: Some(11),
                ..RunOptions::default()
            },
        )
        .unwrap();
    assert!(!out.passed());
    assert_eq!(out.failures.len(), 1);
    assert_eq!(
        out.failures[0].to_string(),
        "s.yaml:12:5: expected page `p` at version 2, found version 1 (checked at 2026-01-01T02:00:00.000Z)"
    );
    assert!(out.to_text().contains("FAILED (seed 11)"));
}
