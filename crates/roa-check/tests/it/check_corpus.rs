//! The manifest corpus under `tests/data/check`: every file is checked and its text and JSON
//! reports are snapshot-tested; the verdicts are also asserted here, so that a wrong
//! snapshot cannot be accepted by accident.

use std::collections::BTreeSet;

use roa_check::render;
use roa_check::rules::{ELIGIBILITY_RULES, WARNING_RULES};

use crate::data;

/// Checks `name.yml`: the exit class (`Ok(eligible)` or `Err` for unreadable input) and the
/// set of error rules must be as given; the text and JSON renderings are snapshots.
fn check(name: &str, eligible: Result<bool, ()>, rules: &[&str]) {
    let file = format!("{name}.yml");
    let bytes = std::fs::read(data().join("check").join(&file)).unwrap();
    let outcome = roa_check::check(&file, &bytes);
    match (&outcome, eligible) {
        (Ok(report), Ok(want)) => {
            assert_eq!(report.eligible, want, "{file}: verdict");
            assert_eq!(report.error_rules(), rules, "{file}: rules");
        }
        (Err(_), Err(())) => assert!(rules.is_empty()),
        (got, want) => panic!("{file}: expected {want:?}, got {got:?}"),
    }
    let outcomes = [outcome];
    let text = render::check_text(&outcomes, false);
    let json = render::check_json(&outcomes);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    insta::assert_snapshot!(format!("check_{name}_text"), text);
    insta::assert_json_snapshot!(format!("check_{name}_json"), json);
}

const OK: Result<bool, ()> = Ok(true);
const NOT: Result<bool, ()> = Ok(false);
const BAD: Result<bool, ()> = Err(());

#[test]
fn eligible_manifests() {
    check("eligible_minimal", OK, &[]);
    check("eligible_full", OK, &[]);
    check("egress_analytics_upper_case", OK, &[]);
    check("egress_default_allowed_hosts", OK, &[]);
    check("webtrigger_static", OK, &[]);
    check("webtrigger_static_without_outputs", OK, &[]);
    check("sql_dare_true", OK, &[]);
    check("placeholders", OK, &[]);
    check("placeholder_app_id_literal", OK, &[]);
    check("anchors_and_flow_style", OK, &[]);
    check("scopes_as_map", OK, &[]);
    check("duplicate_scopes_and_keys", OK, &[]);
    check("legacy_2020_manifest", OK, &[]);
    check("block_scalar_with_yaml_inside", OK, &[]);
    check("runtime_and_limits", OK, &[]);
    check("multiple_documents", OK, &[]);
    check("no_final_newline", OK, &[]);
    check("app_section_missing", OK, &[]);
    check("duplicate_module_types_and_keys", OK, &[]);
    check("structure_in_wrong_places", NOT, &["HAS_DEFINED_EGRESS"]);
}

#[test]
fn each_rule_alone() {
    check("remotes_without_operations", NOT, &["HAS_REMOTES"]);
    check("remotes_storage_operation", NOT, &["HAS_REMOTES"]);
    check("remote_endpoint_module", NOT, &["HAS_REMOTES"]);
    check("remote_egress_entry", NOT, &["HAS_REMOTES"]);
    check("connect_modules_key", NOT, &["HAS_CONNECT_MODULES"]);
    check("connect_module_type", NOT, &["HAS_CONNECT_MODULES"]);
    check("egress_plain_string", NOT, &["HAS_DEFINED_EGRESS"]);
    check(
        "egress_object_without_category",
        NOT,
        &["HAS_DEFINED_EGRESS"],
    );
    check(
        "egress_analytics_in_scope_default",
        NOT,
        &["HAS_DEFINED_EGRESS"],
    );
    check(
        "egress_analytics_in_scope_true",
        NOT,
        &["HAS_DEFINED_EGRESS"],
    );
    check("egress_in_scope_quoted_false", NOT, &["HAS_DEFINED_EGRESS"]);
    check("egress_unknown_category", NOT, &["HAS_DEFINED_EGRESS"]);
    check("egress_every_list", NOT, &["HAS_DEFINED_EGRESS"]);
    check(
        "egress_default_host_in_wrong_list",
        NOT,
        &["HAS_DEFINED_EGRESS"],
    );
    check("egress_configurable", NOT, &["HAS_DEFINED_EGRESS"]);
    check("egress_validator_warnings", NOT, &["HAS_DEFINED_EGRESS"]);
    check("providers", NOT, &["HAS_PROVIDERS", "HAS_REMOTES"]);
    check(
        "webtrigger_dynamic_by_default",
        NOT,
        &["HAS_EGRESS_WEBTRIGGER_MODULE"],
    );
    check(
        "webtrigger_dynamic_explicit",
        NOT,
        &["HAS_EGRESS_WEBTRIGGER_MODULE"],
    );
    check(
        "sql_dare_false",
        NOT,
        &["HAS_NON_DARE_COMPLIANT_SQL_MODULE"],
    );
}

