//! The hosted store's rules: keys, values, TTL, key policy, queries with cursors,
//! transactions, batches, secrets, isolation, realms, rate limits and faults.

use proptest::prelude::*;
use serde_json::{Value, json};
use signoff_sim::kvs::{Kvs, KvsErrorCode, KvsLimits, KvsStorage, Scope, SetOptions, TxOp};
use signoff_sim::{Millis, Realm};

const T0: Millis = Millis(1_767_225_600_000);

fn scope(installation: &str) -> Scope {
    Scope {
        app: "approvals".into(),
        environment: "production".into(),
        installation: installation.into(),
    }
}

/// A store with installation `site-a` pinned to the EU.
fn store() -> (Kvs, Scope) {
    let mut kvs = Kvs::new(KvsLimits::forge());
    let s = scope("site-a");
    kvs.install(s.clone(), Realm::Eu);
    (kvs, s)
}

/// Sets `key` to `value` and expects the given error code (or success).
fn check_set(key: &str, value: Value, expect: Option<KvsErrorCode>) {
    let (mut kvs, s) = store();
    let got = kvs.set(&s, Realm::Eu, T0, key, value, SetOptions::default());
    assert_eq!(got.as_ref().err().map(|e| e.code), expect, "{key}: {got:?}");
    if expect.is_some() {
        assert!(
            kvs.inspect(&s).unwrap().is_empty(),
            "a refused set changed nothing"
        );
    }
}

#[test]
fn key_rules() {
    check_set("ok", json!(1), None);
    check_set("a", json!(1), Some(KvsErrorCode::KeyTooShort));
    check_set("", json!(1), Some(KvsErrorCode::KeyTooShort));
    check_set(&"k".repeat(500), json!(1), None);
    check_set(&"k".repeat(501), json!(1), Some(KvsErrorCode::KeyTooLong));
    check_set("doc:1#v.2 _-x", json!(1), None);
    check_set("doc/1", json!(1), Some(KvsErrorCode::InvalidKey));
    check_set("doc\u{1f}1", json!(1), Some(KvsErrorCode::InvalidKey));
    check_set("   ", json!(1), Some(KvsErrorCode::InvalidKey));
}

