//! The app's behaviour through its entry points: resolvers, page events, the scheduled
//! trigger and the health check.

use serde_json::{Value, json};
use signoff_core::{Record, audit};
use signoff_storage::hosted::{KeyPolicy, Kvs};

use crate::fake::{START_MS, World};

/// Two reviewers must both approve; approved pages go back to draft when edited.
pub const REVIEW: &str = r#"
name: two-reviewers
initial: draft
groups:
  reviewers: [bob, carol]
states:
  - name: draft
    on:
      submit: in_review
  - name: in_review
    due: P14D
    approval:
      on_new_version: reset
      stages:
        - name: review
          groups:
            - name: reviewers
              reviewers:
                - group: reviewers
              rule: all
              remind_every: P2D
    on:
      approved: approved
      rejected: draft
      changes_requested: draft
      withdraw: draft
      expired: draft
  - name: approved
    final: true
    on:
      edit: draft
"#;

/// Enrols `user` (once per world) and answers `reauth` evidence with their current code.
fn reauth(w: &World, user: &str) -> Value {
    let secret = w.totp_secret(user);
    json!({"method": "totp", "code": w.totp_code(&secret)})
}

/// A world with the review workflow on space ENG and page 1 (by alice) submitted.
pub fn submitted() -> World {
    let w = World::new();
    w.call(
        "assign-workflow",
        json!({"accountId": "admin", "space": "ENG", "source": REVIEW}),
    )
    .unwrap();
    w.write_page("1", "ENG", "Release plan", "<p>v1</p>", "alice");
    w.call("submit", json!({"accountId": "alice", "pageId": "1"}))
        .unwrap();
    w
}

#[test]
fn a_page_goes_from_draft_through_two_approvals_to_approved_and_is_signed() {
    let w = submitted();
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["state"], "in_review");
    assert_eq!(s["pending"].as_array().unwrap().len(), 2);
    assert_eq!(w.lozenge("1").unwrap().name, "In review");
    // The byline item's title and tooltip, which Confluence reads from the summary property
    // (the manifest's contentPropertyKey).
    let summary = w.property("1", "signoff-summary").unwrap();
    assert_eq!(summary["title"], "Approval: In review");
    assert_eq!(
        summary["tooltip"],
        "Version 1 in review: 2 reviewers yet to decide"
    );

    let bob = w.call("pending", json!({"accountId": "bob"})).unwrap();
    assert_eq!(bob["items"][0]["pageId"], "1");
    assert_eq!(bob["items"][0]["title"], "Release plan");

    w.call(
        "approve",
        json!({"accountId": "bob", "pageId": "1", "comment": "lgtm"}),
    )
    .unwrap();
    let s = w
        .call(
            "approve",
            json!({"accountId": "carol", "pageId": "1", "version": 1}),
        )
        .unwrap();
    assert_eq!(s["state"], "approved");
    assert_eq!(s["lastApproved"]["version"], 1);
    assert_eq!(s["readerPageVersion"], 1);

    let s = w
        .call(
            "sign",
            json!({"accountId": "alice", "pageId": "1", "name": "Alice Author",
                   "meaning": "authorship", "reauth": reauth(&w, "alice")}),
        )
        .unwrap();
    assert_eq!(s["state"], "approved");

    let lozenge = w.lozenge("1").unwrap();
    assert_eq!(
        (lozenge.name.as_str(), lozenge.color.as_str()),
        ("Approved", "#36b37e")
    );
    let summary = w.property("1", "signoff-summary").unwrap();
    assert_eq!(summary["state"], "approved");
    assert_eq!(summary["title"], "Approval: Approved");
    assert_eq!(summary["tooltip"], "Version 1 is approved");
    assert_eq!(summary["lastApproved"]["pageVersion"], 1);

    let h = w.call("history", json!({"pageId": "1"})).unwrap();
    assert_eq!(h["verified"], true);
    let records: Vec<Record> = serde_json::from_value(h["records"].clone()).unwrap();
    audit::verify(&records).unwrap();
    assert!(h["signatures"].as_str().unwrap().contains("Alice Author"));
    // The evidence is recorded as verified, by whom and when; never the code.
    let auth = records
        .iter()
        .find_map(|r| r.signature.as_ref().and_then(|s| s.auth.clone()))
        .expect("a signature with evidence");
    assert_eq!(auth.method, "totp");
    let v = auth.verification.expect("verified");
    assert!(v.verifier.starts_with("totp (RFC 6238"), "{}", v.verifier);

    // Notifications reached the page (there is no notification API).
    let notes = w.property("1", "signoff-notifications").unwrap();
    let kinds: Vec<&str> = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"assigned") && kinds.contains(&"decided"),
        "{kinds:?}"
    );
}

