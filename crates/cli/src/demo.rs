//! `signoff demo [SCENARIO]`: runs the flagship scenario (`examples/scenarios/flagship.yaml`:
//! the approval app on an EU site through a simulated year) and prints what a person reads
//! in ten seconds: documents by state, approvals and signatures, the audit chains verified
//! natively, egress by category, data residency, and the Runs-on-Atlassian verdicts.
//!
//! The audit chains are read after the run from the installation's hosted key-value store,
//! natively, through the same adapter the wasm app writes with
//! (`signoff_storage::hosted::HostedStore` over `signoff_sim::hosted::InstallationKvs`), and
//! verified with `signoff_core::audit::verify`.
//!
//! Exit codes: 0 when the scenario's expectations hold and every chain verifies, 1 when not,
//! 2 when the scenario or what it names cannot be used.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use signoff_core::event::Decision;
use signoff_core::workflow::Trigger;
use signoff_core::{Event, Record, audit};
use signoff_sim::Millis;
use signoff_sim::flow::Flow;
use signoff_sim::host::SimConfig;
use signoff_sim::hosted::{InstallationKvs, block_on};
use signoff_sim::kvs::KvsStorage;
use signoff_sim::scenario::{RunOptions, RunOutcome, Scenario};
use signoff_storage::EventStore;
use signoff_storage::LocalStore;
use signoff_storage::hosted::HostedStore;

/// The scenario `signoff demo` runs when none is given.
pub const FLAGSHIP: &str = "examples/scenarios/flagship.yaml";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The scenario (default: examples/scenarios/flagship.yaml, from the repository root).
    pub scenario: Option<PathBuf>,
    /// Which build of the approval app runs: the wasm component the scenario names, or the
    /// Forge package (apps/approvals/forge, built by `cargo xtask package`) on the
    /// simulator's Node.js runtime.
    #[arg(long, value_enum, default_value_t = AppBuild::Component)]
    pub app: AppBuild,
}

/// A build of the approval app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppBuild {
    /// The wasm component (`wasm32-wasip2`), as the scenario names it.
    Component,
    /// The Forge package: the same component through jco in a Node.js app.
    Forge,
}

/// Where `--app forge` finds the package, from the repository root.
pub const FORGE_PACKAGE: &str = "apps/approvals/forge";

/// What the demo found: every figure it prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Figures {
    pub installation: String,
    pub site: String,
    pub realm: String,
    pub days: u64,
    pub invocations: u64,
    pub schedule_runs: u64,
    pub by_state: BTreeMap<String, usize>,
    pub approvals: usize,
    pub signatures: usize,
    pub rejections: usize,
    pub reminders: usize,
    pub escalations: usize,
    pub periodic_reviews: usize,
    pub documents: usize,
    pub records: usize,
    pub chain_problems: Vec<String>,
    /// Fetches by category (`analytics`, `other`) and destination: allowed and blocked.
    pub fetches: BTreeMap<(String, String), (usize, usize)>,
    /// Events through the `analytics` import (the app sends its analytics as fetches to its
    /// declared analytics host instead, so these stay 0 for it).
    pub analytics_delivered: usize,
    pub analytics_dropped: usize,
    /// The first day the admin blocked analytics, and analytics that still went out after
    /// it (fetches allowed plus import events delivered).
    pub blocked_on_day: Option<u64>,
    pub analytics_after_block: usize,
    pub keys_per_realm: BTreeMap<String, usize>,
    pub installation_keys: usize,
    pub cross_realm: usize,
    pub static_eligible: bool,
    pub static_rules: Vec<String>,
    pub observed_eligible: bool,
    pub observed_reasons: Vec<String>,
    pub failures: Vec<String>,
}

impl Figures {
    /// Every chain verified, every key home, no expectation failed, both verdicts eligible.
    pub fn ok(&self) -> bool {
        self.chain_problems.is_empty() && self.failures.is_empty() && self.cross_realm == 0
    }
}

