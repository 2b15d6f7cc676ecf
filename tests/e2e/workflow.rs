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

#[test]
fn show_draws_in_every_format_with_the_current_state() {
    let file = "crates/core/templates/two-stage.yaml";
    // Text stays the default, and unchanged.
    let text = signoff(&["workflow", "show", file]);
    assert_eq!(
        signoff(&["workflow", "show", file, "--format", "text"]),
        text
    );
    assert!(!text.stdout.contains("current"), "{}", text.stdout);
    for format in ["text", "mermaid", "dot", "svg"] {
        let run = signoff(&[
            "workflow",
            "show",
            file,
            "--format",
            format,
            "--current",
            "in_review",
            "--stage",
            "qa_signoff",
        ]);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{format}");
        insta::assert_snapshot!(format!("show_current_{format}"), run.stdout);
    }
}

#[test]
fn show_names_an_unknown_current_state_and_the_file() {
    let file = "crates/core/templates/basic.yaml";
    let run = signoff(&[
        "workflow",
        "show",
        file,
        "--format",
        "svg",
        "--current",
        "in_review",
    ]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr,
        "signoff: crates/core/templates/basic.yaml: --current: workflow \"basic-approval\" has no \
         state \"in_review\" (its states: draft, in_approval, approved)\n"
    );
    let run = signoff(&[
        "workflow",
        "show",
        file,
        "--current",
        "in_approval",
        "--stage",
        "qa",
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "signoff: crates/core/templates/basic.yaml: --stage: state \"in_approval\" of workflow \
         \"basic-approval\" has no stage \"qa\" (its stages: approval)\n"
    );
    // --stage needs --current: a usage error, exit code 2 as well.
    let run = signoff(&["workflow", "show", file, "--stage", "approval"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--current <STATE>"), "{}", run.stderr);
    // An invalid definition is still exit code 1, whatever --current says.
    let run = signoff(&[
        "workflow",
        "show",
        "examples/workflows/broken.yaml",
        "--current",
        "x",
    ]);
    assert_eq!(run.code, 1);
}
