//! The approval app's scenarios (`examples/scenarios/approvals/*.yaml`), run through the
//! simulator's scenario machinery (what `signoff sim run` does) with the real component.
//! Every expectation of each file must hold; then the test reads each installation's hosted
//! storage after the run, verifies every document's hash chain natively with
//! `signoff-core`, cross-checks each chain's head with the page's `signoff-summary`
//! property, and snapshots (JSON) the audit trail as readable lines, the egress ledger and
//! the RoA report. The guests must be built (`cargo xtask guests`).
//!
//! All scenarios run in one test on one shared `Runtime`, so the component compiles once
//! (in a debug build that is most of the time).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use serde_json::{Value, json};
use signoff_core::store::EventStore;
use signoff_core::{Record, audit};
use signoff_e2e::root;
use signoff_sim::clock::Millis;
use signoff_sim::flow::{Flow, FlowConfig};
use signoff_sim::host::{Runtime, RuntimeConfig};
use signoff_sim::scenario::{RunOptions, RunOutcome, Scenario};
use signoff_storage::hosted::{HostedStore, KeyPolicy, Kvs, MemoryKvs};

/// The approval app's scenarios, in file-name order.
fn scenarios() -> Vec<PathBuf> {
    let dir = root().join("examples/scenarios/approvals");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn run(runtime: &Arc<Runtime>, file: &Path) -> RunOutcome {
    let rel = file.strip_prefix(root()).unwrap();
    // Relative paths, so that failures and snapshots name the file as a user would.
    std::env::set_current_dir(root()).unwrap();
    Scenario::load(rel)
        .unwrap_or_else(|e| panic!("{e}"))
        .run_on(runtime.clone(), RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Worker threads only make and free instances: the approval app's scenarios give the same
/// bytes (trace, ledger, summary) with 1, 2 and 3 threads.
#[test]
fn the_number_of_threads_changes_nothing_for_the_approval_app() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    std::env::set_current_dir(root()).unwrap();
    for name in ["two-stage.yaml", "upgrade-consent.yaml"] {
        let rel = Path::new("examples/scenarios/approvals").join(name);
        let scenario = Scenario::load(&rel).unwrap_or_else(|e| panic!("{e}"));
        let outputs = |threads: usize| {
            let options = RunOptions {
                threads: Some(threads),
                ..RunOptions::default()
            };
            let out = scenario
                .run_on(runtime.clone(), options)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.passed(), "{name}, {threads} threads: {}", out.to_text());
            let summary = serde_json::to_string(&out.summary()).unwrap();
            (out.trace_json().to_string(), summary, out.to_text())
        };
        let one = outputs(1);
        for threads in [2, 3] {
            assert!(
                outputs(threads) == one,
                "{name}: {threads} threads changed an output"
            );
        }
    }
}

/// The futures of the storage traits over an in-memory store are ready at once.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// One audit record as a line a person reads: seq, time, action and its details, actor
/// (and on whose behalf), document version, states, signature, and the record's hash.
fn line(r: &Record) -> String {
    let event = serde_json::to_value(&r.event).unwrap();
    let mut what = event["action"].as_str().unwrap().to_string();
    if let Some(detail) = event.get("detail").and_then(Value::as_object) {
        for (k, v) in detail {
            if k == "workflow_hash" {
                continue;
            }
            let v = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            what.push_str(&format!(" {k}={v}"));
        }
    }
    let at = serde_json::to_value(r.at).unwrap();
    let by = match &r.on_behalf_of {
        Some(o) => format!("{} for {o}", r.actor),
        None => r.actor.clone(),
    };
    let signed = r
        .signature
        .as_ref()
        .map(|s| {
            let s = serde_json::to_value(s).unwrap();
            format!(" signed {} ({})", s["name"], s["meaning"])
        })
        .unwrap_or_default();
    format!(
        "{} {} {what} | by {by} | v{} {}->{}{signed} | #{}",
        r.seq,
        at.as_str().unwrap_or(&at.to_string()),
        r.version,
        r.from_state,
        r.to_state,
        &r.hash[..12]
    )
}

/// Every document of `install` after the run, read from the simulator's hosted storage
/// through the same `HostedStore` layout the app writes, its chain verified natively.
fn audit_trail(outcome: &RunOutcome, install: &str) -> Value {
    let platform = outcome.sim.platform();
    let kvs = MemoryKvs::new();
    for (key, value) in platform.inspect(install).unwrap() {
        kvs.set(&key, &value.to_string(), KeyPolicy::Overwrite)
            .unwrap();
    }
    let store = HostedStore::new(kvs);
    let mut docs = BTreeMap::new();
    for (key, value) in platform.inspect(install).unwrap() {
        let Some(page) = key.strip_prefix("app:page:") else {
            continue;
        };
        let doc = value["doc"].as_str().unwrap().to_string();
        let records = block_on(store.read(&doc, 0)).unwrap();
        audit::verify(&records).unwrap_or_else(|e| panic!("{install} {doc}: {e:?}"));
        let head = records.last().map(|r| r.hash.clone()).unwrap();
        // The head the app shows on the page is the chain's head.
        let site = platform
            .pages()
            .get_page(&site_of(outcome, install), page)
            .map(|p| p.id);
        assert_eq!(site.as_deref(), Some(page));
        let summary = platform
            .pages()
            .get_property(&site_of(outcome, install), page, "signoff-summary")
            .expect("a summary property");
        let summary: Value = serde_json::from_str(&summary.value).unwrap();
        assert_eq!(summary["head"], head.as_str(), "{install} {doc}");
        audit::verify_head(&records, &head).unwrap();
        docs.insert(
            doc,
            json!({
                "page": page,
                "state": summary["state"],
                "verified": true,
                "records": records.iter().map(line).collect::<Vec<_>>(),
            }),
        );
    }
    json!(docs)
}

fn site_of(outcome: &RunOutcome, install: &str) -> String {
    outcome
        .sim
        .platform()
        .installation(install)
        .map(|i| i.site.clone())
        .unwrap()
}

/// The egress ledger as lines, runs of like attempts (same installation, destination,
/// verdict, reason and carried content) folded into one line with their count and the
/// first and last times.
fn ledger(outcome: &RunOutcome) -> Value {
    let mut runs: Vec<(String, u32, u64, u64)> = Vec::new();
    for a in outcome.sim.platform().ledger() {
        let v = serde_json::to_value(a).unwrap();
        let text = |k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut what = format!(
            "{} ({}) {} {} [{}{}]",
            text("installation"),
            text("realm"),
            text("method"),
            text("destination"),
            text("category"),
            if v["in_scope_eud"] == true {
                ", in-scope EUD"
            } else {
                ""
            },
        );
        if v["allowed"] == true {
            what.push_str(" allowed");
        } else {
            what.push_str(&format!(" BLOCKED ({})", text("blocked_because")));
        }
        if let Some(c) = v["carries"].as_str() {
            what.push_str(&format!(", carries {c}"));
        }
        let at = v["at"].as_u64().unwrap();
        match runs.last_mut() {
            Some(last) if last.0 == what => {
                last.1 += 1;
                last.3 = at;
            }
            _ => runs.push((what, 1, at, at)),
        }
    }
    json!(
        runs.iter()
            .map(|(what, n, first, last)| {
                let (first, last) = (Millis(*first), Millis(*last));
                if n == &1 {
                    format!("{first} {what}")
                } else {
                    format!("{first} .. {last} {n} x {what}")
                }
            })
            .collect::<Vec<_>>()
    )
}

/// What the snapshot of one run holds.
fn snapshot(outcome: &RunOutcome) -> Value {
    let summary = serde_json::to_value(outcome.summary()).unwrap();
    let audit: BTreeMap<String, Value> = summary["installations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = i["id"].as_str().unwrap();
            (id.to_string(), audit_trail(outcome, id))
        })
        .collect();
    json!({
        "scenario": summary["scenario"],
        "seed": summary["seed"],
        "stats": summary["stats"],
        "installations": summary["installations"],
        "audit": audit,
        "egress": ledger(outcome),
        "roa": summary["roa"],
    })
}