#[test]
fn refusals_come_back_with_the_engines_reason() {
    let w = submitted();
    let check = |name: &str, payload: Value, code: &str, words: &str| {
        let e = w.refused(name, payload);
        assert_eq!(e.code, code, "{e}");
        assert!(e.message.contains(words), "{e}");
    };
    check(
        "approve",
        json!({"accountId": "mallory", "pageId": "1"}),
        "NOT_A_REVIEWER",
        "mallory",
    );
    check(
        "approve",
        json!({"accountId": "bob", "pageId": "1", "version": 7}),
        "STALE_VERSION",
        "stale",
    );
    check(
        "approve",
        json!({"accountId": "bob", "pageId": "404"}),
        "UNKNOWN_PAGE",
        "404",
    );
    check(
        "approve",
        json!({"pageId": "1"}),
        "BAD_PAYLOAD",
        "accountId",
    );
    check(
        "approve",
        json!({"accountId": "system", "pageId": "1"}),
        "BAD_PAYLOAD",
        "reserved",
    );
    check(
        "approve",
        json!({"accountId": "bob", "pageId": "1", "version": "one"}),
        "BAD_PAYLOAD",
        "payload.version",
    );
    check(
        "approve",
        json!({"accountId": "bob", "pageId": "../x"}),
        "BAD_PAYLOAD",
        "pageId",
    );
    check(
        "submit",
        json!({"accountId": "alice", "pageId": "1"}),
        "NO_TRANSITION",
        "submit",
    );
    check(
        "frobnicate",
        json!({}),
        "UNKNOWN_RESOLVER",
        "assign-workflow",
    );
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    check(
        "approve",
        json!({"accountId": "bob", "pageId": "1"}),
        "ALREADY_DECIDED",
        "bob",
    );
    // Refused commands changed nothing.
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["pending"].as_array().unwrap().len(), 1);
}

#[test]
fn signatures_need_verified_reauthentication_and_never_a_password() {
    let w = submitted();
    // The old form, a method and a time, is no evidence: refused as an unknown field.
    let stale = json!({"method": "sso", "at": "2026-01-05T08:59:00Z"});
    let e = w.refused(
        "sign",
        json!({"accountId": "alice", "pageId": "1", "name": "A", "meaning": "authorship", "reauth": stale}),
    );
    assert_eq!(e.code, "BAD_PAYLOAD", "{e}");
    // A method the app cannot verify is refused by the engine.
    let e = w.refused(
        "sign",
        json!({"accountId": "alice", "pageId": "1", "name": "A", "meaning": "authorship", "reauth": {"method": "sso", "reference": "assertion-1"}}),
    );
    assert_eq!(e.code, "EVIDENCE_UNVERIFIABLE", "{e}");
    let secret = json!({"method": "password", "password": "hunter2"});
    let e = w.refused(
        "sign",
        json!({"accountId": "alice", "pageId": "1", "name": "A", "meaning": "authorship", "reauth": secret}),
    );
    assert_eq!(e.code, "BAD_PAYLOAD");
    assert!(
        e.message.contains("payload.reauth") && e.message.contains("password"),
        "{e}"
    );
    // Someone who is neither author nor reviewer may not sign.
    let e = w.refused(
        "sign",
        json!({"accountId": "mallory", "pageId": "1", "name": "M", "meaning": "review", "reauth": reauth(&w, "mallory")}),
    );
    assert_eq!(e.code, "NOT_PERMITTED", "{e}");
}