pub fn run(args: &DemoArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let path = args
        .scenario
        .clone()
        .unwrap_or_else(|| PathBuf::from(FLAGSHIP));
    // A progress line only for a person watching: stderr must be a terminal.
    let progress = std::io::stderr().is_terminal();
    let result = figures(&path, args.app, progress);
    match result {
        Ok(f) => {
            let _ = out.write_all(render(&f).as_bytes());
            if f.ok() { 0 } else { 1 }
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            2
        }
    }
}

/// Runs the scenario and gathers the figures (its first installation is the one reported),
/// showing the simulated day on a progress bar as it goes when `progress` is set.
pub fn figures(path: &Path, app: AppBuild, progress: bool) -> Result<Figures, String> {
    let mut scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    if app == AppBuild::Forge {
        let package = Path::new(FORGE_PACKAGE);
        if !package.join("engine/core-wasm.js").is_file() {
            return Err(format!(
                "{FORGE_PACKAGE}: the Forge package is not built (run `cargo xtask package` in the repository)"
            ));
        }
        scenario = scenario
            .with_node_app("approvals", package)
            .map_err(|e| e.to_string())?;
    }
    let bar = crate::sim::progress_bar("signoff demo");
    let mut show = |done: u64, total: u64| {
        bar.set_length(total.max(1));
        bar.set_position(done);
        bar.set_message(format!(
            "day {} of {}",
            done / Millis::DAY,
            total.div_ceil(Millis::DAY)
        ));
    };
    let outcome = scenario.run(RunOptions {
        seed: None,
        storage: KvsStorage::Memory,
        progress: if progress { Some(&mut show) } else { None },
        threads: None,
    });
    bar.finish_and_clear();
    let mut outcome = outcome.map_err(|e| e.to_string())?;
    gather(&mut outcome)
}

fn gather(outcome: &mut RunOutcome) -> Result<Figures, String> {
    let mut f = Figures {
        failures: outcome.failures.iter().map(ToString::to_string).collect(),
        ..Figures::default()
    };
    let start = SimConfig::forge().start;
    let day = |at: Millis| at.0.saturating_sub(start.0) / Millis::DAY;
    let sim = &mut outcome.sim;
    let (id, app) = sim
        .installations()
        .next()
        .map(|(i, a)| (i.to_string(), a.to_string()))
        .ok_or("the scenario installs no app")?;
    let inst = sim
        .platform()
        .installation(&id)
        .ok_or("no installation")?
        .clone();
    f.installation = id.clone();
    f.site = inst.site.clone();
    f.realm = inst.realm.to_string();
    f.days = day(sim.now()).max(1);
    let stats = sim.stats();
    f.invocations = stats.invocations;
    f.schedule_runs = sim
        .platform()
        .trace()
        .iter()
        .filter(|t| t.installation == id && t.handler == "schedule")
        .count() as u64;

    // Egress: the ledger (fetches) by category and destination, the analytics import, the
    // admin's block.
    let blocked_at = sim.trace().iter().find_map(|e| match &e.what {
        Flow::Admin {
            installation,
            analytics_blocked: true,
            ..
        } if *installation == id => Some(e.at),
        _ => None,
    });
    f.blocked_on_day = blocked_at.map(day);
    for a in sim.platform().ledger() {
        if a.installation != id {
            continue;
        }
        let e = f
            .fetches
            .entry((
                a.category.to_string(),
                // The host: the ledger's destination may carry a path.
                a.destination
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ))
            .or_default();
        if a.allowed {
            e.0 += 1;
            if a.category == "analytics" && blocked_at.is_some_and(|b| a.at > b) {
                f.analytics_after_block += 1;
            }
        } else {
            e.1 += 1;
        }
    }
    for a in sim.platform().analytics() {
        if a.installation != id {
            continue;
        }
        if a.delivered {
            f.analytics_delivered += 1;
            if blocked_at.is_some_and(|b| a.at > b) {
                f.analytics_after_block += 1;
            }
        } else {
            f.analytics_dropped += 1;
        }
    }

    // Residency: where the store's keys are, and refused cross-realm calls.
    let kvs = sim.platform_mut().kvs();
    f.keys_per_realm = kvs
        .keys_per_realm()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    f.installation_keys = kvs.inspect(&inst.scope()).map_err(|e| e.to_string())?.len();
    f.cross_realm = kvs.violations().len();

    // The engine's data, read natively through the adapter the app wrote it with.
    let now = sim.now();
    let kvs = sim.platform_mut().kvs();
    let store = HostedStore::new(InstallationKvs::new(kvs, inst.scope(), inst.realm, now));
    let docs = block_on(store.documents()).map_err(|e| e.to_string())?;
    for (doc, _) in &docs {
        let records = block_on(store.read(doc, 0)).map_err(|e| e.to_string())?;
        if let Err(e) = audit::verify(&records) {
            f.chain_problems.push(format!("{doc}: {e}"));
        }
        f.documents += 1;
        f.records += records.len();
        count(&mut f, &records);
    }
    drop(store);
    // The residency figures again, now that the reader has been through the store: reading
    // natively must not have crossed realms either.
    f.cross_realm = sim.platform_mut().kvs().violations().len();

    if let Some(r) = outcome.reports.iter().find(|r| r.app == app) {
        f.static_eligible = r.static_verdict.eligible;
        f.static_rules = r
            .static_verdict
            .rules
            .iter()
            .map(ToString::to_string)
            .collect();
        f.observed_eligible = r.observed.eligible;
        f.observed_reasons = r.observed.reasons.clone();
    }
    Ok(f)
}

