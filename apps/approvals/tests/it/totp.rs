//! TOTP re-authentication through the resolvers: enrolment, signing with a good, a wrong
//! and a reused code, the lockout and its end, resets, methods other than `totp`, and that
//! no secret or code is ever stored in the open, logged, sent or echoed.

use serde_json::{Value, json};
use signoff_core::Record;

use crate::app::submitted;
use crate::fake::World;

/// Signs page `page` as alice (its author) with `reauth`.
fn sign(w: &World, page: &str, reauth: Value) -> Result<Value, approvals::ports::AppError> {
    w.call(
        "sign",
        json!({"accountId": "alice", "pageId": page, "name": "Alice Author",
               "meaning": "authorship", "reauth": reauth}),
    )
}

fn totp(code: &str) -> Value {
    json!({"method": "totp", "code": code})
}

/// A code of `secret` that is wrong now (a code of ten minutes ago: outside the window).
fn wrong_code(w: &World, secret: &str) -> String {
    let now = w.platform.now_ms.get() / 1000;
    let wrong = approvals::totp::code_at(secret, now - 600).unwrap();
    assert_ne!(wrong, w.totp_code(secret));
    wrong
}

fn status(w: &World, user: &str) -> Value {
    w.call("totp-status", json!({"accountId": user})).unwrap()
}

/// A world with pages 1 and 2 (by alice) in review, and alice enrolled.
fn world() -> (World, String) {
    let w = submitted();
    w.write_page("2", "ENG", "Second plan", "<p>v1</p>", "alice");
    w.call("submit", json!({"accountId": "alice", "pageId": "2"}))
        .unwrap();
    let enrolled = w.call("totp-enrol", json!({"accountId": "alice"})).unwrap();
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    (w, secret)
}

#[test]
fn enrolment_answers_the_secret_once() {
    let (w, secret) = world();
    // 160 bits in base32 without padding.
    assert_eq!(secret.len(), 32);
    let e = w.refused("totp-enrol", json!({"accountId": "alice"}));
    assert_eq!(e.code, "TOTP_ENROLLED", "{e}");
    assert!(!e.message.contains(&secret));
    let s = status(&w, "alice");
    assert_eq!(s["enrolled"], true);
    assert_eq!(s["lockedUntil"], Value::Null);
    assert_eq!(s["log"][0]["event"], "enrolled");
    assert!(!s.to_string().contains(&secret));
    // Bob's secret is another one.
    let bob = w.call("totp-enrol", json!({"accountId": "bob"})).unwrap();
    assert_ne!(bob["secret"], json!(secret));
    assert_eq!(
        bob["uri"],
        format!(
            "otpauth://totp/signoff:bob?secret={}&issuer=signoff&algorithm=SHA1&digits=6&period=30",
            bob["secret"].as_str().unwrap()
        )
    );
}

#[test]
fn a_good_code_signs_a_wrong_one_is_counted_and_a_used_one_is_refused() {
    let (w, secret) = world();
    let wrong = wrong_code(&w, &secret);
    let e = sign(&w, "1", totp(&wrong)).unwrap_err();
    assert_eq!(e.code, "EVIDENCE_REJECTED", "{e}");
    assert!(e.message.contains("1 of 5"), "{e}");
    assert_eq!(status(&w, "alice")["failures"], 1);

    let code = w.totp_code(&secret);
    sign(&w, "1", totp(&code)).unwrap();
    assert_eq!(status(&w, "alice")["failures"], 0);
    let h = w.call("history", json!({"pageId": "1"})).unwrap();
    let records: Vec<Record> = serde_json::from_value(h["records"].clone()).unwrap();
    let auth = records
        .iter()
        .find_map(|r| r.signature.as_ref().and_then(|s| s.auth.clone()))
        .unwrap();
    assert_eq!(auth.method, "totp");
    assert_eq!(
        auth.verification.unwrap().at.0 as u64,
        w.platform.now_ms.get() / 1000
    );

    // The same code again (on another page, a few seconds later) is a replay.
    w.advance_secs(5);
    let e = sign(&w, "2", totp(&code)).unwrap_err();
    assert_eq!(e.code, "EVIDENCE_REJECTED", "{e}");
    assert!(e.message.contains("already used"), "{e}");
    // The next step's code signs.
    w.advance_secs(30);
    sign(&w, "2", totp(&w.totp_code(&secret))).unwrap();
}