#[test]
fn groups_that_require_a_signature_get_one_from_approve() {
    let w = peer_reviewed("7");
    let s = w.call("status", json!({"pageId": "7"})).unwrap();
    let qa = s["pending"][0]["reviewer"].as_str().unwrap().to_owned();
    let e = w.refused("approve", json!({"accountId": qa, "pageId": "7"}));
    assert_eq!(e.code, "SIGNATURE_REQUIRED", "{e}");
    let e = w.refused(
        "approve",
        json!({"accountId": qa, "pageId": "7", "signature": {"name": "Q", "meaning": "approval"}}),
    );
    assert_eq!(e.code, "REAUTH_REQUIRED", "{e}");
    let s = w
        .call(
            "approve",
            json!({"accountId": qa, "pageId": "7",
                   "signature": {"name": "Q", "meaning": "approval", "reauth": reauth(&w, &qa)}}),
        )
        .unwrap();
    assert_eq!(s["state"], "published");
}

#[test]
fn edits_make_decisions_stale_and_readers_keep_the_last_approved_version() {
    let w = submitted();
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    w.write_page("1", "ENG", "Release plan", "<p>v2</p>", "alice");
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["version"], 2);
    assert_eq!(
        s["pending"].as_array().unwrap().len(),
        2,
        "bob's approval is stale: {s}"
    );
    let e = w.refused(
        "approve",
        json!({"accountId": "carol", "pageId": "1", "version": 1}),
    );
    assert_eq!(e.code, "STALE_VERSION");
    for r in ["bob", "carol"] {
        w.call("approve", json!({"accountId": r, "pageId": "1"}))
            .unwrap();
    }
    let approved_page_version =
        w.call("status", json!({"pageId": "1"})).unwrap()["pageVersion"].clone();

    // A new draft after approval: readers still see the approved page version.
    w.write_page("1", "ENG", "Release plan", "<p>v3</p>", "dave");
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["state"], "draft");
    assert_eq!(s["version"], 3);
    assert_eq!(s["lastApproved"]["version"], 2);
    assert_eq!(s["readerPageVersion"], approved_page_version);
    assert_ne!(s["pageVersion"], approved_page_version);
    assert_eq!(w.lozenge("1").unwrap().name, "Draft");
}

#[test]
fn events_that_change_no_content_record_nothing() {
    let w = submitted();
    let before = w.call("status", json!({"pageId": "1"})).unwrap()["records"].clone();
    // The lozenge made new page versions; a retried or self-made event changes nothing.
    w.write_page("1", "ENG", "Release plan", "<p>v1</p>", "alice");
    let ev = json!({"eventType": "avi:confluence:updated:page", "atlassianId": "alice",
                    "content": {"id": 1, "space": {"key": "ENG"}, "version": {"number": 2}}});
    w.app().on_event(&ev.to_string()).unwrap();
    assert_eq!(
        w.call("status", json!({"pageId": "1"})).unwrap()["records"],
        before
    );

    // Pages of spaces without a workflow, other events and blog posts are ignored.
    w.write_page("2", "OPS", "Runbook", "x", "alice");
    assert_eq!(
        w.refused("status", json!({"pageId": "2"})).code,
        "UNKNOWN_PAGE"
    );
    for ev in [
        json!({"eventType": "avi:confluence:viewed:page", "content": {"id": "1"}}),
        json!({"eventType": "avi:confluence:created:page", "content": {"id": "1", "type": "blogpost"}}),
    ] {
        w.app().on_event(&ev.to_string()).unwrap();
    }
    let e = w.app().on_event(r#"{"eventType": 3}"#).unwrap_err();
    assert_eq!(e.code, "BAD_PAYLOAD");
    assert!(e.message.contains("event.eventType"), "{e}");
    let e = w
        .app()
        .on_event(r#"{"eventType": "avi:confluence:created:page", "content": {"id": "999"}}"#)
        .unwrap_err();
    assert_eq!(e.code, "UNKNOWN_PAGE");
}

#[test]
fn a_page_created_before_its_space_had_a_workflow_starts_on_its_next_edit() {
    let w = World::new();
    w.write_page("5", "ENG", "Old page", "a", "alice");
    w.call(
        "assign-workflow",
        json!({"accountId": "admin", "space": "ENG", "template": "basic"}),
    )
    .unwrap();
    w.write_page("5", "ENG", "Old page", "b", "erin");
    let s = w.call("status", json!({"pageId": "5"})).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["workflow"].as_str()),
        (Some("draft"), Some("basic-approval"))
    );
}

