//! `signoff workflow` end to end: the templates, a broken definition, scenario files.

use signoff_e2e::signoff;

#[test]
fn every_template_validates_and_draws() {
    for template in ["basic", "two-stage", "periodic-review", "regulated"] {
        let file = format!("crates/core/templates/{template}.yaml");
        let run = signoff(&["workflow", "validate", &file]);
        assert_eq!(run.code, 0, "{file}: {run:?}");
        assert!(
            run.stdout.starts_with(&format!("{file}: ok: workflow ")),
            "{}",
            run.stdout
        );
        let show = signoff(&["workflow", "show", &file]);
        assert_eq!(show.code, 0);
        assert!(show.stdout.contains("(initial)"), "{}", show.stdout);
    }
}

#[test]
fn exit_codes_tell_invalid_from_unreadable() {
    assert_eq!(
        signoff(&["workflow", "validate", "examples/workflows/broken.yaml"]).code,
        1
    );
    let missing = signoff(&["workflow", "validate", "examples/workflows/nope.yaml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("examples/workflows/nope.yaml: cannot read the file"),
        "{}",
        missing.stderr
    );
    assert_eq!(
        signoff(&["workflow", "show", "examples/workflows/broken.yaml"]).code,
        1
    );
}

#[test]
fn failing_expectations_are_named_at_their_place() {
    let run = signoff(&["workflow", "test", "tests/e2e/data/wrong-expectations.yaml"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!("wrong_expectations", run.stdout);
}

#[test]
fn every_shipped_scenario_passes_through_the_cli() {
    let mut files: Vec<String> =
        std::fs::read_dir(signoff_e2e::root().join("crates/core/tests/scenarios"))
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                format!("crates/core/tests/scenarios/{name}")
            })
            .filter(|f| f.ends_with(".yaml"))
            .collect();
    files.sort();
    assert!(files.len() >= 40, "{} scenarios", files.len());
    let mut args = vec!["workflow", "test"];
    args.extend(files.iter().map(String::as_str));
    let run = signoff(&args);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout
            .ends_with(&format!("{} passed, 0 failed\n", files.len())),
        "{}",
        run.stdout
    );
}
