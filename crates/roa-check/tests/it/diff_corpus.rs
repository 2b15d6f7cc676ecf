//! The upgrade corpus under `tests/data/diff`: one old/new pair per reason. Each case names
//! the class it must get and the reasons it must give; the text and JSON reports are
//! snapshots.

use std::collections::BTreeSet;

use roa_check::diff::REASONS;
use roa_check::render;

use crate::data;

/// Diffs `name/old.yml` against `name/new.yml`: the class must be `update` and the reason ids
/// exactly `reasons` (in the order given).
fn check(name: &str, update: &str, reasons: &[&str]) {
    let dir = data().join("diff").join(name);
    let old = std::fs::read(dir.join("old.yml")).unwrap();
    let new = std::fs::read(dir.join("new.yml")).unwrap();
    let (o, n) = (format!("{name}/old.yml"), format!("{name}/new.yml"));
    let d = roa_check::diff(&o, &old, &n, &new).unwrap();
    assert_eq!(d.update.as_str(), update, "{name}: {:#?}", d.reasons);
    let ids: Vec<&str> = d.reasons.iter().map(|r| r.id).collect();
    assert_eq!(ids, reasons, "{name}");
    insta::assert_snapshot!(
        format!("diff_{name}_text"),
        render::diff_text(&o, &n, &d, false)
    );
    let json: serde_json::Value = serde_json::from_str(&render::diff_json(&d)).unwrap();
    insta::assert_json_snapshot!(format!("diff_{name}_json"), json);
}

#[test]
fn scopes_and_csp() {
    check("scope_added", "major", &["SCOPE_ADDED"]);
    check("scope_swapped", "major", &["SCOPE_ADDED", "SCOPE_REMOVED"]);
    check("scope_removed", "minor", &["SCOPE_REMOVED"]);
    check("csp_option_added", "major", &["CSP_OPTION_ADDED"]);
    check("csp_option_removed", "minor", &["CSP_OPTION_REMOVED"]);
}

#[test]
fn egress() {
    check(
        "egress_url_added",
        "major",
        &["EGRESS_URL_ADDED", "ELIGIBILITY_LOST"],
    );
    check(
        "egress_url_swapped",
        "major",
        &["EGRESS_URL_ADDED", "EGRESS_URL_REMOVED"],
    );
    check(
        "egress_url_removed",
        "minor",
        &["EGRESS_URL_REMOVED", "ELIGIBILITY_GAINED"],
    );
    check(
        "egress_category_changed",
        "major",
        &["EGRESS_CATEGORY_CHANGED", "ELIGIBILITY_GAINED"],
    );
    check(
        "in_scope_eud_first_true",
        "major",
        &["IN_SCOPE_EUD_FIRST_TRUE", "ELIGIBILITY_LOST"],
    );
    check("in_scope_eud_changed", "minor", &["IN_SCOPE_EUD_CHANGED"]);
    check(
        "in_scope_eud_true_again",
        "minor",
        &["IN_SCOPE_EUD_CHANGED"],
    );
    check(
        "egress_configurable_enabled",
        "major",
        &["EGRESS_CONFIGURABLE_ENABLED", "ELIGIBILITY_LOST"],
    );
    check(
        "egress_configurable_disabled",
        "minor",
        &["EGRESS_CONFIGURABLE_DISABLED", "ELIGIBILITY_GAINED"],
    );
}

#[test]
fn web_triggers() {
    check(
        "webtrigger_dynamic_added",
        "major",
        &["WEBTRIGGER_DYNAMIC_ADDED", "ELIGIBILITY_LOST"],
    );
    check(
        "webtrigger_dynamic_added_when_one_existed",
        "minor",
        &["WEBTRIGGER_ADDED"],
    );
    check(
        "webtrigger_became_dynamic",
        "major",
        &["WEBTRIGGER_BECAME_DYNAMIC", "ELIGIBILITY_LOST"],
    );
    check("webtrigger_added_static", "minor", &["WEBTRIGGER_ADDED"]);
    check(
        "webtrigger_became_static",
        "minor",
        &["WEBTRIGGER_BECAME_STATIC", "ELIGIBILITY_GAINED"],
    );
}

#[test]
fn licensing_providers_and_remotes() {
    check("licensing_enabled", "major", &["LICENSING_ENABLED"]);
    check("licensing_disabled", "minor", &["LICENSING_DISABLED"]);
    check("provider_added", "major", &["PROVIDER_ADDED"]);
    check("provider_removed", "major", &["PROVIDER_REMOVED"]);
    check(
        "provider_client_id_changed",
        "major",
        &["PROVIDER_CLIENT_ID_CHANGED"],
    );
    check(
        "provider_remotes_changed",
        "major",
        &["PROVIDER_REMOTES_CHANGED"],
    );
    check(
        "remote_added",
        "major",
        &["REMOTE_ADDED", "ELIGIBILITY_LOST"],
    );
    check(
        "remote_base_url_changed",
        "major",
        &["REMOTE_BASE_URL_CHANGED"],
    );
    check("remote_removed", "minor", &["REMOTE_REMOVED"]);
    check(
        "remote_operations_changed",
        "minor",
        &["REMOTE_OPERATIONS_CHANGED"],
    );
}

#[test]
fn modules_and_the_rest() {
    check("function_added", "minor", &["FUNCTION_ADDED"]);
    check("trigger_added", "minor", &["TRIGGER_ADDED"]);
    check(
        "scheduled_trigger_added",
        "minor",
        &["SCHEDULED_TRIGGER_ADDED"],
    );
    check("consumer_added", "minor", &["CONSUMER_ADDED"]);
    check("module_added", "minor", &["MODULE_ADDED"]);
    check("module_removed", "minor", &["MODULE_REMOVED"]);
    check("module_changed", "minor", &["MODULE_CHANGED"]);
    check("other_changed", "minor", &["OTHER_CHANGED"]);
    check(
        "eligibility_lost",
        "major",
        &["EGRESS_URL_ADDED", "ELIGIBILITY_LOST"],
    );
    check(
        "eligibility_gained",
        "minor",
        &["EGRESS_URL_REMOVED", "ELIGIBILITY_GAINED"],
    );
    check("none_only_layout_changed", "none", &[]);
}

/// Every documented reason id is produced by at least one case.
#[test]
fn the_corpus_covers_every_reason() {
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(data().join("diff")).unwrap() {
        let dir = entry.unwrap().path();
        let old = std::fs::read(dir.join("old.yml")).unwrap();
        let new = std::fs::read(dir.join("new.yml")).unwrap();
        let d = roa_check::diff("old", &old, "new", &new).unwrap();
        seen.extend(d.reasons.iter().map(|r| r.id));
    }
    let missing: Vec<_> = REASONS
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !seen.contains(id))
        .collect();
    assert!(missing.is_empty(), "reasons no case produces: {missing:?}");
}

#[test]
fn a_manifest_against_itself_is_no_change() {
    for entry in std::fs::read_dir(data().join("check")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(d) = roa_check::diff("a", &bytes, "b", &bytes) {
            assert_eq!(d.update, roa_check::Update::None, "{:?}", d.reasons);
        }
    }
}
