//! `signoff roa` end to end on the bundled example manifests.

use signoff_e2e::signoff;

#[test]
fn the_examples_get_the_verdicts_the_demo_promises() {
    let run = signoff(&["roa", "check", "examples/manifests/approvals-eligible.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = signoff(&[
        "roa",
        "check",
        "examples/manifests/approvals-eligible.yml",
        "examples/manifests/approvals-webhook.yml",
        "examples/manifests/legacy-2020.yml",
    ]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!("examples_check", run.stdout);
}

#[test]
fn json_output_of_all_examples() {
    let run = signoff(&[
        "roa",
        "check",
        "--format",
        "json",
        "examples/manifests/approvals-eligible.yml",
        "examples/manifests/legacy-2020.yml",
    ]);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    insta::assert_json_snapshot!("examples_check_json", lines);
}

#[test]
fn the_example_upgrade_is_major_and_loses_eligibility() {
    let run = signoff(&[
        "roa",
        "diff",
        "--format",
        "json",
        "--fail-on",
        "major",
        "examples/manifests/approvals-eligible.yml",
        "examples/manifests/approvals-webhook.yml",
    ]);
    assert_eq!(run.code, 1);
    let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(d["update"], "major");
    assert_eq!(
        d["eligible"],
        serde_json::json!({"old": true, "new": false})
    );
}

#[test]
fn usage_errors_explain_and_exit_2() {
    let run = signoff(&["roa", "chek", "x.yml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unrecognized subcommand 'chek'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("check"), "{}", run.stderr);
    let help = signoff(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Runs-on-Atlassian"));
}

#[test]
fn a_missing_manifest_is_named() {
    let run = signoff(&["roa", "check", "examples/manifests/nope.yml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stdout
            .contains("examples/manifests/nope.yml: cannot check: cannot read the file"),
        "{}",
        run.stdout
    );
}
