//! The simulated world over time: a discrete-event [`Simulation`] on top of the wasm host's
//! [`Platform`], driven by the virtual clock and one seeded generator.
//!
//! Product events (every page change, by a user or an app) reach the apps whose `trigger`
//! modules subscribe, after a seeded delay, so they arrive late and out of order; a failed
//! delivery is retried with backoff up to [`FlowConfig::retries`] times and then
//! dead-lettered. Scheduled triggers fire on the virtual clock and are not retried. Queue
//! payloads (the `queue` import, or a scenario's push) reach the queue's `consumer` with
//! retries. Web triggers are answered as the platform does, static or dynamic. Deploying a
//! new version runs `roa-check`'s diff: a minor update reaches every installation at once, a
//! major one waits for each site admin's consent.
//!
//! The queue is ordered by (virtual time, sequence number), every choice comes from the
//! seeded [`Rng`], and every collection that reaches an output is ordered, so the same seed
//! gives a byte-identical [`FlowEvent`] trace.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use roa_check::Manifest;
use roa_check::diff::Update;
use serde::Serialize;
use wasmtime::component::Component;

use crate::clock::{Millis, Rng};
use crate::egress::AdminSwitches;
use crate::host::{
    App, Call, Installation, InvocationError, LoadError, Output, Platform, Runtime, SimConfig,
    UiContext, WebRequest, WebResponse,
};
use crate::kvs::{KvsError, KvsStorage};
use crate::product::{Page, PageEvent, ProductError};
use crate::realm::Realm;

/// How the platform's asynchronous machinery behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Product events reach an app after a delay drawn from this range, in milliseconds
    /// (platform.md §5: minutes late, in no guaranteed order).
    pub event_delay_ms: (u64, u64),
    /// Queue payloads reach the consumer after a delay drawn from this range.
    pub queue_delay_ms: (u64, u64),
    /// Retries after a failed delivery of an event or a queue payload (platform.md §5: 4).
    pub retries: u32,
    /// The first retry waits this long, each further one twice as long, plus a seeded jitter
    /// of up to the same again.
    pub backoff_ms: u64,
    /// Of every million firings of a scheduled trigger, this many fire twice (platform.md §5:
    /// scheduled triggers may fire twice), the second within [`DUPLICATE_FIRING_MS`] of the
    /// first. 0 by default, so that a run is what its steps say; a scenario sets it with
    /// `flows: {duplicate-schedules: 1%}` to test that an app's schedules are idempotent.
    pub schedule_duplicates_ppm: u32,
}

/// The most a duplicate firing of a scheduled trigger lags the first one.
pub const DUPLICATE_FIRING_MS: u64 = 30_000;

impl FlowConfig {
    pub fn forge() -> FlowConfig {
        FlowConfig {
            event_delay_ms: (500, 120_000),
            queue_delay_ms: (100, 5_000),
            retries: 4,
            backoff_ms: 60_000,
            schedule_duplicates_ppm: 0,
        }
    }
}

/// One version of an app, as deployed.
#[derive(Debug)]
pub struct AppVersion {
    pub number: u32,
    pub app: Arc<App>,
    pub manifest: Arc<Manifest>,
    /// The static RoA verdict of this version's manifest.
    pub check: roa_check::Report,
    modules: Modules,
}

/// What deploying a version did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    pub app: String,
    pub version: u32,
    /// `none` for a first deploy.
    pub update: Update,
    /// The diff's reason ids (`SCOPE_ADDED`, `ELIGIBILITY_LOST`, ...).
    pub reasons: Vec<String>,
    pub eligible_before: Option<bool>,
    pub eligible_after: bool,
    /// Installations that moved to the new version at once.
    pub upgraded: Vec<String>,
    /// Installations that keep their version until their site admin consents.
    pub awaiting_consent: Vec<String>,
}

/// An installation to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    pub id: String,
    /// The app id (`ari:cloud:ecosystem::app/...`).
    pub app: String,
    /// The site's host, e.g. `acme.atlassian.net`.
    pub site: String,
    pub realm: Realm,
    pub environment: String,
    pub admin: AdminSwitches,
}

