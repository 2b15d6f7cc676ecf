//! The approval app (`apps/approvals`) as a wasm component inside the platform simulator:
//! the manifest and the component `cargo xtask guests` builds, one installation, and a page
//! taken from draft through two approvals to a signed, approved version, with the page's
//! content state, summary property and audit chain checked from outside the app; and the
//! webhook variant of the manifest, the only one that lets page content out.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use signoff_core::{Record, audit};
use signoff_e2e::root;
use signoff_sim::Realm;
use signoff_sim::egress::{AdminSwitches, BlockReason};
use signoff_sim::host::{
    App, Call, EndpointResponse, Installation, InvocationError, Output, Platform, Runtime,
    RuntimeConfig, SimConfig, WebRequest, guest_path,
};

const SITE: &str = "acme.atlassian.net";
const MANIFEST: &str = include_str!("../../apps/approvals/manifest.yml");
const WEBHOOK_MANIFEST: &str = include_str!("../../apps/approvals/manifest-webhook.yml");

/// Two reviewers must both approve.
const WORKFLOW: &str = r#"
name: two-reviewers
initial: draft
states:
  - name: draft
    on:
      submit: in_review
  - name: in_review
    approval:
      stages:
        - name: review
          groups:
            - name: reviewers
              reviewers:
                - user: bob
                - user: carol
              rule: all
              remind_every: P1D
    on:
      approved: approved
      rejected: draft
  - name: approved
    final: true
    on:
      edit: draft
"#;

/// One engine and one compilation of the component per test binary (compiling is the slow
/// part), loaded with each manifest.
struct Loaded {
    runtime: Arc<Runtime>,
    eligible: Arc<App>,
    webhook: Arc<App>,
}

fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let path = guest_path(&root(), "approvals");
        assert!(
            path.exists(),
            "app component {} is missing: run `cargo xtask guests` first",
            path.display()
        );
        let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
        let component = runtime.compile(&path).expect("the app compiles");
        let load = |manifest| {
            runtime
                .load_app(manifest, &component, &BTreeMap::new())
                .expect("the manifest loads")
        };
        Loaded {
            eligible: load(MANIFEST),
            webhook: load(WEBHOOK_MANIFEST),
            runtime,
        }
    })
}

/// The simulator with the app installed on `acme` (EU), analytics allowed or blocked.
fn platform(analytics_blocked: bool) -> Platform {
    platform_with(&loaded().eligible, analytics_blocked)
}

fn platform_with(app: &Arc<App>, analytics_blocked: bool) -> Platform {
    let mut p = Platform::new(loaded().runtime.clone(), SimConfig::forge());
    p.install(Installation {
        id: "acme".into(),
        app: app.id().into(),
        site: SITE.into(),
        realm: Realm::Eu,
        environment: "production".into(),
        admin: AdminSwitches {
            analytics_blocked,
            logs_blocked: false,
        },
    });
    p.add_app(app.clone());
    p
}

fn call(p: &mut Platform, name: &str, payload: Value) -> Result<Value, InvocationError> {
    let call = Call::Resolver {
        name: name.into(),
        payload: payload.to_string(),
    };
    match p.invoke("acme", "resolver", call)? {
        Output::Json(text) => Ok(serde_json::from_str(&text).expect("resolvers answer JSON")),
        other => panic!("a resolver answered {other:?}"),
    }
}

fn page_event(p: &mut Platform, kind: &str, page: &signoff_sim::product::Page, by: &str) {
    let event = json!({
        "eventType": format!("avi:confluence:{kind}:page"),
        "atlassianId": by,
        "content": {"id": page.id, "type": "page", "status": "current", "title": page.title,
                    "space": {"key": page.space}, "version": {"number": page.version}},
    });
    p.invoke("acme", "on-page-event", Call::Event(event.to_string()))
        .expect("the event is handled");
}

/// The TOTP code of `secret` now (the simulator's virtual clock), as an authenticator app
/// would show it.
fn code(p: &mut Platform, secret: &str) -> String {
    signoff_sim::scenario::totp_code(secret, p.clock().now().0 / 1000).expect("a base32 secret")
}