#[test]
fn only_space_admins_reassign_and_bad_workflows_are_refused_with_their_place() {
    let w = World::new();
    w.call(
        "assign-workflow",
        json!({"accountId": "admin", "space": "ENG", "template": "basic", "spaceAdmins": ["ann"]}),
    )
    .unwrap();
    let e = w.refused(
        "assign-workflow",
        json!({"accountId": "mallory", "space": "ENG", "template": "basic"}),
    );
    assert_eq!(e.code, "NOT_PERMITTED");
    w.call(
        "assign-workflow",
        json!({"accountId": "ann", "space": "ENG", "template": "regulated"}),
    )
    .unwrap();
    let e = w.refused(
        "assign-workflow",
        json!({"accountId": "ann", "space": "ENG", "source": "name: x\ninitial: nowhere\nstates: []\n"}),
    );
    assert_eq!(e.code, "BAD_WORKFLOW");
    assert!(e.message.contains("workflow of space ENG"), "{e}");
    let e = w.refused(
        "assign-workflow",
        json!({"accountId": "ann", "space": "ENG", "template": "nope"}),
    );
    assert_eq!(e.code, "BAD_PAYLOAD");
    assert!(e.message.contains("two-stage"), "{e}");
    let t = w.call("templates", json!({})).unwrap();
    assert_eq!(t["templates"].as_array().unwrap().len(), 4);
}

#[test]
fn the_schedule_reminds_expires_and_delivers() {
    let w = submitted();
    w.advance_secs(2 * 86_400 + 60);
    w.app().on_schedule("due-dates").unwrap();
    let notes = w.property("1", "signoff-notifications").unwrap();
    assert!(
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "reminder"),
        "{notes}"
    );
    w.advance_secs(13 * 86_400);
    w.app().on_schedule("due-dates").unwrap();
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["state"], "draft", "expired after P14D: {s}");
    // The schedule's analytics carry counts only.
    let (_, props) = w
        .platform
        .analytics
        .borrow()
        .iter()
        .rev()
        .find(|(e, _)| e == "signoff.schedule")
        .cloned()
        .unwrap();
    let props: Value = serde_json::from_str(&props).unwrap();
    assert_eq!(props["documents"], 1);
}

#[test]
fn analytics_carry_no_in_scope_data_and_blocking_them_changes_nothing() {
    let w = submitted();
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    for (event, props) in w.platform.analytics.borrow().iter() {
        for secret in ["alice", "bob", "Release", "ENG", "<p>", "\"1\""] {
            assert!(!props.contains(secret), "{event} {props} carries {secret}");
        }
    }
    w.platform.analytics_blocked.set(true);
    let s = w
        .call("approve", json!({"accountId": "carol", "pageId": "1"}))
        .unwrap();
    assert_eq!(s["state"], "approved");
    // Logs may be shared with the vendor too: no names, no titles.
    w.write_page("1", "ENG", "Release plan", "<p>v2</p>", "alice");
    assert!(!w.platform.logs.borrow().is_empty());
    for line in w.platform.logs.borrow().iter() {
        for secret in ["alice", "bob", "carol", "Release", "ENG"] {
            assert!(!line.contains(secret), "{line} carries {secret}");
        }
    }
}

