//! `cargo xtask bench scale`: the approval app (`apps/approvals`) at scale in the simulator.
//! SCALE_SITES sites (default 100), each its own installation in the EU realm with
//! SCALE_DOCS documents (default 1,000), through one simulated year: each document is
//! created (a page event), submitted, reminded once by the schedule and approved; the
//! app's scheduled trigger runs at its manifest interval all year on every site.
//!
//! Installations share nothing on the platform, so the sites are split into SCALE_SHARDS
//! shards (default: one per core), each an independent simulation on its own thread over
//! one engine; `SCALE_SHARDS=1` runs them all in one simulation.
//!
//! Prints the wall time, peak memory (VmHWM from /proc/self/status) and simulated events
//! per second (product events, scheduled runs and resolver calls). Build the app first:
//! `cargo xtask guests` (the xtask command does).

#![allow(clippy::print_stdout, clippy::print_stderr)] // an example owns its output.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use signoff_sim::Realm;
use signoff_sim::clock::Millis;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::{FlowConfig, InstallSpec, Simulation, Stats};
use signoff_sim::host::{Runtime, RuntimeConfig, SimConfig, guest_path};
use signoff_sim::hosted::{InstallationKvs, block_on};
use signoff_storage::DocumentIndex;
use signoff_storage::hosted::HostedStore;
use wasmtime::component::Component;

const APP_ID: &str = "ari:cloud:ecosystem::app/7b0c2f8e-5a41-4d6b-9e3f-2c8a1d4e6f90";

/// One approval stage (bob or carol), a reminder a day to whoever has not decided.
const WORKFLOW: &str = "name: scale\ninitial: draft\nstates:\n  - name: draft\n    on: {submit: in_review}\n  - name: in_review\n    approval:\n      stages:\n        - name: review\n          groups:\n            - name: reviewers\n              reviewers: [{user: bob}, {user: carol}]\n              rule: any\n              remind_every: P1D\n    on: {approved: approved, rejected: draft}\n  - name: approved\n    final: true\n    on: {edit: draft}\n";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    match scale() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench scale: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Act {
    Create,
    Submit,
    Approve,
}

