//! The wasm host: real guest components (`guests/`, built by `cargo xtask guests`) run
//! through the platform. `hello` drives every import; `hostile` misbehaves in every way
//! issue #5 lists, and each misbehaviour must be contained, typed, recorded, and leave the
//! platform serving other installations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use signoff_sim::Realm;
use signoff_sim::egress::{AdminSwitches, BlockReason};
use signoff_sim::host::{
    App, Call, EndpointResponse, Installation, InvocationError, Output, Platform, RateLimits,
    RateScope, Runtime, RuntimeConfig, SimConfig, Timeouts, WebRequest, WebResponse,
    check_web_response, guest_path,
};
use signoff_sim::kvs::{Scope, SetOptions};

const HELLO_ID: &str = "ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000a110";
const HOSTILE_ID: &str = "ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000000ba";

const HELLO_MANIFEST: &str = r#"
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000a110
  runtime:
    name: wasm32-wasip2
modules:
  function:
    - key: main
      handler: hello
permissions:
  external:
    fetch:
      backend:
        - address: https://api.partner.example.com
          inScopeEUD: false
        - address: https://stats.example.com
          category: analytics
          inScopeEUD: false
"#;

const HOSTILE_MANIFEST: &str = r#"
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000000ba
  runtime:
    name: wasm32-wasip2
    memoryMB: 512
modules:
  function:
    - key: main
      handler: hostile
      runtime:
        memoryMB: 128
    - key: consumer
      handler: hostile
      timeoutSeconds: 1
permissions:
  external:
    fetch:
      backend:
        - address: https://api.allowed.example.com
"#;

/// The test timeout: short, so the infinite loop costs little.
const TIMEOUT: Duration = Duration::from_millis(300);

pub(crate) struct Loaded {
    hello: Arc<App>,
    hostile: Arc<App>,
    pub(crate) hello_component: wasmtime::component::Component,
    pub(crate) runtime: Arc<Runtime>,
}

/// One engine and one compilation of each guest per test binary.
pub(crate) fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
        let hello = runtime.compile(&guest("hello")).expect("hello compiles");
        let hostile = runtime
            .compile(&guest("hostile"))
            .expect("hostile compiles");
        let env = BTreeMap::new();
        Loaded {
            hello: runtime.load_app(HELLO_MANIFEST, &hello, &env).unwrap(),
            hostile: runtime.load_app(HOSTILE_MANIFEST, &hostile, &env).unwrap(),
            hello_component: hello,
            runtime,
        }
    })
}

/// The built guest component, or a panic saying how to build it.
pub(crate) fn guest(name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = guest_path(&root, name);
    assert!(
        path.exists(),
        "guest component {} is missing: run `cargo xtask guests` first",
        path.display()
    );
    path
}

fn installation(id: &str, app: &str, realm: Realm) -> Installation {
    Installation {
        id: id.into(),
        app: app.into(),
        site: format!("{id}.atlassian.net"),
        realm,
        environment: "production".into(),
        admin: AdminSwitches::default(),
    }
}

/// A platform with `good` (hello, EU), `evil` and `victim` (two installations of hostile).
fn platform() -> Platform {
    platform_with(|_| {})
}

fn platform_with(configure: impl FnOnce(&mut SimConfig)) -> Platform {
    let l = loaded();
    let mut config = SimConfig::forge();
    config.limits.timeouts = Timeouts::all(TIMEOUT);
    configure(&mut config);
    let mut p = Platform::new(l.runtime.clone(), config);
    p.add_app(l.hello.clone());
    p.add_app(l.hostile.clone());
    p.install(installation("good", HELLO_ID, Realm::Eu));
    p.install(installation("evil", HOSTILE_ID, Realm::Us));
    p.install(installation("victim", HOSTILE_ID, Realm::Us));
    p.add_endpoint(
        "api.partner.example.com",
        Arc::new(|r| EndpointResponse {
            status: 200,
            headers: vec![],
            body: format!("hello {}", r.method),
        }),
    );
    p.add_endpoint(
        "api.allowed.example.com",
        Arc::new(|_| EndpointResponse {
            status: 204,
            headers: vec![],
            body: String::new(),
        }),
    );
    p
}

