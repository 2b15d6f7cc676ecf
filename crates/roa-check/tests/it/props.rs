//! Property tests. They stand in for the fuzzer in CI (`cargo xtask fuzz roa` runs the real
//! one): arbitrary bytes and arbitrary YAML trees never panic, verdicts agree with findings,
//! and generated manifests with known egress get exactly the findings an oracle predicts.

use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: &[&str] = &[
    "app",
    "modules",
    "permissions",
    "external",
    "fetch",
    "backend",
    "client",
    "images",
    "scopes",
    "content",
    "remotes",
    "providers",
    "auth",
    "connectModules",
    "webtrigger",
    "response",
    "type",
    "address",
    "category",
    "inScopeEUD",
    "remote",
    "key",
    "sql",
    "dareCompliant",
    "endpoint",
    "baseUrl",
    "operations",
    "configurable",
    "enabled",
    "id",
    "<<",
    "function",
    "trigger",
    "licensing",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|i| json!(i)),
        "[a-z*:/.${}_-]{0,12}".prop_map(Value::String),
        Just(json!("analytics")),
        Just(json!("static")),
        Just(json!("https://api.example.com")),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Renders JSON as block-style YAML (flow style is just the JSON text itself).
fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                if item.is_object() || item.is_array() {
                    out.push('\n');
                    block(item, indent + 2, out);
                } else {
                    out.push_str(&format!(" {item}\n"));
                }
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (k, item) in map {
                out.push_str(&format!("{pad}{k:?}:"));
                if (item.is_object() || item.is_array()) && !is_empty(item) {
                    out.push('\n');
                    block(item, indent + 2, out);
                } else {
                    out.push_str(&format!(" {item}\n"));
                }
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

fn is_empty(v: &Value) -> bool {
    v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|m| m.is_empty())
}

fn consistent(outcome: Result<roa_check::Report, roa_check::InputError>) {
    if let Ok(r) = outcome {
        let errors = r
            .findings
            .iter()
            .any(|f| f.severity == roa_check::Severity::Error);
        assert_eq!(r.eligible, !errors);
        assert!(r.findings.iter().all(|f| f.line >= 1 && f.column >= 1));
        assert!(
            r.findings
                .windows(2)
                .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column))
        );
    }
}

/// One generated egress entry and whether it is allowed under RoA.
#[derive(Debug, Clone)]
struct Entry {
    yaml: String,
    allowed: bool,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[a-z]{1,8}",
        prop::option::of(prop_oneof![
            Just("analytics"),
            Just("ANALYTICS"),
            Just("other")
        ]),
        prop::option::of(prop_oneof![Just("true"), Just("false"), Just("\"false\"")]),
        any::<bool>(),
    )
        .prop_map(|(host, category, in_scope, legacy)| {
            if legacy {
                return Entry {
                    yaml: format!("- https://{host}.example.com\n"),
                    allowed: false,
                };
            }
            let mut yaml = format!("- address: https://{host}.example.com\n");
            if let Some(c) = category {
                yaml.push_str(&format!("  category: {c}\n"));
            }
            if let Some(i) = in_scope {
                yaml.push_str(&format!("  inScopeEUD: {i}\n"));
            }
            let allowed = category.is_some_and(|c| c.eq_ignore_ascii_case("analytics"))
                && in_scope == Some("false");
            Entry { yaml, allowed }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        consistent(roa_check::check("fuzz.yml", &bytes));
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(v in tree()) {
        let flow = v.to_string();
        consistent(roa_check::check("flow.yml", flow.as_bytes()));
        let mut text = String::new();
        block(&v, 0, &mut text);
        consistent(roa_check::check("block.yml", text.as_bytes()));
        let wrapped = json!({"app": {"id": "x"}, "permissions": v.clone(), "modules": {"webtrigger": [v]}});
        consistent(roa_check::check("wrapped.yml", wrapped.to_string().as_bytes()));
    }

    #[test]
    fn egress_findings_match_the_oracle(
        backend in prop::collection::vec(entry(), 0..6),
        client in prop::collection::vec(entry(), 0..6),
    ) {
        let indent = |entries: &[Entry]| -> String {
            entries.iter().flat_map(|e| e.yaml.lines().map(|l| format!("        {l}\n"))).collect()
        };
        let text = format!(
            "app:\n  id: ari:cloud:ecosystem::app/11111111-2222-3333-4444-555555555555\npermissions:\n  external:\n    fetch:\n      backend:\n{}      client:\n{}",
            indent(&backend),
            indent(&client)
        );
        let report = roa_check::check("gen.yml", text.as_bytes()).unwrap();
        let expected = backend.iter().chain(&client).filter(|e| !e.allowed).count();
        let got = report.findings.iter().filter(|f| f.rule == "HAS_DEFINED_EGRESS").count();
        prop_assert_eq!(got, expected, "{}", text);
        prop_assert_eq!(report.eligible, expected == 0);
        // Adding a scope to any manifest is a major update; comparing with itself is none.
        let same = roa_check::diff("a", text.as_bytes(), "b", text.as_bytes()).unwrap();
        prop_assert_eq!(same.update, roa_check::Update::None);
        let more = format!("{text}  scopes:\n    - read:page:confluence\n");
        let d = roa_check::diff("a", text.as_bytes(), "b", more.as_bytes()).unwrap();
        prop_assert_eq!(d.update, roa_check::Update::Major);
        prop_assert!(d.reasons.iter().any(|r| r.id == "SCOPE_ADDED"));
    }
}
