//! `cargo xtask bench scale`: the approval app (`apps/approvals`) at scale in the simulator.
//! SCALE_SITES sites (default 100), each its own installation in the EU realm with
//! SCALE_DOCS documents (default 1,000), through one simulated year: each document is
//! created (a page event), submitted, reminded once by the schedule and approved; the
//! app's scheduled trigger runs at its manifest interval all year on every site.
//!
//! Prints the wall time, peak memory (VmHWM from /proc/self/status) and simulated events
//! per second (product events, scheduled runs and resolver calls). Build the app first:
//! `cargo xtask guests` (the xtask command does).

#![allow(clippy::print_stdout, clippy::print_stderr)] // an example owns its output.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use signoff_sim::Realm;
use signoff_sim::clock::Millis;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::{FlowConfig, InstallSpec, Simulation};
use signoff_sim::host::{Runtime, RuntimeConfig, SimConfig, guest_path};
use signoff_sim::hosted::{InstallationKvs, block_on};
use signoff_storage::DocumentIndex;
use signoff_storage::hosted::HostedStore;

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
        ..RuntimeConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let component = runtime
        .compile(&wasm)
        .map_err(|e| format!("{e} (run `cargo xtask guests` first)"))?;
    let started = Instant::now();
    // No trace lines (a line per invocation and per event, over a million of each); the
    // counters and the egress ledger are kept.
    let config = SimConfig {
        trace: false,
        ..SimConfig::forge()
    };
    let mut sim = Simulation::new(runtime, config, FlowConfig::forge());
    sim.deploy("manifest.yml", &manifest, &component, &BTreeMap::new())
        .map_err(|e| e.to_string())?;
    let site = |i: u64| format!("site{i:03}.atlassian.net");
    let inst = |i: u64| format!("site{i:03}");
    for i in 0..sites {
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
    let mut plan: Vec<(Millis, u64, u64, Act)> = Vec::with_capacity((sites * docs * 3) as usize);
    for i in 0..sites {
        for j in 0..docs {
            let created = t0.plus(Millis::HOUR + 300 * Millis::DAY * j / docs + i * 7_000);
            plan.push((created, i, j, Act::Create));
            plan.push((created.plus(Millis::HOUR), i, j, Act::Submit));
            plan.push((created.plus(31 * Millis::HOUR), i, j, Act::Approve));
        }
    }
    plan.sort_unstable();
    let mut pages: Vec<String> = vec![String::new(); (sites * docs) as usize];
    let mut calls = 0u64;
    let mut failures = 0u64;
    let year_end = t0.plus(365 * Millis::DAY);
    let mut shown = 0;
    for (at, i, j, act) in plan {
        sim.run_until(at);
        let day = (at.0 - t0.0) / Millis::DAY;
        if day >= shown + 30 {
            shown = day;
            eprintln!(
                "  day {day}: {:.1} s, {} invocations",
                started.elapsed().as_secs_f64(),
                sim.stats().invocations
            );
        }
        let k = (i * docs + j) as usize;
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
                pages[k] = p.id;
            }
            Act::Submit | Act::Approve => {
                let (name, by) = if act == Act::Submit {
                    ("submit", "alice")
                } else {
                    ("approve", "bob")
                };
                let payload = format!(r#"{{"accountId":"{by}","pageId":"{}"}}"#, pages[k]);
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
    let wall = started.elapsed();
    let stats = sim.stats();
    // Every invocation is a heard product event, a resolver call or a scheduled run.
    let heard = stats.product_events - stats.unheard_events;
    let scheduled = stats.invocations - heard - calls - sites;
    // Every document approved, read natively from each installation's hosted store.
    let mut approved = 0usize;
    for i in 0..sites {
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
    let events = stats.product_events + scheduled + calls;
    let secs = wall.as_secs_f64();
    println!(
        "scale: {sites} sites x {docs} documents x 365 simulated days (the approval app, schedule every {})",
        interval(&manifest)
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