#[test]
fn delegates_decide_on_behalf_of_reviewers() {
    let w = submitted();
    let until = signoff_core::Timestamp((START_MS / 1000) as i64 + 86_400);
    w.call(
        "delegate",
        json!({"accountId": "bob", "pageId": "1", "to": "dave", "until": until, "reason": "leave"}),
    )
    .unwrap();
    let dave = w.call("pending", json!({"accountId": "dave"})).unwrap();
    assert_eq!(dave["items"][0]["onBehalfOf"], "bob", "{dave}");
    w.call(
        "approve",
        json!({"accountId": "dave", "pageId": "1", "onBehalfOf": "bob"}),
    )
    .unwrap();
    let dave = w.call("pending", json!({"accountId": "dave"})).unwrap();
    assert_eq!(dave["items"], json!([]));
    let h = w.call("history", json!({"pageId": "1"})).unwrap();
    let records: Vec<Record> = serde_json::from_value(h["records"].clone()).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.actor == "dave" && r.on_behalf_of.as_deref() == Some("bob"))
    );
    let e = w.refused(
        "approve",
        json!({"accountId": "erin", "pageId": "1", "onBehalfOf": "carol"}),
    );
    assert_eq!(e.code, "NO_DELEGATION");
}

#[test]
fn the_webhook_gets_page_content_only_when_configured_and_its_failure_is_not_the_callers() {
    let w = submitted();
    let e = w.refused(
        "configure-webhook",
        json!({"accountId": "mallory", "url": "https://hooks.example.com/x"}),
    );
    assert_eq!(e.code, "NOT_PERMITTED");
    assert!(w.platform.posts.borrow().is_empty());
    w.call(
        "configure-webhook",
        json!({"accountId": "admin", "url": "https://hooks.example.com/x"}),
    )
    .unwrap();
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    let posts = w.platform.posts.borrow().clone();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].1.contains("<p>v1</p>"));
    w.platform.egress_blocked.set(true);
    w.call("approve", json!({"accountId": "carol", "pageId": "1"}))
        .unwrap();
    assert!(
        w.platform
            .logs
            .borrow()
            .iter()
            .any(|l| l.contains("REQUEST_EGRESS_ALLOWLIST_ERR"))
    );
}

#[test]
fn the_caller_from_the_context_wins_and_must_match_the_payload() {
    let w = submitted();
    *w.platform.caller.borrow_mut() = Some("bob".into());
    let e = w.refused("approve", json!({"accountId": "carol", "pageId": "1"}));
    assert_eq!(e.code, "ACCOUNT_MISMATCH");
    w.call("approve", json!({"pageId": "1"})).unwrap();
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["pending"][0]["reviewer"], "carol");
}

#[test]
fn the_health_check_answers_json() {
    let w = World::new();
    let (status, body) = w.app().health();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
}

#[test]
fn approved_pages_come_up_for_periodic_review_and_owners_confirm_them() {
    let w = World::new();
    w.call(
        "assign-workflow",
        json!({"accountId": "admin", "space": "POL", "template": "periodic-review", "pageOwner": "olivia"}),
    )
    .unwrap();
    w.write_page("9", "POL", "Travel policy", "v1", "alice");
    w.call("submit", json!({"accountId": "alice", "pageId": "9"}))
        .unwrap();
    let s = w
        .call("approve", json!({"accountId": "olivia", "pageId": "9"}))
        .unwrap();
    assert_eq!(s["state"], "up_to_date");
    w.advance_secs(366 * 86_400);
    w.app().on_schedule("due-dates").unwrap();
    let s = w.call("status", json!({"pageId": "9"})).unwrap();
    assert_eq!(s["state"], "review_required");
    assert_eq!(w.lozenge("9").unwrap().name, "Review required");
    let s = w
        .call(
            "mark-up-to-date",
            json!({"accountId": "olivia", "pageId": "9"}),
        )
        .unwrap();
    assert_eq!(s["state"], "up_to_date");
}

#[test]
fn overdue_reviews_escalate_to_backups() {
    let w = peer_reviewed("8");
    let lead = w
        .call("pending", json!({"accountId": "quality_lead"}))
        .unwrap();
    assert_eq!(lead["items"], json!([]));
    w.advance_secs(3 * 86_400 + 60);
    w.app().on_schedule("due-dates").unwrap();
    let lead = w
        .call("pending", json!({"accountId": "quality_lead"}))
        .unwrap();
    assert_eq!(lead["items"][0]["group"], "qa", "{lead}");
    let notes = w.property("8", "signoff-notifications").unwrap();
    assert!(notes.to_string().contains("escalated"), "{notes}");
}

