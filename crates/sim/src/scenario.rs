//! Scenarios: a YAML file that sets up sites, apps and installations, then drives a
//! [`Simulation`] with timed steps (page changes, UI calls, admin actions, deploys, realm
//! migrations, fault injection) and checks expectations. `signoff sim run` runs them.
//!
//! The format is documented in `crates/sim/README.md`. Unknown keys are errors, and every
//! error names the file, line and column (`scenario.yaml:12:5: ...`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;
use signoff_yaml::{Budget, Node, Pos, Value};

use crate::clock::Millis;
use crate::egress::AdminSwitches;
use crate::flow::{Flow, FlowConfig, FlowError, InstallSpec, PageAction, Simulation, Stats};
use crate::host::{
    InvocationError, RateLimits, Runtime, RuntimeConfig, SimConfig, UiContext, WebRequest,
};
use crate::kvs::KvsStorage;
use crate::realm::Realm;
use crate::report::RoaReport;

/// The longest run, in virtual time: ten years (checked before the run).
pub const MAX_END: u64 = 3_650 * Millis::DAY;
/// The most steps a scenario may have, after expanding loops (`every`); one loop may expand
/// to at most this many too.
pub const MAX_STEPS: usize = 2_000_000;
/// The most faults one `fault` step may inject.
pub const MAX_FAULTS: u32 = 100_000;

/// A scenario, parsed and checked for references; nothing is loaded yet.
#[derive(Debug, Clone)]
pub struct Scenario {
    file: String,
    dir: PathBuf,
    pub name: Option<String>,
    pub seed: u64,
    flow: FlowConfig,
    sites: BTreeMap<String, SiteDef>,
    apps: BTreeMap<String, AppDef>,
    endpoints: BTreeMap<String, EndpointDef>,
    installs: BTreeMap<String, InstallDef>,
    steps: Vec<Step>,
    expect: Vec<Expectation>,
    /// When the run stops, from the start.
    end: u64,
    /// Invocations allowed a minute (`rate-limits:`; the platform's by default).
    rate: RateLimits,
}

/// A scenario that cannot be read or run. `Display` starts with `file:line:col` when the
/// place is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .pos.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default())]
pub struct ScenarioError {
    pub file: String,
    pub pos: Option<Pos>,
    pub message: String,
}

/// How to run a scenario.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Overrides the scenario's `seed`.
    pub seed: Option<u64>,
    /// Where hosted storage lives (memory by default; redb files for `signoff sim inspect`).
    pub storage: KvsStorage,
    /// Called as virtual time passes: (done, total) in milliseconds.
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// Overrides `SimConfig::threads` (workers that make instances ahead; no output depends
    /// on it).
    pub threads: Option<usize>,
}

impl fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("seed", &self.seed)
            .field("storage", &self.storage)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// A finished run.
pub struct RunOutcome {
    pub file: String,
    pub seed: u64,
    pub failures: Vec<Failure>,
    /// Every check the run made (a `call` or `web-trigger` step with expectations, each
    /// expectation of an `expect` step or of the end), passed or failed, in order: for
    /// reports such as JUnit's.
    pub checks: Vec<Checked>,
    pub reports: Vec<RoaReport>,
    pub sim: Simulation,
    /// What the run captured from resolvers' answers (`capture:`), by name. Often secrets
    /// (a TOTP enrolment's): kept for tests that check where they went, never printed.
    pub captured: BTreeMap<String, String>,
    /// Scenario install names and app names, for output.
    installs: Vec<String>,
    /// The sites, apps and named pages of the scenario, as a console shows them.
    pub world: World,
}

/// What a scenario set up, by the names it gave: for tools that keep working with the
/// simulation after the run (`signoff sim serve`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct World {
    pub sites: Vec<SiteInfo>,
    pub apps: Vec<AppInfo>,
    /// Scenario installation id to (app name, site name).
    pub installs: BTreeMap<String, (String, String)>,
    /// Scenario page name to (site host, page id).
    pub pages: BTreeMap<String, (String, String)>,
}

/// A site of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    pub name: String,
    pub host: String,
    pub realm: Realm,
    /// User name to account id, in the scenario's order of names.
    pub users: BTreeMap<String, String>,
}

/// An app of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub name: String,
    pub id: String,
    /// The manifest file (its folder is where the manifest's `resources` paths start).
    pub manifest: PathBuf,
}

impl fmt::Debug for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOutcome")
            .field("seed", &self.seed)
            .field("failures", &self.failures)
            .field("captured", &self.captured.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One check of a run, passed or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub line: u32,
    pub column: u32,
    /// Virtual time when it was checked.
    pub at: Millis,
    /// What was checked: `call submit as alice`, `expect kvs`, ...
    pub what: String,
    /// What went wrong (one entry per failed part); empty when it held.
    pub failures: Vec<String>,
}

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Virtual time when it was checked.
    pub at: Millis,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} (checked at {})",
            self.file, self.line, self.column, self.message, self.at
        )
    }
}

/// The machine-readable summary of a run (`signoff sim run --report json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary<'a> {
    pub scenario: &'a str,
    pub seed: u64,
    pub passed: bool,
    pub failures: &'a [Failure],
    pub stats: Stats,
    pub installations: Vec<InstallSummary>,
    pub roa: &'a [RoaReport],
}

