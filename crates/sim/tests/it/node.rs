//! Node.js apps (issue #14): the example apps in `examples/apps/` run with their own, real
//! `@forge/*` packages, every misbehaviour of `hostile` is stopped with a typed error while
//! other installations are served, installations share nothing, and runs replay.
//!
//! The apps' npm packages are installed by the tests themselves (`npm ci`, once per app, under
//! a file lock so that test processes running at once do not race).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use signoff_sim::Realm;
use signoff_sim::egress::{AdminSwitches, BlockReason};
use signoff_sim::host::{
    App, Call, InvocationError, Output, Platform, Runtime, RuntimeConfig, SimConfig, Timeouts,
    TraceEvent, UiContext,
};
use signoff_sim::kvs::Scope;
use signoff_sim::scenario::{RunOptions, Scenario};

const NOTES_ID: &str = "ari:cloud:ecosystem::app/6f1c0e2a-6d2b-4f0e-9a57-5e1f3c2b7a01";
const HOSTILE_ID: &str = "ari:cloud:ecosystem::app/7e0b3c55-1a2d-4e6f-8b9c-0d1e2f3a4b5c";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example app's folder with its npm packages installed (`npm ci` when they are not).
pub(crate) fn app_dir(name: &str) -> PathBuf {
    let dir = root().join("examples/apps").join(name);
    let lock = File::create(dir.join(".signoff-npm.lock")).expect("lock file");
    lock.lock().expect("lock");
    if !dir.join("node_modules/.package-lock.json").is_file() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js 20 or later with npm is needed for these tests)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