#[test]
fn totp_secrets_and_codes_stay_in_the_secret_store_inside_the_simulator() {
    let mut p = platform(false);
    let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = sent.clone();
    p.add_endpoint(
        "analytics.signoff.example",
        Arc::new(move |r| {
            record.lock().unwrap().push(r.body.clone());
            EndpointResponse {
                status: 200,
                headers: vec![],
                body: String::new(),
            }
        }),
    );
    let enrolled = call(&mut p, "totp-enrol", json!({"accountId": "alice"})).unwrap();
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    // Five wrong codes (of ten minutes ago) lock alice out; then a good code is not checked.
    for _ in 0..5 {
        let at = p.clock().now().0 / 1000 - 600;
        let wrong = signoff_sim::scenario::totp_code(&secret, at).unwrap();
        let e = call(
            &mut p,
            "totp-reset",
            json!({"accountId": "alice", "code": wrong}),
        )
        .unwrap_err();
        assert!(
            matches!(&e, InvocationError::App { code, .. } if code == "EVIDENCE_REJECTED"),
            "{e:?}"
        );
        codes.push(wrong);
        p.clock().advance_by(1_000);
    }
    let good = code(&mut p, &secret);
    let e = call(
        &mut p,
        "totp-reset",
        json!({"accountId": "alice", "code": good}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, InvocationError::App { code, message } if code == "EVIDENCE_UNVERIFIABLE" && message.contains("locked out")),
        "{e:?}"
    );
    codes.push(good);
    let status = call(&mut p, "totp-status", json!({"accountId": "alice"})).unwrap();
    assert!(status["lockedUntil"].is_string(), "{status}");
    // After 15 minutes a good code resets the enrolment.
    p.clock().advance_by(15 * 60_000);
    let good = code(&mut p, &secret);
    let status = call(
        &mut p,
        "totp-reset",
        json!({"accountId": "alice", "code": good}),
    )
    .unwrap();
    assert_eq!(status["enrolled"], false);
    codes.push(good);

    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|b| b.contains(r#""event":"signoff.totp""#) && b.contains("lockout")),
        "the lockout is counted in analytics: {sent:?}"
    );
    let mut seen = sent;
    for (key, value) in p.inspect("acme").unwrap() {
        seen.push(format!("{key} {value}"));
    }
    seen.push(serde_json::to_string(p.ledger()).unwrap());
    seen.push(serde_json::to_string(p.analytics()).unwrap());
    seen.push(serde_json::to_string(p.logs()).unwrap());
    seen.push(format!("{:?}", p.trace()));
    let everything = seen.join("\n");
    assert!(everything.contains("app:totp:alice"), "the state is stored");
    assert!(!everything.contains(&secret), "the secret leaked");
    for c in &codes {
        assert!(!everything.contains(c.as_str()), "the code {c} leaked");
    }
}

fn run_to_signed(analytics_blocked: bool) -> (Platform, String) {
    let mut p = platform(analytics_blocked);
    call(
        &mut p,
        "assign-workflow",
        json!({"accountId": "admin", "space": "ENG", "source": WORKFLOW}),
    )
    .unwrap();
    let page = p
        .confluence()
        .create_page(SITE, "alice", "ENG", "Release plan", "<p>v1</p>")
        .unwrap();
    page_event(&mut p, "created", &page, "alice");
    let id = page.id.clone();

    call(
        &mut p,
        "submit",
        json!({"accountId": "alice", "pageId": id}),
    )
    .unwrap();
    let e = call(
        &mut p,
        "approve",
        json!({"accountId": "alice", "pageId": id}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, InvocationError::App { code, .. } if code == "NOT_A_REVIEWER"),
        "{e:?}"
    );
    p.clock().advance_by(60_000);
    call(&mut p, "approve", json!({"accountId": "bob", "pageId": id})).unwrap();
    let s = call(
        &mut p,
        "approve",
        json!({"accountId": "carol", "pageId": id}),
    )
    .unwrap();
    assert_eq!(s["state"], "approved");
    let enrolled = call(&mut p, "totp-enrol", json!({"accountId": "alice"})).unwrap();
    let code = code(&mut p, enrolled["secret"].as_str().unwrap());
    call(
        &mut p,
        "sign",
        json!({"accountId": "alice", "pageId": id, "name": "Alice Author", "meaning": "authorship",
               "reauth": {"method": "totp", "code": code}}),
    )
    .unwrap();
    (p, id)
}