/// The TOTP scenario's secret, and every code it had at the time of each resolver call, are
/// nowhere but in the platform's secret storage: not in the installation's non-secret
/// values, the pages' properties, the egress ledger, the analytics and log records, the
/// trace or the printed report. (The bodies sent to the analytics host are checked in
/// `approvals.rs`, which records them.)
fn no_secret_or_code_left_the_secret_store(outcome: &RunOutcome) {
    let secret = outcome.captured["quinn_secret"].as_str();
    let platform = outcome.sim.platform();
    let codes: Vec<String> = platform
        .trace()
        .iter()
        .filter(|t| t.handler == "resolver")
        .filter_map(|t| signoff_sim::scenario::totp_code(secret, t.at.0 / 1000))
        .collect();
    assert!(codes.len() > 20, "{codes:?}");
    let mut seen = Vec::new();
    for (key, value) in platform.inspect("acme-approvals").unwrap() {
        seen.push(format!("{key} {value}"));
    }
    let site = site_of(outcome, "acme-approvals");
    for (key, _) in platform.inspect("acme-approvals").unwrap() {
        let Some(page) = key.strip_prefix("app:page:") else {
            continue;
        };
        for property in ["signoff-summary", "signoff-notifications"] {
            if let Some(p) = platform.pages().get_property(&site, page, property) {
                seen.push(p.value);
            }
        }
    }
    seen.push(serde_json::to_string(platform.ledger()).unwrap());
    seen.push(serde_json::to_string(platform.analytics()).unwrap());
    seen.push(serde_json::to_string(platform.logs()).unwrap());
    seen.push(outcome.trace_json().to_string());
    seen.push(outcome.to_text());
    seen.push(format!("{outcome:?}"));
    let everything = seen.join("\n");
    assert!(!everything.contains(secret), "the TOTP secret leaked");
    for code in &codes {
        assert!(
            !everything.contains(code.as_str()),
            "the code {code} leaked"
        );
    }
}

