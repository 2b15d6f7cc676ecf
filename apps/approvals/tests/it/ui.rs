//! The resolvers the Custom UI calls besides the commands: `panel` (the byline panel, with
//! the actions the engine offers the viewer), `my-approvals`, `space-workflow`,
//! `validate-workflow` and `templates`. The UI sends no `accountId`: the caller is the
//! platform's, as here.

use serde_json::{Value, json};
use signoff_core::Timestamp;

use crate::app::{REVIEW, submitted};
use crate::fake::{START_MS, World};

/// Calls `name` as `user` (the invocation context's caller), the way the UI does.
#[track_caller]
fn call_as(w: &World, user: &str, name: &str, payload: Value) -> Value {
    *w.platform.caller.borrow_mut() = Some(user.into());
    let out = w.call(name, payload);
    *w.platform.caller.borrow_mut() = None;
    out.unwrap_or_else(|e| panic!("{name} as {user}: {e}"))
}

/// The actions of a panel, written `action[ for principal]`.
fn actions(panel: &Value) -> Vec<String> {
    panel["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match a["onBehalfOf"].as_str() {
            Some(p) => format!("{} for {p}", a["action"].as_str().unwrap()),
            None => a["action"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn the_panel_offers_each_viewer_what_the_engine_would_carry_out() {
    let w = submitted();
    let bob = call_as(&w, "bob", "panel", json!({"pageId": "1"}));
    assert_eq!(
        actions(&bob),
        ["approve", "reject", "request-changes", "sign", "delegate"]
    );
    assert_eq!(bob["viewer"], "bob");
    assert_eq!(bob["title"], "Release plan");
    assert_eq!(bob["lozenge"], "In review");
    assert_eq!(bob["appearance"], "moved");
    assert_eq!(bob["verified"], true);
    assert_eq!(bob["actions"][0]["stage"], "review");
    assert_eq!(bob["actions"][0]["group"], "reviewers");
    // The stage, its group, its rule and who is pending.
    let stage = &bob["stages"][0];
    assert_eq!(stage["name"], "review");
    assert_eq!(stage["current"], true);
    let group = &stage["groups"][0];
    assert_eq!(group["rule"], "all must approve");
    assert_eq!(group["reviewers"][0]["reviewer"], "bob");
    assert_eq!(group["reviewers"][0]["decision"], Value::Null);
    // The author may withdraw and sign; a stranger may do nothing.
    let alice = call_as(&w, "alice", "panel", json!({"pageId": "1"}));
    assert_eq!(actions(&alice), ["sign", "withdraw"]);
    let mallory = call_as(&w, "mallory", "panel", json!({"pageId": "1"}));
    assert_eq!(actions(&mallory), Vec::<String>::new());
    assert_eq!(mallory["refused"], json!([]));

    // What was offered is carried out, and the panel shows who decided what.
    call_as(
        &w,
        "bob",
        "approve",
        json!({"pageId": "1", "comment": "looks right"}),
    );
    let bob = call_as(&w, "bob", "panel", json!({"pageId": "1"}));
    assert_eq!(actions(&bob), ["sign"]);
    let decided = &bob["stages"][0]["groups"][0]["reviewers"][0]["decision"];
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["by"], "bob");
    assert_eq!(bob["decisions"][0]["action"], "approve");
    assert_eq!(bob["decisions"][0]["actor"], "bob");
    assert_eq!(bob["decisions"][0]["comment"], "looks right");
    // A signature is listed with its meaning and whether its evidence was verified.
    let code = w.totp_code(&w.totp_secret("alice"));
    call_as(
        &w,
        "alice",
        "sign",
        json!({"pageId": "1", "name": "Alice Author", "meaning": "authorship",
               "reauth": {"method": "totp", "code": code}}),
    );
    let alice = call_as(&w, "alice", "panel", json!({"pageId": "1"}));
    let signed = &alice["decisions"][1];
    assert_eq!(signed["action"], "sign");
    assert_eq!(signed["signature"]["name"], "Alice Author");
    assert_eq!(signed["signature"]["meaning"], "authorship");
    assert_eq!(signed["signature"]["method"], "totp");
    assert_eq!(signed["signature"]["verified"], true);
}

#[test]
fn the_panel_says_why_a_pending_reviewer_cannot_decide() {
    let w = submitted();
    // bob edits the page under review: he wrote version 2, so he may not decide on it.
    w.write_page("1", "ENG", "Release plan", "<p>v2</p>", "bob");
    let bob = call_as(&w, "bob", "panel", json!({"pageId": "1"}));
    assert_eq!(bob["version"], 2);
    let refused: Vec<(&str, &str)> = bob["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refused,
        [
            ("approve", "SEPARATION_OF_DUTIES"),
            ("reject", "SEPARATION_OF_DUTIES"),
            ("request-changes", "SEPARATION_OF_DUTIES"),
        ]
    );
    let message = bob["refused"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("bob is the author of version 2"),
        "{message}"
    );
    assert!(!actions(&bob).contains(&"approve".to_owned()));
    // "My approvals" still lists the review, with the reason bob cannot decide.
    let mine = call_as(&w, "bob", "my-approvals", json!({}));
    assert_eq!(
        mine["pending"][0]["refusal"]["code"],
        "SEPARATION_OF_DUTIES"
    );
}

#[test]
fn the_panel_offers_a_delegate_the_decisions_of_the_reviewer_and_shows_the_delegation() {
    let w = submitted();
    let until = Timestamp((START_MS / 1000) as i64 + 86_400);
    call_as(
        &w,
        "carol",
        "delegate",
        json!({"pageId": "1", "to": "dave", "until": until, "reason": "leave"}),
    );
    let dave = call_as(&w, "dave", "panel", json!({"pageId": "1"}));
    assert_eq!(
        actions(&dave),
        [
            "approve for carol",
            "reject for carol",
            "request-changes for carol"
        ]
    );
    assert_eq!(dave["delegations"][0]["from"], "carol");
    assert_eq!(dave["delegations"][0]["reason"], "leave");
}

#[test]
fn the_panel_of_an_anonymous_reader_offers_nothing_and_a_foreign_account_is_refused() {
    let w = submitted();
    let anonymous = w.call("panel", json!({"pageId": "1"})).unwrap();
    assert_eq!(anonymous["actions"], json!([]));
    assert_eq!(anonymous["viewer"], Value::Null);
    *w.platform.caller.borrow_mut() = Some("bob".into());
    let e = w.refused("panel", json!({"pageId": "1", "accountId": "carol"}));
    assert_eq!(e.code, "ACCOUNT_MISMATCH");
    let e = w.refused("panel", json!({"pageId": "404"}));
    assert_eq!(e.code, "UNKNOWN_PAGE");
}

#[test]
fn my_approvals_lists_what_is_pending_overdue_delegated_and_recently_decided() {
    let w = submitted();
    w.write_page("2", "ENG", "Security policy", "<p>v1</p>", "alice");
    call_as(&w, "alice", "submit", json!({"pageId": "2"}));
    let bob = call_as(&w, "bob", "my-approvals", json!({}));
    let titles: Vec<&str> = bob["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Release plan", "Security policy"]);
    assert_eq!(bob["pending"][0]["overdue"], false);
    assert_eq!(bob["pending"][0]["lozenge"], "In review");
    assert_eq!(bob["pending"][0]["appearance"], "moved");
    assert_eq!(bob["recent"], json!([]));

    // carol is away: dave decides for her.
    let until = Timestamp((START_MS / 1000) as i64 + 30 * 86_400);
    call_as(
        &w,
        "carol",
        "delegate",
        json!({"pageId": "2", "to": "dave", "until": until, "reason": "leave"}),
    );
    let dave = call_as(&w, "dave", "my-approvals", json!({}));
    assert_eq!(dave["pending"][0]["pageId"], "2");
    assert_eq!(dave["pending"][0]["onBehalfOf"], "carol");

    // bob decides on page 2; page 1's deadline (P14D) passes.
    call_as(&w, "bob", "approve", json!({"pageId": "2"}));
    w.advance_secs(15 * 86_400);
    let bob = call_as(&w, "bob", "my-approvals", json!({}));
    assert_eq!(bob["pending"].as_array().unwrap().len(), 1, "{bob}");
    assert_eq!(bob["pending"][0]["pageId"], "1");
    assert_eq!(bob["pending"][0]["overdue"], true);
    assert_eq!(bob["pending"][0]["refusal"], Value::Null);
    let recent = &bob["recent"][0];
    assert_eq!(recent["pageId"], "2");
    assert_eq!(recent["title"], "Security policy");
    assert_eq!(recent["action"], "approve");
    assert_eq!(recent["state"], "in_review");
    call_as(
        &w,
        "dave",
        "reject",
        json!({"pageId": "2", "onBehalfOf": "carol", "comment": "not yet"}),
    );
    let dave = call_as(&w, "dave", "my-approvals", json!({}));
    assert_eq!(dave["pending"][0]["refusal"], Value::Null);
    assert_eq!(dave["recent"][0]["action"], "reject");
    assert_eq!(dave["recent"][0]["onBehalfOf"], "carol");
    assert_eq!(dave["recent"][0]["state"], "draft");
}

#[test]
fn space_settings_show_the_assigned_workflow_and_who_may_change_it() {
    let w = submitted();
    let none = call_as(&w, "ann", "space-workflow", json!({"space": "OPS"}));
    assert_eq!(
        none,
        json!({"space": "OPS", "assigned": false, "canAssign": true})
    );
    let eng = call_as(&w, "admin", "space-workflow", json!({"space": "ENG"}));
    assert_eq!(eng["assigned"], true);
    assert_eq!(eng["canAssign"], true);
    assert_eq!(eng["workflow"], "two-reviewers");
    assert_eq!(eng["source"], REVIEW);
    assert_eq!(eng["template"], Value::Null);
    assert_eq!(eng["states"], json!(["draft", "in_review", "approved"]));
    let eng = call_as(&w, "bob", "space-workflow", json!({"space": "ENG"}));
    assert_eq!(eng["canAssign"], false);
    call_as(
        &w,
        "ann",
        "assign-workflow",
        json!({"space": "OPS", "template": "basic"}),
    );
    let ops = call_as(&w, "ann", "space-workflow", json!({"space": "OPS"}));
    assert_eq!(ops["template"], "basic");
    assert_eq!(ops["assignedBy"], "ann");
}

#[test]
fn a_definition_is_validated_with_each_problem_at_its_line_and_column() {
    let w = World::new();
    let bad = "name: x\ninitial: nowhere\nstates:\n  - name: draft\n    on:\n      submit: limbo\n";
    let v = w.call("validate-workflow", json!({"source": bad})).unwrap();
    assert_eq!(v["valid"], false);
    let diagnostics = v["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty());
    for d in diagnostics {
        assert!(d["line"].as_u64().is_some(), "{d}");
        assert!(d["column"].as_u64().is_some(), "{d}");
        assert!(d["code"].as_str().is_some(), "{d}");
    }
    let places: Vec<(u64, &str)> = diagnostics
        .iter()
        .map(|d| (d["line"].as_u64().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert!(places.iter().any(|(line, _)| *line == 2), "{places:?}");
    assert!(places.iter().any(|(line, _)| *line == 6), "{places:?}");
    // A syntax error has its place too.
    let v = w
        .call("validate-workflow", json!({"source": "name: [x\n"}))
        .unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "syntax");
    assert!(v["diagnostics"][0]["line"].as_u64().is_some());
    let v = w
        .call("validate-workflow", json!({"source": REVIEW}))
        .unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["workflow"], "two-reviewers");
    // Nothing was stored.
    assert!(w.kvs.entries().is_empty());
}

#[test]
fn templates_come_with_their_descriptions_and_sources() {
    let w = World::new();
    let t = w.call("templates", json!({})).unwrap();
    assert_eq!(
        t["templates"],
        json!(["basic", "two-stage", "regulated", "periodic-review"])
    );
    let two = &t["items"][1];
    assert_eq!(two["name"], "two-stage");
    assert!(two["description"].as_str().unwrap().contains("QA"), "{two}");
    assert!(two["source"].as_str().unwrap().starts_with("# Two stages"));
}

#[test]
fn the_workflow_drawing_highlights_the_documents_state_and_stage() {
    let w = submitted();
    let d = call_as(&w, "bob", "workflow-diagram", json!({"pageId": "1"}));
    assert_eq!(d["state"], "in_review");
    assert_eq!(d["stage"], "review");
    let svg = d["svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    // Every state of the definition is drawn, the current one marked.
    for state in ["draft", "in_review", "approved"] {
        assert!(svg.contains(state), "{state} is missing from {svg}");
    }
    let mermaid = d["mermaid"].as_str().unwrap();
    // in_review (s1) and its stage review (s1_0) are styled as the current ones.
    assert!(mermaid.contains("style s1 "), "{mermaid}");
    assert!(mermaid.contains("style s1_0 "), "{mermaid}");
    // After approval the highlight moves, and there is no stage to mark.
    call_as(&w, "bob", "approve", json!({"pageId": "1"}));
    call_as(&w, "carol", "approve", json!({"pageId": "1"}));
    let d = call_as(&w, "bob", "workflow-diagram", json!({"pageId": "1"}));
    assert_eq!(d["state"], "approved");
    assert_eq!(d["stage"], Value::Null);
    assert!(d["mermaid"].as_str().unwrap().contains("style s2 "));
    // An unknown page is a typed error, not an empty picture.
    let err = w
        .call("workflow-diagram", json!({"pageId": "404"}))
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}