#[test]
fn a_page_is_approved_by_two_reviewers_and_signed_inside_the_simulator() {
    let (mut p, id) = run_to_signed(false);

    let state = p
        .confluence()
        .get_content_state(SITE, &id)
        .expect("a lozenge");
    assert_eq!(state.name, "Approved");
    let summary = p
        .confluence()
        .get_property(SITE, &id, "signoff-summary")
        .expect("a summary property");
    let summary: Value = serde_json::from_str(&summary.value).unwrap();
    assert_eq!(summary["state"], "approved");
    assert_eq!(summary["lastApproved"]["version"], 1);
    assert_eq!(summary["readerPageVersion"], 1);

    insta::assert_json_snapshot!("approvals_summary", summary, {
        ".head" => "[hash]",
        ".workflowHash" => "[hash]",
        ".lastApproved.contentHash" => "[hash]",
    });

    let h = call(&mut p, "history", json!({"pageId": id})).unwrap();
    assert_eq!(h["verified"], true);
    insta::assert_snapshot!("approvals_signatures", h["signatures"].as_str().unwrap());
    let records: Vec<Record> = serde_json::from_value(h["records"].clone()).unwrap();
    audit::verify(&records).expect("the audit chain verifies");
    let signed = records.iter().find(|r| r.signature.is_some()).unwrap();
    assert_eq!(signed.actor, "alice");
    assert!(h["signatures"].as_str().unwrap().contains("Alice Author"));

    let pending = call(&mut p, "pending", json!({"accountId": "bob"})).unwrap();
    assert_eq!(pending["items"], json!([]));

    // Nothing left the platform but analytics, to the declared analytics host, without
    // in-scope data: counts and state names, never ids, titles or bodies.
    assert!(!p.ledger().is_empty());
    for a in p.ledger() {
        assert_eq!(
            (
                a.destination.as_str(),
                a.category,
                a.in_scope_eud,
                a.allowed
            ),
            (
                "analytics.signoff.example/v1/events",
                "analytics",
                false,
                true
            ),
            "{a:?}"
        );
        assert_eq!(a.carries, None, "{a:?}");
    }

    // The health check answers JSON.
    let out = p
        .invoke(
            "acme",
            "health",
            Call::WebTrigger(WebRequest {
                method: "GET".into(),
                path: "/".into(),
                ..WebRequest::default()
            }),
        )
        .unwrap();
    let Output::WebResponse(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.status_code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["status"],
        "ok"
    );
}

#[test]
fn with_analytics_blocked_the_app_works_the_same_and_the_schedule_runs() {
    let (mut p, id) = run_to_signed(true);
    assert!(!p.ledger().is_empty());
    assert!(
        p.ledger()
            .iter()
            .all(|a| !a.allowed && a.blocked_because == Some(BlockReason::AnalyticsBlockedByAdmin)),
        "{:?}",
        p.ledger()
    );

    // An edit after approval: a new draft, readers still pointed at the approved version.
    let page = p.confluence().get_page(SITE, &id).unwrap();
    let page = p
        .confluence()
        .update_page(
            SITE,
            "dave",
            &id,
            &page.title,
            "<p>v2</p>",
            page.version + 1,
        )
        .unwrap();
    page_event(&mut p, "updated", &page, "dave");
    let s = call(&mut p, "status", json!({"pageId": id})).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["version"].as_u64()),
        (Some("draft"), Some(2))
    );
    assert_eq!(s["readerPageVersion"], 1);

    call(&mut p, "submit", json!({"accountId": "dave", "pageId": id})).unwrap();
    p.clock().advance_by(2 * 86_400_000);
    p.invoke("acme", "on-schedule", Call::Schedule("due-dates".into()))
        .expect("the schedule runs");
    let notes = p
        .confluence()
        .get_property(SITE, &id, "signoff-notifications")
        .expect("notifications");
    assert!(notes.value.contains("reminder"), "{}", notes.value);
}

#[test]
fn only_the_webhook_variant_can_send_page_content_out_and_the_app_works_either_way() {
    for (app, allowed) in [(&loaded().eligible, false), (&loaded().webhook, true)] {
        let mut p = platform_with(app, false);
        p.add_endpoint(
            "hooks.signoff.example",
            Arc::new(|_| EndpointResponse {
                status: 200,
                headers: vec![],
                body: String::new(),
            }),
        );
        call(
            &mut p,
            "assign-workflow",
            json!({"accountId": "admin", "space": "ENG", "source": WORKFLOW}),
        )
        .unwrap();
        call(
            &mut p,
            "configure-webhook",
            json!({"accountId": "admin", "url": "https://hooks.signoff.example/in"}),
        )
        .unwrap();
        let page = p
            .confluence()
            .create_page(SITE, "alice", "ENG", "Secret plan", "<p>v1</p>")
            .unwrap();
        page_event(&mut p, "created", &page, "alice");
        let s = call(
            &mut p,
            "submit",
            json!({"accountId": "alice", "pageId": page.id}),
        )
        .unwrap();
        assert_eq!(s["state"], "in_review");

        let hooks: Vec<_> = p
            .ledger()
            .iter()
            .filter(|a| a.destination.starts_with("hooks.signoff.example"))
            .collect();
        assert_eq!(hooks.len(), 2, "{hooks:?}");
        for a in hooks {
            assert_eq!(a.allowed, allowed, "{a:?}");
            if !allowed {
                assert_eq!(a.blocked_because, Some(BlockReason::NotDeclared));
            }
        }
    }
}