/// The wake keys (`app:wake:<time>:<page>`) in the store.
fn wakes(w: &World) -> Vec<String> {
    w.kvs
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("app:wake:"))
        .collect()
}

#[test]
fn the_schedule_reads_only_documents_due() {
    let w = submitted();
    // A submitted document has one wake key: its first reminder.
    let before = wakes(&w);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].ends_with(":1"), "{before:?}");
    // A run with nothing due changes nothing, looks at no document and sends no analytics.
    let schedules = |w: &World| {
        w.platform
            .analytics
            .borrow()
            .iter()
            .filter(|(e, _)| e == "signoff.schedule")
            .count()
    };
    let sent = schedules(&w);
    w.advance_secs(3_600);
    w.app().on_schedule("due-dates").unwrap();
    assert_eq!(wakes(&w), before);
    assert_eq!(schedules(&w), sent);
    let last_schedule = |w: &World| -> Value {
        let (_, props) = w
            .platform
            .analytics
            .borrow()
            .iter()
            .rev()
            .find(|(e, _)| e == "signoff.schedule")
            .cloned()
            .unwrap();
        serde_json::from_str(&props).unwrap()
    };
    // When the reminder is due, the run fires it and the key moves to the next deadline.
    w.advance_secs(2 * 86_400);
    w.app().on_schedule("due-dates").unwrap();
    assert_eq!(last_schedule(&w)["fired"], 1);
    let after = wakes(&w);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0] > before[0], "{before:?} -> {after:?}");
    // A spurious key (left by a failed commit) is dropped by the next run.
    w.kvs
        .set("app:wake:0000000000000001:1", "1", KeyPolicy::Overwrite)
        .unwrap();
    w.app().on_schedule("due-dates").unwrap();
    assert_eq!(wakes(&w), after);
}

/// A page in the QA space under the two-stage template, submitted by alice and approved by
/// both peers: waiting for the QA sign-off.
fn peer_reviewed(page: &str) -> World {
    let w = World::new();
    w.call(
        "assign-workflow",
        json!({"accountId": "admin", "space": "QA", "template": "two-stage"}),
    )
    .unwrap();
    w.write_page(page, "QA", "Spec", "body", "alice");
    w.call("submit", json!({"accountId": "alice", "pageId": page}))
        .unwrap();
    for peer in ["bob", "carol"] {
        w.call("approve", json!({"accountId": peer, "pageId": page}))
            .unwrap();
    }
    w
}

/// One damaged document never stops the schedule: it is named in the log and counted, and
/// the other documents still get their reminders.
#[test]
fn the_schedule_skips_a_damaged_document_and_ticks_the_others() {
    let w = submitted();
    w.write_page("2", "ENG", "Travel policy", "<p>v1</p>", "alice");
    w.call("submit", json!({"accountId": "alice", "pageId": "2"}))
        .unwrap();
    // Damage every stored value of page 1's document (its records and its state).
    let doc1: Vec<String> = w
        .kvs
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("app:") && k.contains("page-1"))
        .collect();
    assert!(!doc1.is_empty(), "{:?}", w.kvs.entries());
    for k in &doc1 {
        w.kvs
            .set(k, "{\"damaged\": true}", KeyPolicy::Overwrite)
            .unwrap();
    }
    w.advance_secs(2 * 86_400 + 3_600);
    w.app().on_schedule("due-dates").unwrap();
    let (_, props) = w
        .platform
        .analytics
        .borrow()
        .iter()
        .rev()
        .find(|(e, _)| e == "signoff.schedule")
        .cloned()
        .unwrap();
    let props: Value = serde_json::from_str(&props).unwrap();
    assert_eq!(props["damaged"], 1, "{props}");
    assert_eq!(props["fired"], 1, "{props}");
    let logs = w.platform.logs.borrow();
    assert!(
        logs.iter()
            .any(|l| l.contains("tick: page 1 is damaged and was skipped")),
        "{logs:?}"
    );
}