#[test]
fn combinations() {
    check("egress_entry_shapes_invalid", NOT, &["HAS_REMOTES"]);
    check(
        "duplicate_remote_and_provider_keys",
        NOT,
        &["HAS_PROVIDERS", "HAS_REMOTES"],
    );
    check(
        "egress_mixed_shapes",
        NOT,
        &["HAS_DEFINED_EGRESS", "HAS_REMOTES"],
    );
    check(
        "every_rule_at_once",
        NOT,
        &[
            "HAS_CONNECT_MODULES",
            "HAS_DEFINED_EGRESS",
            "HAS_EGRESS_WEBTRIGGER_MODULE",
            "HAS_NON_DARE_COMPLIANT_SQL_MODULE",
            "HAS_PROVIDERS",
            "HAS_REMOTES",
        ],
    );
}

#[test]
fn unreadable_inputs() {
    check("bad_root_not_mapping", BAD, &[]);
    check("bad_modules_as_list", BAD, &[]);
    check("bad_yaml_syntax", BAD, &[]);
    check("bad_empty", BAD, &[]);
    check("bad_unknown_anchor", BAD, &[]);
}

/// Every rule roa-check documents fires somewhere in the corpus, and nothing undocumented
/// fires: the README's rule tables stay true.
#[test]
fn the_corpus_covers_every_rule() {
    let mut fired = BTreeSet::new();
    for entry in std::fs::read_dir(data().join("check")).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(report) = roa_check::check("x", &std::fs::read(&path).unwrap()) {
            fired.extend(report.findings.iter().map(|f| f.rule));
        }
    }
    let documented: BTreeSet<&str> = ELIGIBILITY_RULES
        .iter()
        .chain(WARNING_RULES)
        .map(|(id, _)| *id)
        .collect();
    let missing: Vec<_> = documented.difference(&fired).collect();
    let undocumented: Vec<_> = fired.difference(&documented).collect();
    assert!(missing.is_empty(), "rules no fixture fires: {missing:?}");
    assert!(
        undocumented.is_empty(),
        "rules not documented: {undocumented:?}"
    );
}

#[test]
fn sarif_is_well_formed() {
    let bytes = std::fs::read(data().join("check/every_rule_at_once.yml")).unwrap();
    let outcomes = [
        roa_check::check("every_rule_at_once.yml", &bytes),
        roa_check::check("broken.yml", b"a: [1"),
    ];
    let sarif: serde_json::Value = serde_json::from_str(&render::check_sarif(&outcomes)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let findings = outcomes[0].as_ref().unwrap().findings.len();
    assert_eq!(results.len(), findings + 1);
    let rule_ids: BTreeSet<&str> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in results {
        assert!(rule_ids.contains(r["ruleId"].as_str().unwrap()), "{r}");
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
    }
    let last = results.last().unwrap();
    assert_eq!(last["ruleId"], "INVALID_MANIFEST");
    assert_eq!(
        last["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "broken.yml"
    );
}