#[derive(Debug, Clone, Serialize)]
pub struct InstallSummary {
    pub id: String,
    pub version: u32,
    pub awaiting_consent: Option<u32>,
    pub keys: usize,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn summary(&self) -> Summary<'_> {
        Summary {
            scenario: &self.file,
            seed: self.seed,
            passed: self.passed(),
            failures: &self.failures,
            stats: self.sim.stats(),
            installations: self
                .installs
                .iter()
                .map(|id| {
                    let (version, awaiting) = self.sim.running(id).unwrap_or((0, None));
                    InstallSummary {
                        id: id.clone(),
                        version,
                        awaiting_consent: awaiting,
                        keys: self.sim.platform().inspect(id).map_or(0, |k| k.len()),
                    }
                })
                .collect(),
            roa: &self.reports,
        }
    }

    /// The report for a person: the verdict, the failures, the counters, the RoA reports.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let s = self.sim.stats();
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        let _ = writeln!(
            out,
            "scenario {}: {verdict} (seed {})",
            self.file, self.seed
        );
        for f in &self.failures {
            let _ = writeln!(out, "  {f}");
        }
        let _ = writeln!(
            out,
            "  {} product events ({} without subscribers), {} invocations, {} retries, {} dead letters",
            s.product_events, s.unheard_events, s.invocations, s.retries, s.dead_letters
        );
        for i in self.summary().installations {
            let waiting = i
                .awaiting_consent
                .map(|v| format!(", version {v} waits for consent"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  installation {}: version {}{waiting}, {} keys",
                i.id, i.version, i.keys
            );
        }
        for r in &self.reports {
            out.push_str(&r.to_text());
        }
        out
    }

    /// The trace as JSON: the simulation's events, every invocation (outcome, log counts,
    /// fetches; for Node apps cold starts, refusals and late work), the egress ledger and the
    /// apps' log lines.
    pub fn trace_json(&self) -> Json {
        serde_json::json!({
            "seed": self.seed,
            "events": self.sim.trace(),
            "invocations": self.sim.platform().trace(),
            "ledger": self.sim.platform().ledger(),
            "logs": self.sim.platform().logs(),
        })
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text =
            signoff_yaml::input::read_file(path, signoff_yaml::input::TEXT_LIMIT).map_err(|e| {
                ScenarioError {
                    file: file.clone(),
                    pos: None,
                    message: e.to_string(),
                }
            })?;
        let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
        Scenario::parse(&file, &dir, &text)
    }

    /// Runs app `app` from the Node app in `dir` instead of the code the scenario names, in
    /// its `apps:` entry and in every `deploy` step of it; the manifests stay the
    /// scenario's (their function keys and handlers name the same exports). This is how one
    /// scenario tests a component and the Forge package built from it
    /// (`signoff sim run --node-app NAME=DIR`).
    pub fn with_node_app(mut self, app: &str, dir: &Path) -> Result<Scenario, ScenarioError> {
        let Some(def) = self.apps.get_mut(app) else {
            return Err(ScenarioError {
                file: self.file.clone(),
                pos: None,
                message: format!(
                    "--node-app {app}=...: the scenario has no app `{app}` (it has: {})",
                    self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        // Relative to the current directory, as a command line names it (the scenario's own
        // paths are relative to its file).
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let code = |pos: Pos| {
            Code::Node(Located {
                value: dir.clone(),
                pos,
            })
        };
        def.code = code(def.manifest.pos);
        for step in &mut self.steps {
            if let Action::Deploy {
                app: a,
                code: c,
                manifest,
            } = &mut step.action
                && a == app
            {
                *c = code(manifest.pos);
            }
        }
        Ok(self)
    }

    /// Parses a scenario; relative paths in it are relative to `dir`.
    pub fn parse(file: &str, dir: &Path, text: &[u8]) -> Result<Scenario, ScenarioError> {
        let cx = Cx { file };
        let doc =
            signoff_yaml::parse_bytes(text, Budget::default()).map_err(|e| ScenarioError {
                file: file.to_string(),
                pos: e.pos(),
                message: match &e {
                    signoff_yaml::ParseError::Syntax { message, .. } => {
                        format!("invalid YAML: {message}")
                    }
                    other => {
                        let text = other.to_string();
                        match other.pos() {
                            Some(p) => text
                                .strip_prefix(&format!("{p}: "))
                                .map_or_else(|| text.clone(), str::to_string),
                            None => text,
                        }
                    }
                },
            })?;
        if let Some(w) = doc.warnings.first() {
            return Err(cx.err(w.pos, &w.message));
        }
        let root = &doc.root;
        cx.keys(
            root,
            &[
                "name",
                "seed",
                "flows",
                "sites",
                "apps",
                "endpoints",
                "installs",
                "steps",
                "expect",
                "end",
                "rate-limits",
            ],
        )?;
        let mut s = Scenario {
            file: file.to_string(),
            dir: dir.to_path_buf(),
            name: root.get("name").map(|n| cx.string(n)).transpose()?,
            seed: root
                .get("seed")
                .map(|n| cx.uint(n))
                .transpose()?
                .unwrap_or(0),
            flow: FlowConfig::forge(),
            sites: BTreeMap::new(),
            apps: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            installs: BTreeMap::new(),
            steps: Vec::new(),
            expect: Vec::new(),
            end: 0,
            rate: RateLimits::forge(),
        };
        if let Some(r) = root.get("rate-limits") {
            cx.keys(r, &["per-user", "per-installation", "per-app"])?;
            let limit = |key: &str, default: Option<u32>| -> Result<Option<u32>, ScenarioError> {
                match r.get(key) {
                    None => Ok(default),
                    Some(n) if n.as_str() == Some("none") => Ok(None),
                    Some(n) => match cx.u32(n)? {
                        0 => Err(cx.err(
                            n.pos,
                            "a rate limit of 0 runs nothing: write `none` for no limit",
                        )),
                        v => Ok(Some(v)),
                    },
                }
            };
            s.rate = RateLimits {
                per_user: limit("per-user", s.rate.per_user)?,
                per_installation: limit("per-installation", s.rate.per_installation)?,
                per_app: limit("per-app", s.rate.per_app)?,
            };
        }
        if let Some(f) = root.get("flows") {
            cx.keys(
                f,
                &[
                    "event-delay",
                    "queue-delay",
                    "retries",
                    "backoff",
                    "duplicate-schedules",
                ],
            )?;
            if let Some(n) = f.get("duplicate-schedules") {
                s.flow.schedule_duplicates_ppm = cx.share_ppm(n)?;
            }
            if let Some(n) = f.get("event-delay") {
                s.flow.event_delay_ms = cx.range(n)?;
            }
            if let Some(n) = f.get("queue-delay") {
                s.flow.queue_delay_ms = cx.range(n)?;
            }
            if let Some(n) = f.get("retries") {
                s.flow.retries =
                    u32::try_from(cx.uint(n)?).map_err(|_| cx.err(n.pos, "too many retries"))?;
            }
            if let Some(n) = f.get("backoff") {
                s.flow.backoff_ms = cx.duration(n)?;
            }
        }
        for (k, v) in cx.map(cx.req(root, "sites")?)? {
            let name = cx.string(k)?;
            s.sites.insert(name.clone(), cx.site(&name, v)?);
        }
        for (k, v) in cx.map(cx.req(root, "apps")?)? {
            cx.keys(v, &["manifest", "component", "node", "env"])?;
            let env = match v.get("env") {
                Some(e) => cx
                    .map(e)?
                    .iter()
                    .map(|(k, v)| Ok((cx.string(k)?, cx.string(v)?)))
                    .collect::<Result<_, ScenarioError>>()?,
                None => BTreeMap::new(),
            };
            s.apps.insert(cx.string(k)?, {
                let (manifest, code) = cx.app_code(v, None)?;
                AppDef {
                    manifest,
                    code,
                    env,
                }
            });
        }
        if let Some(endpoints) = root.get("endpoints") {
            for (k, v) in cx.map(endpoints)? {
                let host = cx.string(k)?.to_ascii_lowercase();
                cx.keys(v, &["status", "body", "loopback"])?;
                let def = match v.get("loopback") {
                    Some(l) => {
                        if let Some(extra) = v.get("status").or(v.get("body")) {
                            return Err(cx.err(
                                extra.pos,
                                "a loopback endpoint answers for itself: no `status` or `body`",
                            ));
                        }
                        let addr: std::net::SocketAddr = cx.string(l)?.parse().map_err(|_| {
                            cx.err(l.pos, "expected an address such as 127.0.0.1:8080")
                        })?;
                        if !addr.ip().is_loopback() {
                            return Err(
                                cx.err(l.pos, &crate::loopback::NotLoopback(addr).to_string())
                            );
                        }
                        EndpointDef::Loopback(addr)
                    }
                    None => EndpointDef::Fixed {
                        status: match v.get("status") {
                            Some(n) => u16::try_from(cx.uint(n)?)
                                .ok()
                                .filter(|s| (100..=599).contains(s))
                                .ok_or_else(|| cx.err(n.pos, "a status is 100 to 599"))?,
                            None => 200,
                        },
                        body: v
                            .get("body")
                            .map(|n| cx.string(n))
                            .transpose()?
                            .unwrap_or_default(),
                    },
                };
                s.endpoints.insert(host, def);
            }
        }
        if let Some(installs) = root.get("installs") {
            for (k, v) in cx.map(installs)? {
                cx.keys(v, &["app", "site", "environment", "analytics", "logs"])?;
                let app = cx.name_in(cx.req(v, "app")?, &s.apps, "app")?;
                let site = cx.name_in(cx.req(v, "site")?, &s.sites, "site")?;
                let admin = AdminSwitches {
                    analytics_blocked: v
                        .get("analytics")
                        .map(|n| cx.switch(n))
                        .transpose()?
                        .unwrap_or(false),
                    logs_blocked: v
                        .get("logs")
                        .map(|n| cx.switch(n))
                        .transpose()?
                        .unwrap_or(false),
                };
                let environment = v
                    .get("environment")
                    .map(|n| cx.string(n))
                    .transpose()?
                    .unwrap_or_else(|| "production".into());
                s.installs.insert(
                    cx.string(k)?,
                    InstallDef {
                        app,
                        site,
                        environment,
                        admin,
                    },
                );
            }
        }
        let mut pages = Vec::new();
        let mut now = 0u64;
        let mut order = 0usize;
        if let Some(steps) = root.get("steps") {
            for step in cx.seq(steps)? {
                let mut new = cx.steps(&s, step, &mut now, &mut order, &mut pages)?;
                s.steps.append(&mut new);
                // Checked as the list grows, so that many loops cannot add up unbounded.
                if s.steps.len() > MAX_STEPS {
                    return Err(cx.err(
                        step.pos,
                        &format!(
                            "the scenario has {} steps by here, more than the limit of {MAX_STEPS}",
                            s.steps.len()
                        ),
                    ));
                }
            }
        }
        s.steps.sort_by_key(|st| (st.at, st.order));
        if let Some(e) = root.get("expect") {
            s.expect = cx.expectations(&s, e, &pages)?;
        }
        let last = s.steps.last().map_or(0, |st| st.at);
        if last > MAX_END {
            let pos = s.steps.last().map_or(root.pos, |st| st.pos);
            return Err(cx.err(
                pos,
                &format!(
                    "a step at {}d is past the limit of a run ({}d of virtual time)",
                    last / Millis::DAY,
                    MAX_END / Millis::DAY
                ),
            ));
        }
        s.end = match root.get("end") {
            Some(n) => {
                let end = cx.duration(n)?;
                if end < last {
                    return Err(cx.err(n.pos, "`end` comes before the last step"));
                }
                // Checked before the run: a scheduled trigger fires every five minutes, so
                // virtual time is what a run costs.
                if end > MAX_END {
                    return Err(cx.err(
                        n.pos,
                        &format!(
                            "`end` is {}d of virtual time, more than the limit of {}d",
                            end / Millis::DAY,
                            MAX_END / Millis::DAY
                        ),
                    ));
                }
                end
            }
            None => last + Millis::HOUR,
        };
        Ok(s)
    }

    /// Runs the scenario: loads and compiles the apps, installs them, plays the steps on the
    /// virtual clock, and checks the expectations.
    /// How the platform's asynchronous machinery behaves in this run (`flows:`).
    pub fn flow(&self) -> FlowConfig {
        self.flow
    }

    /// Replaces `flows:` (to run a scenario again under other platform behaviour, e.g. every
    /// scheduled firing twice).
    pub fn set_flow(&mut self, flow: FlowConfig) {
        self.flow = flow;
    }

    pub fn run(&self, options: RunOptions<'_>) -> Result<RunOutcome, ScenarioError> {
        let runtime = Runtime::new(RuntimeConfig::default()).map_err(|e| self.fail(None, e))?;
        self.run_on(runtime, options)
    }

    /// Like [`Scenario::run`], on a runtime the caller shares.
    pub fn run_on(
        &self,
        runtime: Arc<Runtime>,
        mut options: RunOptions<'_>,
    ) -> Result<RunOutcome, ScenarioError> {
        let seed = options.seed.unwrap_or(self.seed);
        let mut config = SimConfig::forge();
        config.seed = seed;
        config.limits.rate = self.rate;
        if let Some(threads) = options.threads {
            config.threads = threads;
        }
        let start = config.start;
        let storage = std::mem::take(&mut options.storage);
        let mut sim = Simulation::with_storage(runtime.clone(), config, self.flow, storage);
        for (host, def) in &self.endpoints {
            let endpoint: crate::host::Endpoint = match def {
                EndpointDef::Fixed { status, body } => {
                    let (status, body) = (*status, body.clone());
                    Arc::new(move |_: &crate::host::EndpointRequest| {
                        crate::host::EndpointResponse {
                            status,
                            headers: Vec::new(),
                            body: body.clone(),
                        }
                    })
                }
                EndpointDef::Loopback(addr) => {
                    crate::loopback::loopback_endpoint(*addr, LOOPBACK_TIMEOUT)
                        .map_err(|e| self.fail(None, e))?
                }
            };
            sim.platform_mut().add_endpoint(host, endpoint);
        }
        // The sites' users are their people (their account ids in a request are end-user
        // data), and their groups are Confluence's.
        for site in self.sites.values() {
            let confluence = sim.platform_mut().confluence();
            for account in site.users.values() {
                confluence.note_account(&site.host, account);
            }
            for (group, members) in &site.groups {
                confluence.set_group(&site.host, group, members);
            }
        }
        let mut run = Run {
            scenario: self,
            runtime,
            components: BTreeMap::new(),
            app_ids: BTreeMap::new(),
            pages: BTreeMap::new(),
            vars: BTreeMap::new(),
            now: Millis(0),
            failures: Vec::new(),
            checks: Vec::new(),
        };
        for (name, app) in &self.apps {
            let id = run.deploy(&mut sim, &app.manifest, &app.code, &app.env)?;
            run.app_ids.insert(name.clone(), id);
        }
        for (id, i) in &self.installs {
            let site = &self.sites[&i.site];
            sim.install(InstallSpec {
                id: id.clone(),
                app: run.app_ids[&i.app].clone(),
                site: site.host.clone(),
                realm: site.realm,
                environment: i.environment.clone(),
                admin: i.admin,
            })
            .map_err(|e| self.fail(None, e))?;
        }
        // Time moves in slices of at most a thousandth of the run, so that the progress
        // line moves during long stretches without steps too.
        let mut clock = Progress {
            start,
            total: self.end.max(1),
            at: 0,
            shown: u64::MAX,
            report: options.progress.take(),
        };
        for step in &self.steps {
            clock.advance(&mut sim, step.at);
            run.apply(&mut sim, step)?;
        }
        clock.advance(&mut sim, self.end);
        if let Some(p) = clock.report.as_mut().filter(|_| clock.shown != 1000) {
            p(clock.total, clock.total);
        }
        for e in &self.expect {
            run.check(&sim, e);
        }
        let reports = run
            .app_ids
            .values()
            .filter_map(|id| RoaReport::of(&sim, id))
            .collect();
        Ok(RunOutcome {
            file: self.file.clone(),
            seed,
            failures: run.failures,
            checks: run.checks,
            reports,
            sim,
            installs: self.installs.keys().cloned().collect(),
            world: World {
                sites: self
                    .sites
                    .iter()
                    .map(|(name, s)| SiteInfo {
                        name: name.clone(),
                        host: s.host.clone(),
                        realm: s.realm,
                        users: s.users.clone(),
                    })
                    .collect(),
                apps: self
                    .apps
                    .iter()
                    .map(|(name, a)| AppInfo {
                        name: name.clone(),
                        id: run.app_ids[name].clone(),
                        manifest: self.dir.join(&a.manifest.value),
                    })
                    .collect(),
                installs: self
                    .installs
                    .iter()
                    .map(|(id, i)| (id.clone(), (i.app.clone(), i.site.clone())))
                    .collect(),
                pages: run.pages,
            },
            captured: run.vars,
        })
    }

    fn fail(&self, pos: Option<Pos>, e: impl fmt::Display) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            pos,
            message: e.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parsed form.

/// How long a loopback endpoint may take to connect, and to answer.
const LOOPBACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A simulated remote host of the scenario's `endpoints:`.
#[derive(Debug, Clone)]
enum EndpointDef {
    /// The same answer to every request.
    Fixed { status: u16, body: String },
    /// The opt-in loopback mode: requests go, as HTTP/1.1, to a local server.
    Loopback(std::net::SocketAddr),
}

#[derive(Debug, Clone)]
struct SiteDef {
    host: String,
    realm: Realm,
    /// User name to account id.
    users: BTreeMap<String, String>,
    /// Group name to its members' account ids.
    groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
struct AppDef {
    manifest: Located<PathBuf>,
    code: Code,
    env: BTreeMap<String, String>,
}

/// What runs an app: a component file, or a Node app's folder.
#[derive(Debug, Clone)]
enum Code {
    Component(Located<PathBuf>),
    Node(Located<PathBuf>),
}

#[derive(Debug, Clone)]
struct InstallDef {
    app: String,
    site: String,
    environment: String,
    admin: AdminSwitches,
}

#[derive(Debug, Clone)]
struct Located<T> {
    value: T,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Step {
    at: u64,
    order: usize,
    pos: Pos,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    CreatePage {
        site: String,
        account: String,
        space: String,
        title: String,
        body: String,
        name: Option<String>,
    },
    EditPage {
        page: String,
        account: String,
        title: Option<String>,
        body: String,
    },
    Page {
        page: String,
        account: String,
        action: PageOp,
    },
    Call {
        install: String,
        account: Option<String>,
        function: Option<String>,
        resolver: String,
        payload: String,
        expect: Option<Json>,
        /// Fields the answer must hold (see [`contains`]).
        expect_contains: Option<Json>,
        expect_error: Option<String>,
        /// Variable name to the answer's field (a dotted path) whose value it takes.
        capture: Vec<(String, String)>,
        /// The page (by name) whose content module makes the call: the resolver's context
        /// names it as its extension.
        on_page: Option<String>,
    },
    WebTrigger {
        install: String,
        key: String,
        request: WebRequest,
        expect_status: Option<u16>,
    },
    Push {
        install: String,
        queue: String,
        payload: String,
    },
    Deploy {
        app: String,
        manifest: Located<PathBuf>,
        code: Code,
    },
    Consent {
        install: String,
    },
    Admin {
        install: String,
        analytics: Option<bool>,
        logs: Option<bool>,
    },
    Migrate {
        site: String,
        realm: Realm,
    },
    Fault {
        install: String,
        fault: Fault,
        count: u32,
    },
    Expect(Vec<Expectation>),
}

#[derive(Debug, Clone, Copy)]
enum PageOp {
    Trash,
    Restore,
    View,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    StorageErrors,
    Timeouts,
    DuplicateEvents,
    DuplicateSchedules,
}

#[derive(Debug, Clone)]
struct Expectation {
    pos: Pos,
    check: Check,
}

#[derive(Debug, Clone)]
enum Check {
    Kvs {
        install: String,
        key: String,
        equals: Option<Json>,
        exists: Option<bool>,
    },
    Deliveries {
        install: Option<String>,
        handler: Option<String>,
        ok: Option<bool>,
        count: Count,
    },
    DeadLetters {
        install: Option<String>,
        count: Count,
    },
    Page {
        page: String,
        version: Option<u32>,
        state: Option<String>,
        trashed: Option<bool>,
    },
    Roa {
        app: String,
        observed: Option<bool>,
        static_: Option<bool>,
    },
    Egress {
        install: Option<String>,
        host: Option<String>,
        allowed: Option<bool>,
        count: Count,
    },
    /// Log lines the apps wrote (the `log` import, a component's stdout and stderr, a Node
    /// app's console), kept within the limits.
    Logs {
        install: Option<String>,
        level: Option<String>,
        contains: Option<String>,
        count: Count,
    },
    Version {
        install: String,
        running: Option<u32>,
        awaiting: Option<Option<u32>>,
    },
}

impl Check {
    /// The expectation's key in a scenario.
    fn kind(&self) -> &'static str {
        match self {
            Check::Kvs { .. } => "kvs",
            Check::Deliveries { .. } => "deliveries",
            Check::DeadLetters { .. } => "dead-letters",
            Check::Page { .. } => "page",
            Check::Roa { .. } => "roa",
            Check::Egress { .. } => "egress",
            Check::Logs { .. } => "logs",
            Check::Version { .. } => "version",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    exact: Option<u64>,
    at_least: Option<u64>,
    at_most: Option<u64>,
}

impl Count {
    fn holds(self, n: u64) -> bool {
        self.exact.is_none_or(|e| n == e)
            && self.at_least.is_none_or(|e| n >= e)
            && self.at_most.is_none_or(|e| n <= e)
    }

    fn describe(self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = self.exact {
            parts.push(format!("{e}"));
        }
        if let Some(e) = self.at_least {
            parts.push(format!("at least {e}"));
        }
        if let Some(e) = self.at_most {
            parts.push(format!("at most {e}"));
        }
        parts.join(" and ")
    }
}

// ---------------------------------------------------------------------------------------
// Running.

struct Run<'a> {
    scenario: &'a Scenario,
    runtime: Arc<Runtime>,
    components: BTreeMap<PathBuf, wasmtime::component::Component>,
    /// Scenario app name to app id.
    app_ids: BTreeMap<String, String>,
    /// Scenario page name to (site host, page id).
    pages: BTreeMap<String, (String, String)>,
    /// Values captured from resolvers' answers (`capture:`), by name.
    vars: BTreeMap<String, String>,
    /// The virtual time of the step being applied (for `${totp:NAME}`).
    now: Millis,
    failures: Vec<Failure>,
    checks: Vec<Checked>,
}

impl Run<'_> {
    fn deploy(
        &mut self,
        sim: &mut Simulation,
        manifest: &Located<PathBuf>,
        code: &Code,
        env: &BTreeMap<String, String>,
    ) -> Result<String, ScenarioError> {
        let s = self.scenario;
        let path = s.dir.join(&manifest.value);
        let yaml = signoff_yaml::input::read_text(&path, signoff_yaml::input::TEXT_LIMIT)
            .map_err(|e| s.fail(Some(manifest.pos), e.to_string()))?;
        let name = path.display().to_string();
        let component = match code {
            Code::Component(c) => c,
            Code::Node(dir) => {
                let d = sim
                    .deploy_node(&name, &yaml, &s.dir.join(&dir.value), env)
                    .map_err(|e| s.fail(Some(dir.pos), e))?;
                return Ok(d.app);
            }
        };
        let cpath = s.dir.join(&component.value);
        if !self.components.contains_key(&cpath) {
            if !cpath.exists() {
                return Err(s.fail(
                    Some(component.pos),
                    format!(
                        "{}: no such file (guest components are built by `cargo xtask guests`)",
                        cpath.display()
                    ),
                ));
            }
            let c = self
                .runtime
                .compile(&cpath)
                .map_err(|e| s.fail(Some(component.pos), e))?;
            self.components.insert(cpath.clone(), c);
        }
        let d = sim
            .deploy(&name, &yaml, &self.components[&cpath], env)
            .map_err(|e| s.fail(Some(manifest.pos), e))?;
        Ok(d.app)
    }

    fn apply(&mut self, sim: &mut Simulation, step: &Step) -> Result<(), ScenarioError> {
        let s = self.scenario;
        self.now = sim.now();
        let fail = |e: FlowError| s.fail(Some(step.pos), e);
        match &step.action {
            Action::CreatePage {
                site,
                account,
                space,
                title,
                body,
                name,
            } => {
                let host = &s.sites[site].host;
                let p = sim
                    .create_page(host, account, space, title, body)
                    .map_err(fail)?;
                if let Some(n) = name {
                    self.pages.insert(n.clone(), (host.clone(), p.id));
                }
            }
            Action::EditPage {
                page,
                account,
                title,
                body,
            } => {
                let (site, id) = self.page(page, step.pos)?;
                sim.edit_page(&site, account, &id, title.as_deref(), body)
                    .map_err(fail)?;
            }
            Action::Page {
                page,
                account,
                action,
            } => {
                let (site, id) = self.page(page, step.pos)?;
                let action = match action {
                    PageOp::Trash => PageAction::Trash,
                    PageOp::Restore => PageAction::Restore,
                    PageOp::View => PageAction::View,
                };
                sim.page_action(&site, account, &id, action).map_err(fail)?;
            }
            Action::Call {
                install,
                account,
                function,
                resolver,
                payload,
                expect,
                expect_contains,
                expect_error,
                capture,
                on_page,
            } => {
                let payload = self.expand(payload, step.pos)?;
                let ui = match on_page {
                    Some(name) => {
                        let (site, id) = self.page(name, step.pos)?;
                        let space = sim
                            .platform()
                            .pages()
                            .get_page(&site, &id)
                            .map(|p| p.space)
                            .unwrap_or_default();
                        Some(UiContext {
                            module_key: None,
                            local_id: None,
                            extension: serde_json::json!({
                                "type": "page",
                                "content": {"id": id, "type": "page"},
                                "space": {"id": space, "key": space},
                            }),
                        })
                    }
                    None => None,
                };
                let r = sim
                    .call_resolver_from(
                        install,
                        function.as_deref(),
                        account.as_deref(),
                        resolver,
                        &payload,
                        ui.as_ref(),
                    )
                    .map_err(fail)?;
                let expand = |e: &Option<Json>| -> Result<Option<Json>, ScenarioError> {
                    Ok(match e {
                        Some(e) => {
                            let text = self.expand(&e.to_string(), step.pos)?;
                            Some(serde_json::from_str::<Json>(&text).unwrap_or(Json::Null))
                        }
                        None => None,
                    })
                };
                let (expect, wanted) = (expand(expect)?, expand(expect_contains)?);
                let expect = &expect;
                let at = sim.now();
                let before = self.failures.len();
                let checks = expect.is_some()
                    || wanted.is_some()
                    || expect_error.is_some()
                    || !capture.is_empty();
                let answered =
                    |json: &str| serde_json::from_str::<Json>(json).unwrap_or(Json::Null);
                if !capture.is_empty() {
                    let got = r.as_ref().ok().map(|json| answered(json));
                    for (name, field) in capture {
                        match got.as_ref().and_then(|g| field_at(g, field)) {
                            Some(v) => {
                                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                                self.vars.insert(name.clone(), text);
                            }
                            // The value itself is not shown: captures are typically secrets.
                            None => self.failed(
                                step.pos,
                                at,
                                format!(
                                    "resolver `{resolver}` answered no field `{field}` to capture as `{name}`"
                                ),
                            ),
                        }
                    }
                }
                match (r, expect, expect_error) {
                    (Ok(json), Some(want), _) => {
                        let got = answered(&json);
                        if &got != want {
                            self.failed(
                                step.pos,
                                at,
                                format!("resolver `{resolver}` answered {got}, expected {want}"),
                            );
                        }
                    }
                    (Ok(json), None, None) if wanted.is_some() => {
                        let got = answered(&json);
                        let want = wanted.as_ref().expect("checked");
                        if !contains(&got, want) {
                            self.failed(
                                step.pos,
                                at,
                                format!("resolver `{resolver}` answered {got}, expected it to contain {want}"),
                            );
                        }
                    }
                    (Ok(json), None, Some(code)) => self.failed(
                        step.pos,
                        at,
                        format!("resolver `{resolver}` answered {json}, expected the error {code}"),
                    ),
                    (Err(e), _, Some(code)) if &error_code(&e) == code => {}
                    (Err(e), _, _)
                        if expect.is_some() || wanted.is_some() || expect_error.is_some() =>
                    {
                        self.failed(
                            step.pos,
                            at,
                            format!(
                                "resolver `{resolver}` failed: {e} (code {})",
                                error_code(&e)
                            ),
                        )
                    }
                    _ => {}
                }
                if checks {
                    let who = account
                        .as_deref()
                        .map(|a| format!(" as {a}"))
                        .unwrap_or_default();
                    self.checked(step.pos, at, format!("call {resolver}{who}"), before);
                }
            }
            Action::WebTrigger {
                install,
                key,
                request,
                expect_status,
            } => {
                let full = self.expand(&request.path, step.pos)?;
                // The query string becomes `queryParameters`, as the platform passes it.
                let (path, query) = full.split_once('?').unwrap_or((&full, ""));
                let mut query_parameters: Vec<(String, Vec<String>)> = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let (k, v) = (percent_decode(k), percent_decode(v));
                    match query_parameters.iter_mut().find(|(name, _)| *name == k) {
                        Some((_, vals)) => vals.push(v),
                        None => query_parameters.push((k, vec![v])),
                    }
                }
                let request = WebRequest {
                    path: path.to_string(),
                    query_parameters,
                    body: self.expand(&request.body, step.pos)?,
                    ..request.clone()
                };
                let r = sim.web_trigger(install, key, request).map_err(fail)?;
                let (at, before) = (sim.now(), self.failures.len());
                if let Some(want) = expect_status.filter(|w| *w != r.status_code) {
                    self.failed(
                        step.pos,
                        at,
                        format!(
                            "web trigger `{key}` answered {}, expected {want}",
                            r.status_code
                        ),
                    );
                }
                if expect_status.is_some() {
                    self.checked(step.pos, at, format!("web-trigger {key}"), before);
                }
            }
            Action::Push {
                install,
                queue,
                payload,
            } => {
                let payload = self.expand(payload, step.pos)?;
                sim.push(install, queue, &payload).map_err(fail)?;
            }
            Action::Deploy {
                app,
                manifest,
                code,
            } => {
                let env = s.apps[app].env.clone();
                let id = self.deploy(sim, manifest, code, &env)?;
                if id != self.app_ids[app] {
                    return Err(s.fail(
                        Some(manifest.pos),
                        format!(
                            "this manifest is app {id}, not app `{app}` ({})",
                            self.app_ids[app]
                        ),
                    ));
                }
            }
            Action::Consent { install } => {
                sim.consent(install).map_err(fail)?;
            }
            Action::Admin {
                install,
                analytics,
                logs,
            } => {
                let current = sim
                    .platform()
                    .installation(install)
                    .map(|i| i.admin)
                    .unwrap_or_default();
                let admin = AdminSwitches {
                    analytics_blocked: analytics.unwrap_or(current.analytics_blocked),
                    logs_blocked: logs.unwrap_or(current.logs_blocked),
                };
                sim.set_admin(install, admin).map_err(fail)?;
            }
            Action::Migrate { site, realm } => {
                sim.migrate_site(&s.sites[site].host, *realm)
                    .map_err(fail)?;
            }
            Action::Fault {
                install,
                fault,
                count,
            } => match fault {
                Fault::StorageErrors => sim.inject_storage_errors(install, *count),
                Fault::Timeouts => sim.inject_timeouts(install, *count),
                Fault::DuplicateEvents => sim.duplicate_deliveries(install, *count),
                Fault::DuplicateSchedules => sim.duplicate_firings(install, *count),
            }
            .map_err(fail)?,
            Action::Expect(list) => {
                for e in list {
                    self.check(sim, e);
                }
            }
        }
        Ok(())
    }

    /// Replaces placeholders: `${page:NAME}` with the id of the page created as NAME (page ids
    /// are only known once the run has created the page), `${var:NAME}` with the value
    /// captured as NAME, and `${totp:NAME}` with the current TOTP code (RFC 6238: SHA-1, 6
    /// digits, 30 s) of the base32 secret captured as NAME, at the step's virtual time.
    /// Other `${...}` text is left as it is.
    fn expand(&self, text: &str, pos: Pos) -> Result<String, ScenarioError> {
        const KINDS: [&str; 3] = ["${page:", "${var:", "${totp:"];
        if !KINDS.iter().any(|k| text.contains(k)) {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some((start, kind)) = KINDS
            .iter()
            .filter_map(|k| rest.find(k).map(|i| (i, *k)))
            .min()
        {
            out.push_str(&rest[..start]);
            let after = &rest[start + kind.len()..];
            let Some(end) = after.find('}') else {
                return Err(self
                    .scenario
                    .fail(Some(pos), format!("`{kind}` without a closing `}}`")));
            };
            let name = &after[..end];
            match kind {
                "${page:" => out.push_str(&self.page(name, pos)?.1),
                "${var:" => out.push_str(self.var(name, pos)?),
                _ => {
                    let code =
                        totp_code(self.var(name, pos)?, self.now.0 / 1000).ok_or_else(|| {
                            self.scenario.fail(
                                Some(pos),
                                format!(
                                    "`{name}` is not a base32 TOTP secret of at least 128 bits"
                                ),
                            )
                        })?;
                    out.push_str(&code);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn var(&self, name: &str, pos: Pos) -> Result<&str, ScenarioError> {
        self.vars.get(name).map(String::as_str).ok_or_else(|| {
            self.scenario.fail(
                Some(pos),
                format!("nothing was captured as `{name}` at this point of the run"),
            )
        })
    }

    fn page(&self, name: &str, pos: Pos) -> Result<(String, String), ScenarioError> {
        self.pages.get(name).cloned().ok_or_else(|| {
            self.scenario.fail(
                Some(pos),
                format!("page `{name}` has not been created yet at this point of the run"),
            )
        })
    }

    fn failed(&mut self, pos: Pos, at: Millis, message: String) {
        self.failures.push(Failure {
            file: self.scenario.file.clone(),
            line: pos.line,
            column: pos.column,
            at,
            message,
        });
    }

    fn check(&mut self, sim: &Simulation, e: &Expectation) {
        let at = sim.now();
        let before = self.failures.len();
        if let Some(message) = self.verdict(sim, &e.check) {
            self.failed(e.pos, at, message);
        }
        self.checked(e.pos, at, format!("expect {}", e.check.kind()), before);
    }

    /// Records a check made at `pos`: the failures since `before` are its.
    fn checked(&mut self, pos: Pos, at: Millis, what: String, before: usize) {
        let failures = self.failures[before..]
            .iter()
            .map(|f| f.message.clone())
            .collect();
        self.checks.push(Checked {
            line: pos.line,
            column: pos.column,
            at,
            what,
            failures,
        });
    }

    /// `None` when the expectation holds, else what went wrong.
    fn verdict(&self, sim: &Simulation, check: &Check) -> Option<String> {
        match check {
            Check::Kvs {
                install,
                key,
                equals,
                exists,
            } => {
                let found = match sim.platform().inspect(install) {
                    Ok(entries) => entries.into_iter().find(|(k, _)| k == key).map(|(_, v)| v),
                    Err(e) => return Some(format!("storage of `{install}`: {e}")),
                };
                if let Some(want) = exists
                    && found.is_some() != *want
                {
                    return Some(format!(
                        "expected key `{key}` of `{install}` {}",
                        if *want { "to exist" } else { "not to exist" }
                    ));
                }
                match (equals, found) {
                    (Some(want), Some(got)) if &got != want => Some(format!(
                        "expected key `{key}` of `{install}` to be {want}, found {got}"
                    )),
                    (Some(want), None) => Some(format!(
                        "expected key `{key}` of `{install}` to be {want}, found nothing"
                    )),
                    _ => None,
                }
            }
            Check::Deliveries {
                install,
                handler,
                ok,
                count,
            } => {
                let n = sim
                    .trace()
                    .iter()
                    .filter(|e| match &e.what {
                        Flow::Delivery {
                            installation,
                            handler: h,
                            outcome,
                            ..
                        } => {
                            install.as_ref().is_none_or(|i| i == installation)
                                && handler.as_ref().is_none_or(|x| x == h)
                                && ok.is_none_or(|o| o == outcome.is_ok())
                        }
                        _ => false,
                    })
                    .count() as u64;
                (!count.holds(n))
                    .then(|| format!("expected {} deliveries, found {n}", count.describe()))
            }
            Check::DeadLetters { install, count } => {
                let n = sim
                    .trace()
                    .iter()
                    .filter(|e| match &e.what {
                        Flow::DeadLetter { installation, .. } => {
                            install.as_ref().is_none_or(|i| i == installation)
                        }
                        _ => false,
                    })
                    .count() as u64;
                (!count.holds(n))
                    .then(|| format!("expected {} dead letters, found {n}", count.describe()))
            }
            Check::Page {
                page,
                version,
                state,
                trashed,
            } => {
                let Some((site, id)) = self.pages.get(page) else {
                    return Some(format!("page `{page}` was never created"));
                };
                let c = sim.platform().pages();
                let Some(p) = c.get_page(site, id) else {
                    return Some(format!("page `{page}` is gone"));
                };
                if let Some(v) = version.filter(|v| *v != p.version) {
                    return Some(format!(
                        "expected page `{page}` at version {v}, found version {}",
                        p.version
                    ));
                }
                if let Some(want) = state {
                    let got = c.get_content_state(site, id).map(|s| s.name);
                    if got.as_deref() != Some(want.as_str()) {
                        return Some(format!(
                            "expected page `{page}` in state {want:?}, found {got:?}"
                        ));
                    }
                }
                if let Some(t) = trashed.filter(|t| *t != c.is_trashed(site, id)) {
                    return Some(format!(
                        "expected page `{page}` {}in the trash",
                        if t { "" } else { "not " }
                    ));
                }
                None
            }
            Check::Roa {
                app,
                observed,
                static_,
            } => {
                let r = RoaReport::of(sim, &self.app_ids[app])?;
                let word = |b: bool| if b { "eligible" } else { "not eligible" };
                if let Some(want) = observed.filter(|w| *w != r.observed.eligible) {
                    return Some(format!(
                        "expected app `{app}` to be observed {}, but it was {}: {}",
                        word(want),
                        word(r.observed.eligible),
                        r.observed.reasons.join("; ")
                    ));
                }
                if let Some(want) = static_.filter(|w| *w != r.static_verdict.eligible) {
                    return Some(format!(
                        "expected app `{app}`'s manifest to be {}, but it is {} ({})",
                        word(want),
                        word(r.static_verdict.eligible),
                        r.static_verdict.rules.join(", ")
                    ));
                }
                None
            }
            Check::Egress {
                install,
                host,
                allowed,
                count,
            } => {
                let n = sim
                    .platform()
                    .ledger()
                    .iter()
                    .filter(|a| {
                        install.as_ref().is_none_or(|i| *i == a.installation)
                            && host.as_ref().is_none_or(|h| {
                                a.destination == *h || a.destination.starts_with(&format!("{h}/"))
                            })
                            && allowed.is_none_or(|x| x == a.allowed)
                    })
                    .count() as u64;
                (!count.holds(n))
                    .then(|| format!("expected {} egress attempts, found {n}", count.describe()))
            }
            Check::Logs {
                install,
                level,
                contains,
                count,
            } => {
                let matching: Vec<_> = sim
                    .platform()
                    .logs()
                    .iter()
                    .filter(|l| {
                        install.as_ref().is_none_or(|i| *i == l.installation)
                            && level.as_ref().is_none_or(|w| w == l.level)
                            && contains
                                .as_ref()
                                .is_none_or(|t| l.message.contains(t.as_str()))
                    })
                    .collect();
                let n = matching.len() as u64;
                (!count.holds(n)).then(|| {
                    // The first line found says what an unexpected one was.
                    let first = matching
                        .first()
                        .map(|l| {
                            let m: String = l.message.chars().take(200).collect();
                            format!(
                                " (the first: {} {} {}: {m:?})",
                                l.at, l.installation, l.level
                            )
                        })
                        .unwrap_or_default();
                    format!("expected {} log lines, found {n}{first}", count.describe())
                })
            }
            Check::Version {
                install,
                running,
                awaiting,
            } => {
                let (r, a) = sim.running(install)?;
                if let Some(want) = running.filter(|w| *w != r) {
                    return Some(format!(
                        "expected `{install}` to run version {want}, it runs version {r}"
                    ));
                }
                match awaiting {
                    Some(want) if *want != a => Some(format!(
                        "expected `{install}` to wait for consent to {}, found {}",
                        want.map_or("nothing".to_string(), |v| format!("version {v}")),
                        a.map_or("nothing".to_string(), |v| format!("version {v}"))
                    )),
                    _ => None,
                }
            }
        }
    }
}

/// Runs the simulation forward and tells the progress callback, at most a thousand times.
struct Progress<'a> {
    start: Millis,
    total: u64,
    /// Offset from the start reached so far.
    at: u64,
    shown: u64,
    report: Option<&'a mut dyn FnMut(u64, u64)>,
}

impl Progress<'_> {
    fn advance(&mut self, sim: &mut Simulation, to: u64) {
        let Some(report) = self.report.as_mut() else {
            sim.run_until(self.start.plus(to));
            self.at = self.at.max(to);
            return;
        };
        let slice = (self.total / 1000).max(1);
        loop {
            let next = self.at.saturating_add(slice).min(to).max(self.at);
            sim.run_until(self.start.plus(next));
            self.at = next;
            let tick = next.min(self.total) * 1000 / self.total;
            if tick != self.shown {
                self.shown = tick;
                report(next.min(self.total), self.total);
            }
            if next >= to {
                break;
            }
        }
    }
}

/// The code a scenario's `expect-error` names: the app's error code, or the kind of the
/// platform's error (`timeout`, `memory_limit`, ...).
fn error_code(e: &InvocationError) -> String {
    match e {
        InvocationError::App { code, .. } => code.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("kind")?.as_str().map(str::to_string))
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing helpers.

struct Cx<'a> {
    file: &'a str,
}

const ACTIONS: &[&str] = &[
    "create-page",
    "edit-page",
    "trash-page",
    "restore-page",
    "view-page",
    "call",
    "web-trigger",
    "push",
    "deploy",
    "consent",
    "admin",
    "migrate",
    "fault",
    "expect",
];

impl Cx<'_> {
    fn err(&self, pos: Pos, message: &str) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            pos: Some(pos),
            message: message.to_string(),
        }
    }

    fn map<'n>(&self, n: &'n Node) -> Result<&'n [(Node, Node)], ScenarioError> {
        n.as_map()
            .ok_or_else(|| self.err(n.pos, &format!("expected a mapping, found {}", n.kind())))
    }

    fn seq<'n>(&self, n: &'n Node) -> Result<&'n [Node], ScenarioError> {
        n.as_seq()
            .ok_or_else(|| self.err(n.pos, &format!("expected a list, found {}", n.kind())))
    }

    /// A mapping whose keys are all among `allowed`.
    fn keys(&self, n: &Node, allowed: &[&str]) -> Result<(), ScenarioError> {
        for (k, _) in self.map(n)? {
            let name = k.scalar_string().unwrap_or_default();
            if !allowed.contains(&name.as_str()) {
                return Err(self.err(
                    k.pos,
                    &format!(
                        "unknown key `{name}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn req<'n>(&self, n: &'n Node, key: &str) -> Result<&'n Node, ScenarioError> {
        n.get(key)
            .ok_or_else(|| self.err(n.pos, &format!("missing `{key}`")))
    }

    fn string(&self, n: &Node) -> Result<String, ScenarioError> {
        n.scalar_string()
            .ok_or_else(|| self.err(n.pos, &format!("expected a string, found {}", n.kind())))
    }

    fn opt_string(&self, n: &Node, key: &str) -> Result<Option<String>, ScenarioError> {
        n.get(key).map(|v| self.string(v)).transpose()
    }

    fn uint(&self, n: &Node) -> Result<u64, ScenarioError> {
        match n.value {
            Value::Int(i) if i >= 0 => Ok(i as u64),
            _ => Err(self.err(
                n.pos,
                &format!("expected a whole number, found {}", n.kind()),
            )),
        }
    }

    /// A share: `1%`, `0.5%`, or a fraction from 0 to 1 (`0.01`), in parts per million.
    fn share_ppm(&self, n: &Node) -> Result<u32, ScenarioError> {
        let share = match &n.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(t) => t
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .map(|p| p / 100.0),
            _ => None,
        };
        match share {
            Some(f) if (0.0..=1.0).contains(&f) => Ok((f * 1_000_000.0).round() as u32),
            _ => Err(self.err(
                n.pos,
                "expected a share from 0 to 1 or a percentage (`0.01`, `1%`)",
            )),
        }
    }

    fn u32(&self, n: &Node) -> Result<u32, ScenarioError> {
        u32::try_from(self.uint(n)?).map_err(|_| self.err(n.pos, "number too large"))
    }

    fn bool(&self, n: &Node) -> Result<bool, ScenarioError> {
        n.as_bool().ok_or_else(|| {
            self.err(
                n.pos,
                &format!("expected true or false, found {}", n.kind()),
            )
        })
    }

    /// `blocked` or `allowed`.
    fn switch(&self, n: &Node) -> Result<bool, ScenarioError> {
        match n.as_str() {
            Some("blocked") => Ok(true),
            Some("allowed") => Ok(false),
            _ => Err(self.err(n.pos, "expected `blocked` or `allowed`")),
        }
    }

    /// `manifest` with `component` (a wasm component file) or `node` (a Node app's folder,
    /// whose `manifest.yml` is the default manifest); `default` is the app's code when a
    /// `deploy` step names neither.
    fn app_code(
        &self,
        v: &Node,
        default: Option<&Code>,
    ) -> Result<(Located<PathBuf>, Code), ScenarioError> {
        let code = match (v.get("component"), v.get("node")) {
            (Some(_), Some(n)) => {
                return Err(self.err(
                    n.pos,
                    "an app is a `component` or a `node` folder, not both",
                ));
            }
            (Some(c), None) => Code::Component(self.path(c)?),
            (None, Some(n)) => Code::Node(self.path(n)?),
            (None, None) => match default {
                Some(c) => c.clone(),
                None => {
                    return Err(self.err(
                        v.pos,
                        "an app needs `component` (a wasm component) or `node` (a Node app's folder)",
                    ));
                }
            },
        };
        let manifest = match (v.get("manifest"), &code) {
            (Some(m), _) => self.path(m)?,
            (None, Code::Node(dir)) => Located {
                value: dir.value.join("manifest.yml"),
                pos: dir.pos,
            },
            (None, Code::Component(_)) => return Err(self.err(v.pos, "missing key `manifest`")),
        };
        Ok((manifest, code))
    }

    fn path(&self, n: &Node) -> Result<Located<PathBuf>, ScenarioError> {
        Ok(Located {
            value: PathBuf::from(self.string(n)?),
            pos: n.pos,
        })
    }

    /// A name that must be a key of `known`.
    fn name_in<T>(
        &self,
        n: &Node,
        known: &BTreeMap<String, T>,
        what: &str,
    ) -> Result<String, ScenarioError> {
        let name = self.string(n)?;
        if known.contains_key(&name) {
            Ok(name)
        } else {
            let list: Vec<&str> = known.keys().map(String::as_str).collect();
            Err(self.err(
                n.pos,
                &format!("no {what} `{name}` (known: {})", list.join(", ")),
            ))
        }
    }

    /// `90s`, `5m`, `2h`, `30d`, `1w`, `500ms`, or combinations (`1d12h`); `0` alone.
    fn duration(&self, n: &Node) -> Result<u64, ScenarioError> {
        let text = self.string(n)?;
        parse_duration(&text).ok_or_else(|| {
            self.err(
                n.pos,
                &format!("`{text}` is not a duration (e.g. 500ms, 90s, 5m, 2h, 30d, 1w, 1d12h)"),
            )
        })
    }

    /// `LO..HI` durations.
    fn range(&self, n: &Node) -> Result<(u64, u64), ScenarioError> {
        let text = self.string(n)?;
        let (lo, hi) = text
            .split_once("..")
            .and_then(|(a, b)| Some((parse_duration(a.trim())?, parse_duration(b.trim())?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| self.err(n.pos, &format!("`{text}` is not a range such as 1s..2m")))?;
        Ok((lo, hi))
    }

    fn json(&self, n: &Node) -> Json {
        n.to_json()
    }

    fn site(&self, name: &str, v: &Node) -> Result<SiteDef, ScenarioError> {
        self.keys(v, &["host", "realm", "users", "groups"])?;
        let realm_node = self.req(v, "realm")?;
        let realm = self
            .string(realm_node)?
            .parse::<Realm>()
            .map_err(|e| self.err(realm_node.pos, &e.to_string()))?;
        let mut users = BTreeMap::new();
        if let Some(u) = v.get("users") {
            match &u.value {
                Value::Seq(items) => {
                    for i in items {
                        let n = self.string(i)?;
                        users.insert(n.clone(), n);
                    }
                }
                Value::Map(entries) => {
                    for (k, a) in entries {
                        users.insert(self.string(k)?, self.string(a)?);
                    }
                }
                _ => {
                    return Err(self.err(
                        u.pos,
                        "expected a list of user names or a mapping of name to account id",
                    ));
                }
            }
        }
        let mut groups = BTreeMap::new();
        if let Some(g) = v.get("groups") {
            for (group, members) in self.map(g)? {
                let mut accounts = Vec::new();
                for m in self.seq(members)? {
                    let user = self.name_in(m, &users, "user")?;
                    accounts.push(users[&user].clone());
                }
                groups.insert(self.string(group)?, accounts);
            }
        }
        Ok(SiteDef {
            host: self
                .opt_string(v, "host")?
                .unwrap_or_else(|| format!("{name}.atlassian.net")),
            realm,
            users,
            groups,
        })
    }

    /// The account id of `as: NAME` on a site.
    fn user(&self, n: &Node, site: &SiteDef) -> Result<String, ScenarioError> {
        let name = self.string(n)?;
        site.users
            .get(&name)
            .cloned()
            .ok_or_else(|| self.err(n.pos, &format!("no user `{name}` on site {}", site.host)))
    }

    /// One entry of `steps`: its actions, expanded when it repeats.
    fn steps(
        &self,
        s: &Scenario,
        step: &Node,
        now: &mut u64,
        order: &mut usize,
        pages: &mut Vec<(String, String)>,
    ) -> Result<Vec<Step>, ScenarioError> {
        let mut out = Vec::new();
        if let Some(every) = step.get("every") {
            self.keys(step, &["every", "from", "until", "do"])?;
            let period = self.duration(every)?;
            if period == 0 {
                return Err(self.err(every.pos, "`every` needs a positive duration"));
            }
            let from = step
                .get("from")
                .map(|n| self.duration(n))
                .transpose()?
                .unwrap_or(*now);
            let until_node = self.req(step, "until")?;
            let until = self.duration(until_node)?;
            if until < from {
                return Err(self.err(until_node.pos, "`until` comes before `from`"));
            }
            let body = self.seq(self.req(step, "do")?)?;
            let times = (until - from) / period + 1;
            if times.saturating_mul(body.len() as u64) > MAX_STEPS as u64 {
                return Err(self.err(every.pos, "this loop expands to more than 2,000,000 steps"));
            }
            let actions = body
                .iter()
                .map(|a| {
                    if let Some((k, _)) = a.get_entry("at") {
                        return Err(
                            self.err(k.pos, "a step inside `do` takes its time from `every`")
                        );
                    }
                    self.action(s, a, pages)
                })
                .collect::<Result<Vec<_>, ScenarioError>>()?;
            let mut t = from;
            while t <= until {
                for (pos, action) in &actions {
                    *order += 1;
                    out.push(Step {
                        at: t,
                        order: *order,
                        pos: *pos,
                        action: action.clone(),
                    });
                }
                let Some(next) = t.checked_add(period) else {
                    break;
                };
                t = next;
            }
            *now = (*now).max(until);
            return Ok(out);
        }
        if let Some(at) = step.get("at") {
            *now = self.duration(at)?;
        }
        *order += 1;
        let (pos, action) = self.action(s, step, pages)?;
        out.push(Step {
            at: *now,
            order: *order,
            pos,
            action,
        });
        Ok(out)
    }

    /// A mapping with one action key (and `at` on a top-level step), and the place of the
    /// action's key, which errors and failures point at.
    fn action(
        &self,
        s: &Scenario,
        n: &Node,
        pages: &mut Vec<(String, String)>,
    ) -> Result<(Pos, Action), ScenarioError> {
        let mut allowed = ACTIONS.to_vec();
        allowed.push("at");
        self.keys(n, &allowed)?;
        let found: Vec<&(Node, Node)> = self
            .map(n)?
            .iter()
            .filter(|(k, _)| !k.is_key("at"))
            .collect();
        let [(k, v)] = found.as_slice() else {
            return Err(self.err(
                n.pos,
                &format!(
                    "a step has exactly one action (one of: {})",
                    ACTIONS.join(", ")
                ),
            ));
        };
        let kind = self.string(k)?;
        let install = |v: &Node| self.name_in(self.req(v, "install")?, &s.installs, "installation");
        let page =
            |v: &Node, pages: &[(String, String)]| -> Result<(String, String), ScenarioError> {
                let node = self.req(v, "page")?;
                let name = self.string(node)?;
                pages
                    .iter()
                    .rev()
                    .find(|(p, _)| *p == name)
                    .cloned()
                    .ok_or_else(|| {
                        self.err(
                        node.pos,
                        &format!(
                            "no page `{name}`: name it in an earlier create-page (`name: {name}`)"
                        ),
                    )
                    })
            };
        let action = match kind.as_str() {
            "create-page" => {
                self.keys(v, &["site", "as", "space", "title", "body", "name"])?;
                let site = self.name_in(self.req(v, "site")?, &s.sites, "site")?;
                let account = self.user(self.req(v, "as")?, &s.sites[&site])?;
                let name = self.opt_string(v, "name")?;
                if let Some(n) = &name {
                    pages.push((n.clone(), site.clone()));
                }
                Action::CreatePage {
                    account,
                    space: self.string(self.req(v, "space")?)?,
                    title: self.string(self.req(v, "title")?)?,
                    body: self.opt_string(v, "body")?.unwrap_or_default(),
                    site,
                    name,
                }
            }
            "edit-page" => {
                self.keys(v, &["page", "as", "title", "body"])?;
                let (name, site) = page(v, pages)?;
                Action::EditPage {
                    page: name,
                    account: self.user(self.req(v, "as")?, &s.sites[&site])?,
                    title: self.opt_string(v, "title")?,
                    body: self.string(self.req(v, "body")?)?,
                }
            }
            "trash-page" | "restore-page" | "view-page" => {
                self.keys(v, &["page", "as"])?;
                let (name, site) = page(v, pages)?;
                Action::Page {
                    page: name,
                    account: self.user(self.req(v, "as")?, &s.sites[&site])?,
                    action: match kind.as_str() {
                        "trash-page" => PageOp::Trash,
                        "restore-page" => PageOp::Restore,
                        _ => PageOp::View,
                    },
                }
            }
            "call" => {
                self.keys(
                    v,
                    &[
                        "install",
                        "as",
                        "function",
                        "resolver",
                        "payload",
                        "expect",
                        "expect-contains",
                        "expect-error",
                        "capture",
                        "page",
                    ],
                )?;
                let install = install(v)?;
                let site = &s.sites[&s.installs[&install].site];
                let on_page = match v.get("page") {
                    Some(node) => {
                        let (name, page_site) = page(v, pages)?;
                        if page_site != s.installs[&install].site {
                            return Err(self.err(
                                node.pos,
                                &format!(
                                    "page `{name}` is on site {page_site}, not on {}'s site {}",
                                    install, s.installs[&install].site
                                ),
                            ));
                        }
                        Some(name)
                    }
                    None => None,
                };
                Action::Call {
                    on_page,
                    account: v.get("as").map(|a| self.user(a, site)).transpose()?,
                    function: self.opt_string(v, "function")?,
                    resolver: self.string(self.req(v, "resolver")?)?,
                    payload: v
                        .get("payload")
                        .map_or_else(|| "null".into(), |p| self.json(p).to_string()),
                    expect: v.get("expect").map(|e| self.json(e)),
                    expect_contains: v.get("expect-contains").map(|e| self.json(e)),
                    expect_error: self.opt_string(v, "expect-error")?,
                    capture: match v.get("capture") {
                        Some(c) => self
                            .map(c)?
                            .iter()
                            .map(|(k, f)| {
                                let field = self.string(f)?;
                                if field.is_empty() {
                                    return Err(self.err(f.pos, "capture names a field of the answer (e.g. `secret`, `a.b`)"));
                                }
                                Ok((self.string(k)?, field))
                            })
                            .collect::<Result<_, _>>()?,
                        None => Vec::new(),
                    },
                    install,
                }
            }
            "web-trigger" => {
                self.keys(
                    v,
                    &[
                        "install",
                        "key",
                        "method",
                        "path",
                        "headers",
                        "body",
                        "expect-status",
                    ],
                )?;
                let mut headers = Vec::new();
                if let Some(h) = v.get("headers") {
                    for (k, val) in self.map(h)? {
                        let vals = match val.as_seq() {
                            Some(items) => items
                                .iter()
                                .map(|i| self.string(i))
                                .collect::<Result<Vec<_>, _>>()?,
                            None => vec![self.string(val)?],
                        };
                        headers.push((self.string(k)?.to_ascii_lowercase(), vals));
                    }
                }
                Action::WebTrigger {
                    install: install(v)?,
                    key: self.string(self.req(v, "key")?)?,
                    request: WebRequest {
                        method: self
                            .opt_string(v, "method")?
                            .unwrap_or_else(|| "GET".into()),
                        path: self.opt_string(v, "path")?.unwrap_or_else(|| "/".into()),
                        body: self.opt_string(v, "body")?.unwrap_or_default(),
                        headers,
                        ..WebRequest::default()
                    },
                    expect_status: v
                        .get("expect-status")
                        .map(|n| {
                            u16::try_from(self.uint(n)?)
                                .map_err(|_| self.err(n.pos, "not an HTTP status"))
                        })
                        .transpose()?,
                }
            }
            "push" => {
                self.keys(v, &["install", "queue", "payload"])?;
                Action::Push {
                    install: install(v)?,
                    queue: self.string(self.req(v, "queue")?)?,
                    payload: v
                        .get("payload")
                        .map_or_else(|| "null".into(), |p| self.json(p).to_string()),
                }
            }
            "deploy" => {
                self.keys(v, &["app", "manifest", "component", "node"])?;
                let app = self.name_in(self.req(v, "app")?, &s.apps, "app")?;
                let (manifest, code) = self.app_code(v, Some(&s.apps[&app].code))?;
                Action::Deploy {
                    manifest,
                    code,
                    app,
                }
            }
            "consent" => {
                self.keys(v, &["install"])?;
                Action::Consent {
                    install: install(v)?,
                }
            }
            "admin" => {
                self.keys(v, &["install", "analytics", "logs"])?;
                Action::Admin {
                    install: install(v)?,
                    analytics: v.get("analytics").map(|n| self.switch(n)).transpose()?,
                    logs: v.get("logs").map(|n| self.switch(n)).transpose()?,
                }
            }
            "migrate" => {
                self.keys(v, &["site", "realm"])?;
                let realm = self.req(v, "realm")?;
                Action::Migrate {
                    site: self.name_in(self.req(v, "site")?, &s.sites, "site")?,
                    realm: self.string(realm)?.parse().map_err(
                        |e: crate::realm::UnknownRealm| self.err(realm.pos, &e.to_string()),
                    )?,
                }
            }
            "fault" => {
                self.keys(
                    v,
                    &[
                        "install",
                        "storage-errors",
                        "timeouts",
                        "duplicate-events",
                        "duplicate-schedules",
                    ],
                )?;
                let install = install(v)?;
                let kinds = [
                    ("storage-errors", Fault::StorageErrors),
                    ("timeouts", Fault::Timeouts),
                    ("duplicate-events", Fault::DuplicateEvents),
                    ("duplicate-schedules", Fault::DuplicateSchedules),
                ];
                let given: Vec<_> = kinds.iter().filter(|(k, _)| v.get(k).is_some()).collect();
                let [(key, fault)] = given.as_slice() else {
                    return Err(self.err(
                        v.pos,
                        "a fault is one of storage-errors, timeouts, duplicate-events, duplicate-schedules",
                    ));
                };
                let n = self.req(v, key)?;
                let count = self.u32(n)?;
                if count > MAX_FAULTS {
                    return Err(self.err(
                        n.pos,
                        &format!("{count} faults are more than the limit of {MAX_FAULTS} per step"),
                    ));
                }
                Action::Fault {
                    install,
                    fault: *fault,
                    count,
                }
            }
            "expect" => Action::Expect(self.expectations(s, v, pages)?),
            _ => return Err(self.err(k.pos, &format!("unknown action `{kind}`"))),
        };
        Ok((k.pos, action))
    }

    fn expectations(
        &self,
        s: &Scenario,
        n: &Node,
        pages: &[(String, String)],
    ) -> Result<Vec<Expectation>, ScenarioError> {
        self.seq(n)?
            .iter()
            .map(|e| {
                Ok(Expectation {
                    pos: e.pos,
                    check: self.expectation(s, e, pages)?,
                })
            })
            .collect()
    }

    fn expectation(
        &self,
        s: &Scenario,
        n: &Node,
        pages: &[(String, String)],
    ) -> Result<Check, ScenarioError> {
        const KINDS: &[&str] = &[
            "kvs",
            "deliveries",
            "dead-letters",
            "page",
            "roa",
            "egress",
            "logs",
            "version",
        ];
        self.keys(n, KINDS)?;
        let [(k, v)] = self.map(n)? else {
            return Err(self.err(
                n.pos,
                &format!(
                    "an expectation has exactly one kind (one of: {})",
                    KINDS.join(", ")
                ),
            ));
        };
        let install = |v: &Node| self.name_in(self.req(v, "install")?, &s.installs, "installation");
        let opt_install = |v: &Node| {
            v.get("install")
                .map(|i| self.name_in(i, &s.installs, "installation"))
                .transpose()
        };
        let count = |v: &Node| -> Result<Count, ScenarioError> {
            let c = Count {
                exact: v.get("count").map(|n| self.uint(n)).transpose()?,
                at_least: v.get("at-least").map(|n| self.uint(n)).transpose()?,
                at_most: v.get("at-most").map(|n| self.uint(n)).transpose()?,
            };
            if c.exact.is_none() && c.at_least.is_none() && c.at_most.is_none() {
                return Err(self.err(v.pos, "say `count`, `at-least` or `at-most`"));
            }
            Ok(c)
        };
        let kind = self.string(k)?;
        Ok(match kind.as_str() {
            "kvs" => {
                self.keys(v, &["install", "key", "equals", "exists"])?;
                Check::Kvs {
                    install: install(v)?,
                    key: self.string(self.req(v, "key")?)?,
                    equals: v.get("equals").map(|e| self.json(e)),
                    exists: v.get("exists").map(|e| self.bool(e)).transpose()?,
                }
            }
            "deliveries" => {
                self.keys(
                    v,
                    &[
                        "install", "handler", "outcome", "count", "at-least", "at-most",
                    ],
                )?;
                let handler = v.get("handler").map(|h| self.string(h)).transpose()?;
                if let (Some(h), Some(node)) = (&handler, v.get("handler"))
                    && !["event", "schedule", "consume"].contains(&h.as_str())
                {
                    return Err(self.err(node.pos, "handler is one of event, schedule, consume"));
                }
                let ok = match v.get("outcome") {
                    None => None,
                    Some(o) => match o.as_str() {
                        Some("ok") => Some(true),
                        Some("error") => Some(false),
                        _ => return Err(self.err(o.pos, "outcome is `ok` or `error`")),
                    },
                };
                Check::Deliveries {
                    install: opt_install(v)?,
                    handler,
                    ok,
                    count: count(v)?,
                }
            }
            "dead-letters" => {
                self.keys(v, &["install", "count", "at-least", "at-most"])?;
                Check::DeadLetters {
                    install: opt_install(v)?,
                    count: count(v)?,
                }
            }
            "page" => {
                self.keys(v, &["page", "version", "state", "trashed"])?;
                let node = self.req(v, "page")?;
                let name = self.string(node)?;
                if !pages.iter().any(|(p, _)| *p == name) {
                    return Err(self.err(
                        node.pos,
                        &format!("no page `{name}` is created by the steps"),
                    ));
                }
                Check::Page {
                    page: name,
                    version: v.get("version").map(|n| self.u32(n)).transpose()?,
                    state: self.opt_string(v, "state")?,
                    trashed: v.get("trashed").map(|n| self.bool(n)).transpose()?,
                }
            }
            "roa" => {
                self.keys(v, &["app", "observed", "static"])?;
                let verdict = |key: &str| -> Result<Option<bool>, ScenarioError> {
                    v.get(key)
                        .map(|n| match n.as_str() {
                            Some("eligible") => Ok(true),
                            Some("not-eligible") => Ok(false),
                            _ => Err(self.err(n.pos, "expected `eligible` or `not-eligible`")),
                        })
                        .transpose()
                };
                Check::Roa {
                    app: self.name_in(self.req(v, "app")?, &s.apps, "app")?,
                    observed: verdict("observed")?,
                    static_: verdict("static")?,
                }
            }
            "egress" => {
                self.keys(
                    v,
                    &["install", "host", "allowed", "count", "at-least", "at-most"],
                )?;
                Check::Egress {
                    install: opt_install(v)?,
                    host: self.opt_string(v, "host")?,
                    allowed: v.get("allowed").map(|n| self.bool(n)).transpose()?,
                    count: count(v)?,
                }
            }
            "logs" => {
                self.keys(
                    v,
                    &[
                        "install", "level", "contains", "count", "at-least", "at-most",
                    ],
                )?;
                let level = match v.get("level") {
                    Some(n) => {
                        let l = self.string(n)?;
                        if !["debug", "info", "warn", "error"].contains(&l.as_str()) {
                            return Err(self.err(
                                n.pos,
                                &format!(
                                    "unknown log level `{l}` (expected debug, info, warn or error)"
                                ),
                            ));
                        }
                        Some(l)
                    }
                    None => None,
                };
                Check::Logs {
                    install: opt_install(v)?,
                    level,
                    contains: self.opt_string(v, "contains")?,
                    count: count(v)?,
                }
            }
            "version" => {
                self.keys(v, &["install", "running", "awaiting"])?;
                Check::Version {
                    install: install(v)?,
                    running: v.get("running").map(|n| self.u32(n)).transpose()?,
                    awaiting: match v.get("awaiting") {
                        None => None,
                        Some(n) if n.as_str() == Some("none") => Some(None),
                        Some(n) => Some(Some(self.u32(n)?)),
                    },
                }
            }
            _ => unreachable_kind(),
        })
    }
}

/// `keys` has already refused anything else.
fn unreachable_kind() -> Check {
    Check::DeadLetters {
        install: None,
        count: Count::default(),
    }
}

/// Whether `got` holds `want`: every key of a `want` object is in `got` with a value that
/// holds the wanted one (recursively); arrays and other values must be equal.
fn contains(got: &Json, want: &Json) -> bool {
    match (got, want) {
        (Json::Object(g), Json::Object(w)) => w
            .iter()
            .all(|(k, w)| g.get(k).is_some_and(|g| contains(g, w))),
        _ => got == want,
    }
}

/// The TOTP code (RFC 6238: SHA-1, 6 digits, 30-second steps) of a base32 secret at `at`
/// seconds since the epoch, as an authenticator app shows it; `None` when the secret is not
/// base32 of at least 128 bits. What `${totp:NAME}` puts in a scenario.
pub fn totp_code(secret: &str, at: u64) -> Option<String> {
    let secret = totp_rs::Secret::try_from_base32(secret).ok()?;
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .ok()?;
    Some(totp.generate(at).to_string())
}

/// The value at a dotted path of a JSON answer (`secret`, `a.b`, `items.0.id`).
fn field_at<'j>(json: &'j Json, path: &str) -> Option<&'j Json> {
    path.split('.').try_fold(json, |v, part| match v {
        Json::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => v.get(part),
    })
}

/// `90s`, `5m`, `2h`, `30d`, `1w`, `500ms`, combinations (`1d12h`), or `0`.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => Millis::SECOND,
            "m" => Millis::MINUTE,
            "h" => Millis::HOUR,
            "d" => Millis::DAY,
            "w" => 7 * Millis::DAY,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// `%XX` escapes and `+` (a space) of a URL's query string.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{Json, contains, field_at, parse_duration, totp_code};

    #[test]
    fn an_answer_contains_the_wanted_fields() {
        let got =
            serde_json::json!({"state": "approved", "pending": [1, 2], "last": {"v": 1, "h": "x"}});
        assert!(contains(&got, &serde_json::json!({"state": "approved"})));
        assert!(contains(&got, &serde_json::json!({"last": {"v": 1}})));
        assert!(contains(&got, &serde_json::json!({"pending": [1, 2]})));
        assert!(!contains(&got, &serde_json::json!({"pending": [1]})));
        assert!(!contains(&got, &serde_json::json!({"state": "draft"})));
        assert!(!contains(&got, &serde_json::json!({"nope": null})));
    }

    #[test]
    fn totp_codes_follow_rfc_6238_and_fields_are_found_by_path() {
        // RFC 6238 Appendix B, SHA-1 ("12345678901234567890"): the last six digits.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(totp_code(secret, 59).as_deref(), Some("287082"));
        assert_eq!(totp_code(secret, 1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(totp_code(secret, 20_000_000_000).as_deref(), Some("353130"));
        assert_eq!(totp_code("not base32!", 59), None);
        assert_eq!(totp_code("GEZDGNBV", 59), None, "too short");
        let answer = serde_json::json!({"secret": "S", "a": {"b": [1, {"c": true}]}});
        assert_eq!(field_at(&answer, "secret"), Some(&Json::from("S")));
        assert_eq!(field_at(&answer, "a.b.1.c"), Some(&Json::from(true)));
        assert_eq!(field_at(&answer, "a.x"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1d12h"), Some(36 * 3_600_000));
        assert_eq!(parse_duration("1w"), Some(7 * 86_400_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("3y"), None);
        assert_eq!(parse_duration(""), None);
    }
}
