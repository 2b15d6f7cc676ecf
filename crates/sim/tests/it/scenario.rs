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
        "s.yaml:3:1: unknown key `bogus` (expected one of: name, seed, flows, sites, apps, endpoints, installs, steps, expect, end, rate-limits)",
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
        "s.yaml:9:12: a fault is one of storage-errors, timeouts, duplicate-events, duplicate-schedules",
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
        &format!("{HEAD}end: 100000000000d\n"),
        "s.yaml:8:6: `end` is 100000000000d of virtual time, more than the limit of 3650d",
    );
    check_error(
        &format!("{HEAD}steps:\n  - at: 4000d\n    consent: {{install: i}}\n"),
        "s.yaml:10:5: a step at 4000d is past the limit of a run (3650d of virtual time)",
    );
    check_error(
        &format!("{HEAD}steps:\n  - fault: {{install: i, timeouts: 4000000000}}\n"),
        "s.yaml:9:35: 4000000000 faults are more than the limit of 100000 per step",
    );
    check_error(
        &format!("{HEAD}steps:\n  - call: {{install: i, resolver: echo, page: p}}\n"),
        "s.yaml:9:46: no page `p`: name it in an earlier create-page (`name: p`)",
    );
    check_error(
        &format!("{HEAD}flows: {{duplicate-schedules: 150%}}\n"),
        "s.yaml:8:30: expected a share from 0 to 1 or a percentage (`0.01`, `1%`)",
    );
    check_error(
        &format!("{HEAD}flows: {{duplicate-schedules: 2}}\n"),
        "s.yaml:8:30: expected a share from 0 to 1 or a percentage (`0.01`, `1%`)",
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

/// `rate-limits:` sets what the platform allows a minute; a call over it fails with
/// `rate_limited` and runs nothing, and a minute later the user may call again.
#[test]
fn rate_limits_are_set_per_scenario() {
    let call = |n: u32, expect: &str| {
        format!("    call: {{install: i, resolver: echo, as: alice, payload: {n}, {expect}}}\n")
    };
    let text = format!(
        "{HEAD}rate-limits: {{per-user: 2, per-app: none}}\nsteps:\n  - at: 1m\n{}  - {}  - {}  - at: 2m\n{}",
        call(1, "expect: 1"),
        call(2, "expect: 2").trim_start(),
        call(3, "expect-error: rate_limited").trim_start(),
        call(4, "expect: 4"),
    );
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let out = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .unwrap();
    assert!(out.passed(), "{}\n{text}", out.to_text());
    let refused: Vec<_> = out
        .sim
        .platform()
        .trace()
        .iter()
        .filter(|t| t.outcome.is_err())
        .map(|t| t.outcome.clone().unwrap_err().to_string())
        .collect();
    assert_eq!(
        refused,
        ["rate limit exceeded: 2 invocations a minute per user (`alice`); not run"]
    );

    check_error(
        &format!("{HEAD}rate-limits: {{per-user: 0}}\n"),
        "s.yaml:8:25: a rate limit of 0 runs nothing: write `none` for no limit",
    );
    check_error(
        &format!("{HEAD}rate-limits: {{per-site: 5}}\n"),
        "s.yaml:8:15: unknown key `per-site` (expected one of: per-user, per-installation, per-app)",
    );
}

/// `flows: {duplicate-schedules: ...}` takes a share as a percentage or a fraction; a fault
/// step duplicates the next firings.
#[test]
fn duplicate_schedules_take_a_share_or_a_count() {
    for (given, ppm) in [
        ("50%", 500_000),
        ("0.25", 250_000),
        ("0", 0),
        ("1", 1_000_000),
    ] {
        let text = format!("{HEAD}flows: {{duplicate-schedules: {given}}}\n");
        let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
        assert_eq!(s.flow().schedule_duplicates_ppm, ppm, "{given}");
    }
    let text = format!(
        "{HEAD}steps:\n  - at: 1m\n    fault: {{install: i, duplicate-schedules: 1}}\nend: 2d12h\nexpect:\n  - deliveries: {{install: i, handler: schedule, count: 3}}\n"
    );
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let out = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .unwrap();
    // The hello app's daily trigger fires at 1d and 2d, the first twice.
    assert!(out.passed(), "{}", out.to_text());
}

/// `expect: logs` counts the apps' log lines by installation, level and text: a CI gate such
/// as "no error lines" (a component's panic message is one).
#[test]
fn logs_are_expectations() {
    let text = format!(
        "{HEAD}steps:\n  - at: 1m\n    call: {{install: i, as: alice, resolver: log, payload: first}}\n  - call: {{install: i, as: alice, resolver: log, payload: second}}\nexpect:\n  - logs: {{install: i, contains: first, count: 1}}\n  - logs: {{level: info, count: 2}}\n  - logs: {{level: error, count: 0}}\n  - logs: {{contains: second, count: 0}}\n"
    );
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let out = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .unwrap();
    assert_eq!(out.failures.len(), 1, "{}", out.to_text());
    assert_eq!(
        out.failures[0].to_string(),
        "s.yaml:16:5: expected 0 log lines, found 1 (the first: 2026-01-01T00:01:00.000Z i info: \"\\\"second\\\"\") (checked at 2026-01-01T01:01:00.000Z)"
    );
    check_error(
        &format!("{HEAD}expect:\n  - logs: {{level: fatal, count: 1}}\n"),
        "s.yaml:9:19: unknown log level `fatal` (expected debug, info, warn or error)",
    );
}

/// `endpoints:` answers allowed fetches: a fixed answer, or (opt-in) a real HTTP server on
/// the loopback interface. The gate still judges every request first, and bad endpoint
/// entries are refused at their place.
#[test]
fn endpoints_answer_allowed_fetches_fixed_or_over_loopback() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nfrom server")
            .unwrap();
        head
    });
    let text = format!(
        "{HEAD}endpoints:\n  stats.example.com: {{loopback: \"{addr}\"}}\n  other.example.com: {{status: 202, body: fixed}}\n"
    );
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let mut out = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .unwrap();
    let fetch = |out: &mut signoff_sim::scenario::RunOutcome, url: &str| {
        out.sim
            .call_resolver("i", None, Some("alice"), "fetch", url)
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        fetch(&mut out, "https://stats.example.com/v1/ping?x=1"),
        r#"{"status":200,"body":"from server"}"#
    );
    let head = server.join().unwrap();
    assert_eq!(head[0], "GET /v1/ping?x=1 HTTP/1.1");
    assert!(
        head.contains(&"host: stats.example.com".to_string()),
        "{head:?}"
    );
    // Not declared in the manifest: the gate refuses it before any endpoint is asked.
    assert_eq!(
        fetch(&mut out, "https://other.example.com/"),
        r#"{"error":"REQUEST_EGRESS_ALLOWLIST_ERR"}"#
    );
    let ledger = out.sim.platform().ledger();
    assert_eq!(ledger.len(), 2);
    assert!(ledger[0].allowed && !ledger[1].allowed);

    // A fixed answer, for a declared host.
    let text = format!("{HEAD}endpoints:\n  stats.example.com: {{status: 202, body: fixed}}\n");
    let s = Scenario::parse("s.yaml", &examples(), text.as_bytes()).unwrap();
    let mut out = s
        .run_on(loaded().runtime.clone(), RunOptions::default())
        .unwrap();
    assert_eq!(
        fetch(&mut out, "https://stats.example.com/"),
        r#"{"status":202,"body":"fixed"}"#
    );

    check_error(
        &format!("{HEAD}endpoints:\n  x.example: {{loopback: \"192.0.2.1:80\"}}\n"),
        "s.yaml:9:25: 192.0.2.1:80 is not a loopback address: the loopback mode only reaches 127.0.0.0/8 or ::1",
    );
    check_error(
        &format!("{HEAD}endpoints:\n  x.example: {{loopback: \"127.0.0.1:80\", status: 200}}\n"),
        "s.yaml:9:49: a loopback endpoint answers for itself: no `status` or `body`",
    );
    check_error(
        &format!("{HEAD}endpoints:\n  x.example: {{status: 700}}\n"),
        "s.yaml:9:23: a status is 100 to 599",
    );
}