#[test]
fn value_rules() {
    let big = "x".repeat(240 * 1024 - 2);
    check_set("big", json!(big), None);
    check_set("big", json!(format!("{big}x")), Some(KvsErrorCode::MaxSize));
    let nest = |n: usize| (1..n).fold(json!(0), |v, _| json!([v]));
    check_set("deep", nest(31), None);
    check_set("deep", nest(32), Some(KvsErrorCode::ValueTooDeep));
    // The same limits on values given as text (what apps send), which are checked without
    // being built; near the nesting limit a scalar inside the deepest bracket counts.
    let text_nest = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
    for (text, expect) in [
        (text_nest(30, "0"), None),
        (text_nest(31, ""), None),
        (text_nest(31, "0"), Some(KvsErrorCode::ValueTooDeep)),
        (text_nest(31, r#""[[[""#), Some(KvsErrorCode::ValueTooDeep)),
        (text_nest(32, ""), Some(KvsErrorCode::ValueTooDeep)),
        (format!("{:?}", "x".repeat(240 * 1024 - 2)), None),
        (
            format!("{:?}", "x".repeat(240 * 1024 - 1)),
            Some(KvsErrorCode::MaxSize),
        ),
        (r#"{"a": [1, "]]]"]}"#.to_string(), None),
        ("{\"a\":".to_string(), Some(KvsErrorCode::InvalidValue)),
        ("not json".to_string(), Some(KvsErrorCode::InvalidValue)),
        ("1 2".to_string(), Some(KvsErrorCode::InvalidValue)),
        // Every token is checked, not only the syntax: a lone surrogate (in a value or a
        // key) and a number out of range would make the value unreadable.
        (r#""\ud800""#.to_string(), Some(KvsErrorCode::InvalidValue)),
        (
            r#"{"a\udc00": 1}"#.to_string(),
            Some(KvsErrorCode::InvalidValue),
        ),
        ("1e400".to_string(), Some(KvsErrorCode::InvalidValue)),
        (
            format!("[1{}]", "0".repeat(400)),
            Some(KvsErrorCode::InvalidValue),
        ),
        (format!("[1{}]", "0".repeat(299)), None),
        ("[1.5e3, -2E-7]".to_string(), None),
        (
            format!("[{}, 1e400]", text_nest(30, "")),
            Some(KvsErrorCode::InvalidValue),
        ),
        (r#""\ud83d\ude00""#.to_string(), None),
        // Deeper than a parser follows: too deep, not malformed.
        (text_nest(200, ""), Some(KvsErrorCode::ValueTooDeep)),
        ("".to_string(), Some(KvsErrorCode::InvalidValue)),
    ] {
        let (mut kvs, s) = store();
        let got = kvs.set_text(&s, Realm::Eu, T0, "t1", &text, SetOptions::default());
        let shown = &text[..text.len().min(60)];
        assert_eq!(
            got.as_ref().err().map(|e| e.code),
            expect,
            "{shown}: {got:?}"
        );
        let tx = kvs.transact(
            &s,
            Realm::Eu,
            T0,
            vec![TxOp::SetText {
                key: "t2".into(),
                text: text.clone(),
                options: SetOptions::default(),
            }],
        );
        assert_eq!(tx.as_ref().err().map(|e| e.code), expect, "{shown}: {tx:?}");
        if expect.is_some() {
            assert!(
                kvs.inspect(&s).unwrap().is_empty(),
                "{shown}: refused, changed nothing"
            );
        }
    }
}

#[test]
fn values_as_text_come_back_as_set() {
    let (mut kvs, s) = store();
    // Stored as given (key order and all), surrounding white space aside.
    let text = r#"{"z":1,"a":{"k":[true,null,"\u00e9"]},"m":1.50}"#;
    kvs.set_text(
        &s,
        Realm::Eu,
        T0,
        "doc",
        &format!("  {text}\n"),
        SetOptions::default(),
    )
    .unwrap();
    assert_eq!(
        kvs.get_text(&s, Realm::Eu, T0, "doc").unwrap().as_deref(),
        Some(text)
    );
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0, "doc").unwrap(),
        Some(serde_json::from_str::<Value>(text).unwrap())
    );
    let page = kvs.query_text(&s, Realm::Eu, T0, "do", None, None).unwrap();
    assert_eq!(page.results, vec![("doc".to_string(), text.to_string())]);
    // A value set as JSON reads back as its compact text.
    kvs.set(
        &s,
        Realm::Eu,
        T0,
        "n1",
        json!({"b": [1, 2]}),
        SetOptions::default(),
    )
    .unwrap();
    assert_eq!(
        kvs.get_text(&s, Realm::Eu, T0, "n1").unwrap().as_deref(),
        Some(r#"{"b":[1,2]}"#)
    );
    // Batches and secrets take text through the same checks.
    let results = kvs
        .batch_set_text(
            &s,
            Realm::Eu,
            T0,
            vec![
                ("b1".into(), " [1, 2] ".into()),
                ("b2".into(), "[1,".into()),
                ("b3".into(), r#""\ud800""#.into()),
            ],
        )
        .unwrap();
    let codes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(KvsErrorCode::InvalidValue),
            Some(KvsErrorCode::InvalidValue)
        ]
    );
    assert_eq!(
        kvs.get_text(&s, Realm::Eu, T0, "b1").unwrap().as_deref(),
        Some("[1, 2]")
    );
    assert_eq!(kvs.get_text(&s, Realm::Eu, T0, "b2").unwrap(), None);
    kvs.set_secret_text(&s, Realm::Eu, T0, "token", r#"{"t": "x"}"#)
        .unwrap();
    assert_eq!(
        kvs.get_secret_text(&s, Realm::Eu, T0, "token")
            .unwrap()
            .as_deref(),
        Some(r#"{"t": "x"}"#)
    );
    let e = kvs
        .set_secret_text(&s, Realm::Eu, T0, "token", "{")
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::InvalidValue);
    // Expiry applies to text reads too.
    let ttl = SetOptions {
        ttl_ms: Some(1_000),
        ..SetOptions::default()
    };
    kvs.set_text(&s, Realm::Eu, T0, "lease", "\"me\"", ttl)
        .unwrap();
    assert_eq!(
        kvs.get_text(&s, Realm::Eu, T0.plus(999), "lease")
            .unwrap()
            .as_deref(),
        Some("\"me\"")
    );
    assert_eq!(
        kvs.get_text(&s, Realm::Eu, T0.plus(1_000), "lease")
            .unwrap(),
        None
    );
}

#[test]
fn ttl_and_key_policy() {
    let (mut kvs, s) = store();
    let ttl = SetOptions {
        ttl_ms: Some(60_000),
        ..SetOptions::default()
    };
    kvs.set(&s, Realm::Eu, T0, "lease", json!("me"), ttl)
        .unwrap();
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0.plus(59_999), "lease").unwrap(),
        Some(json!("me"))
    );
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0.plus(60_000), "lease").unwrap(),
        None
    );
    let year_and_a_day = SetOptions {
        ttl_ms: Some(366 * Millis::DAY),
        ..SetOptions::default()
    };
    let e = kvs
        .set(&s, Realm::Eu, T0, "x1", json!(1), year_and_a_day)
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::InvalidTtl);
    let once = SetOptions {
        fail_if_exists: true,
        ..SetOptions::default()
    };
    kvs.set(&s, Realm::Eu, T0, "lock", json!(1), once).unwrap();
    let e = kvs
        .set(&s, Realm::Eu, T0, "lock", json!(2), once)
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::KeyConflict);
    assert_eq!(kvs.get(&s, Realm::Eu, T0, "lock").unwrap(), Some(json!(1)));
}

