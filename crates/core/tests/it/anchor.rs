//! Signed anchors and self-verifying exports: every kind of tampering is named at its
//! document and record, a rehashed chain included; forged or edited anchors and wrong keys
//! are refused; bad input is a typed error.

use std::collections::BTreeMap;

use signoff_core::anchor::{
    Anchor, AnchorError, AnchoredDoc, DocStatus, KeyError, PublicKey, SecretKey,
};
use signoff_core::audit::{self, AnchorOutcome, ExportError, ExportInfo};
use signoff_core::event::Action;
use signoff_core::{Command, Engine, FixedClock, Record, Timestamp};

use crate::template;

type Streams = BTreeMap<String, Vec<Record>>;

/// Two documents: `a` (created only, 1 record) and `d` (created, submitted, approved: 8).
fn store() -> Streams {
    let mut e = Engine::new();
    let wf = e.register(template("basic.yaml"));
    let t = FixedClock("2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let cmd = |by: &str, action| Command {
        by: by.into(),
        on_behalf_of: None,
        comment: Some(format!("by {by}")),
        action,
    };
    let create = || Action::Create {
        title: "T".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    };
    for id in ["a", "d"] {
        e.create(id, wf.hash(), &cmd("alice", create()), &t)
            .unwrap();
    }
    e.execute("d", &cmd("alice", Action::Submit), &t).unwrap();
    let approve = Action::Approve {
        version: 1,
        signature: None,
    };
    e.execute("d", &cmd("bob", approve), &t).unwrap();
    ["a", "d"]
        .into_iter()
        .map(|id| (id.to_owned(), e.doc(id).unwrap().records.clone()))
        .collect()
}

fn key() -> SecretKey {
    SecretKey::from_bytes(&[7; 32])
}

fn at() -> Timestamp {
    "2026-01-03T00:00:00Z".parse().unwrap()
}

fn anchor_of(streams: &Streams) -> Anchor {
    let docs = streams
        .iter()
        .map(|(id, rs)| AnchoredDoc::of(id, rs).unwrap())
        .collect();
    Anchor::sign(&key(), at(), docs).unwrap()
}

/// Anchors a fresh store, applies `tamper`, and compares the first failure (or "ok").
fn check(tamper: impl Fn(&mut Streams), expect: &str) {
    let mut streams = store();
    let anchor = Anchor::parse(&anchor_of(&streams).to_json()).unwrap();
    tamper(&mut streams);
    let verified = anchor.verify(Some(&key().public_key())).unwrap();
    assert!(verified.trusted());
    let report = verified.check(streams.iter().map(|(d, r)| (d.as_str(), r.as_slice())));
    let got = report
        .first_failure()
        .map_or("ok".to_owned(), ToString::to_string);
    assert_eq!(got, expect);
    assert_eq!(report.is_ok(), expect == "ok");
}

fn d(s: &mut Streams) -> &mut Vec<Record> {
    s.get_mut("d").unwrap()
}

const NOT_ANCHORED: &str = "it is not the anchored record";
const MOVED: &str = "(a record was removed, inserted or moved)";

#[test]
fn an_untouched_store_verifies() {
    check(|_| {}, "ok");
}

#[test]
fn editing_a_record() {
    check(
        |s| d(s)[4].comment = Some("nothing to see".into()),
        &format!(
            "d: record 4 (seq 4): {NOT_ANCHORED}: its content does not match its hash (the record was edited)"
        ),
    );
}

#[test]
fn deleting_a_record() {
    check(
        |s| {
            d(s).remove(3);
        },
        &format!(
            "d: record 3 (seq 4): {NOT_ANCHORED}: it should be number 3 of the stream {MOVED}"
        ),
    );
}

#[test]
fn inserting_a_record() {
    check(
        |s| {
            let mut forged = d(s)[4].clone();
            forged.actor = "mallory".into();
            forged.hash = audit::record_hash(&forged);
            d(s).insert(5, forged);
        },
        &format!(
            "d: record 5 (seq 4): {NOT_ANCHORED}: it should be number 5 of the stream {MOVED}"
        ),
    );
}

#[test]
fn reordering_two_records() {
    check(
        |s| d(s).swap(2, 3),
        &format!(
            "d: record 2 (seq 3): {NOT_ANCHORED}: it should be number 2 of the stream {MOVED}"
        ),
    );
}

#[test]
fn deleting_the_last_record() {
    check(
        |s| {
            d(s).pop();
        },
        "d: record 7: missing: the anchor covers 8 records, the stream has 7 (records were removed from the end)",
    );
}