fn count(f: &mut Figures, records: &[Record]) {
    if let Some(last) = records.last() {
        *f.by_state.entry(last.to_state.clone()).or_default() += 1;
    }
    for r in records {
        if r.signature.is_some() {
            f.signatures += 1;
        }
        match &r.event {
            Event::Decided { decision, .. } => match decision {
                Decision::Approve => f.approvals += 1,
                Decision::Reject => f.rejections += 1,
                Decision::RequestChanges => {}
            },
            Event::Reminded { .. } => f.reminders += 1,
            Event::Escalated { .. } => f.escalations += 1,
            Event::StateChanged {
                trigger: Trigger::ReviewDue,
                ..
            } => f.periodic_reviews += 1,
            _ => {}
        }
    }
}

/// The report a person reads.
pub fn render(f: &Figures) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let yes = |b: bool| if b { "eligible" } else { "NOT eligible" };
    let _ = writeln!(
        o,
        "{} on {} ({}), {} simulated days: {} invocations ({} scheduled runs)",
        f.installation, f.site, f.realm, f.days, f.invocations, f.schedule_runs
    );
    let states: Vec<String> = f.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(o, "documents by state: {}", states.join(", "));
    let _ = writeln!(
        o,
        "approvals: {}, e-signatures: {}, rejections: {}, reminders: {}, escalations: {}, periodic reviews: {}",
        f.approvals, f.signatures, f.rejections, f.reminders, f.escalations, f.periodic_reviews
    );
    if f.chain_problems.is_empty() {
        let _ = writeln!(
            o,
            "audit chain verified: {} documents, {} records (read natively from the installation's hosted store)",
            f.documents, f.records
        );
    } else {
        let _ = writeln!(
            o,
            "audit chain BROKEN: {} of {} documents: {}",
            f.chain_problems.len(),
            f.documents,
            f.chain_problems.join("; ")
        );
    }
    let mut egress: Vec<String> = f
        .fetches
        .iter()
        .map(|((c, d), (a, b))| format!("{c} to {d}: {a} allowed, {b} blocked"))
        .collect();
    if f.analytics_delivered + f.analytics_dropped > 0 {
        egress.push(format!(
            "analytics events: {} delivered, {} dropped",
            f.analytics_delivered, f.analytics_dropped
        ));
    }
    if egress.is_empty() {
        egress.push("no requests out of the platform".into());
    } else if f.fetches.keys().all(|(c, _)| c == "analytics") {
        egress.push("nothing else left the platform".into());
    }
    if let Some(d) = f.blocked_on_day {
        egress.push(format!(
            "analytics blocked by the admin on day {d}, {} sent after the block",
            f.analytics_after_block
        ));
    }
    let _ = writeln!(o, "egress: {}", egress.join("; "));
    let realms: Vec<String> = f
        .keys_per_realm
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let home = f.keys_per_realm.get(&f.realm).copied().unwrap_or(0);
    let all_home = home == f.keys_per_realm.values().sum::<usize>() && home >= f.installation_keys;
    let _ = writeln!(
        o,
        "data residency: {} keys of the installation, keys by realm: {}{}; {} cross-realm attempts",
        f.installation_keys,
        realms.join(", "),
        if all_home {
            format!(" (all in {})", f.realm)
        } else {
            " (NOT all home)".to_string()
        },
        f.cross_realm
    );
    let why = |rules: &[String]| {
        if rules.is_empty() {
            String::new()
        } else {
            format!(" ({})", rules.join("; "))
        }
    };
    let _ = writeln!(
        o,
        "Runs on Atlassian: static {}{} (roa-check on the manifest), observed {}{} (what the app did)",
        yes(f.static_eligible),
        why(&f.static_rules),
        yes(f.observed_eligible),
        why(&f.observed_reasons)
    );
    if !f.failures.is_empty() {
        let _ = writeln!(o, "scenario expectations FAILED:");
        for x in &f.failures {
            let _ = writeln!(o, "  {x}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flagship scenario's key figures, and the report exactly as README.md shows it
    /// (there in a `text` block, which the README's console test does not run). Needs the
    /// app component: `cargo xtask guests`.
    #[test]
    fn the_flagship_year_gives_the_figures_the_readme_shows() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios/flagship.yaml");
        let f = figures(&path, AppBuild::Component, false)
            .expect("the flagship scenario runs (cargo xtask guests first)");
        assert!(f.failures.is_empty(), "{:?}", f.failures);
        let states: Vec<(&str, usize)> = f.by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            states,
            [
                ("approved", 3),
                ("draft", 1),
                ("in_review", 1),
                ("review_required", 1)
            ]
        );
        assert_eq!(
            (
                f.approvals,
                f.signatures,
                f.rejections,
                f.escalations,
                f.periodic_reviews
            ),
            (17, 5, 1, 2, 3)
        );
        assert!(f.reminders > 0);
        assert_eq!((f.documents, f.records), (6, 115));
        assert!(f.chain_problems.is_empty(), "{:?}", f.chain_problems);
        assert_eq!(f.blocked_on_day, Some(182));
        assert_eq!(f.analytics_after_block, 0);
        // Only the declared analytics host: allowed before the block, blocked after it.
        assert_eq!(f.fetches.len(), 1, "{:?}", f.fetches);
        let ((category, host), (allowed, blocked)) = f.fetches.iter().next().unwrap();
        assert_eq!(
            (category.as_str(), host.as_str()),
            ("analytics", "analytics.signoff.example")
        );
        assert!(*allowed > 0 && *blocked > 0);
        assert_eq!(f.cross_realm, 0);
        assert_eq!(f.keys_per_realm.keys().collect::<Vec<_>>(), ["EU"]);
        assert_eq!(f.keys_per_realm["EU"], f.installation_keys);
        assert!(f.static_eligible && f.observed_eligible);
        assert!(f.ok());
        // The README opens with this report: it must be what the demo prints.
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let shown: String = readme
            .lines()
            .skip_while(|l| *l != "$ signoff demo examples/scenarios/flagship.yaml")
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(render(&f), shown, "README.md shows another report");
    }
}
