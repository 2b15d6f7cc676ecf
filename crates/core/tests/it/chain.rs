//! Tampering with the audit trail: every kind of edit is detected at the first bad record.

use std::sync::Arc;

use signoff_core::event::{Action, AuthInput, SignatureInput};
use signoff_core::evidence::TableVerifier;
use signoff_core::workflow::Meaning;
use signoff_core::{Command, Engine, FixedClock, Record, Timestamp, audit};

use crate::template;

/// A small trail: created, a signature, submitted, assigned, a signed approval.
fn trail() -> Vec<Record> {
    let mut e = Engine::new().with_verifier(Arc::new(
        TableVerifier::new().accept("bob", "password", "pw"),
    ));
    let wf = e.register(template("basic.yaml"));
    let t = |s: &str| FixedClock(s.parse::<Timestamp>().unwrap());
    let cmd = |by: &str, action| Command {
        by: by.into(),
        on_behalf_of: None,
        comment: Some(format!("by {by}")),
        action,
    };
    e.create(
        "d",
        wf.hash(),
        &cmd(
            "alice",
            Action::Create {
                title: "T".into(),
                content_hash: "h1".into(),
                page_owner: None,
                space_admins: vec![],
            },
        ),
        &t("2026-01-01T00:00:00Z"),
    )
    .unwrap();
    let signature = SignatureInput {
        name: "Bob B".into(),
        meaning: Meaning::Approval,
        auth: Some(AuthInput {
            method: "password".into(),
            reference: None,
            credential: Some("pw".into()),
        }),
    };
    for (by, action) in [
        ("alice", Action::Submit),
        (
            "bob",
            Action::Approve {
                version: 1,
                signature: Some(signature),
            },
        ),
    ] {
        e.execute("d", &cmd(by, action), &t("2026-01-02T00:00:00Z"))
            .unwrap();
    }
    e.doc("d").unwrap().records.clone()
}

/// Applies `tamper` to a fresh trail and compares what `verify` says.
fn check(tamper: impl Fn(&mut Vec<Record>), expect: &str) {
    let mut records = trail();
    audit::verify(&records).unwrap();
    tamper(&mut records);
    let got = match audit::verify(&records) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expect);
}

const ALTERED: &str = "its content does not match its hash (the record was edited)";

#[test]
fn an_untouched_trail_verifies() {
    let records = trail();
    assert_eq!(records.len(), 8);
    audit::verify_head(&records, &records[7].hash).unwrap();
}

#[test]
fn editing_a_comment() {
    check(
        |r| r[4].comment = Some("nothing to see".into()),
        &format!("record 4 (seq 4): {ALTERED}"),
    );
}

#[test]
fn editing_the_actor_or_the_time() {
    check(
        |r| r[5].actor = "mallory".into(),
        &format!("record 5 (seq 5): {ALTERED}"),
    );
    check(
        |r| r[1].at = Timestamp(0),
        &format!("record 1 (seq 1): {ALTERED}"),
    );
}

#[test]
fn editing_a_signature_meaning() {
    check(
        |r| {
            let s = r[4].signature.as_mut().unwrap();
            s.meaning = Meaning::Review;
        },
        &format!("record 4 (seq 4): {ALTERED}"),
    );
}

#[test]
fn editing_the_event_itself() {
    check(
        |r| r[0].event = r[1].event.clone(),
        &format!("record 0 (seq 0): {ALTERED}"),
    );
}

#[test]
fn editing_and_rehashing_one_record_breaks_the_next_link() {
    check(
        |r| {
            r[2].comment = Some("forged".into());
            r[2].hash = audit::record_hash(&r[2]);
        },
        "record 3 (seq 3): it does not follow the record before it (a record was removed, inserted or moved)",
    );
}

#[test]
fn deleting_a_record() {
    check(
        |r| {
            r.remove(3);
        },
        "record 3 (seq 4): it should be number 3 of the stream (a record was removed, inserted or moved)",
    );
}

#[test]
fn inserting_a_forged_record() {
    check(
        |r| {
            let mut forged = r[4].clone();
            forged.actor = "mallory".into();
            forged.hash = audit::record_hash(&forged);
            r.insert(5, forged);
        },
        "record 5 (seq 4): it should be number 5 of the stream (a record was removed, inserted or moved)",
    );
}

#[test]
fn reordering_two_records() {
    check(
        |r| r.swap(2, 3),
        "record 2 (seq 3): it should be number 2 of the stream (a record was removed, inserted or moved)",
    );
}

#[test]
fn renumbering_after_a_deletion_still_breaks_the_chain() {
    check(
        |r| {
            r.remove(2);
            for (i, rec) in r.iter_mut().enumerate().skip(2) {
                rec.seq = i as u64;
                rec.hash = audit::record_hash(rec);
            }
        },
        "record 2 (seq 2): it does not follow the record before it (a record was removed, inserted or moved)",
    );
}

#[test]
fn splicing_in_another_documents_record() {
    check(
        |r| r[3].doc = "other".into(),
        "record 3 (seq 3): it belongs to document \"other\", not \"d\"",
    );
}

#[test]
fn truncation_and_full_rewrites_need_the_head() {
    let records = trail();
    let head = records.last().unwrap().hash.clone();
    // Dropping the last records leaves a valid chain; only the head kept apart shows it.
    let short = &records[..6];
    audit::verify(short).unwrap();
    let err = audit::verify_head(short, &head).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("record 5 (seq 5): the stream ends with"),
        "{err}"
    );
    // Rewriting the whole chain from an edit onwards: same.
    let mut rewritten = records.clone();
    rewritten[1].comment = None;
    for i in 1..rewritten.len() {
        rewritten[i].prev_hash = rewritten[i - 1].hash.clone();
        rewritten[i].hash = audit::record_hash(&rewritten[i]);
    }
    audit::verify(&rewritten).unwrap();
    assert!(audit::verify_head(&rewritten, &head).is_err());
}

#[test]
fn exports() {
    let records = trail();
    let jsonl = audit::to_jsonl(&records);
    let back: Vec<Record> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, records);
    audit::verify(&back).unwrap();
    insta::assert_snapshot!("trail_csv", audit::to_csv(&records));
    insta::assert_snapshot!("manifestation", audit::manifestation(&records, 1));
    insta::assert_snapshot!("manifestation_none", audit::manifestation(&records[..1], 1));
}

#[test]
fn csv_quotes_what_needs_quoting() {
    let mut records = trail();
    records[0].comment = Some("a, \"b\"\nc".into());
    let csv = audit::to_csv(&records[..1]);
    assert!(csv.contains(",\"a, \"\"b\"\"\nc\","), "{csv}");
}