#[test]
fn queries_page_in_key_order_with_cursors() {
    let (mut kvs, s) = store();
    for i in 0..250 {
        kvs.set(
            &s,
            Realm::Eu,
            T0.plus(i),
            &format!("doc:{i:03}"),
            json!(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    kvs.set(
        &s,
        Realm::Eu,
        T0.plus(300),
        "other",
        json!(0),
        SetOptions::default(),
    )
    .unwrap();
    let now = T0.plus(1_000);
    let first = kvs.query(&s, Realm::Eu, now, "doc:", None, None).unwrap();
    assert_eq!(first.results.len(), 10, "default page");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = kvs
            .query(&s, Realm::Eu, now, "doc:", Some(100), cursor.as_deref())
            .unwrap();
        seen.extend(page.results.iter().map(|(k, _)| k.clone()));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..250).map(|i| format!("doc:{i:03}")).collect();
    assert_eq!(seen, expected);
    let e = kvs
        .query(&s, Realm::Eu, now, "doc:", Some(101), None)
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::InvalidLimit);
    let e = kvs
        .query(&s, Realm::Eu, now, "doc:", None, Some("zz"))
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::InvalidCursor);
    // A cursor from one prefix is not valid for another.
    let c = first.cursor.unwrap();
    let e = kvs
        .query(&s, Realm::Eu, now, "other", None, Some(&c))
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::InvalidCursor);
}

#[test]
fn transactions_are_all_or_nothing() {
    let (mut kvs, s) = store();
    let set = |k: &str| TxOp::Set {
        key: k.into(),
        value: json!(k),
        options: SetOptions::default(),
    };
    let ops: Vec<TxOp> = (0..26).map(|i| set(&format!("k{i}"))).collect();
    assert_eq!(
        kvs.transact(&s, Realm::Eu, T0, ops).unwrap_err().code,
        KvsErrorCode::TooManyOperations
    );
    let dup = vec![set("k1"), TxOp::Delete { key: "k1".into() }];
    assert_eq!(
        kvs.transact(&s, Realm::Eu, T0, dup).unwrap_err().code,
        KvsErrorCode::DuplicateKeyInTransaction
    );
    kvs.set(&s, Realm::Eu, T0, "taken", json!(0), SetOptions::default())
        .unwrap();
    let conflict = vec![
        set("k1"),
        TxOp::Set {
            key: "taken".into(),
            value: json!(1),
            options: SetOptions {
                fail_if_exists: true,
                ..SetOptions::default()
            },
        },
    ];
    assert_eq!(
        kvs.transact(&s, Realm::Eu, T0, conflict).unwrap_err().code,
        KvsErrorCode::KeyConflict
    );
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0, "k1").unwrap(),
        None,
        "nothing of a failed transaction is applied"
    );
    let ok: Vec<TxOp> = (0..25).map(|i| set(&format!("k{i}"))).collect();
    kvs.transact(&s, Realm::Eu, T0, ok).unwrap();
    assert_eq!(kvs.inspect(&s).unwrap().len(), 26);
    let huge: Vec<TxOp> = (0..20)
        .map(|i| TxOp::Set {
            key: format!("h{i}"),
            value: json!("x".repeat(230 * 1024)),
            options: SetOptions::default(),
        })
        .collect();
    assert_eq!(
        kvs.transact(&s, Realm::Eu, T0, huge).unwrap_err().code,
        KvsErrorCode::TransactionTooLarge
    );
}