/// A refused simulation call. Invocation failures are not errors here: they are outcomes in
/// the trace.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("manifest {name}: {message}")]
    Manifest { name: String, message: String },
    #[error("no app `{0}` is deployed")]
    UnknownApp(String),
    #[error("no installation `{0}`")]
    UnknownInstallation(String),
    #[error("installation `{0}` exists already")]
    DuplicateInstallation(String),
    #[error("installation `{installation}` runs no {kind} `{key}`")]
    NoModule {
        installation: String,
        kind: &'static str,
        key: String,
    },
    #[error(
        "installation `{installation}`: say which function answers resolver calls (the app has {count} functions and no UI module names one)"
    )]
    WhichResolver { installation: String, count: usize },
    #[error("installation `{0}` has no upgrade waiting for its admin's consent")]
    NothingToConsent(String),
    #[error("product: {0}")]
    Product(#[from] ProductError),
    #[error("storage: {0}")]
    Kvs(#[from] KvsError),
}

/// One line of the simulation's trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowEvent {
    pub at: Millis,
    #[serde(flatten)]
    pub what: Flow,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flow {
    Deploy(Deployed),
    Install {
        installation: String,
        app: String,
        site: String,
        realm: Realm,
        version: u32,
    },
    /// A page changed; `deliveries` is how many subscribed trigger modules will hear of it.
    ProductEvent {
        site: String,
        event: &'static str,
        page: String,
        version: u32,
        by: String,
        deliveries: usize,
    },
    /// Something was pushed onto a queue.
    QueuePush {
        installation: String,
        queue: String,
        deliveries: usize,
    },
    /// One attempt to deliver an event, a queue payload or a scheduled trigger.
    Delivery {
        id: u64,
        installation: String,
        version: u32,
        function: String,
        handler: &'static str,
        /// The event type, the queue, or the scheduled trigger's key.
        subject: String,
        attempt: u32,
        outcome: Result<(), InvocationError>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_at: Option<Millis>,
    },
    /// A delivery that failed on every attempt.
    DeadLetter {
        id: u64,
        installation: String,
        function: String,
        subject: String,
        attempts: u32,
    },
    Resolver {
        installation: String,
        version: u32,
        account: Option<String>,
        name: String,
        outcome: Result<(), InvocationError>,
    },
    WebTrigger {
        installation: String,
        key: String,
        #[serde(rename = "static")]
        is_static: bool,
        status: u16,
    },
    Upgrade {
        installation: String,
        from: u32,
        to: u32,
        consented: bool,
    },
    AwaitingConsent {
        installation: String,
        running: u32,
        offered: u32,
    },
    Admin {
        installation: String,
        analytics_blocked: bool,
        logs_blocked: bool,
    },
    Migrate {
        site: String,
        from: Realm,
        to: Realm,
        keys: usize,
    },
    Fault {
        installation: String,
        fault: &'static str,
        count: u32,
    },
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// Product events emitted (page changes).
    pub product_events: u64,
    /// Product events no installation subscribed to: dispatched without an invocation.
    pub unheard_events: u64,
    /// Jobs taken from the queue (deliveries, retries and scheduled firings).
    pub jobs: u64,
    /// Invocations of apps (deliveries, resolvers, web triggers).
    pub invocations: u64,
    pub retries: u64,
    pub dead_letters: u64,
}

/// The simulated world over time.
pub struct Simulation {
    platform: Platform,
    runtime: Arc<Runtime>,
    config: FlowConfig,
    rng: Rng,
    queue: BinaryHeap<Reverse<Job>>,
    seq: u64,
    deliveries: u64,
    apps: BTreeMap<String, Vec<Arc<AppVersion>>>,
    installs: BTreeMap<String, InstallState>,
    /// Installations per site host, in id order.
    sites: BTreeMap<String, Vec<String>>,
    /// Deliveries to an installation to duplicate (fault injection).
    duplicates: BTreeMap<String, u32>,
    /// Scheduled firings of an installation to duplicate (fault injection).
    duplicate_firings: BTreeMap<String, u32>,
    trace: Vec<FlowEvent>,
    /// `SimConfig::trace`: keep the lines of `trace`.
    keep_trace: bool,
    stats: Stats,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("now", &self.now())
            .field("queued", &self.queue.len())
            .field("installations", &self.installs.len())
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// A world with no apps. `config.seed` seeds both the apps' randomness and the
    /// platform's choices (delays, jitter).
    pub fn new(runtime: Arc<Runtime>, config: SimConfig, flow: FlowConfig) -> Simulation {
        Simulation::with_storage(runtime, config, flow, KvsStorage::Memory)
    }

    /// Like [`Simulation::new`], with hosted storage where `storage` says (e.g. redb files
    /// that `signoff sim inspect` reads after the run).
    pub fn with_storage(
        runtime: Arc<Runtime>,
        config: SimConfig,
        flow: FlowConfig,
        storage: KvsStorage,
    ) -> Simulation {
        Simulation {
            platform: Platform::with_storage(runtime.clone(), config, storage),
            runtime,
            config: flow,
            // A stream of its own, so that the platform's choices do not shift when an app
            // draws more or less randomness.
            rng: Rng::seeded(config.seed ^ 0x5eed_f10e),
            keep_trace: config.trace,
            queue: BinaryHeap::new(),
            seq: 0,
            deliveries: 0,
            apps: BTreeMap::new(),
            installs: BTreeMap::new(),
            sites: BTreeMap::new(),
            duplicates: BTreeMap::new(),
            duplicate_firings: BTreeMap::new(),
            trace: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn now(&self) -> Millis {
        self.platform.now()
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The platform, for what the simulation does not wrap (endpoints, storage faults).
    /// Page changes made through it become events at the next simulation call.
    pub fn platform_mut(&mut self) -> &mut Platform {
        &mut self.platform
    }

    pub fn trace(&self) -> &[FlowEvent] {
        &self.trace
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Jobs waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The versions of an app, oldest first.
    pub fn versions(&self, app: &str) -> &[Arc<AppVersion>] {
        self.apps.get(app).map_or(&[], Vec::as_slice)
    }

    /// The deployed apps, by id.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// The version an installation runs and the one it waits to consent to, if any.
    pub fn running(&self, installation: &str) -> Option<(u32, Option<u32>)> {
        let i = self.installs.get(installation)?;
        Some((i.version.number, i.awaiting.as_ref().map(|v| v.number)))
    }

    /// The installations, by id, with their app ids.
    pub fn installations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.installs
            .iter()
            .map(|(id, i)| (id.as_str(), i.version.app.id()))
    }

    /// Deploys a version of an app (the first deploy registers it). A new version is
    /// compared with each installation's running one by `roa-check`: minor reaches the
    /// installation at once, major waits for its admin's consent.
    pub fn deploy(
        &mut self,
        manifest_name: &str,
        manifest_yaml: &str,
        component: &Component,
        env: &BTreeMap<String, String>,
    ) -> Result<Deployed, FlowError> {
        let manifest = roa_check::load(manifest_name, manifest_yaml.as_bytes()).map_err(|e| {
            FlowError::Manifest {
                name: manifest_name.to_string(),
                message: e.to_string(),
            }
        })?;
        let app = self.runtime.load_app(manifest_yaml, component, env)?;
        self.deploy_loaded(manifest_name, manifest, app)
    }

    /// Like [`Simulation::deploy`], for a Node app in its folder (see
    /// [`Runtime::load_node_app`](crate::host::Runtime::load_node_app)).
    pub fn deploy_node(
        &mut self,
        manifest_name: &str,
        manifest_yaml: &str,
        dir: &std::path::Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Deployed, FlowError> {
        let manifest = roa_check::load(manifest_name, manifest_yaml.as_bytes()).map_err(|e| {
            FlowError::Manifest {
                name: manifest_name.to_string(),
                message: e.to_string(),
            }
        })?;
        let app = self.runtime.load_node_app(manifest_yaml, dir, env)?;
        self.deploy_loaded(manifest_name, manifest, app)
    }

    fn deploy_loaded(
        &mut self,
        manifest_name: &str,
        manifest: roa_check::Manifest,
        app: Arc<App>,
    ) -> Result<Deployed, FlowError> {
        let id = app.id().to_string();
        let versions = self.apps.entry(id.clone()).or_default();
        let previous = versions.last().cloned();
        let version = Arc::new(AppVersion {
            number: versions.len() as u32 + 1,
            check: roa_check::check_manifest(manifest_name, &manifest),
            modules: Modules::of(&manifest),
            manifest: Arc::new(manifest),
            app,
        });
        versions.push(version.clone());
        if previous.is_none() {
            self.platform.add_app(version.app.clone());
        }
        let mut deployed = Deployed {
            app: id.clone(),
            version: version.number,
            update: Update::None,
            reasons: Vec::new(),
            eligible_before: previous.as_ref().map(|p| p.check.eligible),
            eligible_after: version.check.eligible,
            upgraded: Vec::new(),
            awaiting_consent: Vec::new(),
        };
        if let Some(previous) = &previous {
            let d = roa_check::diff_manifests(&previous.manifest, &version.manifest);
            deployed.update = d.update;
            deployed.reasons = d.reasons.iter().map(|r| r.id.to_string()).collect();
        }
        let ids: Vec<String> = self
            .installs
            .iter()
            .filter(|(_, i)| i.version.app.id() == id)
            .map(|(k, _)| k.clone())
            .collect();
        for inst in ids {
            let running = self.installs[&inst].version.clone();
            let d = roa_check::diff_manifests(&running.manifest, &version.manifest);
            if d.update == Update::Major {
                let state = self.installs.get_mut(&inst).expect("listed above");
                state.awaiting = Some(version.clone());
                deployed.awaiting_consent.push(inst.clone());
                let what = Flow::AwaitingConsent {
                    installation: inst,
                    running: running.number,
                    offered: version.number,
                };
                self.record(what);
            } else {
                self.upgrade(&inst, version.clone(), false);
                deployed.upgraded.push(inst);
            }
        }
        self.record(Flow::Deploy(deployed.clone()));
        Ok(deployed)
    }

    /// Installs the app's latest version on a site; its storage is pinned to the realm.
    pub fn install(&mut self, spec: InstallSpec) -> Result<(), FlowError> {
        if self.installs.contains_key(&spec.id) {
            return Err(FlowError::DuplicateInstallation(spec.id));
        }
        let version = self
            .apps
            .get(&spec.app)
            .and_then(|v| v.last())
            .cloned()
            .ok_or_else(|| FlowError::UnknownApp(spec.app.clone()))?;
        self.platform.install(Installation {
            id: spec.id.clone(),
            app: spec.app.clone(),
            site: spec.site.clone(),
            realm: spec.realm,
            environment: spec.environment,
            admin: spec.admin,
        });
        self.platform.run_version(&spec.id, version.app.clone());
        let ids = self.sites.entry(spec.site.clone()).or_default();
        ids.push(spec.id.clone());
        ids.sort();
        self.installs.insert(
            spec.id.clone(),
            InstallState {
                version: version.clone(),
                awaiting: None,
                armed: BTreeSet::new(),
            },
        );
        self.record(Flow::Install {
            installation: spec.id.clone(),
            app: spec.app.clone(),
            site: spec.site.clone(),
            realm: spec.realm,
            version: version.number,
        });
        self.arm_schedules(&spec.id);
        self.lifecycle_event(&spec.id, &version, "avi:forge:installed:app");
        Ok(())
    }

    /// A lifecycle event (events-reference/life-cycle: `avi:forge:installed:app`, and
    /// `avi:forge:upgraded:app` for a major upgrade) to the triggers of `version` that listen
    /// for it: late and retried like product events. The payload is the installation, the
    /// app and its version, the environment and the site's context ARI.
    fn lifecycle_event(&mut self, installation: &str, version: &AppVersion, kind: &'static str) {
        let listeners: Vec<String> = version
            .modules
            .triggers
            .iter()
            .filter(|t| t.events.iter().any(|e| e == kind))
            .map(|t| t.function.clone())
            .collect();
        let Some(inst) = self.platform.installation(installation).cloned() else {
            return;
        };
        if listeners.is_empty() {
            return;
        }
        let cloud = crate::node::args::cloud_id(&inst.site);
        let event = serde_json::json!({
            "id": inst.id,
            "app": {"id": inst.app.rsplit('/').next().unwrap_or(&inst.app), "version": version.number.to_string()},
            "environment": {"id": inst.environment},
            "context": format!("ari:cloud:confluence::site/{cloud}"),
        })
        .to_string();
        for function in listeners {
            let (lo, hi) = self.config.event_delay_ms;
            let delivery = Delivery {
                installation: installation.to_string(),
                function,
                call: Call::Event(event.clone()),
                subject: kind.to_string(),
                attempt: 1,
                id: 0,
            };
            self.send(delivery, lo, hi);
        }
    }

    /// The site admin consents to the major upgrade an installation waits for.
    pub fn consent(&mut self, installation: &str) -> Result<u32, FlowError> {
        let state = self.state(installation)?;
        let Some(next) = state.awaiting.clone() else {
            return Err(FlowError::NothingToConsent(installation.to_string()));
        };
        self.upgrade(installation, next.clone(), true);
        Ok(next.number)
    }

    /// The site admin's switches for analytics and log sharing.
    pub fn set_admin(&mut self, installation: &str, admin: AdminSwitches) -> Result<(), FlowError> {
        self.state(installation)?;
        self.platform.set_admin(installation, admin);
        self.record(Flow::Admin {
            installation: installation.to_string(),
            analytics_blocked: admin.analytics_blocked,
            logs_blocked: admin.logs_blocked,
        });
        Ok(())
    }

    /// Migrates a site to another realm: every installation's hosted storage moves with it.
    pub fn migrate_site(&mut self, site: &str, to: Realm) -> Result<usize, FlowError> {
        let ids = self.sites.get(site).cloned().unwrap_or_default();
        let mut keys = 0;
        let mut from = to;
        for id in &ids {
            if let Some(i) = self.platform.installation(id) {
                from = i.realm;
            }
            keys += self.platform.migrate(id, to)?;
        }
        self.record(Flow::Migrate {
            site: site.to_string(),
            from,
            to,
            keys,
        });
        Ok(keys)
    }

    /// Fault injection: the next `calls` storage calls of the installation fail with
    /// `STORAGE_UNAVAILABLE`.
    pub fn inject_storage_errors(
        &mut self,
        installation: &str,
        calls: u32,
    ) -> Result<(), FlowError> {
        self.state(installation)?;
        let scope = self
            .platform
            .installation(installation)
            .map(Installation::scope)
            .ok_or_else(|| FlowError::UnknownInstallation(installation.to_string()))?;
        self.platform.kvs().inject_unavailable(&scope, calls);
        self.fault(installation, "storage_errors", calls);
        Ok(())
    }

    /// Fault injection: the next `calls` invocations of the installation time out.
    pub fn inject_timeouts(&mut self, installation: &str, calls: u32) -> Result<(), FlowError> {
        self.state(installation)?;
        self.platform.inject_timeouts(installation, calls);
        self.fault(installation, "timeouts", calls);
        Ok(())
    }

    /// Fault injection: the next `deliveries` deliveries (events, queue payloads) to the
    /// installation arrive twice.
    pub fn duplicate_deliveries(
        &mut self,
        installation: &str,
        deliveries: u32,
    ) -> Result<(), FlowError> {
        self.state(installation)?;
        *self.duplicates.entry(installation.to_string()).or_insert(0) += deliveries;
        self.fault(installation, "duplicate_deliveries", deliveries);
        Ok(())
    }

    /// Fault injection: the next `firings` firings of the installation's scheduled triggers
    /// (any of them) happen twice, the second within [`DUPLICATE_FIRING_MS`].
    pub fn duplicate_firings(&mut self, installation: &str, firings: u32) -> Result<(), FlowError> {
        self.state(installation)?;
        *self
            .duplicate_firings
            .entry(installation.to_string())
            .or_insert(0) += firings;
        self.fault(installation, "duplicate_firings", firings);
        Ok(())
    }

    /// A UI call by a user. `function` names the resolver function when the manifest does
    /// not make it plain (one function, or one named by a UI module's `resolver`).
    pub fn call_resolver(
        &mut self,
        installation: &str,
        function: Option<&str>,
        account: Option<&str>,
        name: &str,
        payload: &str,
    ) -> Result<Result<String, InvocationError>, FlowError> {
        self.call_resolver_from(installation, function, account, name, payload, None)
    }

    /// Like [`Simulation::call_resolver`], made by a UI module's frame: the resolver's
    /// context names the frame's module and extension ([`Platform::invoke_from_ui`]).
    pub fn call_resolver_from(
        &mut self,
        installation: &str,
        function: Option<&str>,
        account: Option<&str>,
        name: &str,
        payload: &str,
        ui: Option<&UiContext>,
    ) -> Result<Result<String, InvocationError>, FlowError> {
        let state = self.state(installation)?;
        let version = state.version.clone();
        let function = match function {
            Some(f) => f.to_string(),
            None => version
                .modules
                .resolver
                .clone()
                .ok_or(FlowError::WhichResolver {
                    installation: installation.to_string(),
                    count: version.app.functions().len(),
                })?,
        };
        let call = Call::Resolver {
            name: name.to_string(),
            payload: payload.to_string(),
        };
        self.stats.invocations += 1;
        let result = match ui {
            Some(ui) => self
                .platform
                .invoke_from_ui(installation, &function, call, account, ui),
            None => self
                .platform
                .invoke_as(installation, &function, call, account),
        };
        self.record(Flow::Resolver {
            installation: installation.to_string(),
            version: version.number,
            account: account.map(str::to_string),
            name: name.to_string(),
            outcome: result.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        self.flush();
        Ok(result.map(|o| match o {
            Output::Json(j) => j,
            _ => "null".to_string(),
        }))
    }

    /// Calls a web trigger as the outside world does. A dynamic one answers what the app
    /// answers (a 500 when the app fails or answers something unusable); a static one
    /// answers the manifest's output named by the app's `{"outputKey": ...}`, never the
    /// app's own bytes.
    pub fn web_trigger(
        &mut self,
        installation: &str,
        key: &str,
        request: WebRequest,
    ) -> Result<WebResponse, FlowError> {
        let version = self.state(installation)?.version.clone();
        let trigger = version
            .modules
            .webtriggers
            .iter()
            .find(|w| w.key == key)
            .ok_or_else(|| FlowError::NoModule {
                installation: installation.to_string(),
                kind: "webtrigger",
                key: key.to_string(),
            })?;
        self.stats.invocations += 1;
        let result =
            self.platform
                .invoke(installation, &trigger.function, Call::WebTrigger(request));
        let response = match (&trigger.outputs, result) {
            (None, Ok(Output::WebResponse(r))) => r,
            (Some(outputs), Ok(Output::WebResponse(r))) => {
                let key = serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("outputKey")?.as_str().map(str::to_string));
                match key.and_then(|k| outputs.iter().find(|o| o.key == k)) {
                    Some(o) => WebResponse {
                        status_code: o.status,
                        headers: vec![("Content-Type".into(), vec![o.content_type.clone()])],
                        body: o.body.clone(),
                    },
                    None => platform_error("the app named no output of the static web trigger"),
                }
            }
            (_, Ok(_)) => platform_error("the app answered nothing"),
            (_, Err(e)) => platform_error(&e.to_string()),
        };
        self.record(Flow::WebTrigger {
            installation: installation.to_string(),
            key: key.to_string(),
            is_static: trigger.outputs.is_some(),
            status: response.status_code,
        });
        self.flush();
        Ok(response)
    }

    /// Pushes a payload onto an installation's queue, as the app's own code would.
    pub fn push(
        &mut self,
        installation: &str,
        queue: &str,
        payload: &str,
    ) -> Result<(), FlowError> {
        self.state(installation)?;
        self.enqueue_push(installation, queue, payload);
        Ok(())
    }

    /// A user creates a page on a site.
    pub fn create_page(
        &mut self,
        site: &str,
        account: &str,
        space: &str,
        title: &str,
        body: &str,
    ) -> Result<Page, FlowError> {
        let p = self
            .platform
            .confluence()
            .create_page(site, account, space, title, body)?;
        self.flush();
        Ok(p)
    }

    /// A user edits a page: the next version, with a new title and body.
    pub fn edit_page(
        &mut self,
        site: &str,
        account: &str,
        id: &str,
        title: Option<&str>,
        body: &str,
    ) -> Result<Page, FlowError> {
        let c = self.platform.confluence();
        let current = c.get_page(site, id).ok_or_else(|| ProductError {
            code: "NOT_FOUND",
            message: format!("no page {id} on {site}"),
        })?;
        let title = title.unwrap_or(&current.title).to_string();
        let p = c.update_page(site, account, id, &title, body, current.version + 1)?;
        self.flush();
        Ok(p)
    }

    /// A user trashes, restores, moves or views a page.
    pub fn page_action(
        &mut self,
        site: &str,
        account: &str,
        id: &str,
        action: PageAction<'_>,
    ) -> Result<Page, FlowError> {
        let c = self.platform.confluence();
        let p = match action {
            PageAction::Trash => c.trash_page(site, account, id),
            PageAction::Restore => c.restore_page(site, account, id),
            PageAction::Move { space } => c.move_page(site, account, id, space),
            PageAction::View => c.view_page(site, account, id),
        }?;
        self.flush();
        Ok(p)
    }

    /// Runs every job due up to `to` (inclusive), in (time, sequence) order, then leaves
    /// the clock at `to`.
    pub fn run_until(&mut self, to: Millis) {
        self.flush();
        while let Some(Reverse(job)) = self.queue.peek() {
            if job.at > to {
                break;
            }
            let Some(Reverse(job)) = self.queue.pop() else {
                break;
            };
            self.platform.clock().advance_to(job.at);
            self.stats.jobs += 1;
            self.run_job(job);
            self.flush();
        }
        self.platform.clock().advance_to(to);
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let to = self.now().plus(ms);
        self.run_until(to);
    }

    /// Turns what happened since the last call (page changes, queue pushes) into jobs.
    fn flush(&mut self) {
        if self.platform.confluence().has_events() {
            for e in self.platform.confluence().take_events() {
                self.dispatch(e);
            }
        }
        for p in self.platform.take_pushed() {
            self.enqueue_push(&p.installation, &p.queue, &p.payload);
        }
    }

    /// Sends a page event to every subscribed trigger module of the site's installations.
    fn dispatch(&mut self, e: PageEvent) {
        self.stats.product_events += 1;
        let mut targets = Vec::new();
        if let Some(ids) = self.sites.get(&e.site) {
            for id in ids {
                let v = &self.installs[id].version;
                let own = e.atlassian_id.strip_prefix("app:") == Some(v.app.id());
                for t in &v.modules.triggers {
                    if t.events.iter().any(|x| x == e.event_type) && !(own && t.ignore_self) {
                        targets.push((id.clone(), t.function.clone()));
                    }
                }
            }
        }
        if targets.is_empty() {
            self.stats.unheard_events += 1;
        }
        self.record(Flow::ProductEvent {
            site: e.site.clone(),
            event: e.event_type,
            page: e.page.id.clone(),
            version: e.page.version,
            by: e.atlassian_id.clone(),
            deliveries: targets.len(),
        });
        if targets.is_empty() {
            return;
        }
        let json = e.to_json();
        for (installation, function) in targets {
            let (lo, hi) = self.config.event_delay_ms;
            let delivery = Delivery {
                installation,
                function,
                call: Call::Event(json.clone()),
                subject: e.event_type.to_string(),
                attempt: 1,
                id: 0,
            };
            self.send(delivery, lo, hi);
        }
    }

    fn enqueue_push(&mut self, installation: &str, queue: &str, payload: &str) {
        let consumers: Vec<String> = self.installs.get(installation).map_or(Vec::new(), |s| {
            s.version
                .modules
                .consumers
                .iter()
                .filter(|c| c.queue == queue)
                .map(|c| c.function.clone())
                .collect()
        });
        self.record(Flow::QueuePush {
            installation: installation.to_string(),
            queue: queue.to_string(),
            deliveries: consumers.len(),
        });
        for function in consumers {
            let (lo, hi) = self.config.queue_delay_ms;
            let delivery = Delivery {
                installation: installation.to_string(),
                function,
                call: Call::Consume {
                    queue: queue.to_string(),
                    payload: payload.to_string(),
                },
                subject: queue.to_string(),
                attempt: 1,
                id: 0,
            };
            self.send(delivery, lo, hi);
        }
    }

    /// Queues a first delivery after a seeded delay, twice when a fault says so.
    fn send(&mut self, mut d: Delivery, lo: u64, hi: u64) {
        self.deliveries += 1;
        d.id = self.deliveries;
        let copies = match self.duplicates.get_mut(&d.installation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                2
            }
            _ => 1,
        };
        for _ in 0..copies {
            let at = self
                .now()
                .plus(lo + self.rng.below(hi.saturating_sub(lo) + 1));
            self.push_job(at, Work::Deliver(d.clone()));
        }
    }

    fn run_job(&mut self, job: Job) {
        match job.work {
            Work::Deliver(d) => self.deliver(d),
            Work::Fire { installation, key } => self.fire(&installation, &key),
            Work::FireAgain {
                installation,
                key,
                id,
            } => {
                self.fire_once(&installation, &key, id);
            }
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let Some(state) = self.installs.get(&d.installation) else {
            return;
        };
        let version = state.version.number;
        self.stats.invocations += 1;
        let result = self
            .platform
            .invoke(&d.installation, &d.function, d.call.clone());
        let outcome = result.map(|_| ());
        let retry_at = match &outcome {
            Err(_) if d.attempt <= self.config.retries => {
                let base = self
                    .config
                    .backoff_ms
                    .saturating_mul(1 << (d.attempt - 1).min(20));
                Some(self.now().plus(base + self.rng.below(base.max(1))))
            }
            _ => None,
        };
        let failed = outcome.is_err();
        self.record(Flow::Delivery {
            id: d.id,
            installation: d.installation.clone(),
            version,
            function: d.function.clone(),
            handler: d.call.kind(),
            subject: d.subject.clone(),
            attempt: d.attempt,
            outcome,
            retry_at,
        });
        match retry_at {
            Some(at) => {
                self.stats.retries += 1;
                let next = Delivery {
                    attempt: d.attempt + 1,
                    ..d
                };
                self.push_job(at, Work::Deliver(next));
            }
            None if failed => {
                self.stats.dead_letters += 1;
                self.record(Flow::DeadLetter {
                    id: d.id,
                    installation: d.installation,
                    function: d.function,
                    subject: d.subject,
                    attempts: d.attempt,
                });
            }
            None => {}
        }
    }

    /// A scheduled trigger fires (not retried), then waits for its next interval, as long
    /// as the installation's version still has it. Now and then (a fault, or
    /// [`FlowConfig::schedule_duplicates_ppm`]) the same firing runs a second time shortly
    /// after, with the same delivery id, as the platform may.
    fn fire(&mut self, installation: &str, key: &str) {
        let Some(state) = self.installs.get_mut(installation) else {
            return;
        };
        if !state.version.modules.schedules.iter().any(|s| s.key == key) {
            state.armed.remove(key);
            return;
        }
        self.deliveries += 1;
        let id = self.deliveries;
        let Some(interval_ms) = self.fire_once(installation, key, id) else {
            return;
        };
        let faulted = match self.duplicate_firings.get_mut(installation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let ppm = u64::from(self.config.schedule_duplicates_ppm);
        // No draw when nothing can duplicate: runs without duplicates replay as before.
        if faulted || (ppm > 0 && self.rng.below(1_000_000) < ppm) {
            let at = self.now().plus(1 + self.rng.below(DUPLICATE_FIRING_MS));
            let again = Work::FireAgain {
                installation: installation.to_string(),
                key: key.to_string(),
                id,
            };
            self.push_job(at, again);
        }
        let at = self.now().plus(interval_ms);
        self.push_job(
            at,
            Work::Fire {
                installation: installation.to_string(),
                key: key.to_string(),
            },
        );
    }

    /// One run of a scheduled trigger, recorded as delivery `id`; its interval, or `None`
    /// when the installation's version no longer has the trigger (nothing runs then).
    fn fire_once(&mut self, installation: &str, key: &str, id: u64) -> Option<u64> {
        let state = self.installs.get(installation)?;
        let version = state.version.clone();
        let s = version.modules.schedules.iter().find(|s| s.key == key)?;
        self.stats.invocations += 1;
        let result =
            self.platform
                .invoke(installation, &s.function, Call::Schedule(key.to_string()));
        self.record(Flow::Delivery {
            id,
            installation: installation.to_string(),
            version: version.number,
            function: s.function.clone(),
            handler: "schedule",
            subject: key.to_string(),
            attempt: 1,
            outcome: result.map(|_| ()),
            retry_at: None,
        });
        Some(s.interval_ms)
    }

    /// Schedules the first firing of every scheduled trigger not yet armed: one interval
    /// after now.
    fn arm_schedules(&mut self, installation: &str) {
        let Some(state) = self.installs.get_mut(installation) else {
            return;
        };
        let version = state.version.clone();
        let mut fresh = Vec::new();
        for s in &version.modules.schedules {
            if state.armed.insert(s.key.clone()) {
                fresh.push((s.key.clone(), s.interval_ms));
            }
        }
        for (key, interval) in fresh {
            let at = self.now().plus(interval);
            self.push_job(
                at,
                Work::Fire {
                    installation: installation.to_string(),
                    key,
                },
            );
        }
    }

    fn upgrade(&mut self, installation: &str, to: Arc<AppVersion>, consented: bool) {
        let Some(state) = self.installs.get_mut(installation) else {
            return;
        };
        let from = state.version.number;
        state.version = to.clone();
        if state
            .awaiting
            .as_ref()
            .is_some_and(|a| a.number <= to.number)
        {
            state.awaiting = None;
        }
        self.platform.run_version(installation, to.app.clone());
        self.record(Flow::Upgrade {
            installation: installation.to_string(),
            from,
            to: to.number,
            consented,
        });
        self.arm_schedules(installation);
        // Sent for major upgrades only (events-reference/life-cycle), to the new version's
        // listeners.
        if consented {
            self.lifecycle_event(installation, &to, "avi:forge:upgraded:app");
        }
    }

    fn fault(&mut self, installation: &str, fault: &'static str, count: u32) {
        self.record(Flow::Fault {
            installation: installation.to_string(),
            fault,
            count,
        });
    }

    fn state(&self, installation: &str) -> Result<&InstallState, FlowError> {
        self.installs
            .get(installation)
            .ok_or_else(|| FlowError::UnknownInstallation(installation.to_string()))
    }

    fn push_job(&mut self, at: Millis, work: Work) {
        self.seq += 1;
        self.queue.push(Reverse(Job {
            at,
            seq: self.seq,
            work,
        }));
    }

    fn record(&mut self, what: Flow) {
        if !self.keep_trace {
            return;
        }
        let at = self.now();
        self.trace.push(FlowEvent { at, what });
    }
}

/// A page change other than create and edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAction<'a> {
    Trash,
    Restore,
    Move { space: &'a str },
    View,
}

/// The millisecond length of a `scheduledTrigger` interval.
pub fn interval_ms(interval: &str) -> Option<u64> {
    Some(match interval.trim() {
        "fiveMinute" => 5 * Millis::MINUTE,
        "hour" => Millis::HOUR,
        "day" => Millis::DAY,
        "week" => 7 * Millis::DAY,
        _ => return None,
    })
}

/// A job in the queue, ordered by time, then by the order it was queued.
#[derive(Debug)]
struct Job {
    at: Millis,
    seq: u64,
    work: Work,
}

impl PartialEq for Job {
    fn eq(&self, other: &Job) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Job {}

impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Job) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Job {
    fn cmp(&self, other: &Job) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug)]
enum Work {
    Deliver(Delivery),
    Fire {
        installation: String,
        key: String,
    },
    /// A duplicate run of scheduled firing `id` (it does not schedule the next one).
    FireAgain {
        installation: String,
        key: String,
        id: u64,
    },
}

#[derive(Debug, Clone)]
struct Delivery {
    installation: String,
    function: String,
    call: Call,
    subject: String,
    attempt: u32,
    id: u64,
}

#[derive(Debug)]
struct InstallState {
    version: Arc<AppVersion>,
    awaiting: Option<Arc<AppVersion>>,
    /// Scheduled triggers with a firing in the queue.
    armed: BTreeSet<String>,
}

/// The modules the flows need, read from the manifest once per version.
#[derive(Debug, Default)]
struct Modules {
    triggers: Vec<Trigger>,
    schedules: Vec<Schedule>,
    webtriggers: Vec<WebTrigger>,
    consumers: Vec<Consumer>,
    /// The function that answers resolver calls, when the manifest makes it plain.
    resolver: Option<String>,
}

#[derive(Debug)]
struct Trigger {
    function: String,
    events: Vec<String>,
    ignore_self: bool,
}

#[derive(Debug)]
struct Schedule {
    key: String,
    function: String,
    interval_ms: u64,
}

#[derive(Debug)]
struct WebTrigger {
    key: String,
    function: String,
    /// Static outputs; `None` for a dynamic web trigger.
    outputs: Option<Vec<StaticOutput>>,
}

#[derive(Debug)]
struct StaticOutput {
    key: String,
    status: u16,
    body: String,
    content_type: String,
}

#[derive(Debug)]
struct Consumer {
    queue: String,
    function: String,
}

impl Modules {
    fn of(m: &Manifest) -> Modules {
        let function = |module: &roa_check::model::Module| {
            module
                .field("function")
                .or_else(|| {
                    module
                        .node
                        .get("resolver")
                        .and_then(|r| r.get("function"))
                        .and_then(signoff_yaml::Node::as_str)
                })
                .map(|s| s.trim().to_string())
        };
        let mut out = Modules::default();
        for t in m.modules_of("trigger") {
            let Some(function) = function(t) else {
                continue;
            };
            let events = t
                .node
                .get("events")
                .and_then(signoff_yaml::Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .filter_map(|e| e.as_str().map(|s| s.trim().to_string()))
                .collect();
            let ignore_self = t
                .node
                .get("filter")
                .and_then(|f| f.get("ignoreSelf"))
                .and_then(signoff_yaml::Node::as_bool)
                .unwrap_or(false);
            out.triggers.push(Trigger {
                function,
                events,
                ignore_self,
            });
        }
        for s in m.modules_of("scheduledTrigger") {
            let (Some(key), Some(function)) = (s.key.clone(), function(s)) else {
                continue;
            };
            let Some(interval_ms) = s.field("interval").and_then(interval_ms) else {
                continue;
            };
            out.schedules.push(Schedule {
                key,
                function,
                interval_ms,
            });
        }
        for w in m.modules_of("webtrigger") {
            let (Some(key), Some(function)) = (w.key.clone(), function(w)) else {
                continue;
            };
            let outputs = w.is_static_webtrigger().then(|| {
                // `response.outputs` (the manifest schema's `ResponseOptions`).
                w.node
                    .get("response")
                    .and_then(|r| r.get("outputs"))
                    .or_else(|| w.node.get("outputs"))
                    .and_then(signoff_yaml::Node::as_seq)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|o| {
                        Some(StaticOutput {
                            key: o.get("key")?.scalar_string()?,
                            status: o
                                .get("statusCode")
                                .and_then(|s| s.scalar_text()?.parse().ok())
                                .unwrap_or(200),
                            body: o
                                .get("body")
                                .and_then(|b| b.scalar_string())
                                .unwrap_or_default(),
                            content_type: o
                                .get("contentType")
                                .and_then(|b| b.scalar_string())
                                .unwrap_or_else(|| "application/json".into()),
                        })
                    })
                    .collect()
            });
            out.webtriggers.push(WebTrigger {
                key,
                function,
                outputs,
            });
        }
        for c in m.modules_of("consumer") {
            let (Some(queue), Some(function)) = (c.field("queue"), function(c)) else {
                continue;
            };
            out.consumers.push(Consumer {
                queue: queue.trim().to_string(),
                function,
            });
        }
        // A UI module naming its resolver function decides; otherwise a lone function does.
        let named: BTreeSet<String> = m
            .modules
            .iter()
            .filter(|x| {
                !matches!(
                    x.kind.as_str(),
                    "function" | "trigger" | "scheduledTrigger" | "webtrigger" | "consumer"
                )
            })
            .filter_map(|x| {
                x.node
                    .get("resolver")
                    .and_then(|r| r.get("function"))
                    .and_then(|f| f.scalar_string())
            })
            .collect();
        let functions: Vec<&str> = m
            .modules_of("function")
            .filter_map(|f| f.key.as_deref())
            .collect();
        out.resolver = match (named.len(), functions.as_slice()) {
            (1, _) => named.into_iter().next(),
            (_, [only]) => Some(only.to_string()),
            _ => None,
        };
        out
    }
}

fn platform_error(message: &str) -> WebResponse {
    WebResponse {
        status_code: 500,
        headers: vec![("Content-Type".into(), vec!["application/json".into()])],
        body: serde_json::json!({"message": message}).to_string(),
    }
}