#[test]
fn the_approval_app_scenarios_pass_and_their_chains_verify() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    let mut files = scenarios();
    assert!(files.len() >= 9, "{files:?}");
    // `APPROVALS_SCENARIO=veto` runs only the files whose name contains it (while writing one).
    if let Ok(only) = std::env::var("APPROVALS_SCENARIO") {
        files.retain(|f| f.file_stem().unwrap().to_string_lossy().contains(&only));
    }
    let mut failed = Vec::new();
    for file in &files {
        let outcome = run(&runtime, file);
        if !outcome.passed() {
            failed.push(outcome.to_text());
            continue;
        }
        let snap = snapshot(&outcome);
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_json_snapshot!(format!("approvals_{name}"), snap);
        if name == "webhook" {
            // The runtime verdict names the host and what went there.
            let reasons = snap["roa"][0]["observed"]["reasons"].to_string();
            assert!(
                reasons.contains("hooks.signoff.example") && reasons.contains("page content"),
                "{reasons}"
            );
        }
        if name == "totp" {
            no_secret_or_code_left_the_secret_store(&outcome);
        }
        if name == "two-stage" {
            // The same seed gives the same bytes: the run again, trace and snapshot.
            let again = run(&runtime, file);
            assert_eq!(snapshot(&again), snap);
            assert_eq!(
                again.trace_json().to_string(),
                outcome.trace_json().to_string()
            );
            // `signoff sim run` prints `to_text()`: the app README shows it.
            let readme = std::fs::read_to_string(root().join("apps/approvals/README.md")).unwrap();
            let text = outcome.to_text();
            if !readme.contains(&text) {
                failed.push(format!(
                    "apps/approvals/README.md's \"Try it\" shows something else than:\n{text}"
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Scheduled triggers may fire twice (platform.md §5): with every firing of the hourly
/// schedule run a second time within 30 s, the scenarios driven by it (due dates, reminders,
/// escalation, expiry, periodic review) still pass and leave the very same audit trails: a
/// duplicate firing records nothing.
#[test]
fn every_scheduled_firing_twice_changes_no_audit_trail() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    std::env::set_current_dir(root()).unwrap();
    for name in ["expiry.yaml", "periodic-review.yaml"] {
        let rel = Path::new("examples/scenarios/approvals").join(name);
        let mut scenario = Scenario::load(&rel).unwrap_or_else(|e| panic!("{e}"));
        let run = |s: &Scenario| {
            let out = s
                .run_on(runtime.clone(), RunOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.passed(), "{name}: {}", out.to_text());
            out
        };
        let once = run(&scenario);
        scenario.set_flow(FlowConfig {
            schedule_duplicates_ppm: 1_000_000,
            ..scenario.flow()
        });
        let twice = run(&scenario);
        let firings = |o: &RunOutcome| {
            o.sim
                .trace()
                .iter()
                .filter(
                    |e| matches!(&e.what, Flow::Delivery { handler, .. } if *handler == "schedule"),
                )
                .count()
        };
        assert!(
            firings(&twice) >= 2 * firings(&once) - 1,
            "{name}: {} firings, {} before",
            firings(&twice),
            firings(&once)
        );
        let installs: Vec<String> = once
            .sim
            .installations()
            .map(|(i, _)| i.to_string())
            .collect();
        assert!(!installs.is_empty());
        for install in installs {
            let trail = audit_trail(&once, &install);
            assert!(
                trail.as_object().is_some_and(|d| !d.is_empty()),
                "{name}: {install}"
            );
            assert_eq!(audit_trail(&twice, &install), trail, "{name}: {install}");
        }
    }
}

/// The Forge package (`apps/approvals/forge`, built by `cargo xtask package`): the same
/// engine component, turned into JavaScript and core wasm by jco and run in a worker thread
/// of a Node app whose platform calls go through the real `@forge/*` packages. Every
/// scenario passes on it too, and leaves the same audit trails, egress ledger, storage and
/// RoA verdicts as the component; the runtime line of the report is the only difference.
#[test]
fn the_forge_package_passes_every_scenario_with_the_same_trails() {
    let package = root().join("apps/approvals/forge");
    assert!(
        package.join("engine/core-wasm.js").is_file() && package.join("node_modules").is_dir(),
        "the Forge package is not built: run `cargo xtask package`"
    );
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    let mut files = scenarios();
    if let Ok(only) = std::env::var("APPROVALS_SCENARIO") {
        files.retain(|f| f.file_stem().unwrap().to_string_lossy().contains(&only));
    }
    let mut failed = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root()).unwrap();
        std::env::set_current_dir(root()).unwrap();
        let scenario = Scenario::load(rel).unwrap_or_else(|e| panic!("{e}"));
        let component = scenario
            .run_on(runtime.clone(), RunOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let forge = scenario
            .clone()
            .with_node_app("approvals", &package)
            .unwrap()
            .run_on(runtime.clone(), RunOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        if !forge.passed() {
            failed.push(format!("the package: {}", forge.to_text()));
            continue;
        }
        assert!(component.passed(), "{}", component.to_text());
        let (mut a, mut b) = (snapshot(&component), snapshot(&forge));
        // The report names the runtime that ran (wasmtime, or Node.js and its isolation).
        for roa in [&mut a["roa"], &mut b["roa"]] {
            for app in roa.as_array_mut().unwrap() {
                app.as_object_mut().unwrap().remove("runtime");
            }
        }
        for part in ["audit", "egress", "installations", "roa", "stats"] {
            if a[part] != b[part] {
                failed.push(format!(
                    "{}: `{part}` differs between the component and the package:\ncomponent: {}\npackage:   {}",
                    rel.display(),
                    serde_json::to_string_pretty(&a[part]).unwrap(),
                    serde_json::to_string_pretty(&b[part]).unwrap()
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// What `cargo xtask package` leaves in `apps/approvals/forge` is what `forge deploy` would
/// take: a manifest that roa-check finds eligible and that matches the component's but for
/// its runtime and one read scope; a handler export for every function; an engine built from the current
/// component; no file that is a link or a source import that leaves the folder.
#[test]
fn the_forge_package_is_deployable_as_it_stands() {
    let package = root().join("apps/approvals/forge");
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    // Eligible, and the same modules, scopes and egress as the component.
    let run = signoff_e2e::signoff(&["roa", "check", "apps/approvals/forge/manifest.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ELIGIBLE"), "{}", run.stdout);
    let body = |text: &str| {
        text.split_once("\napp:\n")
            .map(|(_, b)| b.to_string())
            .unwrap()
    };
    let component = read(&root().join("apps/approvals/manifest.yml"));
    let manifest = read(&package.join("manifest.yml"));
    // The one addition: pages v2 name a page's space by id, and the package looks the key
    // up (`read:space:confluence`, with its comment).
    let space_scope = manifest
        .split_once("    - read:page:confluence\n")
        .and_then(|(_, rest)| rest.split_once("    - read:space:confluence\n"))
        .map(|(comment, _)| format!("{comment}    - read:space:confluence\n"))
        .expect("the package asks for read:space:confluence after read:page:confluence");
    assert_eq!(
        body(&component)
            .replace("    name: wasm32-wasip2\n", "    name: nodejs22.x\n")
            .replace(
                "    - read:page:confluence\n",
                &format!("    - read:page:confluence\n{space_scope}")
            ),
        body(&manifest),
        "apps/approvals/forge/manifest.yml must be apps/approvals/manifest.yml on nodejs22.x, plus read:space:confluence"
    );
    // Every function's handler is an export of its module.
    let mut handlers = 0;
    for line in manifest.lines() {
        let Some(handler) = line.trim().strip_prefix("handler: ") else {
            continue;
        };
        let (module, export) = handler.split_once('.').unwrap();
        let source = read(&package.join(format!("src/{module}.js")));
        assert!(
            source.contains(&format!("export async function {export}(")),
            "{handler}: src/{module}.js exports no function `{export}`"
        );
        handlers += 1;
    }
    assert_eq!(handlers, 4);
    // The engine is the current component's.
    let wasm =
        std::fs::read(root().join("guests/target/wasm32-wasip2/release/approvals.wasm")).unwrap();
    let built: Value = serde_json::from_str(&read(&package.join("engine/build.json"))).unwrap();
    assert_eq!(
        built["component"].as_str(),
        Some(signoff_core::audit::sha256_hex(&wasm).as_str()),
        "engine/ was built from another component: run `cargo xtask package`"
    );
    assert!(package.join("static/ui/index.html").is_file());
    // Nothing reaches outside the folder: no links, no relative import that leaves it.
    let mut stack = vec![package.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let (path, kind) = (e.path(), e.file_type().unwrap());
            assert!(!kind.is_symlink(), "{} is a link", path.display());
            if e.file_name() == "node_modules" {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "js" || x == "mjs") {
                let text = read(&path);
                for quote in ["from '", "import('"] {
                    for part in text.split(quote).skip(1) {
                        let spec = part.split('\'').next().unwrap();
                        if spec.starts_with('.') {
                            let target = path.parent().unwrap().join(spec);
                            let target = std::path::absolute(&target).unwrap();
                            let normal: PathBuf =
                                target.components().fold(PathBuf::new(), |mut p, c| {
                                    match c {
                                        std::path::Component::ParentDir => {
                                            p.pop();
                                        }
                                        std::path::Component::CurDir => {}
                                        c => p.push(c),
                                    }
                                    p
                                });
                            assert!(
                                normal.starts_with(&package),
                                "{} imports {spec}, outside the package",
                                path.display()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Each platform import of the package's glue (`src/platform.js`) against the simulator's
/// platform: values, absent values, cursors, transactions, versions, and the error codes
/// the engine acts on (`KEY_CONFLICT`, `KEY_TOO_LONG`, `CONFLICT`, `NOT_FOUND`,
/// `REQUEST_EGRESS_ALLOWLIST_ERR`) passed through as the wasm host answers them.
#[test]
fn the_forge_package_glue_answers_as_the_wasm_host() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("engine");
    let outcome = run(&runtime, &root().join("tests/e2e/data/forge-glue.yaml"));
    assert!(outcome.passed(), "{}", outcome.to_text());
    let ledger: Vec<(String, bool)> = outcome
        .sim
        .platform()
        .ledger()
        .iter()
        .map(|a| (a.destination.clone(), a.allowed))
        .collect();
    assert_eq!(
        ledger,
        [
            ("analytics.signoff.example/v1/events".to_string(), true),
            ("collector.example.net/x".to_string(), false)
        ]
    );
}