fn scale() -> Result<(), String> {
    let sites = env("SCALE_SITES", 100);
    let docs = env("SCALE_DOCS", 1_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest_path = root.join("apps/approvals/manifest.yml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let wasm = guest_path(&root, "approvals");
    // Keep the first 2 MiB of each pooled memory resident between invocations (see
    // `RuntimeConfig::keep_resident_bytes`).
    let runtime = Runtime::new(RuntimeConfig {
        keep_resident_bytes: 2 << 20,
        // `SIGNOFF_SIM_PERF_MAP=1 perf record ...` names the app's functions.
        perf_map: std::env::var_os("SIGNOFF_SIM_PERF_MAP").is_some_and(|v| v == "1"),
        ..RuntimeConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let component = runtime
        .compile(&wasm)
        .map_err(|e| format!("{e} (run `cargo xtask guests` first)"))?;
    // Installations share nothing on the platform (their own storage, site and switches),
    // so the sites are split into shards, each an independent simulation on its own
    // thread over the one engine. SCALE_SHARDS=1 runs every site in one simulation.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let shards = env("SCALE_SHARDS", cores).clamp(1, sites.max(1));
    let started = Instant::now();
    let results: Vec<Result<Shard, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shards)
            .map(|k| {
                // Sites k, k + shards, k + 2 * shards, ...: every shard gets the same work.
                let ids: Vec<u64> = (k..sites).step_by(shards as usize).collect();
                let (runtime, component, manifest) = (runtime.clone(), &component, &manifest);
                let progress = k == 0;
                scope.spawn(move || {
                    run_shard(runtime, component, manifest, &ids, docs, progress, started)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a shard panicked".into())))
            .collect()
    });
    let wall = started.elapsed();
    let mut total = Shard::default();
    for r in results {
        total.add(&r?);
    }
    let Shard {
        stats,
        calls,
        failures,
        approved,
        keys,
    } = total;
    // Every invocation is a heard product event, a resolver call or a scheduled run.
    let heard = stats.product_events - stats.unheard_events;
    let scheduled = stats.invocations - heard - calls - sites;
    let events = stats.product_events + scheduled + calls;
    let secs = wall.as_secs_f64();
    println!(
        "scale: {sites} sites x {docs} documents x 365 simulated days (the approval app, schedule every {}), {shards} shard{}",
        interval(&manifest),
        if shards == 1 { "" } else { "s" }
    );
    println!(
        "  {} invocations: {} product events ({} unheard), {scheduled} scheduled runs, {calls} resolver calls ({failures} refused or failed), {} retries, {} dead letters",
        stats.invocations,
        stats.product_events,
        stats.unheard_events,
        stats.retries,
        stats.dead_letters
    );
    println!(
        "  documents approved: {approved} of {}; hosted keys: {keys}",
        sites * docs
    );
    println!(
        "  wall {secs:.1} s, peak RSS {}, {:.0} simulated events/s ({:.0} invocations/s)   goals: < 60 s, < 2 GiB",
        peak_rss(),
        events as f64 / secs,
        stats.invocations as f64 / secs
    );
    if approved as u64 != sites * docs || stats.dead_letters > 0 || failures > 0 {
        return Err("not every document went through its lifecycle".into());
    }
    Ok(())
}

/// What one shard counted.
#[derive(Default)]
struct Shard {
    stats: Stats,
    calls: u64,
    failures: u64,
    approved: usize,
    keys: usize,
}

impl Shard {
    fn add(&mut self, o: &Shard) {
        let (s, t) = (&mut self.stats, &o.stats);
        s.product_events += t.product_events;
        s.unheard_events += t.unheard_events;
        s.jobs += t.jobs;
        s.invocations += t.invocations;
        s.retries += t.retries;
        s.dead_letters += t.dead_letters;
        self.calls += o.calls;
        self.failures += o.failures;
        self.approved += o.approved;
        self.keys += o.keys;
    }
}

/// One simulation of the sites `ids` through the year.
fn run_shard(
    runtime: Arc<Runtime>,
    component: &Component,
    manifest: &str,
    ids: &[u64],
    docs: u64,
    progress: bool,
    started: Instant,
) -> Result<Shard, String> {
    // No trace lines (a line per invocation and per event, over a million of each); the
    // counters and the egress ledger are kept.
    let config = SimConfig {
        trace: false,
        ..SimConfig::forge()
    };
    let mut sim = Simulation::new(runtime, config, FlowConfig::forge());
    sim.deploy("manifest.yml", manifest, component, &BTreeMap::new())
        .map_err(|e| e.to_string())?;
    let site = |i: u64| format!("site{i:03}.atlassian.net");
    let inst = |i: u64| format!("site{i:03}");
    for &i in ids {
        sim.install(InstallSpec {
            id: inst(i),
            app: APP_ID.into(),
            site: site(i),
            realm: Realm::Eu,
            environment: "production".into(),
            admin: AdminSwitches::default(),
        })
        .map_err(|e| e.to_string())?;
        let payload = serde_json::json!({"accountId": "ada", "space": "POL", "source": WORKFLOW});
        sim.call_resolver(
            &inst(i),
            None,
            Some("ada"),
            "assign-workflow",
            &payload.to_string(),
        )
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("assign-workflow: {e}"))?;
    }
    // Every action of the year, in time order: document j of site i is created on day
    // 300 * j / docs (plus a few minutes per site), submitted an hour later and approved
    // 30 hours after that (after one reminder).
    let t0 = sim.now();
    let mut plan: Vec<(Millis, u64, u64, Act)> = Vec::with_capacity(ids.len() * docs as usize * 3);
    for &i in ids {
        for j in 0..docs {
            let created = t0.plus(Millis::HOUR + 300 * Millis::DAY * j / docs + i * 7_000);
            plan.push((created, i, j, Act::Create));
            plan.push((created.plus(Millis::HOUR), i, j, Act::Submit));
            plan.push((created.plus(31 * Millis::HOUR), i, j, Act::Approve));
        }
    }
    plan.sort_unstable();
    let mut pages: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let (mut calls, mut failures) = (0u64, 0u64);
    let year_end = t0.plus(365 * Millis::DAY);
    let mut shown = 0;
    for (at, i, j, act) in plan {
        sim.run_until(at);
        let day = (at.0 - t0.0) / Millis::DAY;
        if progress && day >= shown + 30 {
            shown = day;
            eprintln!(
                "  day {day}: {:.1} s, {} invocations in the first shard",
                started.elapsed().as_secs_f64(),
                sim.stats().invocations
            );
        }
        match act {
            Act::Create => {
                let p = sim
                    .create_page(
                        &site(i),
                        "alice",
                        "POL",
                        &format!("Policy {j}"),
                        "<p>v1</p>",
                    )
                    .map_err(|e| e.to_string())?;
                pages.insert((i, j), p.id);
            }
            Act::Submit | Act::Approve => {
                let (name, by) = if act == Act::Submit {
                    ("submit", "alice")
                } else {
                    ("approve", "bob")
                };
                let page = pages.get(&(i, j)).ok_or("a page was not created")?;
                let payload = format!(r#"{{"accountId":"{by}","pageId":"{page}"}}"#);
                calls += 1;
                if sim
                    .call_resolver(&inst(i), None, Some(by), name, &payload)
                    .map_err(|e| e.to_string())?
                    .is_err()
                {
                    failures += 1;
                }
            }
        }
    }
    sim.run_until(year_end);
    // Every document approved, read natively from each installation's hosted store.
    let mut approved = 0usize;
    for &i in ids {
        let scope = sim
            .platform()
            .installation(&inst(i))
            .ok_or("installation")?
            .scope();
        let now = sim.now();
        let store = HostedStore::new(InstallationKvs::new(
            sim.platform_mut().kvs(),
            scope,
            Realm::Eu,
            now,
        ));
        approved += block_on(store.by_state("approved"))
            .map_err(|e| e.to_string())?
            .len();
    }
    let keys: usize = sim
        .platform_mut()
        .kvs()
        .keys_per_realm()
        .map_err(|e| e.to_string())?
        .values()
        .sum();
    Ok(Shard {
        stats: sim.stats(),
        calls,
        failures,
        approved,
        keys,
    })
}

fn interval(manifest: &str) -> &str {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("interval:"))
        .map_or("?", str::trim)
}

/// VmHWM, the peak resident set size of this process.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kb| {
            format!("{:.0} MiB", kb as f64 / 1024.0)
        })
}
