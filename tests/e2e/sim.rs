//! `signoff sim run|inspect` on the example scenarios of `examples/scenarios/` and on broken
//! ones: exit codes, reports, traces that replay with the seed, and the data inspector.
//! The guests must be built (`cargo xtask guests`).

use signoff_e2e::{root, signoff};

fn temp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("signoff-e2e-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn every_example_scenario_passes() {
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples/scenarios"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        let run = signoff(&["sim", "run", &rel, "--report", "json"]);
        assert_eq!(run.code, 0, "{rel}: {run:?}");
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["passed"], true, "{}", run.stdout);
        // The whole summary is a snapshot: a run is a function of the scenario and its seed.
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_json_snapshot!(format!("sim_example_{name}"), v);
        n += 1;
    }
    assert!(n >= 2, "the examples are gone");
}

#[test]
fn the_leaky_report_as_text() {
    // The JSON rendering is the `sim_example_leaky` snapshot.
    let run = signoff(&["sim", "run", "examples/scenarios/leaky.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    insta::assert_snapshot!("sim_leaky_text", run.stdout);
}

#[test]
fn the_trace_replays_with_the_seed() {
    let dir = temp("trace");
    std::fs::create_dir_all(&dir).unwrap();
    let trace = |seed: &str, threads: &str, name: &str| {
        let path = dir.join(name);
        let p = path.display().to_string();
        let run = signoff(&[
            "sim",
            "run",
            "examples/scenarios/leaky.yaml",
            "--seed",
            seed,
            "--threads",
            threads,
            "--trace",
            &p,
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        std::fs::read_to_string(path).unwrap()
    };
    let (a, b, c) = (
        trace("1", "1", "a.json"),
        trace("1", "2", "b.json"),
        trace("2", "1", "c.json"),
    );
    assert_eq!(
        a, b,
        "same seed, byte-identical trace, whatever the threads"
    );
    let zero = signoff(&[
        "sim",
        "run",
        "examples/scenarios/leaky.yaml",
        "--threads",
        "0",
    ]);
    assert_eq!(zero.code, 2, "{zero:?}");
    assert!(zero.stderr.contains("--threads"), "{}", zero.stderr);
    assert_ne!(a, c);
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(v["seed"], 1);
    assert_eq!(v["ledger"].as_array().unwrap().len(), 6);
}

#[test]
fn failed_expectations_exit_1_with_the_place_and_the_seed() {
    let run = signoff(&["sim", "run", "tests/e2e/data/sim-failing.yaml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("FAILED (seed 5)"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "tests/e2e/data/sim-failing.yaml:16:5: resolver `echo` answered {\"n\":1}, expected {\"n\":2}"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("tests/e2e/data/sim-failing.yaml:22:5: expected page `plan` at version 2, found version 1"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "2 expectation(s) failed; reproduce with: signoff sim run tests/e2e/data/sim-failing.yaml --seed 5\n"
    );

    // The same run as a JUnit report: a test case per check, the two failures in theirs.
    let dir = temp("junit");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.xml");
    let run = signoff(&[
        "sim",
        "run",
        "tests/e2e/data/sim-failing.yaml",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"signoff sim\" tests=\"6\" failures=\"2\">"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 6, "{xml}");
    assert!(
        xml.contains("<testcase name=\"line 16: call echo as alice\" classname=\"tests/e2e/data/sim-failing.yaml\" file=\"tests/e2e/data/sim-failing.yaml\" line=\"16\">\n      <failure message=\"resolver `echo` answered {&quot;n&quot;:1}, expected {&quot;n&quot;:2}\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"line 21: expect deliveries\" classname=\"tests/e2e/data/sim-failing.yaml\" file=\"tests/e2e/data/sim-failing.yaml\" line=\"21\"></testcase>"),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected page `plan` at version 2, found version 1\">"),
        "{xml}"
    );
    assert!(xml.ends_with("  </testsuite>\n</testsuites>\n"), "{xml}");
    // A report that cannot be written: exit 2, naming the path.
    let run = signoff(&[
        "sim",
        "run",
        "tests/e2e/data/sim-failing.yaml",
        "--junit",
        "/nonexistent/dir/r.xml",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("error: /nonexistent/dir/r.xml: "),
        "{}",
        run.stderr
    );
}

/// `--logs` prints the apps' log lines on stderr after the run, as the vendor sees them: the
/// lines of an installation whose admin stopped sharing logs are only counted; a message's
/// line breaks are escaped. Stdout keeps the report alone.
#[test]
fn logs_are_printed_as_the_vendor_sees_them() {
    let run = signoff(&["sim", "run", "tests/e2e/data/sim-logs.yaml", "--logs"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        concat!(
            "2026-01-01T00:01:00.000Z shared main INFO \"first\"\n",
            "2026-01-01T00:02:00.000Z shared main INFO {\"two\":[\"lines\",\"a\\nb\"]}\n",
            "(1 more log line(s) not shown: their site's admin turned off sharing logs with the vendor)\n",
        )
    );
    assert!(run.stdout.contains(": passed (seed 0)"), "{}", run.stdout);
    let quiet = signoff(&["sim", "run", "tests/e2e/data/sim-logs.yaml"]);
    assert_eq!((quiet.stdout, quiet.stderr.as_str()), (run.stdout, ""));
}

#[test]
fn bad_input_exits_2_at_the_place() {
    let run = signoff(&["sim", "run", "tests/e2e/data/sim-bad.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: tests/e2e/data/sim-bad.yaml:8:40: unknown key `colour` (expected one of: app, site, environment, analytics, logs)\n"
    );
    let run = signoff(&["sim", "run", "tests/e2e/data/nope.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: tests/e2e/data/nope.yaml: "),
        "{}",
        run.stderr
    );
    let run = signoff(&["sim", "inspect", "--data", "tests/e2e/data/nope"]);
    assert_eq!(run.code, 2);
    // `--node-app NAME=DIR`: an app the scenario does not have, a folder that is no app, a
    // value without `=`: each exits 2 and says which.
    let scenario = "examples/scenarios/approvals/veto.yaml";
    let run = signoff(&[
        "sim",
        "run",
        scenario,
        "--node-app",
        "nope=apps/approvals/forge",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("--node-app nope=...: the scenario has no app `nope` (it has: approvals)"),
        "{}",
        run.stderr
    );
    let run = signoff(&[
        "sim",
        "run",
        scenario,
        "--node-app",
        "approvals=tests/e2e/data",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("veto.yaml:11:") && run.stderr.contains("tests/e2e/data"),
        "{}",
        run.stderr
    );
    let run = signoff(&["sim", "run", scenario, "--node-app", "approvals"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("expected NAME=DIR"), "{}", run.stderr);
}

#[test]
fn inspect_shows_what_a_run_stored() {
    let dir = temp("data");
    let d = dir.display().to_string();
    let run = signoff(&["sim", "run", "examples/scenarios/leaky.yaml", "--data", &d]);
    assert_eq!(run.code, 0, "{run:?}");
    // leaky stores nothing: the inspector says so.
    let run = signoff(&["sim", "inspect", "--data", &d, "acme-leaky"]);
    assert_eq!(run.code, 2);
    let run = signoff(&[
        "sim",
        "run",
        "tests/e2e/data/sim-failing.yaml",
        "--data",
        &d,
    ]);
    assert_eq!(run.code, 1);
    let run = signoff(&[
        "sim",
        "inspect",
        "--data",
        &d,
        "acme-hello",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let keys: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["last-event"]);
    assert_eq!(v[0]["realm"], "EU");
    let run = signoff(&["sim", "inspect", "--data", &d]);
    assert!(
        run.stdout
            .starts_with("acme-hello (realm EU, ari:cloud:ecosystem::app/"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  last-event = {\"atlassianId\":\"alice\""),
        "{}",
        run.stdout
    );
}