#[test]
fn batches_are_best_effort() {
    let (mut kvs, s) = store();
    let items: Vec<(String, Value)> = (0..26).map(|i| (format!("b{i}"), json!(i))).collect();
    assert_eq!(
        kvs.batch_set(&s, Realm::Eu, T0, items).unwrap_err().code,
        KvsErrorCode::TooManyKeys
    );
    let items = vec![
        ("b1".to_string(), json!(1)),
        ("x".to_string(), json!(2)),
        ("b3".to_string(), json!(3)),
    ];
    let results = kvs.batch_set(&s, Realm::Eu, T0, items).unwrap();
    let codes: Vec<Option<KvsErrorCode>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(codes, [None, Some(KvsErrorCode::KeyTooShort), None]);
    assert_eq!(kvs.get(&s, Realm::Eu, T0, "b3").unwrap(), Some(json!(3)));
}

#[test]
fn secrets_are_never_queried() {
    let (mut kvs, s) = store();
    kvs.set_secret(&s, Realm::Eu, T0, "api-token", json!("s3cr3t"))
        .unwrap();
    kvs.set(
        &s,
        Realm::Eu,
        T0,
        "api-config",
        json!({"on": true}),
        SetOptions::default(),
    )
    .unwrap();
    let page = kvs.query(&s, Realm::Eu, T0, "api", None, None).unwrap();
    assert_eq!(
        page.results,
        [("api-config".to_string(), json!({"on": true}))]
    );
    assert_eq!(kvs.get(&s, Realm::Eu, T0, "api-token").unwrap(), None);
    assert_eq!(
        kvs.get_secret(&s, Realm::Eu, T0, "api-token").unwrap(),
        Some(json!("s3cr3t"))
    );
    let shown = kvs.inspect(&s).unwrap();
    assert!(
        shown.contains(&("secret:api-token".to_string(), json!("<secret>"))),
        "{shown:?}"
    );
}

#[test]
fn installations_are_isolated() {
    let (mut kvs, a) = store();
    let b = scope("site-b");
    kvs.install(b.clone(), Realm::Eu);
    let other_app = Scope {
        app: "other".into(),
        ..a.clone()
    };
    kvs.install(other_app.clone(), Realm::Eu);
    kvs.set(
        &a,
        Realm::Eu,
        T0,
        "doc:1",
        json!("a"),
        SetOptions::default(),
    )
    .unwrap();
    kvs.set(
        &b,
        Realm::Eu,
        T0,
        "doc:1",
        json!("b"),
        SetOptions::default(),
    )
    .unwrap();
    assert_eq!(
        kvs.get(&a, Realm::Eu, T0, "doc:1").unwrap(),
        Some(json!("a"))
    );
    assert_eq!(
        kvs.get(&b, Realm::Eu, T0, "doc:1").unwrap(),
        Some(json!("b"))
    );
    assert_eq!(kvs.get(&other_app, Realm::Eu, T0, "doc:1").unwrap(), None);
    assert_eq!(
        kvs.query(&other_app, Realm::Eu, T0, "", Some(100), None)
            .unwrap()
            .results,
        []
    );
    let stranger = scope("never-installed");
    assert_eq!(
        kvs.get(&stranger, Realm::Eu, T0, "doc:1").unwrap_err().code,
        KvsErrorCode::UnknownInstallation
    );
}