#[test]
fn rehashing_the_whole_chain_after_an_edit_is_caught_at_the_edit() {
    check(
        |s| {
            let r = d(s);
            r[1].comment = None;
            for i in 1..r.len() {
                r[i].prev_hash = r[i - 1].hash.clone();
                r[i].hash = audit::record_hash(&r[i]);
            }
            // The chain alone cannot see it.
            audit::verify(r).unwrap();
        },
        &format!(
            "d: record 1 (seq 1): {NOT_ANCHORED}, and the chain was rehashed to hide it (only the anchor shows this)"
        ),
    );
}

#[test]
fn a_stored_hash_edited_over_an_unchanged_record() {
    check(
        |s| d(s)[6].hash = "0".repeat(64),
        "d: record 6 (seq 6): its content does not match its hash (the record was edited)",
    );
}

#[test]
fn a_document_removed_is_named() {
    check(
        |s| {
            s.remove("a");
        },
        "a: the document is missing: the anchor covers 1 of its records",
    );
}

#[test]
fn documents_and_records_added_after_the_anchor_are_fine_and_reported() {
    let mut streams = store();
    let anchor = anchor_of(&streams);
    let extra = streams["a"]
        .iter()
        .map(|r| Record {
            doc: "b".into(),
            ..r.clone()
        })
        .map(|mut r| {
            r.hash = audit::record_hash(&r);
            r
        })
        .collect();
    streams.insert("b".into(), extra);
    // A record appended to `a` after the anchor: the chain protects it, not the anchor.
    let mut next = streams["a"][0].clone();
    next.seq = 1;
    next.prev_hash = next.hash.clone();
    next.hash = audit::record_hash(&next);
    streams.get_mut("a").unwrap().push(next);
    let report = anchor
        .verify(None)
        .unwrap()
        .check(streams.iter().map(|(d, r)| (d.as_str(), r.as_slice())));
    assert!(report.is_ok(), "{report:?}");
    let lines: Vec<String> = report.documents.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "a: 1 anchored records unchanged, 1 recorded since, chain verifies",
            "b: not covered by the anchor (added after it): 1 records, chain verifies",
            "d: 8 anchored records unchanged, 0 recorded since, chain verifies",
        ]
    );
    // A broken chain after the anchor is still named.
    streams.get_mut("a").unwrap()[1].actor = "mallory".into();
    let report = anchor
        .verify(None)
        .unwrap()
        .check(streams.iter().map(|(d, r)| (d.as_str(), r.as_slice())));
    assert_eq!(
        report.first_failure().unwrap().to_string(),
        "a: record 1 (seq 1): its content does not match its hash (the record was edited)"
    );
}

#[test]
fn a_wrong_key_is_refused_and_names_both_keys() {
    let anchor = anchor_of(&store());
    let other = SecretKey::from_bytes(&[9; 32]).public_key();
    let err = anchor.verify(Some(&other)).unwrap_err();
    assert_eq!(
        err,
        AnchorError::UntrustedKey {
            trusted: other,
            found: key().public_key()
        }
    );
    assert!(err.to_string().contains(&other.to_hex()), "{err}");
    // Without a trusted key, the key inside the file verifies it, and says so.
    let v = anchor.verify(None).unwrap();
    assert!(!v.trusted());
    assert_eq!(v.key(), key().public_key());
}