fn resolver(name: &str, payload: &str) -> Call {
    Call::Resolver {
        name: name.into(),
        payload: payload.into(),
    }
}

fn json_of(out: Output) -> Value {
    match out {
        Output::Json(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected JSON, got {other:?}"),
    }
}

#[test]
fn echo_resolver_answers_and_is_traced() {
    let mut p = platform();
    let out = p.invoke("good", "main", resolver("echo", r#"{"hi":1}"#));
    assert_eq!(out, Ok(Output::Json(r#"{"hi":1}"#.into())));
    let t = &p.trace()[0];
    assert_eq!(
        (t.installation.as_str(), t.handler, &t.outcome),
        ("good", "resolver", &Ok(()))
    );
}

#[test]
fn context_comes_from_the_platform() {
    let mut p = platform();
    let v = json_of(
        p.invoke("good", "main", resolver("context", "null"))
            .unwrap(),
    );
    assert_eq!(
        v,
        json!({
            "app": HELLO_ID, "environment": "production", "site": "good.atlassian.net",
            "installation": "good", "realm": "EU", "function": "main",
            "now": SimConfig::forge().start.0, "remainingPositive": true, "accountId": null
        })
    );
    // A resolver called for a user sees the user's account id.
    let v = json_of(
        p.invoke_as(
            "good",
            "main",
            resolver("context", "null"),
            Some("acc-alice"),
        )
        .unwrap(),
    );
    assert_eq!(v["accountId"], "acc-alice");
}

#[test]
fn randomness_and_wall_time_replay_with_the_seed() {
    let run = |seed: u64| {
        let mut p = platform_with(|c| c.seed = seed);
        json_of(p.invoke("good", "main", resolver("random", "")).unwrap())
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a, b);
    assert_ne!(a["hash"], c["hash"]);
    assert_eq!(a["now"], SimConfig::forge().start.0);
}

#[test]
fn kvs_through_the_guest() {
    let mut p = platform();
    let v = json_of(p.invoke("good", "main", resolver("kvs", "doc-1")).unwrap());
    assert_eq!(
        v,
        json!({
            "got": {"n": 1}, "conflict": "KEY_CONFLICT", "keys": ["doc-1"],
            "batch": ["ok", "INVALID_KEY"], "secret": "s3cret",
            "after": ["doc-1.tx", "ok-key"]
        })
    );
    // Stored in the installation's scope and realm, nowhere else.
    let scope = Scope {
        app: HELLO_ID.into(),
        environment: "production".into(),
        installation: "good".into(),
    };
    assert_eq!(p.kvs().realm_of(&scope), Some(Realm::Eu));
    let keys: Vec<String> = p
        .kvs()
        .inspect(&scope)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["doc-1.tx", "ok-key", "secret:token"]);
}

#[test]
fn fetch_is_gated_answered_and_recorded() {
    let mut p = platform();
    let ok = json_of(
        p.invoke(
            "good",
            "main",
            resolver("fetch", "https://api.partner.example.com/v1/x?q=secret"),
        )
        .unwrap(),
    );
    assert_eq!(ok, json!({"status": 200, "body": "hello GET"}));
    let no = json_of(
        p.invoke(
            "good",
            "main",
            resolver("fetch", "https://else.example.com/"),
        )
        .unwrap(),
    );
    assert_eq!(no, json!({"error": "REQUEST_EGRESS_ALLOWLIST_ERR"}));
    let unreachable = json_of(
        p.invoke(
            "good",
            "main",
            resolver("fetch", "https://stats.example.com/e"),
        )
        .unwrap(),
    );
    assert_eq!(unreachable, json!({"error": "HOST_UNREACHABLE"}));

    let ledger = p.ledger();
    assert_eq!(ledger.len(), 3);
    assert!(ledger[0].allowed && !ledger[0].in_scope_eud);
    assert_eq!(ledger[0].destination, "api.partner.example.com/v1/x");
    assert_eq!(ledger[1].blocked_because, Some(BlockReason::NotDeclared));
    assert_eq!(ledger[2].category, "analytics");
    assert!(
        ledger
            .iter()
            .all(|a| a.installation == "good" && a.realm == Realm::Eu)
    );
}

#[test]
fn analytics_blocked_by_the_admin_is_dropped_without_breaking_the_app() {
    let mut p = platform();
    let mut strict = installation("strict", HELLO_ID, Realm::De);
    strict.admin = AdminSwitches {
        analytics_blocked: true,
        logs_blocked: true,
    };
    p.install(strict);
    for inst in ["good", "strict"] {
        p.invoke(inst, "main", resolver("track", "approved"))
            .unwrap();
        p.invoke(inst, "main", resolver("log", "hello")).unwrap();
    }
    let delivered: Vec<bool> = p.analytics().iter().map(|e| e.delivered).collect();
    assert_eq!(delivered, [true, false]);
    let shared: Vec<bool> = p.logs().iter().map(|l| l.shared_with_vendor).collect();
    assert_eq!(shared, [true, false]);
}

#[test]
fn product_api_versions_pages_properties_and_state() {
    let mut p = platform();
    let v = json_of(
        p.invoke("good", "main", resolver("product", "Plan"))
            .unwrap(),
    );
    assert_eq!(v["version"], 3, "create, update, content state: {v}");
    assert_eq!(v["readVersion"], 3);
    assert_eq!(v["property"], json!({"state": "open"}));
    assert_eq!(v["propertyVersion"], 1);
    assert_eq!(v["stale"], "CONFLICT");
    assert_eq!(v["state"], "In review");
    let id = v["id"].as_str().unwrap();
    let page = p.confluence().get_page("good.atlassian.net", id).unwrap();
    assert_eq!(page.author, format!("app:{HELLO_ID}"));
    // Product calls are not egress.
    assert!(p.ledger().is_empty());
}

#[test]
fn other_entry_points_run() {
    let mut p = platform();
    let web = p.invoke(
        "good",
        "main",
        Call::WebTrigger(WebRequest {
            method: "POST".into(),
            path: "/hook".into(),
            ..WebRequest::default()
        }),
    );
    let Ok(Output::WebResponse(r)) = web else {
        panic!("{web:?}")
    };
    assert_eq!(
        (r.status_code, r.body.as_str()),
        (200, r#"{"method":"POST","path":"/hook"}"#)
    );
    let event = r#"{"eventType":"avi:confluence:updated:page"}"#;
    assert_eq!(
        p.invoke("good", "main", Call::Event(event.into())),
        Ok(Output::Done)
    );
    assert_eq!(
        p.invoke("good", "main", Call::Schedule("daily".into())),
        Ok(Output::Done)
    );
    let consume = Call::Consume {
        queue: "reminders".into(),
        payload: "[1,2]".into(),
    };
    assert_eq!(p.invoke("good", "main", consume), Ok(Output::Done));
    let scope = Scope {
        app: HELLO_ID.into(),
        environment: "production".into(),
        installation: "good".into(),
    };
    let stored = p.kvs().inspect(&scope).unwrap();
    assert_eq!(
        stored,
        [
            (
                "last-event".to_string(),
                json!({"eventType": "avi:confluence:updated:page"})
            ),
            ("last-schedule".to_string(), json!("daily")),
            ("queue.reminders".to_string(), json!([1, 2])),
        ]
    );
}

#[test]
fn refusals_before_running_are_typed_and_traced() {
    let mut p = platform();
    assert_eq!(
        p.invoke("nobody", "main", resolver("echo", "1")),
        Err(InvocationError::UnknownInstallation("nobody".into()))
    );
    assert!(matches!(
        p.invoke("good", "missing", resolver("echo", "1")),
        Err(InvocationError::UnknownFunction { .. })
    ));
    let big = "x".repeat(5 * 1024 * 1024 + 1);
    assert!(matches!(
        p.invoke("good", "main", resolver("echo", &big)),
        Err(InvocationError::PayloadTooLarge { .. })
    ));
    assert_eq!(p.trace().len(), 3);
    assert!(p.trace().iter().all(|t| t.outcome.is_err()));
}

/// Over a rate limit an invocation does not run: a typed error in the trace, not counted,
/// and the window slides with virtual time. A user's invocations count per app.
#[test]
fn invocations_over_a_rate_limit_do_not_run() {
    let mut p = platform_with(|c| {
        c.limits.rate = RateLimits {
            per_user: Some(3),
            per_installation: Some(5),
            per_app: Some(6),
        }
    });
    let echo = |p: &mut Platform, who: Option<&str>| {
        p.invoke_as("good", "main", resolver("echo", "1"), who)
    };
    for _ in 0..3 {
        assert_eq!(echo(&mut p, Some("alice")), Ok(Output::Json("1".into())));
    }
    let over = InvocationError::RateLimited {
        scope: RateScope::User,
        id: "alice".into(),
        limit: 3,
    };
    assert_eq!(echo(&mut p, Some("alice")), Err(over.clone()));
    assert_eq!(p.trace().last().unwrap().outcome, Err(over.clone()));
    assert_eq!(
        over.to_string(),
        "rate limit exceeded: 3 invocations a minute per user (`alice`); not run"
    );
    // Others still run, up to the installation's limit (the refused call did not count).
    assert!(echo(&mut p, Some("bob")).is_ok());
    assert!(echo(&mut p, None).is_ok());
    assert_eq!(
        echo(&mut p, Some("carol")),
        Err(InvocationError::RateLimited {
            scope: RateScope::Installation,
            id: "good".into(),
            limit: 5,
        })
    );
    // The window is the last minute of virtual time.
    p.clock().advance_by(59_999);
    assert!(matches!(
        echo(&mut p, Some("bob")),
        Err(InvocationError::RateLimited { .. })
    ));
    p.clock().advance_by(1);
    assert!(echo(&mut p, Some("alice")).is_ok());

    // Per app: `evil` and `victim` are two installations of one app; `good` is another app.
    let hostile =
        |p: &mut Platform, i: &str| p.invoke_as(i, "main", resolver("not-json", ""), None);
    for i in ["evil", "victim", "evil", "victim", "evil", "victim"] {
        assert!(matches!(
            hostile(&mut p, i),
            Err(InvocationError::BadOutput { .. })
        ));
    }
    assert_eq!(
        hostile(&mut p, "evil"),
        Err(InvocationError::RateLimited {
            scope: RateScope::App,
            id: HOSTILE_ID.into(),
            limit: 6,
        })
    );
    assert!(echo(&mut p, Some("alice")).is_ok());

    // A limit of 0 runs nothing; a clock that starts in the first minute of the epoch
    // counts from there.
    let mut p = platform_with(|c| {
        c.limits.rate = RateLimits {
            per_user: None,
            per_installation: None,
            per_app: Some(0),
        }
    });
    assert!(matches!(
        p.invoke("evil", "main", resolver("not-json", "")),
        Err(InvocationError::RateLimited { limit: 0, .. })
    ));
    let mut p = platform_with(|c| {
        c.start = signoff_sim::Millis(0);
        c.limits.rate = RateLimits {
            per_user: Some(1),
            per_installation: None,
            per_app: None,
        }
    });
    assert!(echo(&mut p, Some("alice")).is_ok());
    assert!(echo(&mut p, Some("alice")).is_err());
    p.clock().advance_by(59_999);
    assert!(echo(&mut p, Some("alice")).is_err());
    p.clock().advance_by(1);
    assert!(echo(&mut p, Some("alice")).is_ok());
}

/// Runs a hostile call as `evil`, checks the error and the trace, then checks that `good`
/// is still served.
fn contained(call: Call, expect: impl Fn(&InvocationError) -> bool) -> Platform {
    let mut p = platform();
    // Something of the victim's, to be sure nothing of it leaks.
    let victim = Scope {
        app: HOSTILE_ID.into(),
        environment: "production".into(),
        installation: "victim".into(),
    };
    let now = SimConfig::forge().start;
    p.kvs()
        .set(
            &victim,
            Realm::Us,
            now,
            "secret-of-a",
            json!("hush"),
            SetOptions::default(),
        )
        .unwrap();
    let got = p.invoke("evil", "main", call);
    let err = got.clone().expect_err("the hostile call must fail");
    assert!(expect(&err), "unexpected error: {err:?}");
    let last = p.trace().last().unwrap();
    assert_eq!(
        (last.installation.as_str(), &last.outcome),
        ("evil", &Err(err))
    );
    assert_eq!(
        p.invoke("good", "main", resolver("echo", "[1]")),
        Ok(Output::Json("[1]".into())),
        "another installation is still served"
    );
    p
}

fn app_code(code: &'static str) -> impl Fn(&InvocationError) -> bool {
    move |e| matches!(e, InvocationError::App { code: c, .. } if c == code)
}

#[test]
fn infinite_loop_times_out() {
    contained(resolver("spin", ""), |e| {
        *e == InvocationError::Timeout {
            limit_ms: TIMEOUT.as_millis() as u64,
        }
    });
}

#[test]
fn a_consumer_is_stopped_at_its_timeout_seconds() {
    let mut p = platform_with(|c| {
        c.limits.timeouts = Timeouts {
            async_default: Duration::from_secs(30),
            ..Timeouts::forge()
        }
    });
    let spin = Call::Consume {
        queue: "spin".into(),
        payload: "{}".into(),
    };
    assert_eq!(
        p.invoke("evil", "consumer", spin),
        Err(InvocationError::Timeout { limit_ms: 1_000 })
    );
    // The same function's memory is the app's, as it names none of its own.
    assert_eq!(loaded().hostile.functions()["consumer"].memory_mb, 512);
}

#[test]
fn memory_bomb_hits_the_functions_memory_limit() {
    contained(resolver("bomb", ""), |e| {
        *e == InvocationError::MemoryLimit { limit_mb: 128 }
    });
}

#[test]
fn deep_recursion_overflows_the_stack() {
    contained(resolver("recurse", ""), |e| {
        *e == InvocationError::StackOverflow
    });
}

/// Rust guests keep address-taken locals on a shadow stack in linear memory; recursing
/// through it runs off the bottom of memory before the wasm stack is full.
#[test]
fn deep_recursion_on_the_shadow_stack_is_an_out_of_bounds_trap() {
    contained(
        resolver("recurse-shadow", ""),
        |e| matches!(e, InvocationError::Trap { message } if message.contains("out of bounds memory access")),
    );
}

#[test]
fn a_panic_is_a_trap() {
    let p = contained(
        resolver("panic", ""),
        |e| matches!(e, InvocationError::Trap { message } if message.contains("unreachable")),
    );
    // Rust's panic message went to stderr: it is in the invocation's error log lines.
    let lines: Vec<_> = p
        .logs()
        .iter()
        .filter(|l| l.installation == "evil")
        .collect();
    assert!(lines.iter().all(|l| l.level == "error"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.message.contains("panicked at")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.message == "the app gave up"),
        "{lines:?}"
    );
}

/// WASI stdout and stderr are log lines (`info`, `error`), in order with the `log` import's,
/// with the last line kept even without a newline; a flood is cut at the log limits and
/// counted, and the invocation succeeds.
#[test]
fn stdout_and_stderr_are_log_lines() {
    let mut p = platform();
    p.invoke("evil", "main", resolver("print", "")).unwrap();
    let lines: Vec<(&str, &str)> = p
        .logs()
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("info", "out 1"),
            ("error", "err 1"),
            ("info", "logged"),
            ("info", "out 2 without a newline"),
        ]
    );
    assert_eq!(p.trace()[0].log_lines, 4);

    // A megabyte of writes takes longer than the 300 ms these tests allow on a busy machine.
    let mut p = platform_with(|c| c.limits.timeouts = Timeouts::all(Duration::from_secs(20)));
    p.invoke("evil", "main", resolver("print", "")).unwrap();
    assert_eq!(
        p.invoke("evil", "main", resolver("print-flood", "")),
        Ok(Output::Json("null".into()))
    );
    let t = &p.trace()[1];
    assert_eq!(t.log_lines, 100, "100 lines per started minute");
    assert_eq!(t.log_lines + t.log_lines_dropped, 20_000, "{t:?}");
    assert_eq!(p.logs()[4].message, format!("line 0 {}", "x".repeat(40)));
}

#[test]
fn fetch_to_an_undeclared_host_is_blocked_and_recorded() {
    let p = contained(
        resolver("fetch-undeclared", ""),
        app_code("REQUEST_EGRESS_ALLOWLIST_ERR"),
    );
    let a = &p.ledger()[0];
    assert_eq!(
        (a.destination.as_str(), a.allowed, a.blocked_because),
        (
            "evil.example.com/exfil",
            false,
            Some(BlockReason::NotDeclared)
        )
    );
}

#[test]
fn forged_host_header_is_blocked() {
    let p = contained(
        resolver("forged-host", ""),
        app_code("REQUEST_EGRESS_ALLOWLIST_ERR"),
    );
    assert_eq!(
        p.ledger()[0].blocked_because,
        Some(BlockReason::ForgedHostHeader)
    );
}

#[test]
fn plain_http_is_blocked() {
    let p = contained(
        resolver("insecure", ""),
        app_code("REQUEST_EGRESS_ALLOWLIST_ERR"),
    );
    assert_eq!(
        p.ledger()[0].blocked_because,
        Some(BlockReason::InsecureScheme)
    );
}

#[test]
fn outbound_requests_are_capped_per_invocation() {
    let p = contained(
        resolver("fetch-flood", ""),
        app_code("OUTBOUND_REQUEST_LIMIT"),
    );
    assert_eq!(p.ledger().len(), 100);
    assert_eq!(p.trace()[0].fetches, 100);
}

#[test]
fn oversized_value_is_refused_by_the_store() {
    contained(resolver("oversized", ""), app_code("MAX_SIZE"));
}

#[test]
fn a_resolver_answering_non_json_is_bad_output() {
    contained(resolver("not-json", ""), |e| {
        matches!(e, InvocationError::BadOutput { .. })
    });
}

#[test]
fn an_answer_over_the_payload_limit_is_bad_output() {
    contained(
        resolver("huge-answer", ""),
        |e| matches!(e, InvocationError::BadOutput { reason } if reason.contains("6291458 bytes")),
    );
}

/// HTML under a JSON content type goes out as the app wrote it: the platform does not parse
/// a web trigger's body.
#[test]
fn a_web_trigger_answer_goes_out_as_written() {
    let mut p = platform();
    let got = p.invoke("evil", "main", Call::WebTrigger(WebRequest::default()));
    let Ok(Output::WebResponse(r)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        (r.status_code, r.body.as_str()),
        (200, "<html>surprise</html>")
    );
    assert_eq!(
        r.headers,
        vec![(
            "Content-Type".to_string(),
            vec!["application/json".to_string()]
        )]
    );
}

#[test]
fn another_installations_data_cannot_be_reached() {
    let mut p = platform();
    let now = SimConfig::forge().start;
    let victim = Scope {
        app: HOSTILE_ID.into(),
        environment: "production".into(),
        installation: "victim".into(),
    };
    p.kvs()
        .set(
            &victim,
            Realm::Us,
            now,
            "secret-of-a",
            json!("hush"),
            SetOptions::default(),
        )
        .unwrap();
    let seen = json_of(
        p.invoke("evil", "main", resolver("other-installation", "victim"))
            .unwrap(),
    );
    assert_eq!(
        seen,
        json!({
            "plain": "none", "separator": "INVALID_KEY", "dotdot": "INVALID_KEY",
            "secret": "none", "cursor": "INVALID_CURSOR", "query-all": "0"
        })
    );
}

#[test]
fn wasi_offers_no_files_sockets_environment_or_arguments() {
    let mut p = platform();
    let seen = json_of(p.invoke("evil", "main", resolver("escape", "")).unwrap());
    assert_eq!(
        seen,
        json!({"fs": "error", "write": "error", "tcp": "error", "dns": "error", "env": 0, "args": 0})
    );
    assert!(p.ledger().is_empty(), "nothing left through fetch either");
}

#[test]
fn a_log_flood_is_cut_at_the_limit_and_counted() {
    let mut p = platform();
    p.invoke("evil", "main", resolver("log-flood", "")).unwrap();
    let t = &p.trace()[0];
    assert_eq!((t.log_lines, t.log_lines_dropped), (100, 9_900));
    assert_eq!(p.logs().len(), 100);
    assert_eq!(p.logs()[99].message, "line 99");
}

#[test]
fn fuel_makes_runs_deterministic_and_stops_loops() {
    let runtime = Runtime::new(RuntimeConfig {
        fuel: Some(5_000_000),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let component = runtime.compile(&guest("hostile")).unwrap();
    let app = runtime
        .load_app(HOSTILE_MANIFEST, &component, &BTreeMap::new())
        .unwrap();
    let mut config = SimConfig::forge();
    config.limits.timeouts = Timeouts::all(Duration::from_secs(20));
    let mut p = Platform::new(runtime, config);
    p.add_app(app);
    p.install(installation("evil", HOSTILE_ID, Realm::Us));
    assert_eq!(
        p.invoke("evil", "main", resolver("spin", "")),
        Err(InvocationError::FuelExhausted { fuel: 5_000_000 })
    );
    // Below the fuel, the app runs as usual.
    assert!(matches!(
        p.invoke("evil", "main", resolver("not-json", "")),
        Err(InvocationError::BadOutput { .. })
    ));
}

/// The platform's rules for a web trigger's answer: `expect` is `ok` or the start of the
/// `BadOutput` reason.
fn check_web(status: u16, content_type: Option<&str>, body: &str, expect: &str) {
    let headers = content_type
        .map(|t| vec![("content-type".to_string(), vec![t.to_string()])])
        .unwrap_or_default();
    let got = check_web_response(WebResponse {
        status_code: status,
        headers,
        body: body.into(),
    });
    match got {
        Ok(_) => assert_eq!(expect, "ok", "{status} {content_type:?} {body:?}"),
        Err(InvocationError::BadOutput { reason }) => {
            assert!(
                reason.starts_with(expect),
                "{reason} does not start with {expect}"
            )
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn web_trigger_answers() {
    check_web(200, Some("application/json"), r#"{"ok":true}"#, "ok");
    check_web(200, None, "[1]", "ok");
    check_web(204, None, "", "ok");
    check_web(200, Some("text/html"), "<p>hi</p>", "ok");
    // The body is not parsed, whatever the content type says: the web-trigger reference's
    // own example answers plain words without headers, and apps answer a plain-text error
    // under a JSON content type (jenkins-for-jira's 400s).
    check_web(200, None, "Hello, world!", "ok");
    check_web(
        400,
        Some("Application/JSON; charset=utf-8"),
        "Bad request",
        "ok",
    );
    check_web(200, Some("application/problem+json"), "oops", "ok");
    check_web(99, None, "{}", "status code 99");
    check_web(600, None, "{}", "status code 600");
}

/// The trace of a hostile session, as a person reading the simulator's record sees it.
#[test]
fn trace_of_a_hostile_session() {
    let mut p = platform();
    for name in [
        "spin",
        "bomb",
        "recurse",
        "fetch-undeclared",
        "oversized",
        "log-flood",
        "not-json",
    ] {
        let _ = p.invoke("evil", "main", resolver(name, ""));
        p.clock().advance_by(1_000);
    }
    let _ = p.invoke("good", "main", resolver("echo", "{}"));
    insta::assert_yaml_snapshot!("hostile_trace", p.trace());
    insta::assert_yaml_snapshot!("hostile_ledger", p.ledger());
}
