//! What makes a call fast without making it less right: the document's state from the
//! snapshot in its stream's head (used only when it is the state at the head; anything else
//! is replayed), and the workflow from its compiled form (used only when it compiles to the
//! hash documents pin).

use serde_json::{Value, json};
use signoff_storage::hosted::{KeyPolicy, Kvs};

use crate::app::submitted;
use crate::fake::World;

const HEAD: &str = "signoff:h:page-1";

fn value(w: &World, key: &str) -> String {
    w.kvs
        .get(key)
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is not stored"))
}

fn put(w: &World, key: &str, value: &str) {
    w.kvs.set(key, value, KeyPolicy::Overwrite).unwrap();
}

fn logged(w: &World, text: &str) -> bool {
    w.platform.logs.borrow().iter().any(|l| l.contains(text))
}

#[test]
fn calls_read_the_state_from_the_head_and_the_audit_views_still_read_the_stream() {
    let w = submitted();
    let head: Value = serde_json::from_str(&value(&w, HEAD)).unwrap();
    let snap: Value = serde_json::from_str(head["snap"].as_str().unwrap()).unwrap();
    assert_eq!(snap["format"], 1);
    assert_eq!(snap["state"]["seq"], head["len"]);
    assert_eq!(snap["state"]["head"], head["last"]);
    // Take the stream's records away: a decision still works from the snapshot alone...
    let appends: Vec<String> = w
        .kvs
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("signoff:a:page-1:"))
        .collect();
    let saved: Vec<(String, String)> = appends.iter().map(|k| (k.clone(), value(&w, k))).collect();
    for k in &appends {
        w.kvs.delete(k).unwrap();
    }
    let s = w
        .call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    assert_eq!(s["state"], "in_review");
    // ... while the audit views read (and here miss) the records.
    let e = w.refused("status", json!({"pageId": "1"}));
    assert_eq!(e.code, "STORAGE_ERROR", "{e:?}");
    for (k, v) in &saved {
        put(&w, k, v);
    }
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(s["verified"], true);
    assert!(!logged(&w, "snapshot not used"));
}

#[test]
fn a_snapshot_that_is_not_the_state_at_the_head_is_ignored_and_the_stream_replayed() {
    let w = submitted();
    let stale: Value = serde_json::from_str(&value(&w, HEAD)).unwrap();
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    // The head after bob's approval, with the snapshot from before it (its checksum holds).
    let mut head: Value = serde_json::from_str(&value(&w, HEAD)).unwrap();
    head["snap"] = stale["snap"].clone();
    head["snap_sha"] = stale["snap_sha"].clone();
    put(&w, HEAD, &head.to_string());
    // From the stale state carol's approval would not be the last one needed.
    let s = w
        .call("approve", json!({"accountId": "carol", "pageId": "1"}))
        .unwrap();
    assert_eq!(s["state"], "approved");
    assert!(logged(
        &w,
        "snapshot not used: it is not the state at the head"
    ));
    let h = w.call("history", json!({"pageId": "1"})).unwrap();
    assert_eq!(h["verified"], true);
}

#[test]
fn a_corrupted_snapshot_is_detected_and_the_stream_replayed() {
    let w = submitted();
    // The document back in draft, as far as the snapshot says: its checksum no longer holds.
    let head = value(&w, HEAD);
    let tampered = head.replace(r#"\"state\":1"#, r#"\"state\":0"#);
    assert_ne!(tampered, head);
    put(&w, HEAD, &tampered);
    let s = w
        .call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();
    assert_eq!(s["state"], "in_review");
    assert!(logged(&w, "snapshot not used: its checksum does not hold"));
    // A head without a snapshot (written by an older version) is replayed without a word.
    let mut plain: Value = serde_json::from_str(&value(&w, HEAD)).unwrap();
    let obj = plain.as_object_mut().unwrap();
    obj.remove("snap");
    obj.remove("snap_sha");
    put(&w, HEAD, &plain.to_string());
    w.platform.logs.borrow_mut().clear();
    let s = w
        .call("approve", json!({"accountId": "carol", "pageId": "1"}))
        .unwrap();
    assert_eq!(s["state"], "approved");
    assert!(!logged(&w, "snapshot not used"));
    assert!(
        value(&w, HEAD).contains("snap_sha"),
        "the next commit leaves one"
    );
}

#[test]
fn the_compiled_workflow_is_used_only_when_it_compiles_to_its_hash() {
    let w = submitted();
    let (key, _) = w
        .kvs
        .entries()
        .into_iter()
        .find(|(k, _)| k.starts_with("app:workflow:"))
        .unwrap();
    let stored: Value = serde_json::from_str(&value(&w, &key)).unwrap();
    let compiled = stored["compiled"].as_str().unwrap().to_owned();
    assert!(
        compiled.starts_with(r#"{"name":"two-reviewers""#),
        "{compiled}"
    );

    // A source that no longer parses is not read while the compiled form holds.
    put(
        &w,
        &key,
        &json!({"source": "not: [yaml", "compiled": compiled}).to_string(),
    );
    w.call("approve", json!({"accountId": "bob", "pageId": "1"}))
        .unwrap();

    // A compiled form that does not compile to the pinned hash is not used: the source is.
    let source = stored["source"].as_str().unwrap();
    let forged = compiled.replace(r#""rule":"all""#, r#""rule":"any""#);
    assert_ne!(forged, compiled);
    put(
        &w,
        &key,
        &json!({"source": source, "compiled": forged}).to_string(),
    );
    w.platform.logs.borrow_mut().clear();
    let s = w.call("status", json!({"pageId": "1"})).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["verified"].as_bool()),
        (Some("in_review"), Some(true))
    );
    assert!(logged(&w, "compiled workflow not used"));

    // A record from before the compiled form gets it on its first load.
    put(&w, &key, &json!({"source": source}).to_string());
    w.call("status", json!({"pageId": "1"})).unwrap();
    let completed: Value = serde_json::from_str(&value(&w, &key)).unwrap();
    assert_eq!(completed["compiled"].as_str(), Some(compiled.as_str()));
}