#[test]
fn a_forged_or_edited_anchor_file_is_refused() {
    let streams = store();
    let json = anchor_of(&streams).to_json();
    let trusted = key().public_key();
    let verify = |text: &str| {
        Anchor::parse(text)
            .unwrap()
            .verify(Some(&trusted))
            .map(|_| ())
    };
    // Moving the checkpoint's time, or pretending a record was never there.
    let edited = json.replace("2026-01-03T00:00:00Z", "2027-01-03T00:00:00Z");
    assert_eq!(verify(&edited), Err(AnchorError::DigestMismatch));
    // Rewriting the hashes and the digest to match a rewritten store: the signature fails.
    let mut rewritten = streams.clone();
    rewritten.get_mut("d").unwrap()[1].comment = None;
    let r = rewritten.get_mut("d").unwrap();
    for i in 1..r.len() {
        r[i].prev_hash = r[i - 1].hash.clone();
        r[i].hash = audit::record_hash(&r[i]);
    }
    let mallory = SecretKey::from_bytes(&[66; 32]);
    let docs = rewritten
        .iter()
        .map(|(id, rs)| AnchoredDoc::of(id, rs).unwrap())
        .collect();
    let forged = Anchor::sign(&mallory, at(), docs).unwrap().to_json();
    let original: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut spliced: serde_json::Value = serde_json::from_str(&forged).unwrap();
    spliced["public_key"] = original["public_key"].clone();
    spliced["signature"] = original["signature"].clone();
    assert_eq!(
        verify(&spliced.to_string()),
        Err(AnchorError::BadSignature { key: trusted })
    );
    // Signed by another key altogether: named as such.
    assert_eq!(
        verify(&forged),
        Err(AnchorError::UntrustedKey {
            trusted,
            found: mallory.public_key()
        })
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let parse = |t: &str| Anchor::parse(t).unwrap_err();
    assert!(matches!(parse("hello"), AnchorError::NotAnAnchor(_)));
    assert!(matches!(parse(""), AnchorError::NotAnAnchor(_)));
    let good: serde_json::Value = serde_json::from_str(&anchor_of(&store()).to_json()).unwrap();
    let with = |field: &str, v: serde_json::Value| {
        let mut x = good.clone();
        x[field] = v;
        parse(&x.to_string())
    };
    assert_eq!(
        with("format", "signoff-anchor/9".into()),
        AnchorError::UnknownFormat {
            found: "signoff-anchor/9".into()
        }
    );
    assert_eq!(
        with("public_key", "abcd".into()),
        AnchorError::Key(KeyError::WrongLength { found: 4 })
    );
    assert!(matches!(
        with("signature", "00".into()),
        AnchorError::Malformed(_)
    ));
    let mut x = good.clone();
    x["documents"][1]["records"] = 3.into();
    assert_eq!(
        parse(&x.to_string()).to_string(),
        "malformed anchor: document \"d\": it says 3 records but lists 8 hashes"
    );
    let mut x = good.clone();
    x["documents"][0]["hashes"][0] = "+".repeat(64).into();
    assert!(matches!(parse(&x.to_string()), AnchorError::Malformed(_)));

    assert_eq!(
        PublicKey::parse_hex("12"),
        Err(KeyError::WrongLength { found: 2 })
    );
    assert_eq!(
        SecretKey::parse_hex(&"zz".repeat(32)).unwrap_err(),
        KeyError::NotHex
    );
    // The secret never shows in Debug output.
    let k = key();
    assert!(!format!("{k:?}").contains(&k.to_hex()));
    assert_eq!(
        SecretKey::parse_hex(&k.to_hex()).unwrap().public_key(),
        k.public_key()
    );
}

#[test]
fn anchoring_a_damaged_chain_is_refused() {
    let mut streams = store();
    d(&mut streams)[2].actor = "mallory".into();
    let err = AnchoredDoc::of("d", &streams["d"]).unwrap_err();
    assert_eq!(err.index, 2);
}

// Exports.

/// Exports a fresh store (with an anchor when `anchored`), applies `tamper` to the text's
/// lines, and compares the first finding (or "ok").
fn check_export(anchored: bool, tamper: impl Fn(&mut Vec<String>), expect: &str) {
    let streams = store();
    let anchor = anchor_of(&streams);
    let text = audit::to_export(
        streams.values().map(Vec::as_slice),
        ExportInfo {
            exported_at: at(),
            whole_store: true,
            anchor: anchored.then_some(&anchor),
        },
    );
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    tamper(&mut lines);
    let trusted = key().public_key();
    let report = audit::verify_export(&lines.join("\n"), anchored.then_some(&trusted)).unwrap();
    let got = report
        .findings
        .first()
        .map_or("ok".to_owned(), ToString::to_string);
    assert_eq!(got, expect);
    if anchored && expect == "ok" {
        assert!(matches!(
            report.anchor,
            Some(AnchorOutcome::Verified { trusted: true, .. })
        ));
    }
}

/// Line numbers: 1 header, 2 `a`'s record, 3..=10 `d`'s records 0..=7, 11 trailer.
fn line_of_d(seq: usize) -> usize {
    seq + 3
}

fn edit_comment(lines: &mut [String], line: usize) {
    lines[line - 1] = lines[line - 1].replace("\"by bob\"", "\"by eve\"");
}

#[test]
fn an_untouched_export_verifies_with_and_without_an_anchor() {
    check_export(true, |_| {}, "ok");
    check_export(false, |_| {}, "ok");
}

#[test]
fn export_editing_a_record() {
    let l = line_of_d(4);
    let expect = format!(
        "line {l}: d: record 4 (seq 4): {NOT_ANCHORED}: its content does not match its hash (the record was edited)"
    );
    check_export(true, |ls| edit_comment(ls, l), &expect);
    check_export(
        false,
        |ls| edit_comment(ls, l),
        &format!(
            "line {l}: d: record 4 (seq 4): its content does not match its hash (the record was edited)"
        ),
    );
}

#[test]
fn export_deleting_inserting_and_reordering() {
    let l3 = line_of_d(3);
    check_export(
        true,
        |ls| {
            ls.remove(l3 - 1);
        },
        &format!(
            "line {l3}: d: record 3 (seq 4): {NOT_ANCHORED}: it should be number 3 of the stream {MOVED}"
        ),
    );
    check_export(
        false,
        |ls| {
            ls.remove(l3 - 1);
        },
        &format!("line {l3}: d: record 3 (seq 4): it should be number 3 of the stream {MOVED}"),
    );
    check_export(
        false,
        |ls| {
            let copy = ls[l3 - 1].clone();
            ls.insert(l3, copy);
        },
        &format!(
            "line {}: d: record 4 (seq 3): it should be number 4 of the stream {MOVED}",
            l3 + 1
        ),
    );
    check_export(
        true,
        |ls| ls.swap(line_of_d(2) - 1, l3 - 1),
        &format!(
            "line {}: d: record 2 (seq 3): {NOT_ANCHORED}: it should be number 2 of the stream {MOVED}",
            line_of_d(2)
        ),
    );
}

#[test]
fn export_deleting_the_last_record() {
    let last = line_of_d(7);
    check_export(
        true,
        |ls| {
            ls.remove(last - 1);
        },
        "d: record 7: missing: the anchor covers 8 records, the stream has 7 (records were removed from the end)",
    );
    // Without an anchor the trailer sees it (it is not signed: it stops accidents only).
    check_export(
        false,
        |ls| {
            ls.remove(last - 1);
        },
        "d: record 7 is missing: the trailer lists 8 records (records were removed from the end)",
    );
}

#[test]
fn export_rehashed_after_an_edit_is_caught_by_the_anchor() {
    check_export(
        true,
        |ls| {
            let start = line_of_d(0) - 1;
            let mut rs: Vec<Record> = ls[start..start + 8]
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            rs[1].comment = Some("forged".into());
            for i in 1..rs.len() {
                rs[i].prev_hash = rs[i - 1].hash.clone();
                rs[i].hash = audit::record_hash(&rs[i]);
            }
            for (i, r) in rs.iter().enumerate() {
                ls[start + i] = serde_json::to_string(r).unwrap();
            }
            // The forger rewrites the trailer's head too.
            let n = ls.len();
            ls[n - 1] = ls[n - 1].replace(&ls_head(ls), &rs[7].hash);
        },
        &format!(
            "line {}: d: record 1 (seq 1): {NOT_ANCHORED}, and the chain was rehashed to hide it (only the anchor shows this)",
            line_of_d(1)
        ),
    );
}

fn ls_head(ls: &[String]) -> String {
    let t: serde_json::Value = serde_json::from_str(ls.last().unwrap()).unwrap();
    t["signoff_export_end"]["documents"][1]["head"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn export_a_document_removed_a_cut_file_and_a_wrong_key() {
    check_export(
        true,
        |ls| {
            ls.remove(1);
        },
        "a: the document is missing: the anchor covers 1 of its records",
    );
    check_export(
        false,
        |ls| {
            ls.pop();
        },
        "the export has no trailer line: it was cut short",
    );
    let streams = store();
    let text = audit::to_export(
        streams.values().map(Vec::as_slice),
        ExportInfo {
            exported_at: at(),
            whole_store: true,
            anchor: Some(&anchor_of(&streams)),
        },
    );
    let other = SecretKey::from_bytes(&[1; 32]).public_key();
    let report = audit::verify_export(&text, Some(&other)).unwrap();
    assert!(
        report.findings[0]
            .to_string()
            .starts_with("line 1: the anchor does not verify: the anchor was signed by key"),
        "{:?}",
        report.findings
    );
}

#[test]
fn unreadable_exports_are_typed_errors() {
    assert!(matches!(
        audit::verify_export("", None),
        Err(ExportError::NotAnExport(_))
    ));
    assert!(matches!(
        audit::verify_export("{\"seq\": 1}\n", None),
        Err(ExportError::NotAnExport(_))
    ));
    let streams = store();
    let text = audit::to_export(
        streams.values().map(Vec::as_slice),
        ExportInfo {
            exported_at: at(),
            whole_store: true,
            anchor: None,
        },
    );
    let broken = text.replacen("{\"doc\"", "{\"dock\"", 1);
    assert!(matches!(
        audit::verify_export(&broken, None),
        Err(ExportError::BadLine { line: 2, .. })
    ));
}

#[test]
fn csv_neutralises_formulas() {
    let mut streams = store();
    let r = &mut d(&mut streams)[4];
    for (comment, cell) in [
        (
            "=HYPERLINK(\"http://x\")",
            "\"'=HYPERLINK(\"\"http://x\"\")\"",
        ),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "\"'\rx\""),
        ("fine = ok", "fine = ok"),
    ] {
        r.comment = Some(comment.into());
        let csv = audit::to_csv(std::slice::from_ref(r));
        let row = csv.lines().nth(1).unwrap_or_default().to_owned();
        let full = csv.split_once('\n').unwrap().1;
        assert!(full.contains(&format!(",{cell},")), "{comment:?}: {row}");
    }
}

#[test]
fn status_display() {
    let s = DocStatus::Removed { anchored: 3 };
    assert_eq!(
        s.to_string(),
        "the document is missing: the anchor covers 3 of its records"
    );
}