#[test]
fn data_stays_in_its_realm_and_moves_with_the_site() {
    let (mut kvs, s) = store();
    for i in 0..30 {
        kvs.set(
            &s,
            Realm::Eu,
            T0,
            &format!("doc:{i}"),
            json!(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    let e = kvs.get(&s, Realm::Us, T0, "doc:1").unwrap_err();
    assert_eq!(e.code, KvsErrorCode::CrossRealmAccess);
    assert_eq!(kvs.violations().len(), 1);
    assert_eq!(
        (
            kvs.violations()[0].pinned,
            kvs.violations()[0].attempted_from
        ),
        (Realm::Eu, Realm::Us)
    );
    assert_eq!(kvs.migrate(&s, Realm::De).unwrap(), 30);
    let per_realm = kvs.keys_per_realm().unwrap();
    assert_eq!(per_realm.get(&Realm::Eu), Some(&0), "nothing left behind");
    assert_eq!(per_realm.get(&Realm::De), Some(&30));
    assert_eq!(kvs.get(&s, Realm::De, T0, "doc:7").unwrap(), Some(json!(7)));
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0, "doc:7").unwrap_err().code,
        KvsErrorCode::CrossRealmAccess
    );
}

#[test]
fn rate_limits_on_virtual_time_and_injected_faults() {
    let (mut kvs, s) = store();
    for _ in 0..1_000 {
        kvs.get(&s, Realm::Eu, T0, "k1").unwrap();
    }
    assert_eq!(
        kvs.get(&s, Realm::Eu, T0, "k1").unwrap_err().code,
        KvsErrorCode::RateLimitExceeded
    );
    assert!(kvs.get(&s, Realm::Eu, T0.plus(1_000), "k1").is_ok());
    kvs.inject_unavailable(&s, 2);
    let later = T0.plus(5_000);
    assert_eq!(
        kvs.get(&s, Realm::Eu, later, "k1").unwrap_err().code,
        KvsErrorCode::StorageUnavailable
    );
    assert_eq!(
        kvs.get(&s, Realm::Eu, later, "k1").unwrap_err().code,
        KvsErrorCode::StorageUnavailable
    );
    assert!(kvs.get(&s, Realm::Eu, later, "k1").is_ok());
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, i64),
    Delete(u8),
    Get(u8),
    Query(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..40u8, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
        (0..40u8).prop_map(Op::Delete),
        (0..40u8).prop_map(Op::Get),
        (0..4u8, 1..30usize).prop_map(|(p, n)| Op::Query(p, n)),
    ]
}