#[test]
fn five_failed_codes_lock_the_signer_out_for_fifteen_minutes() {
    let (w, secret) = world();
    for n in 1..=5 {
        let e = sign(&w, "1", totp(&wrong_code(&w, &secret))).unwrap_err();
        assert_eq!(e.code, "EVIDENCE_REJECTED", "{e}");
        if n == 5 {
            assert!(
                e.message.contains("locked out until 2026-01-05T09:15:00Z"),
                "{e}"
            );
        }
    }
    let s = status(&w, "alice");
    assert_eq!(s["lockedUntil"], "2026-01-05T09:15:00Z");
    let events: Vec<&str> = s["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"locked"));
    assert_eq!(events.iter().filter(|e| **e == "wrong_code").count(), 5);
    // Counted in analytics, without ids.
    let lockouts: Vec<String> = w
        .platform
        .analytics
        .borrow()
        .iter()
        .filter(|(e, _)| e == "signoff.totp")
        .map(|(_, p)| p.clone())
        .filter(|p| p.contains("lockout"))
        .collect();
    assert_eq!(lockouts, [r#"{"event":"lockout"}"#]);

    // While locked, even a good code is not checked, and nothing more is counted.
    w.advance_secs(60);
    let e = sign(&w, "1", totp(&w.totp_code(&secret))).unwrap_err();
    assert_eq!(e.code, "EVIDENCE_UNVERIFIABLE", "{e}");
    assert!(e.message.contains("until 2026-01-05T09:15:00Z"), "{e}");
    assert_eq!(status(&w, "alice")["failures"], 0);

    // After the lockout, a good code signs.
    w.advance_secs(14 * 60);
    assert_eq!(status(&w, "alice")["lockedUntil"], Value::Null);
    sign(&w, "1", totp(&w.totp_code(&secret))).unwrap();
}

#[test]
fn resets_need_a_code_or_a_space_administrator_and_are_recorded() {
    let (w, secret) = world();
    // By oneself: with a current code.
    let e = w.refused("totp-reset", json!({"accountId": "alice"}));
    assert_eq!(e.code, "BAD_PAYLOAD", "{e}");
    let wrong = wrong_code(&w, &secret);
    let e = w.refused("totp-reset", json!({"accountId": "alice", "code": wrong}));
    assert_eq!(e.code, "EVIDENCE_REJECTED", "{e}");
    assert_eq!(status(&w, "alice")["failures"], 1);
    let s = w
        .call(
            "totp-reset",
            json!({"accountId": "alice", "code": w.totp_code(&secret)}),
        )
        .unwrap();
    assert_eq!(s["enrolled"], false);
    assert_eq!(s["failures"], 0);
    // The old secret's codes are no evidence any more.
    w.advance_secs(30);
    let e = sign(&w, "1", totp(&w.totp_code(&secret))).unwrap_err();
    assert_eq!(e.code, "EVIDENCE_UNVERIFIABLE", "{e}");
    assert!(e.message.contains("enrol"), "{e}");
    // Enrolling again makes a new secret.
    let again = w.call("totp-enrol", json!({"accountId": "alice"})).unwrap();
    assert_ne!(again["secret"], json!(secret));
    let secret = again["secret"].as_str().unwrap().to_owned();

    // Someone else's: a space administrator only, without a code.
    let e = w.refused(
        "totp-reset",
        json!({"accountId": "bob", "account": "alice"}),
    );
    assert_eq!(e.code, "NOT_PERMITTED", "{e}");
    let e = w.refused(
        "totp-status",
        json!({"accountId": "bob", "account": "alice"}),
    );
    assert_eq!(e.code, "NOT_PERMITTED", "{e}");
    let s = w
        .call(
            "totp-reset",
            json!({"accountId": "admin", "account": "alice"}),
        )
        .unwrap();
    assert_eq!(s["enrolled"], false);
    let last = s["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "reset");
    assert_eq!(last["by"], "admin");
    let e = w.refused(
        "totp-reset",
        json!({"accountId": "admin", "account": "alice"}),
    );
    assert_eq!(e.code, "TOTP_NOT_ENROLLED", "{e}");
    // The secret was overwritten, not kept.
    let stored = w.platform.secrets.borrow()["app:totp-secret:alice"].clone();
    assert_eq!(stored, "null");
    assert!(!stored.contains(&secret));
}

#[test]
fn only_totp_carries_a_code_and_a_blank_method_is_refused() {
    let (w, secret) = world();
    let code = w.totp_code(&secret);
    let e = sign(&w, "1", json!({"method": "sso", "code": code})).unwrap_err();
    assert_eq!(e.code, "BAD_PAYLOAD", "{e}");
    assert!(e.message.contains("payload.reauth.code"), "{e}");
    let e = sign(&w, "1", json!({"method": "totp"})).unwrap_err();
    assert_eq!(e.code, "BAD_PAYLOAD", "{e}");
    let e = sign(&w, "1", json!({"method": "  "})).unwrap_err();
    assert_eq!(e.code, "BLANK", "{e}");
    let e = sign(&w, "1", json!({"method": "webauthn", "reference": "a-1"})).unwrap_err();
    assert_eq!(e.code, "EVIDENCE_UNVERIFIABLE", "{e}");
    // None of these was an attempt at a code.
    assert_eq!(status(&w, "alice")["failures"], 0);
    // Enrolment is needed before signing by totp.
    let e = w.refused(
        "approve",
        json!({"accountId": "bob", "pageId": "1",
               "signature": {"name": "Bob", "meaning": "review", "reauth": totp("123456")}}),
    );
    assert_eq!(e.code, "EVIDENCE_UNVERIFIABLE", "{e}");
}

#[test]
fn no_secret_or_code_is_stored_in_the_open_logged_sent_or_echoed() {
    let (w, secret) = world();
    let mut codes = Vec::new();
    let mut errors = Vec::new();
    // Wrong codes up to a lockout, a good one after it, a reused one, a reset.
    for _ in 0..5 {
        let c = wrong_code(&w, &secret);
        errors.push(sign(&w, "1", totp(&c)).unwrap_err());
        codes.push(c);
    }
    w.advance_secs(15 * 60);
    let good = w.totp_code(&secret);
    sign(&w, "1", totp(&good)).unwrap();
    errors.push(sign(&w, "2", totp(&good)).unwrap_err());
    codes.push(good);
    w.advance_secs(30);
    let good = w.totp_code(&secret);
    errors.push(w.refused(
        "totp-reset",
        json!({"accountId": "alice", "code": "12345x"}),
    ));
    w.call("totp-reset", json!({"accountId": "alice", "code": good}))
        .unwrap();
    codes.push(good);

    let mut seen = vec![format!("{:?}", w.kvs.entries())];
    seen.extend(w.kvs.entries().into_iter().map(|(_, v)| v));
    seen.extend(w.platform.logs.borrow().iter().cloned());
    seen.extend(
        w.platform
            .analytics
            .borrow()
            .iter()
            .map(|(e, p)| format!("{e} {p}")),
    );
    seen.extend(
        w.platform
            .posts
            .borrow()
            .iter()
            .map(|(u, b)| format!("{u} {b}")),
    );
    seen.extend(
        w.platform
            .properties
            .borrow()
            .values()
            .map(|p| p.value.clone()),
    );
    seen.extend(errors.iter().map(|e| format!("{e} {e:?}")));
    for page in ["1", "2"] {
        seen.push(
            w.call("history", json!({"pageId": page}))
                .unwrap()
                .to_string(),
        );
    }
    seen.push(status(&w, "alice").to_string());
    let everything = seen.join("\n");
    assert!(!everything.contains(&secret), "the secret leaked");
    for c in &codes {
        assert!(!everything.contains(c.as_str()), "the code {c} leaked");
    }
}