fn load(runtime: &Runtime, name: &str, env: &BTreeMap<String, String>) -> Arc<App> {
    let dir = app_dir(name);
    let manifest = std::fs::read_to_string(dir.join("manifest.yml")).expect("manifest");
    runtime
        .load_node_app(&manifest, &dir, env)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn installation(id: &str, app: &str) -> signoff_sim::host::Installation {
    signoff_sim::host::Installation {
        id: id.into(),
        app: app.into(),
        site: format!("{id}.atlassian.net"),
        realm: Realm::Eu,
        environment: "production".into(),
        admin: AdminSwitches::default(),
    }
}

/// `good` runs the notes app; `evil` and `victim` run the hostile app.
fn platform(timeout: Duration) -> Platform {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    let mut config = SimConfig::forge();
    config.limits.timeouts = Timeouts::all(timeout);
    let mut p = Platform::new(runtime.clone(), config);
    let env = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
    p.add_app(load(&runtime, "notes", &BTreeMap::new()));
    p.add_app(load(&runtime, "hostile", &env));
    p.install(installation("good", NOTES_ID));
    p.install(installation("evil", HOSTILE_ID));
    p.install(installation("victim", HOSTILE_ID));
    p
}

fn resolver(name: &str) -> Call {
    Call::Resolver {
        name: name.into(),
        payload: "{}".into(),
    }
}

fn json_of(r: Result<Output, InvocationError>) -> Value {
    match r {
        Ok(Output::Json(t)) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("expected a JSON answer, got {other:?}"),
    }
}

fn last(p: &Platform) -> &TraceEvent {
    p.trace().last().expect("a trace line")
}

/// The notes app still answers: misbehaviour elsewhere left the platform serving.
fn good_still_served(p: &mut Platform) {
    let r = p.invoke_as("good", "resolver", resolver("ping"), Some("alice"));
    assert_eq!(json_of(r), json!("pong"));
}

#[test]
fn hostile_node_apps_are_stopped_with_typed_errors_and_others_are_served() {
    let mut p = platform(Duration::from_secs(3));
    good_still_served(&mut p);
    assert!(last(&p).node.as_ref().unwrap().cold_start);
    good_still_served(&mut p);
    assert!(
        !last(&p).node.as_ref().unwrap().cold_start,
        "the worker stays warm"
    );

    // Time, memory (V8's heap and, for buffers outside it, the resident size), exits, crashes.
    let r = p.invoke_as("evil", "resolver", resolver("spin"), None);
    assert_eq!(r, Err(InvocationError::Timeout { limit_ms: 3000 }));
    good_still_served(&mut p);
    let r = p.invoke_as("evil", "resolver", resolver("bomb"), None);
    assert_eq!(r, Err(InvocationError::MemoryLimit { limit_mb: 128 }));
    let r = p.invoke_as("evil", "resolver", resolver("buffers"), None);
    assert_eq!(r, Err(InvocationError::MemoryLimit { limit_mb: 128 }));
    let r = p.invoke_as("evil", "resolver", resolver("exit"), None);
    assert_eq!(
        r,
        Err(InvocationError::Trap {
            message: "the app called process.exit(3)".into()
        })
    );
    let r = p.invoke_as("evil", "resolver", resolver("uncaught"), None);
    assert!(
        matches!(&r, Err(InvocationError::Trap { message }) if message == "uncaught exception: Error: thrown from a timer"),
        "{r:?}"
    );
    let r = p.invoke_as("evil", "resolver", resolver("unhandled"), None);
    assert!(
        matches!(&r, Err(InvocationError::Trap { message }) if message == "unhandled rejection: Error: nobody catches this"),
        "{r:?}"
    );
    good_still_served(&mut p);

    // What Node's permission model refuses: child processes, files outside the scratch
    // folder.
    for (call, refused) in [
        ("spawn", Some("child_process.execSync id")),
        ("passwd", None),
        ("write", None),
    ] {
        let r = p.invoke_as("evil", "resolver", resolver(call), None);
        assert!(
            matches!(&r, Err(InvocationError::App { code, .. }) if code == "ERR_ACCESS_DENIED"),
            "{call}: {r:?}"
        );
        let stats = last(&p).node.clone().unwrap();
        assert_eq!(stats.refused.first().map(String::as_str), refused, "{call}");
    }
    assert!(!Path::new("/tmp/hostile-was-here").exists());
    let r = p.invoke_as("evil", "resolver", resolver("scratch"), None);
    assert_eq!(json_of(r), json!("kept in the worker scratch folder"));

    // The network: raw sockets and name lookups are refused and written in the ledger.
    let r = p.invoke_as("evil", "resolver", resolver("socket"), None);
    assert_eq!(json_of(r)["code"], json!("EACCES"));
    let r = p.invoke_as("evil", "resolver", resolver("dns"), None);
    assert_eq!(json_of(r), json!("ENOTFOUND"));
    let blocked: Vec<_> = p
        .ledger()
        .iter()
        .map(|a| (a.destination.as_str(), a.allowed, a.blocked_because))
        .collect();
    assert_eq!(
        blocked,
        [
            (
                "collector.example.net:443",
                false,
                Some(BlockReason::RawSocket)
            ),
            (
                "collector.example.net",
                false,
                Some(BlockReason::NameLookup)
            ),
        ]
    );

    // Output limits: log lines (100 kept per started minute) and the 5 MB answer.
    let r = p.invoke_as("evil", "resolver", resolver("logs"), None);
    assert_eq!(json_of(r), json!("logged"));
    assert_eq!(
        (last(&p).log_lines, last(&p).log_lines_dropped),
        (100, 9900)
    );
    let r = p.invoke_as("evil", "resolver", resolver("huge"), None);
    assert!(matches!(r, Err(InvocationError::BadOutput { .. })), "{r:?}");

    // @forge/api 3.9.2 reaches Confluence through node-fetch: a platform call (Confluence
    // answers 404 for a page that does not exist), not egress.
    let ledger_before = p.ledger().len();
    let r = p.invoke_as("evil", "resolver", resolver("api3"), None);
    assert_eq!(json_of(r), json!({"status": 404}));
    assert_eq!(
        p.ledger().len(),
        ledger_before,
        "nothing in the egress ledger"
    );

    // The app's variables are its whole environment.
    let r = p.invoke_as("evil", "resolver", resolver("env"), None);
    assert_eq!(json_of(r), json!(["GREETING"]));
    good_still_served(&mut p);
}

/// `webTrigger.getUrl`, `queryUrls` and `deleteUrl` of the app's own `@forge/api`: a URL that
/// is the installation's on every run (jenkins-for-jira shows its URL to the admin).
#[test]
fn web_trigger_urls_come_from_the_platform() {
    let mut p = platform(Duration::from_secs(5));
    let r = json_of(p.invoke_as("good", "resolver", resolver("hook.url"), Some("alice")));
    let url = r["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("https://") && url.contains(".hello.atlassian-dev.net/x1/"),
        "{r}"
    );
    assert_eq!(
        r["all"],
        json!([{"moduleKey": "notes-hook", "url": url}]),
        "{r}"
    );
    assert!(
        r["unknown"]
            .as_str()
            .unwrap()
            .contains("Failed to get web trigger URL"),
        "{r}"
    );
    // The same installation gets the same URL again.
    let again = json_of(p.invoke_as("good", "resolver", resolver("hook.url"), Some("alice")));
    assert_eq!(again["url"], url.as_str());
}

#[test]
fn the_runtime_object_is_each_invocations_own() {
    let mut p = platform(Duration::from_secs(5));
    let mut seen = Vec::new();
    for user in [Some("alice"), None, Some("bob")] {
        let r = json_of(p.invoke_as("evil", "resolver", resolver("runtime"), user));
        // What the app changed in `__forge_runtime__` last time is gone: the installation's
        // part comes to each invocation fresh.
        assert_eq!(r["installationId"], "evil", "{r}");
        assert_eq!(r["functionKey"], "resolver", "{r}");
        assert_ne!(r["cloudId"], "tampered", "{r}");
        assert_eq!(r["aaid"], json!(user), "{r}");
        assert_eq!(r["accountId"], json!(user), "{r}");
        assert_eq!(r["invocationId"].as_str().unwrap().len(), 16, "{r}");
        assert_eq!(r["traceId"].as_str().unwrap().len(), 32, "{r}");
        assert!(r["remainingMs"].as_u64().unwrap() <= 5_000, "{r}");
        seen.push(r);
    }
    assert_eq!(seen[0]["cloudId"], seen[2]["cloudId"]);
    assert_ne!(seen[0]["invocationId"], seen[1]["invocationId"]);
    assert_ne!(seen[1]["traceId"], seen[2]["traceId"]);
    // Another installation has its own.
    let r = json_of(p.invoke_as("victim", "resolver", resolver("runtime"), None));
    assert_eq!(r["installationId"], "victim", "{r}");
}

#[test]
fn installations_share_nothing_and_work_left_pending_is_frozen() {
    let mut p = platform(Duration::from_secs(5));
    // Module globals live in a worker per installation.
    for expect in [1, 2, 3] {
        let r = p.invoke_as("evil", "resolver", resolver("global"), None);
        assert_eq!(json_of(r), json!(expect));
    }
    let r = p.invoke_as("victim", "resolver", resolver("global"), None);
    assert_eq!(json_of(r), json!(1), "another installation starts afresh");

    // Work left pending: chained platform calls finish with the invocation, timers do not
    // run, and work resumed during a later invocation is frozen and counted there.
    let r = p.invoke_as("evil", "resolver", resolver("pending"), None);
    assert_eq!(json_of(r), json!("returned"));
    let r = p.invoke_as("evil", "resolver", resolver("release"), None);
    assert_eq!(json_of(r), json!("released"));
    assert_eq!(last(&p).node.as_ref().unwrap().late, 1);
    let r = p.invoke_as("evil", "resolver", resolver("ok"), None);
    assert_eq!(json_of(r), json!("fine"));
    let scope = |inst: &str| Scope {
        app: HOSTILE_ID.into(),
        environment: "production".into(),
        installation: inst.into(),
    };
    let now = p.now();
    let kvs = p.kvs();
    let get = |kvs: &mut signoff_sim::kvs::Kvs, inst: &str, key: &str| {
        kvs.get_text(&scope(inst), Realm::Eu, now, key).unwrap()
    };
    assert_eq!(get(kvs, "evil", "pending:first").as_deref(), Some("1"));
    assert_eq!(get(kvs, "evil", "pending:second").as_deref(), Some("2"));
    assert_eq!(get(kvs, "evil", "pending:timer"), None);
    assert_eq!(get(kvs, "evil", "pending:released"), None);
    assert_eq!(get(kvs, "evil", "ok").as_deref(), Some("true"));
    assert_eq!(get(kvs, "victim", "ok"), None);
}

fn run_example(file: &str, seed: Option<u64>) -> signoff_sim::scenario::RunOutcome {
    let path = root().join("examples/scenarios/node").join(file);
    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    s.run(RunOptions {
        seed,
        ..RunOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_example_node_apps_pass_their_scenarios_and_replay_byte_for_byte() {
    app_dir("notes");
    app_dir("leaky");
    let a = run_example("notes.yaml", None);
    assert!(a.failures.is_empty(), "{:?}", a.failures);
    let b = run_example("notes.yaml", None);
    let (ta, tb) = (a.trace_json().to_string(), b.trace_json().to_string());
    assert_eq!(ta, tb, "same seed, same trace");
    let c = run_example("notes.yaml", Some(12));
    assert_ne!(
        c.trace_json().to_string(),
        ta,
        "another seed, other delays and randomness"
    );

    let leaky = run_example("leaky.yaml", None);
    assert!(leaky.failures.is_empty(), "{:?}", leaky.failures);
    let text = leaky.reports[0].to_text();
    assert!(
        text.contains("NOT eligible — page content sent to undeclared host collector.example.net"),
        "{text}"
    );
}

/// `__forge_fetch__` answers with `PlatformResponse` (crates/sim/node/globals.js): a real
/// `Response` that keeps the text it was given instead of undici's stream machinery. It must
/// behave as a `Response` does for everything the packages and apps use.
#[test]
fn platform_responses_behave_as_responses() {
    let globals = root().join("crates/sim/node/globals.js");
    let script = r#"
const assert = require('assert/strict');
const { PlatformResponse } = require(process.argv[1]);
(async () => {
  const body = JSON.stringify({ key: 'k', value: { a: 1 } });
  const r = new PlatformResponse(body, { status: 201, statusText: 'Created', headers: [['content-type', 'application/json']] });
  assert.ok(r instanceof Response);
  assert.equal(r.ok, true);
  assert.equal(r.status, 201);
  assert.equal(r.statusText, 'Created');
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.bodyUsed, false);
  const copy = r.clone();
  assert.deepEqual(await r.json(), { key: 'k', value: { a: 1 } });
  assert.equal(r.bodyUsed, true);
  await assert.rejects(r.text(), /already been read/);
  assert.throws(() => r.clone(), /already been consumed/);
  assert.equal(await copy.text(), body);
  // The body as a stream, once.
  const s = new PlatformResponse('héllo', { status: 200 });
  const chunk = await s.body.getReader().read();
  assert.equal(new TextDecoder().decode(chunk.value), 'héllo');
  assert.equal(s.bodyUsed, true);
  await assert.rejects(s.arrayBuffer(), /already been read/);
  // Bytes, blobs and an empty body.
  assert.deepEqual([...new Uint8Array(await new PlatformResponse('ab', {}).arrayBuffer())], [97, 98]);
  const blob = await new PlatformResponse('x', { headers: { 'content-type': 'text/plain' } }).blob();
  assert.equal(blob.type, 'text/plain');
  assert.equal(await blob.text(), 'x');
  const empty = new PlatformResponse(null, { status: 204 });
  assert.equal(empty.body, null);
  assert.equal(await empty.text(), '');
  const bad = new PlatformResponse('{', { status: 500 });
  assert.equal(bad.ok, false);
  await assert.rejects(bad.json(), SyntaxError);
  console.log('ok');
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&globals)
        .output()
        .expect("node runs (cargo xtask test checks that it is installed)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A worker thread meets the main thread's walls: the egress gate, raw sockets, child
/// processes and files are refused there too, its log lines reach the trace, it sees the
/// invocation's virtual time and its own `workerData`, and virtual time does not jump past a
/// running worker to a timer the invocation set beside it.
#[test]
fn worker_threads_run_behind_the_same_walls() {
    let mut p = platform(Duration::from_secs(10));
    let now = p.now();
    let r = json_of(p.invoke_as("evil", "resolver", resolver("worker"), None));
    assert_eq!(r["data"], json!({"job": 7}), "{r}");
    assert_eq!(r["now"], json!(now.0), "{r}");
    assert_eq!(r["fetch"], json!("REQUEST_EGRESS_ALLOWLIST_ERR"), "{r}");
    assert_eq!(r["socket"], json!("EACCES"), "{r}");
    assert_eq!(r["spawn"], json!("ERR_ACCESS_DENIED"), "{r}");
    assert_eq!(r["passwd"], json!("ERR_ACCESS_DENIED"), "{r}");
    // Its environment is the app's variables, without the NODE_OPTIONS the app passed.
    assert_eq!(r["env"], json!(["GREETING"]), "{r}");
    assert_eq!(
        r["real"],
        json!([true, true, true]),
        "Node's Worker class is out of reach: {r}"
    );
    let event = last(&p);
    let stats = event.node.clone().unwrap();
    assert!(
        stats
            .refused
            .iter()
            .any(|x| x == "child_process.execSync id"),
        "{event:#?}\n{:#?}",
        p.trace()
    );
    let lines: Vec<String> = p.logs().iter().map(|l| format!("{l:?}")).collect();
    assert_eq!(
        event.log_lines, 1,
        "the worker's console.log is the invocation's log line: {lines:#?}"
    );
    let blocked: Vec<_> = p
        .ledger()
        .iter()
        .map(|a| (a.destination.as_str(), a.allowed))
        .collect();
    assert_eq!(
        blocked,
        [
            ("collector.example.net/steal", false),
            ("collector.example.net:443", false)
        ],
        "the worker's fetch and its socket are in the ledger, blocked"
    );
    // What a worker sent before its answer belongs to the invocation, even when the answer
    // overtakes it (separate channels).
    for _ in 0..3 {
        let r = json_of(p.invoke_as("evil", "resolver", resolver("worker-burst"), None));
        assert_eq!(r, json!({"refused": 20}));
        let event = last(&p);
        // 100 kept (the platform's limit per invocation), the rest counted as dropped.
        assert_eq!(
            (event.log_lines, event.log_lines_dropped),
            (100, 100),
            "{event:?}"
        );
        let refused = &event.node.as_ref().unwrap().refused;
        assert_eq!(refused.len(), 20, "{refused:?}");
        assert_eq!(refused[19], "child_process.execSync id 19");
    }
    // From a file, by path and by file: URL; other sources are refused.
    let r = json_of(p.invoke_as("evil", "resolver", resolver("worker-file"), None));
    assert_eq!(
        r,
        json!({
            "path": {"n": 1, "fetch": "REQUEST_EGRESS_ALLOWLIST_ERR"},
            "url": {"n": 2, "fetch": "REQUEST_EGRESS_ALLOWLIST_ERR"},
            "data": "ERR_ACCESS_DENIED",
            "bare": "ERR_ACCESS_DENIED",
        })
    );

    // An idle worker kept in module scope stays warm: frozen between invocations, it works
    // for the next one (its virtual time, its ledger entry).
    let r1 = json_of(p.invoke_as("evil", "resolver", resolver("worker-warm"), None));
    p.clock().advance_by(3_600_000);
    let now = p.now();
    let r2 = json_of(p.invoke_as("evil", "resolver", resolver("worker-warm"), None));
    assert_eq!(r1["n"], json!(1), "{r1}");
    assert_eq!(r2["n"], json!(2), "the same worker, warm: {r2}");
    assert_eq!(r2["now"], json!(now.0), "{r2}");
    assert_eq!(r2["fetch"], json!("REQUEST_EGRESS_ALLOWLIST_ERR"), "{r2}");
    assert_eq!(last(&p).node.as_ref().unwrap().late, 0);
    let warm = p
        .ledger()
        .iter()
        .find(|a| a.destination.ends_with("/warm-2"))
        .expect("the warm worker's fetch is in the ledger");
    assert_eq!((warm.at, warm.allowed), (now, false));

    // A worker still running when the invocation returned is not frozen: its write a
    // moment later is refused as late work, and the worker is ended when the next
    // invocation starts.
    let r = p.invoke_as("evil", "resolver", resolver("worker-left"), None);
    assert_eq!(json_of(r), json!("returned"));
    std::thread::sleep(Duration::from_millis(600));
    let r = p.invoke_as("evil", "resolver", resolver("ok"), None);
    assert_eq!(json_of(r), json!("fine"));
    assert_eq!(last(&p).node.as_ref().unwrap().late, 1);
    let r = p.invoke_as("evil", "resolver", resolver("ok"), None);
    assert_eq!(json_of(r), json!("fine"));
    assert_eq!(
        last(&p).node.as_ref().unwrap().late,
        0,
        "nothing more of it"
    );
    good_still_served(&mut p);
    let scope = Scope {
        app: HOSTILE_ID.into(),
        environment: "production".into(),
        installation: "evil".into(),
    };
    let now = p.now();
    assert_eq!(
        p.kvs()
            .get_text(&scope, Realm::Eu, now, "worker-left")
            .unwrap(),
        None
    );
}

/// A small app written by the test (no packages: its handler calls `__forge_fetch__` as
/// `@forge/api` does), installed as `installation` on a platform of its own. The folder is
/// removed when the returned guard drops.
fn probe_app(
    name: &str,
    js: &str,
    modules: &str,
    app_uuid: &str,
    installation_id: &str,
) -> (Platform, ProbeDir) {
    let dir = std::env::temp_dir().join(format!("signoff-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("node_modules")).unwrap();
    std::fs::write(
        dir.join("package.json"),
        format!(r#"{{"name": "{name}", "private": true}}"#),
    )
    .unwrap();
    std::fs::write(dir.join("src/index.js"), js).unwrap();
    let id = format!("ari:cloud:ecosystem::app/{app_uuid}");
    let manifest = format!(
        "modules:\n{modules}resources:\n  - key: main\n    path: static\napp:\n  id: {id}\n  runtime:\n    name: nodejs20.x\n"
    );
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    let app = runtime
        .load_node_app(&manifest, &dir, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("the probe loads: {e}"));
    let mut p = Platform::new(runtime, SimConfig::forge());
    p.add_app(app);
    p.install(installation(installation_id, &id));
    (p, ProbeDir(dir))
}

/// Removes a probe app's folder.
struct ProbeDir(PathBuf);

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A probe app's handler that makes the requests of its payload (`{key?, method?, path,
/// body?, provider?}`, or a bare path for a GET) to `remote` and answers each one's status and
/// JSON body by its key (the path when it has none).
fn requests_probe(remote: &str) -> String {
    format!(
        "exports.run = async (request) => {{
  const out = {{}};
  for (const item of request.call.payload.requests) {{
    const req = typeof item === 'string' ? {{ path: item }} : item;
    const target = {{ type: 'fpp', provider: req.provider ?? 'app', remote: '{remote}' }};
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    const r = await globalThis.__forge_fetch__(target, req.path, {{ method: req.method ?? 'GET', headers: {{ accept: 'application/json', 'content-type': 'application/json' }}, body }});
    const text = await r.text();
    out[req.key ?? req.path] = {{ status: r.status, body: text ? JSON.parse(text) : null }};
  }}
  return out;
}};
"
    )
}

/// Calls the probe's `main` function as a resolver with `requests`.
fn probe(p: &mut Platform, installation: &str, requests: Value) -> Value {
    let payload = json!({ "requests": requests }).to_string();
    json_of(p.invoke_as(
        installation,
        "main",
        Call::Resolver {
            name: "probe".into(),
            payload,
        },
        Some("alice"),
    ))
}

/// The handler's arguments name the product the app extends and, for a resolver call, the UI
/// module whose resolver it is (`moduleKey`, and its extension ARI as `localId`), as the
/// platform's do (found running jenkins-for-jira, which reads both).
#[test]
fn a_resolver_call_names_its_ui_module_and_the_apps_product() {
    let js = "exports.run = (request, context) => ({ request, context, contextAri: globalThis.__forge_runtime__.contextAri });\n";
    let modules = "  jira:issuePanel:
    - key: issue-panel
      resource: main
      resolver:
        function: main
      title: Probe
  jira:globalPage:
    - key: global-page
      resource: main
      resolver:
        function: main
      title: Probe
  function:
    - key: main
      handler: index.run
    - key: other
      handler: index.run
";
    let (mut p, _dir) = probe_app(
        "jira-app",
        js,
        modules,
        "11111111-2222-4333-8444-555555555555",
        "jira",
    );
    let r = json_of(p.invoke_as("jira", "main", resolver("probe"), Some("alice")));
    let cloud = r["request"]["context"]["cloudId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r["request"]["context"]["moduleKey"], "issue-panel", "{r}");
    assert_eq!(
        r["request"]["context"]["localId"],
        "ari:cloud:ecosystem::extension/11111111-2222-4333-8444-555555555555/production/static/issue-panel",
        "{r}"
    );
    assert_eq!(
        r["context"]["installContext"],
        format!("ari:cloud:jira::site/{cloud}"),
        "{r}"
    );
    assert_eq!(
        r["contextAri"],
        format!("ari:cloud:jira::site/{cloud}"),
        "{r}"
    );
    // A function no UI module names: its own key.
    let r = json_of(p.invoke_as("jira", "other", resolver("probe"), Some("alice")));
    assert_eq!(r["request"]["context"]["moduleKey"], "other", "{r}");
    assert_eq!(r["request"]["context"]["extension"], json!({}), "{r}");

    // Called from a frame: its module, localId and extension (where it is shown) reach the
    // resolver's context, as apps read them (`req.context.extension.issue.key`).
    let ui = UiContext {
        module_key: Some("issue-panel".into()),
        local_id: Some("frame-7".into()),
        extension: json!({"type": "jira:issuePanel", "issue": {"id": "10001", "key": "ENG-1"}}),
    };
    let r = json_of(p.invoke_from_ui("jira", "main", resolver("probe"), Some("alice"), &ui));
    let c = &r["request"]["context"];
    assert_eq!(
        (
            &c["moduleKey"],
            &c["localId"],
            &c["extension"]["issue"]["key"]
        ),
        (&json!("issue-panel"), &json!("frame-7"), &json!("ENG-1")),
        "{r}"
    );
    assert_eq!(
        c["accountId"], "alice",
        "the caller is still the platform's: {r}"
    );
}

/// Page lists, page versions, footer comments and groups of the simulated Confluence, through
/// `__forge_fetch__` as `@forge/api`'s `requestConfluence` sends them (corpus apps 03 and 04
/// list pages and read versions).
#[test]
fn confluence_lists_pages_and_versions() {
    let modules = "  function:\n    - key: main\n      handler: index.run\n";
    let (mut p, _dir) = probe_app(
        "lists",
        &requests_probe("confluence"),
        modules,
        "11111111-2222-4333-8444-666666666666",
        "lists",
    );
    let site = "lists.atlassian.net";
    let mut ids = Vec::new();
    for (space, title) in [
        ("HR", "Leave"),
        ("ENG", "Specs"),
        ("HR", "Travel"),
        ("HR", "Pay"),
    ] {
        ids.push(
            p.confluence()
                .create_page(site, "carol", space, title, "<p>v1</p>")
                .unwrap()
                .id,
        );
    }
    p.confluence()
        .set_group(site, "admins", &["alice".to_string(), "bob".to_string()]);
    p.confluence().set_group(site, "hr", &["bob".to_string()]);
    p.confluence()
        .update_page(site, "dave", &ids[0], "Leave", "<p>v2</p>", 2)
        .unwrap();
    p.confluence()
        .update_page(site, "erin", &ids[0], "Leave", "<p>v3</p>", 3)
        .unwrap();
    let paths = [
        "/wiki/api/v2/pages?space-id=HR&limit=2".to_string(),
        format!("/wiki/api/v2/pages?space-id=HR&limit=2&cursor={}", ids[2]),
        "/wiki/api/v2/spaces/ENG/pages".to_string(),
        "/wiki/api/v2/pages?title=Travel&body-format=storage".to_string(),
        format!("/wiki/api/v2/pages/{}/versions?limit=2", ids[0]),
        format!("/wiki/api/v2/pages/{}/versions?cursor=2", ids[0]),
        "/wiki/api/v2/pages/999/versions".to_string(),
        "/wiki/api/v2/pages?limit=0".to_string(),
        "/wiki/rest/api/user/memberof?accountId=bob".to_string(),
        "/wiki/rest/api/group?start=1".to_string(),
        "/wiki/rest/api/group/member?name=admins".to_string(),
        "/wiki/rest/api/group/member?name=nobody".to_string(),
    ];
    let comment = format!("/wiki/api/v2/pages/{}/footer-comments", ids[1]);
    let mut requests: Vec<Value> = paths.iter().map(|p| json!(p)).collect();
    requests.extend([
        json!({"key": "v2", "method": "GET", "path": format!("/wiki/api/v2/pages/{}?version=2&body-format=storage", ids[0])}),
        json!({"key": "v2 details", "method": "GET", "path": format!("/wiki/api/v2/pages/{}/versions/2", ids[0])}),
        json!({"key": "v9", "method": "GET", "path": format!("/wiki/api/v2/pages/{}?version=9", ids[0])}),
        json!({"key": "post", "method": "POST", "path": "/wiki/api/v2/footer-comments", "body": {"pageId": ids[1], "body": {"representation": "storage", "value": "<p>Found an email address</p>"}}}),
        json!({"key": "list", "method": "GET", "path": comment}),
        json!({"key": "delete", "method": "DELETE", "path": "/wiki/api/v2/footer-comments/100005"}),
        json!({"key": "gone", "method": "GET", "path": "/wiki/api/v2/footer-comments/100005"}),
        json!({"key": "no page", "method": "POST", "path": "/wiki/api/v2/footer-comments", "body": {"pageId": "999", "body": {"representation": "storage", "value": "x"}}}),
    ]);
    let r = probe(&mut p, "lists", json!(requests));
    let titles = |path: &str| -> Vec<String> {
        r[path]["body"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(titles(&paths[0]), ["Leave", "Travel"], "{r}");
    assert_eq!(
        r[&paths[0]]["body"]["_links"]["next"],
        format!("/wiki/api/v2/pages?cursor={}&limit=2", ids[2]),
        "{r}"
    );
    assert_eq!(titles(&paths[1]), ["Pay"], "{r}");
    assert!(r[&paths[1]]["body"]["_links"].get("next").is_none(), "{r}");
    assert_eq!(titles(&paths[2]), ["Specs"], "{r}");
    assert_eq!(titles(&paths[3]), ["Travel"], "{r}");
    assert_eq!(
        r[&paths[3]]["body"]["results"][0]["body"]["storage"]["value"],
        "<p>v1</p>"
    );
    let numbers = |path: &str| -> Vec<(u64, String)> {
        r[path]["body"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["number"].as_u64().unwrap(),
                    v["authorId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        numbers(&paths[4]),
        [(3, "erin".to_string()), (2, "dave".to_string())],
        "{r}"
    );
    assert_eq!(numbers(&paths[5]), [(1, "carol".to_string())], "{r}");
    assert_eq!(r[&paths[6]]["status"], 404, "{r}");
    assert_eq!(r[&paths[7]]["status"], 400, "{r}");
    assert_eq!(
        r["v2"]["body"]["body"]["storage"]["value"], "<p>v2</p>",
        "{r}"
    );
    assert_eq!(r["v2"]["body"]["version"]["number"], 2, "{r}");
    assert_eq!(r["v2 details"]["body"]["authorId"], "dave", "{r}");
    assert_eq!(r["v2 details"]["body"]["prevVersion"]["number"], 1, "{r}");
    assert_eq!(r["v2 details"]["body"]["nextVersion"]["number"], 3, "{r}");
    assert_eq!(r["v9"]["status"], 404, "{r}");
    assert_eq!(r["post"]["status"], 200, "{r}");
    assert_eq!(r["post"]["body"]["id"], "100005", "{r}");
    assert_eq!(r["post"]["body"]["pageId"], ids[1].as_str(), "{r}");
    assert_eq!(
        r["post"]["body"]["version"]["authorId"],
        "app:ari:cloud:ecosystem::app/11111111-2222-4333-8444-666666666666",
        "{r}"
    );
    assert_eq!(
        r["list"]["body"]["results"][0]["body"]["storage"]["value"],
        "<p>Found an email address</p>",
        "{r}"
    );
    assert_eq!(r["delete"]["status"], 204, "{r}");
    assert_eq!(r["gone"]["status"], 404, "{r}");
    assert_eq!(r["no page"]["status"], 404, "{r}");
    let names = |path: &str, field: &str| -> Vec<String> {
        r[path]["body"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&paths[8], "name"), ["admins", "hr"], "{r}");
    assert_eq!(names(&paths[9], "name"), ["hr"], "{r}");
    assert_eq!(names(&paths[10], "accountId"), ["alice", "bob"], "{r}");
    assert_eq!(r[&paths[11]]["status"], 404, "{r}");
    // The product calls answered with an error are in the trace, whatever the app made of
    // them.
    assert_eq!(
        last(&p).node.as_ref().unwrap().product_errors,
        [
            "confluence GET /wiki/api/v2/pages/999/versions 404",
            "confluence GET /wiki/api/v2/pages?limit=0 400",
            "confluence GET /wiki/rest/api/group/member?name=nobody 404",
            "confluence GET /wiki/api/v2/pages/100001?version=9 404",
            "confluence GET /wiki/api/v2/footer-comments/100005 404",
            "confluence POST /wiki/api/v2/footer-comments 404"
        ]
    );
}

/// The simulated Jira's permission check (administrators are the members of the site's
/// `jira-administrators`, `site-admins` or `administrators` group) and its builds and
/// deployments APIs (corpus app 09, jenkins-for-jira, needs these to get past its admin check).
#[test]
fn jira_checks_permissions_and_takes_builds() {
    let modules = "  jira:adminPage:
    - key: admin
      resource: main
      resolver:
        function: main
      title: Probe
  function:
    - key: main
      handler: index.run
";
    let (mut p, _dir) = probe_app(
        "jira",
        &requests_probe("jira"),
        modules,
        "11111111-2222-4333-8444-777777777777",
        "j",
    );
    p.confluence().set_group(
        "j.atlassian.net",
        "jira-administrators",
        &["alice".to_string()],
    );
    p.confluence().note_account("j.atlassian.net", "bob");
    let check = json!({"globalPermissions": ["ADMINISTER", "USER_PICKER"], "projectPermissions": [{"permissions": ["BROWSE_PROJECTS"], "projects": [10000]}]});
    let requests = json!([
        {"key": "as alice", "provider": "user", "method": "POST", "path": "/rest/api/3/permissions/check", "body": check},
        {"key": "bob by the app", "provider": "app", "method": "POST", "path": "/rest/api/3/permissions/check", "body": {"accountId": "bob", "globalPermissions": ["ADMINISTER", "USER_PICKER"]}},
        {"key": "a stranger", "provider": "app", "method": "POST", "path": "/rest/api/3/permissions/check", "body": {"accountId": "mallory", "globalPermissions": ["USER_PICKER"]}},
        {"key": "builds", "provider": "app", "method": "POST", "path": "/rest/builds/0.1/bulk", "body": {"builds": [{"pipelineId": "p1", "buildNumber": 7}]}},
        {"key": "deployments", "provider": "app", "method": "POST", "path": "/rest/deployments/0.1/bulk", "body": {"deployments": [{"pipeline": {"id": "p1"}, "environment": {"id": "prod"}, "deploymentSequenceNumber": 3}]}},
        {"key": "delete", "provider": "app", "method": "DELETE", "path": "/rest/builds/0.1/bulkByProperties?cloudId=x"},
        {"key": "issue", "provider": "app", "method": "GET", "path": "/rest/api/3/issue/KEY-1"},
    ]);
    let r = probe(&mut p, "j", requests);
    assert_eq!(
        r["as alice"]["body"]["globalPermissions"],
        json!(["ADMINISTER", "USER_PICKER"]),
        "{r}"
    );
    assert_eq!(
        r["as alice"]["body"]["projectPermissions"],
        json!([{"permission": "BROWSE_PROJECTS", "projects": [10000], "issues": []}]),
        "{r}"
    );
    assert_eq!(
        r["bob by the app"]["body"]["globalPermissions"],
        json!(["USER_PICKER"]),
        "{r}"
    );
    assert_eq!(
        r["a stranger"]["body"]["globalPermissions"],
        json!([]),
        "{r}"
    );
    assert_eq!(r["builds"]["status"], 202, "{r}");
    assert_eq!(
        r["builds"]["body"]["acceptedBuilds"],
        json!([{"pipelineId": "p1", "buildNumber": 7}]),
        "{r}"
    );
    assert_eq!(
        r["deployments"]["body"]["acceptedDeployments"][0]["environmentId"], "prod",
        "{r}"
    );
    assert_eq!(r["delete"]["status"], 202, "{r}");
    assert_eq!(r["issue"]["status"], 404, "{r}");
    assert_eq!(
        last(&p).node.as_ref().unwrap().product_errors,
        ["jira GET /rest/api/3/issue/KEY-1 404"]
    );
}