proptest! {
    /// The store against a BTreeMap model: every get and every full paged query agrees.
    #[test]
    fn agrees_with_a_btreemap(ops in prop::collection::vec(op(), 1..120)) {
        let (mut kvs, s) = store();
        let mut model = std::collections::BTreeMap::new();
        let key = |k: u8| format!("p{}:{k:02}", k % 4);
        for (i, op) in ops.into_iter().enumerate() {
            let now = T0.plus(i as u64 * 10);
            match op {
                Op::Set(k, v) => {
                    kvs.set(&s, Realm::Eu, now, &key(k), json!(v), SetOptions::default()).unwrap();
                    model.insert(key(k), json!(v));
                }
                Op::Delete(k) => {
                    kvs.delete(&s, Realm::Eu, now, &key(k)).unwrap();
                    model.remove(&key(k));
                }
                Op::Get(k) => {
                    prop_assert_eq!(kvs.get(&s, Realm::Eu, now, &key(k)).unwrap(), model.get(&key(k)).cloned());
                }
                Op::Query(p, n) => {
                    let prefix = format!("p{p}:");
                    let mut got = Vec::new();
                    let mut cursor = None;
                    loop {
                        let page = kvs.query(&s, Realm::Eu, now, &prefix, Some(n), cursor.as_deref()).unwrap();
                        prop_assert!(page.results.len() <= n);
                        got.extend(page.results);
                        match page.cursor { Some(c) => cursor = Some(c), None => break }
                    }
                    let want: Vec<(String, Value)> = model.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}

/// A temporary folder for one test's redb realms.
fn realm_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("signoff-sim-kvs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn redb_realms_are_separate_files_and_migration_empties_the_old_one() {
    let dir = realm_dir("migrate");
    let mut kvs = Kvs::with_storage(KvsLimits::forge(), KvsStorage::Redb { dir: dir.clone() });
    let s = scope("site-a");
    kvs.install(s.clone(), Realm::Eu);
    for i in 0..120 {
        kvs.set(
            &s,
            Realm::Eu,
            T0,
            &format!("doc:{i:03}"),
            json!(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    kvs.set_secret(&s, Realm::Eu, T0, "token", json!("x"))
        .unwrap();
    let page = kvs
        .query(&s, Realm::Eu, T0, "doc:", Some(100), None)
        .unwrap();
    assert_eq!(page.results.len(), 100);
    let rest = kvs
        .query(&s, Realm::Eu, T0, "doc:", Some(100), page.cursor.as_deref())
        .unwrap();
    assert_eq!((rest.results.len(), rest.cursor), (20, None));
    assert!(dir.join("EU.redb").is_file());
    assert_eq!(kvs.migrate(&s, Realm::De).unwrap(), 121);
    assert!(dir.join("DE.redb").is_file());
    let per_realm = kvs.keys_per_realm().unwrap();
    assert_eq!(
        (per_realm.get(&Realm::Eu), per_realm.get(&Realm::De)),
        (Some(&0), Some(&121))
    );
    assert_eq!(
        kvs.get(&s, Realm::De, T0, "doc:042").unwrap(),
        Some(json!(42))
    );
    assert_eq!(
        kvs.get_secret(&s, Realm::De, T0, "token").unwrap(),
        Some(json!("x"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_realm_file_is_a_typed_error() {
    let dir = realm_dir("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("EU.redb"), b"not a database at all").unwrap();
    let mut kvs = Kvs::with_storage(KvsLimits::forge(), KvsStorage::Redb { dir: dir.clone() });
    let s = scope("site-a");
    kvs.install(s.clone(), Realm::Eu);
    let e = kvs
        .set(&s, Realm::Eu, T0, "k1", json!(1), SetOptions::default())
        .unwrap_err();
    assert_eq!(e.code, KvsErrorCode::StorageUnavailable);
    assert!(e.message.contains("EU.redb"), "{}", e.message);
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The redb-backed store against the same BTreeMap model.
    #[test]
    fn redb_agrees_with_a_btreemap(ops in prop::collection::vec(op(), 1..60)) {
        let dir = realm_dir("prop");
        let mut kvs = Kvs::with_storage(KvsLimits::forge(), KvsStorage::Redb { dir: dir.clone() });
        let s = scope("site-a");
        kvs.install(s.clone(), Realm::Eu);
        let mut model = std::collections::BTreeMap::new();
        let key = |k: u8| format!("p{}:{k:02}", k % 4);
        for (i, op) in ops.into_iter().enumerate() {
            let now = T0.plus(i as u64 * 10);
            match op {
                Op::Set(k, v) => {
                    kvs.set(&s, Realm::Eu, now, &key(k), json!(v), SetOptions::default()).unwrap();
                    model.insert(key(k), json!(v));
                }
                Op::Delete(k) => {
                    kvs.delete(&s, Realm::Eu, now, &key(k)).unwrap();
                    model.remove(&key(k));
                }
                Op::Get(k) => {
                    prop_assert_eq!(kvs.get(&s, Realm::Eu, now, &key(k)).unwrap(), model.get(&key(k)).cloned());
                }
                Op::Query(p, n) => {
                    let prefix = format!("p{p}:");
                    let mut got = Vec::new();
                    let mut cursor = None;
                    loop {
                        let page = kvs.query(&s, Realm::Eu, now, &prefix, Some(n), cursor.as_deref()).unwrap();
                        got.extend(page.results);
                        match page.cursor { Some(c) => cursor = Some(c), None => break }
                    }
                    let want: Vec<(String, Value)> = model.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
        drop(kvs);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Custom entities' values follow a plain key's rules (TTL range, key policy, TTL expiry) and
/// live apart from plain keys of the same name.
#[test]
fn entity_values_follow_the_same_rules_as_keys() {
    let (mut kvs, s) = store();
    let ttl = |ms| SetOptions {
        ttl_ms: Some(ms),
        fail_if_exists: false,
    };
    let bad = kvs.entity_set_text(&s, Realm::Eu, T0, "tag", "t1", "{}", ttl(0));
    assert_eq!(bad.unwrap_err().code, KvsErrorCode::InvalidTtl);
    kvs.entity_set_text(&s, Realm::Eu, T0, "tag", "t1", r#"{"a":1}"#, ttl(1_000))
        .unwrap();
    let once = SetOptions {
        ttl_ms: None,
        fail_if_exists: true,
    };
    let again = kvs.entity_set_text(&s, Realm::Eu, T0, "tag", "t1", "{}", once);
    assert_eq!(again.unwrap_err().code, KvsErrorCode::KeyConflict);
    assert_eq!(kvs.get_text(&s, Realm::Eu, T0, "t1").unwrap(), None);
    let get = |kvs: &mut Kvs, at| kvs.entity_get_text(&s, Realm::Eu, at, "tag", "t1").unwrap();
    assert_eq!(get(&mut kvs, T0).as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(get(&mut kvs, T0.plus(1_000)), None, "expired with its TTL");
    kvs.entity_delete(&s, Realm::Eu, T0, "tag", "t1").unwrap();
    assert_eq!(get(&mut kvs, T0), None);
}
