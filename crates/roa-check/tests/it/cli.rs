//! The `roa-check` binary as a user runs it: exit codes, formats, messages.

use std::process::{Command, Output};

use crate::data;

fn roa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roa-check"))
        .current_dir(data())
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn check_exit_codes_are_the_worst_of_all_files() {
    let ok = "check/eligible_minimal.yml";
    let not = "check/egress_plain_string.yml";
    let bad = "check/bad_yaml_syntax.yml";
    assert_eq!(roa(&["check", ok]).status.code(), Some(0));
    assert_eq!(roa(&["check", not]).status.code(), Some(1));
    assert_eq!(roa(&["check", bad]).status.code(), Some(2));
    assert_eq!(roa(&["check", ok, not]).status.code(), Some(1));
    assert_eq!(roa(&["check", not, bad, ok]).status.code(), Some(2));
}

#[test]
fn unreadable_input_names_the_file_and_place() {
    let o = roa(&["check", "check/bad_yaml_syntax.yml"]);
    let out = stdout(&o);
    assert!(out.starts_with("check/bad_yaml_syntax.yml:"), "{out}");
    assert!(out.contains("cannot check: invalid YAML"), "{out}");
    let o = roa(&["check", "no/such/manifest.yml", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no/such/manifest.yml: cannot read the file"),
        "{}",
        stderr(&o)
    );
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["manifest"], "no/such/manifest.yml");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}

#[test]
fn json_is_one_object_per_manifest() {
    let o = roa(&[
        "check",
        "check/eligible_minimal.yml",
        "check/sql_dare_false.yml",
        "--format",
        "json",
    ]);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["eligible"], true);
    assert_eq!(lines[1]["eligible"], false);
    let f = &lines[1]["findings"][0];
    assert_eq!(f["rule"], "HAS_NON_DARE_COMPLIANT_SQL_MODULE");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["path"], "modules.sql[0].dareCompliant");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(9), Some(22))
    );
}

#[test]
fn diff_exit_codes_and_fail_on() {
    let major = [
        "diff",
        "diff/scope_added/old.yml",
        "diff/scope_added/new.yml",
    ];
    let minor = [
        "diff",
        "diff/scope_removed/old.yml",
        "diff/scope_removed/new.yml",
    ];
    assert_eq!(roa(&major).status.code(), Some(0));
    assert_eq!(
        roa(&[&major[..], &["--fail-on", "major"]].concat())
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        roa(&[&minor[..], &["--fail-on", "major"]].concat())
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        roa(&[&minor[..], &["--fail-on", "minor"]].concat())
            .status
            .code(),
        Some(1)
    );
    let o = roa(&[
        "diff",
        "check/bad_yaml_syntax.yml",
        "diff/scope_added/new.yml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("check/bad_yaml_syntax.yml:7:11:"),
        "{}",
        stderr(&o)
    );
    let o = roa(&[&major[..], &["--format", "json"]].concat());
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["update"], "major");
    assert_eq!(d["reasons"][0]["id"], "SCOPE_ADDED");
    assert_eq!(d["eligible"], serde_json::json!({"old": true, "new": true}));
    let o = roa(&[&major[..], &["--format", "sarif"]].concat());
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["runs"][0]["results"][0]["ruleId"], "SCOPE_ADDED");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let file = "check/egress_plain_string.yml";
    assert!(!stdout(&roa(&["check", file])).contains('\x1b'));
    assert!(stdout(&roa(&["check", file, "--color", "always"])).contains("\x1b[31m"));
}

#[test]
fn help_explains_exit_codes_and_bad_usage_exits_2() {
    let help = stdout(&roa(&["check", "--help"]));
    assert!(
        help.contains("Exit codes: 0 every manifest is eligible"),
        "{help}"
    );
    let o = roa(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<FILE>"), "{}", stderr(&o));
}
