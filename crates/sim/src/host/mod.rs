//! The wasm host: apps are WebAssembly components (`wasm32-wasip2`) speaking the WIT contract
//! in `crates/sim/wit/platform.wit`, run under the platform's limits.
//!
//! One [`Runtime`] per process holds the `Engine` (pooling allocator, epoch interruption,
//! optionally fuel) and the thread that ticks the epoch. An [`App`] is compiled once into an
//! `InstancePre`. A [`Platform`] holds installations and the simulated world (hosted storage,
//! Confluence, the egress ledger, logs, analytics, the trace) and runs each invocation in a
//! fresh `Store` with a memory limit, an epoch deadline and a WASI context with no
//! preopened directories, no sockets, no environment and no arguments.
//!
//! Whatever a guest does (trap, loop, exhaust memory or stack, answer garbage), the
//! invocation ends with a typed [`InvocationError`] in the trace and the platform keeps
//! serving.

pub(crate) mod imports;
mod pool;
mod stdio;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::clock::{Millis, Rng, VirtualClock};
use crate::egress::{AdminSwitches, EgressAttempt, EgressPolicy};
use crate::kvs::{Kvs, KvsLimits, Scope};
use crate::product::Confluence;
use crate::realm::Realm;

use imports::{HostState, Limiter, VirtualWallClock};

/// Bindings generated from the WIT contract.
#[allow(missing_debug_implementations, clippy::all)]
pub mod bindings {
    wasmtime::component::bindgen!({ world: "app", path: "wit" });
}

/// The largest component file the simulator reads (Forge's own bundle limit is far lower;
/// this only keeps a hostile path such as a 2 GB sparse file from being read whole).
pub const COMPONENT_LIMIT: u64 = 64 * 1024 * 1024;

/// Engine-wide choices, made once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// How often the epoch advances; timeouts are rounded up to whole ticks.
    pub epoch_tick: Duration,
    /// Fully deterministic runs: each invocation gets this much fuel and stops with
    /// [`InvocationError::FuelExhausted`] when it runs out (timeouts still apply).
    pub fuel: Option<u64>,
    /// Instances alive at once (pooling allocator slots).
    pub max_concurrent_instances: u32,
    /// Bytes of each pooled linear memory (and a sixteenth of that of each table) reset in
    /// place when an instance is freed, instead of being handed back to the kernel; 1 MiB by
    /// default, 0 hands everything back. With `pagemap_scan` (the default) only the pages
    /// the instance dirtied are reset, so the next instance in that slot meets no page
    /// faults: page faults, `madvise` and TLB shootdowns were most of an invocation's cost
    /// (a trivial resolver: 23.6 µs at p50 with neither, 9.6 µs with both; see
    /// crates/sim/README.md). Without `PAGEMAP_SCAN` (kernels before 6.7) the first
    /// `keep_resident_bytes` are reset whether dirtied or not, which costs more than it
    /// saves for a small app: set 0 there. `examples/scale.rs` uses 2 MiB for the approval
    /// app, which touches about that much per invocation.
    pub keep_resident_bytes: usize,
    /// Find the pages an instance dirtied with Linux's `PAGEMAP_SCAN` ioctl (kernel 6.7 and
    /// later; elsewhere it is silently off) and reset only those, up to
    /// `keep_resident_bytes`, handing back to the kernel only what lies beyond.
    pub pagemap_scan: bool,
    /// Write `/tmp/perf-<pid>.map` as components are compiled, so that `perf record` /
    /// `perf report` name the guest's functions (the component must keep its name section).
    /// Off by default; `examples/scale.rs` and `examples/bench.rs` turn it on when
    /// `SIGNOFF_SIM_PERF_MAP=1`.
    pub perf_map: bool,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            epoch_tick: Duration::from_millis(5),
            fuel: None,
            max_concurrent_instances: 64,
            keep_resident_bytes: 1 << 20,
            pagemap_scan: true,
            perf_map: false,
        }
    }
}

/// The largest memory a function may ask for (platform.md §5).
pub const MAX_MEMORY_MB: u64 = 1024;
/// Memory when neither the function nor the app says (platform.md §5).
pub const DEFAULT_MEMORY_MB: u64 = 512;

/// One `Engine` and its epoch ticker. Share it (`Arc`) between platforms.
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    linker: Linker<HostState>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
    /// Components compiled from files, by path (with the file's length and modification
    /// time, so a rebuilt file compiles again): runs sharing the runtime compile once.
    compiled: Mutex<BTreeMap<PathBuf, Compiled>>,
    /// The Node.js found on this machine, looked for when a Node app is first loaded.
    node: std::sync::OnceLock<Result<Arc<crate::node::NodeEnv>, crate::node::NodeError>>,
}

/// A component compiled from a file of this length and modification time.
type Compiled = (u64, Option<std::time::SystemTime>, Component);

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Setting up the runtime or loading an app failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("wasmtime engine: {0}")]
    Engine(String),
    #[error("{path}: {message}")]
    Component { path: String, message: String },
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("manifest has no app.id")]
    NoAppId,
    #[error("{0}")]
    Node(#[from] crate::node::NodeError),
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Arc<Runtime>, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_concurrent_instances.max(1);
        // A wasip2 component instantiates a handful of core instances, memories and tables.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .max_memory_size((MAX_MEMORY_MB as usize) << 20)
            // Optionally reset the first pages of a freed instance's memories and tables by
            // hand rather than returning them to the kernel (see `keep_resident_bytes`).
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(config.keep_resident_bytes / 16)
            .pagemap_scan(if config.pagemap_scan {
                wasmtime::Enabled::Auto
            } else {
                wasmtime::Enabled::No
            });
        let mut wc = Config::new();
        wc.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(config.fuel.is_some())
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if config.perf_map {
            wc.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wc).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                bindings::App::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            })
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
            std::thread::Builder::new()
                .name("signoff-sim-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Engine(e.to_string()))?
        };
        Ok(Arc::new(Runtime {
            engine,
            config,
            linker,
            stop,
            ticker: Mutex::new(Some(ticker)),
            compiled: Mutex::new(BTreeMap::new()),
            node: std::sync::OnceLock::new(),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component (the slow part: do it once per app). The runtime keeps what
    /// it compiled: compiling the same, unchanged file again is free.
    pub fn compile(&self, path: &Path) -> Result<Component, LoadError> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((len, modified)), Some((l, m, c))) = (stamp, compiled.get(path))
            && (len, modified) == (*l, *m)
        {
            return Ok(c.clone());
        }
        // Read like every other input: a regular file, its size checked first, bounded.
        let bytes = signoff_yaml::input::read_file(path, COMPONENT_LIMIT).map_err(|e| {
            LoadError::Component {
                path: path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let c = Component::new(&self.engine, &bytes).map_err(|e| LoadError::Component {
            path: path.display().to_string(),
            message: format!("{e:#}"),
        })?;
        if let Some((len, modified)) = stamp {
            compiled.insert(path.to_path_buf(), (len, modified, c.clone()));
        }
        Ok(c)
    }

    /// Loads an app: its manifest (through `roa-check`), its compiled component, and the
    /// `InstancePre` every invocation starts from. `env` fills `${VAR}` placeholders of
    /// the egress entries.
    pub fn load_app(
        &self,
        manifest_yaml: &str,
        component: &Component,
        env: &BTreeMap<String, String>,
    ) -> Result<Arc<App>, LoadError> {
        let (manifest, id, functions) = manifest_parts(manifest_yaml)?;
        let pre = self
            .linker
            .instantiate_pre(component)
            .and_then(bindings::AppPre::new)
            .map_err(|e| LoadError::Component {
                path: id.clone(),
                message: format!("{e:#}"),
            })?;
        Ok(Arc::new(App {
            egress: EgressPolicy::from_manifest(&manifest, env),
            id,
            functions,
            code: Code::Component(pre),
        }))
    }

    /// Loads a Node app from its folder as `forge create` makes it (`manifest.yml`,
    /// `package.json`, `node_modules`, `src/`): each function's handler is resolved as on the
    /// platform, and `env` is both the app's variables (`process.env`) and what fills `${VAR}`
    /// in its egress entries.
    pub fn load_node_app(
        &self,
        manifest_yaml: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Arc<App>, LoadError> {
        let (manifest, id, functions) = manifest_parts(manifest_yaml)?;
        let node = self.node_env()?;
        let code = crate::node::NodeCode::load(dir, &manifest, env, node)?;
        Ok(Arc::new(App {
            egress: EgressPolicy::from_manifest(&manifest, env),
            id,
            functions,
            code: Code::Node(Arc::new(code)),
        }))
    }

    /// The Node.js this runtime runs Node apps with (found once).
    pub fn node_env(&self) -> Result<Arc<crate::node::NodeEnv>, LoadError> {
        self.node
            .get_or_init(|| crate::node::NodeEnv::detect().map(Arc::new))
            .clone()
            .map_err(LoadError::Node)
    }
}

/// A manifest's app id and its functions' limits.
fn manifest_parts(
    manifest_yaml: &str,
) -> Result<
    (
        roa_check::Manifest,
        String,
        BTreeMap<String, FunctionLimits>,
    ),
    LoadError,
> {
    let manifest = roa_check::load("manifest.yml", manifest_yaml.as_bytes())
        .map_err(|e| LoadError::Manifest(e.to_string()))?;
    let id = manifest
        .app
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .ok_or(LoadError::NoAppId)?;
    let app_memory = manifest
        .root
        .get("app")
        .and_then(|a| a.get("runtime"))
        .and_then(|r| r.get("memoryMB"))
        .and_then(int);
    let functions = manifest
        .modules
        .iter()
        .filter(|m| m.kind == "function")
        .filter_map(|m| {
            let key = m.key.clone()?;
            let memory_mb = m
                .node
                .get("runtime")
                .and_then(|r| r.get("memoryMB"))
                .and_then(int)
                .or(app_memory)
                .unwrap_or(DEFAULT_MEMORY_MB)
                .clamp(1, MAX_MEMORY_MB);
            let timeout_seconds = m.node.get("timeoutSeconds").and_then(int);
            Some((
                key,
                FunctionLimits {
                    memory_mb,
                    timeout_seconds,
                },
            ))
        })
        .collect();
    Ok((manifest, id, functions))
}

impl Runtime {
    /// A fresh store for one invocation: the memory limiter, an epoch deadline `timeout`
    /// from now, and the fuel of `RuntimeConfig::fuel`.
    fn new_store(&self, state: HostState, timeout: Duration) -> Store<HostState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(self.epoch_ticks(timeout));
        store.epoch_deadline_trap();
        if let Some(fuel) = self.config.fuel {
            // Fuel is enabled on the engine, so this cannot fail.
            let _ = store.set_fuel(fuel);
        }
        store
    }

    fn epoch_ticks(&self, timeout: Duration) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        timeout.as_nanos().div_ceil(tick) as u64
    }

    /// On a worker: a fresh store with `app` instantiated in it and nothing of the world.
    /// `None` when instantiation fails (the invocation then instantiates on its own, and
    /// reports the failure as it always does).
    fn prepare(
        &self,
        app: Arc<App>,
        limits: FunctionLimits,
        timeout: Duration,
        kvs: KvsLimits,
    ) -> Option<Prepared> {
        let Code::Component(pre) = &app.code else {
            return None;
        };
        let state = HostState::ahead(app.clone(), Limiter::new(limits.memory_mb << 20), kvs);
        let mut store = self.new_store(state, timeout);
        let instance = pre.instantiate(&mut store).ok()?;
        store.data_mut().instantiated = true;
        Some(Prepared {
            app,
            store,
            instance,
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// An app ready to run: its limits per function, its egress policy, and its code (a
/// component's `InstancePre`, or a Node app's folder and handlers).
pub struct App {
    id: String,
    functions: BTreeMap<String, FunctionLimits>,
    egress: EgressPolicy,
    code: Code,
}

/// What runs an app's functions.
enum Code {
    Component(bindings::AppPre<HostState>),
    Node(Arc<crate::node::NodeCode>),
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("functions", &self.functions)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `function` modules of the manifest and their limits.
    pub fn functions(&self) -> &BTreeMap<String, FunctionLimits> {
        &self.functions
    }

    /// The Node app's code, when this is a Node app.
    pub fn node(&self) -> Option<&crate::node::NodeCode> {
        match &self.code {
            Code::Node(n) => Some(n),
            Code::Component(_) => None,
        }
    }
}

/// What the manifest says about one `function` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// `runtime.memoryMB` of the function, else of the app, else 512.
    pub memory_mb: u64,
    /// `timeoutSeconds` (async consumers and scheduled triggers only).
    pub timeout_seconds: Option<u64>,
}

/// How long each kind of invocation may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub resolver: Duration,
    pub web_trigger: Duration,
    /// Product events, scheduled triggers and consumers without `timeoutSeconds`.
    pub async_default: Duration,
    /// Whether a function's `timeoutSeconds` (capped at 900 s) overrides `async_default`.
    pub honour_timeout_seconds: bool,
}

impl Timeouts {
    /// The platform's values (platform.md §5).
    pub fn forge() -> Timeouts {
        Timeouts {
            resolver: Duration::from_secs(25),
            web_trigger: Duration::from_secs(55),
            async_default: Duration::from_secs(55),
            honour_timeout_seconds: true,
        }
    }

    /// One short timeout for everything, for tests.
    pub fn all(limit: Duration) -> Timeouts {
        Timeouts {
            resolver: limit,
            web_trigger: limit,
            async_default: limit,
            honour_timeout_seconds: false,
        }
    }
}

/// The per-invocation limits that are not per function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationLimits {
    pub timeouts: Timeouts,
    /// Invocation payload (platform.md §5: 5 MB).
    pub max_payload_bytes: usize,
    /// Outbound requests per started minute of an invocation's run time (product API calls
    /// do not count).
    pub max_fetches: u32,
    /// Log lines per started minute of the invocation's run time.
    pub log_lines_per_minute: u32,
    /// Log bytes per invocation.
    pub max_log_bytes: usize,
    /// Invocations started per minute of virtual time.
    pub rate: RateLimits,
}

impl InvocationLimits {
    pub fn forge() -> InvocationLimits {
        InvocationLimits {
            timeouts: Timeouts::forge(),
            max_payload_bytes: 5 * 1024 * 1024,
            max_fetches: 100,
            log_lines_per_minute: 100,
            max_log_bytes: 200 * 1024,
            rate: RateLimits::forge(),
        }
    }
}

/// Invocations an app may start in any minute of virtual time (a sliding window of 60,000
/// ms), counted per user of the app, per installation and per app (all of its installations);
/// `None` counts nothing. Over a limit the invocation does not run: it fails with
/// [`InvocationError::RateLimited`], is in the trace, and does not count. Event deliveries
/// that meet it are retried like any failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Invocations with a calling user (resolvers called from the UI), per user and app.
    pub per_user: Option<u32>,
    pub per_installation: Option<u32>,
    pub per_app: Option<u32>,
}

impl RateLimits {
    /// The platform's published figure (platform.md §5: about 1,200 a minute per user). Its
    /// caps per installation and per app have changed several times and are not published
    /// as figures, so they are off; set them to test an app against a cap.
    pub fn forge() -> RateLimits {
        RateLimits {
            per_user: Some(1_200),
            per_installation: None,
            per_app: None,
        }
    }

    /// No limit at all.
    pub fn none() -> RateLimits {
        RateLimits {
            per_user: None,
            per_installation: None,
            per_app: None,
        }
    }
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    User,
    Installation,
    App,
}

impl fmt::Display for RateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateScope::User => "user",
            RateScope::Installation => "installation",
            RateScope::App => "app",
        })
    }
}

/// The invocations each limit counted in the last minute of virtual time, by scope and id.
#[derive(Debug, Default)]
struct RateWindows {
    started: HashMap<(RateScope, String), std::collections::VecDeque<Millis>>,
}

impl RateWindows {
    const WINDOW_MS: u64 = 60_000;

    /// The first limit that an invocation at `at` would exceed; `None` when it may run, and
    /// then it is counted against every limit.
    fn admit(
        &mut self,
        limits: &RateLimits,
        at: Millis,
        keys: [(RateScope, Option<&str>); 3],
    ) -> Option<(RateScope, String, u32)> {
        let limit_of = |scope| match scope {
            RateScope::User => limits.per_user,
            RateScope::Installation => limits.per_installation,
            RateScope::App => limits.per_app,
        };
        // The window is (at - 60 s, at]: before a minute of virtual time has passed since
        // the epoch, everything so far is in it.
        let since = at.0.checked_sub(Self::WINDOW_MS);
        for (scope, id) in keys {
            let (Some(limit), Some(id)) = (limit_of(scope), id) else {
                continue;
            };
            let q = self.started.get_mut(&(scope, id.to_string()));
            let len = match (q, since) {
                (Some(q), Some(since)) => {
                    while q.front().is_some_and(|t| t.0 <= since) {
                        q.pop_front();
                    }
                    q.len()
                }
                (Some(q), None) => q.len(),
                (None, _) => 0,
            };
            if len >= limit as usize {
                return Some((scope, id.to_string(), limit));
            }
        }
        for (scope, id) in keys {
            if let (Some(_), Some(id)) = (limit_of(scope), id) {
                let q = self.started.entry((scope, id.to_string())).or_default();
                q.push_back(at);
            }
        }
        None
    }
}

/// A platform's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Where the virtual clock starts.
    pub start: Millis,
    /// Seeds everything random an app can observe (WASI randomness, hash seeds).
    pub seed: u64,
    pub limits: InvocationLimits,
    pub kvs: KvsLimits,
    /// Keep a line per invocation (`Platform::trace`), per simulation event
    /// (`Simulation::trace`), per log line and per analytics event. On by default; runs at
    /// scale turn it off to save memory (counters, `Simulation::stats`, and the egress ledger
    /// are kept either way).
    pub trace: bool,
    /// Threads that run a simulation's invocations: the simulation's own, and `threads - 1`
    /// workers that make fresh stores and instances (from the app's `InstancePre`) ahead of
    /// time, a few per app version, and free finished ones. The invocations themselves still
    /// run one at a time, in the simulation's order, on the simulation's thread, and
    /// everything an app can observe is put into its store just before the call, so results
    /// and the trace are the same whatever the number. Default 1 (every instance is made
    /// and freed within its invocation): handing instances between threads costs about 40%
    /// more CPU per invocation, which pays only when a core is idle, and on our shared
    /// 2-core machine none is (crates/sim/README.md, "Worker threads").
    pub threads: usize,
    /// Node apps: warm worker processes kept at once, one per installation and app version
    /// (the least recently used is stopped past that; its next invocation is a cold start).
    /// Each costs a Node process (about 50 MB resident); keep it at least the number of
    /// installations that run Node apps, or workers are stopped and started all the time.
    pub node_workers: usize,
}

impl SimConfig {
    pub fn forge() -> SimConfig {
        SimConfig {
            start: Millis(1_767_225_600_000),
            seed: 0,
            limits: InvocationLimits::forge(),
            trace: true,
            kvs: KvsLimits::forge(),
            threads: 1,
            node_workers: crate::node::DEFAULT_WORKERS,
        }
    }
}

/// What a UI module's frame tells the platform about itself when it calls a resolver (the
/// parts of its `view.getContext()` that the platform forwards into the resolver's context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiContext {
    /// The module's key (`moduleKey`); `None`: the first UI module whose resolver the
    /// function is.
    pub module_key: Option<String>,
    /// The frame's `localId`; `None`: the module's extension ARI.
    pub local_id: Option<String>,
    /// The module's `extension`: for a Confluence content module
    /// `{type, content: {id, type}, space: {id, key}}`, for a space module `{space: {...}}`.
    pub extension: serde_json::Value,
}

/// An installation of an app on a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: String,
    pub app: String,
    pub site: String,
    pub realm: Realm,
    pub environment: String,
    pub admin: AdminSwitches,
}

impl Installation {
    pub fn scope(&self) -> Scope {
        Scope {
            app: self.app.clone(),
            environment: self.environment.clone(),
            installation: self.id.clone(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A UI call; `payload` is JSON text.
    Resolver {
        name: String,
        payload: String,
    },
    WebTrigger(WebRequest),
    /// A product event, as JSON text.
    Event(String),
    /// A scheduled trigger, by module key.
    Schedule(String),
    Consume {
        queue: String,
        payload: String,
    },
}

impl Call {
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Resolver { .. } => "resolver",
            Call::WebTrigger(_) => "web-trigger",
            Call::Event(_) => "event",
            Call::Schedule(_) => "schedule",
            Call::Consume { .. } => "consume",
        }
    }

    fn payload_bytes(&self) -> usize {
        match self {
            Call::Resolver { name, payload } => name.len() + payload.len(),
            Call::WebTrigger(r) => r.body.len() + r.path.len(),
            Call::Event(e) => e.len(),
            Call::Schedule(k) => k.len(),
            Call::Consume { queue, payload } => queue.len() + payload.len(),
        }
    }
}

/// A web trigger request (platform.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<String>)>,
    pub query_parameters: Vec<(String, Vec<String>)>,
    pub body: String,
}

/// A web trigger response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebResponse {
    pub status_code: u16,
    pub headers: Vec<(String, Vec<String>)>,
    pub body: String,
}

/// What a successful invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The resolver's JSON text.
    Json(String),
    WebResponse(WebResponse),
    /// Events, schedules and consumers answer nothing.
    Done,
}

/// Why an invocation failed. The platform never crashes: every guest failure ends here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvocationError {
    #[error("timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    #[error("exceeded its memory limit of {limit_mb} MB")]
    MemoryLimit { limit_mb: u64 },
    #[error("exhausted its stack")]
    StackOverflow,
    #[error("ran out of fuel ({fuel} units)")]
    FuelExhausted { fuel: u64 },
    #[error("trapped: {message}")]
    Trap { message: String },
    #[error("answered something the platform cannot use: {reason}")]
    BadOutput { reason: String },
    /// The app returned an error of its own (or passed one of the platform's on).
    #[error("app error {code}: {message}")]
    App { code: String, message: String },
    #[error("payload of {bytes} bytes; the platform allows {limit}")]
    PayloadTooLarge { bytes: usize, limit: usize },
    #[error("no installation `{0}`")]
    UnknownInstallation(String),
    #[error("app {app} has no function `{function}`")]
    UnknownFunction { app: String, function: String },
    #[error("could not instantiate: {message}")]
    Instantiate { message: String },
    /// Not run: the invocations of the last minute reached a rate limit
    /// ([`InvocationLimits::rate`]).
    #[error("rate limit exceeded: {limit} invocations a minute per {scope} (`{id}`); not run")]
    RateLimited {
        scope: RateScope,
        id: String,
        limit: u32,
    },
}

/// One invocation, as the trace records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Virtual time when it started.
    pub at: Millis,
    pub app: String,
    pub installation: String,
    pub function: String,
    pub handler: &'static str,
    pub outcome: Result<(), InvocationError>,
    pub log_lines: usize,
    pub log_lines_dropped: usize,
    pub fetches: u32,
    /// Node apps only: cold start, refusals, work left pending by an earlier invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::node::NodeStats>,
}

/// A log line an app wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub at: Millis,
    pub installation: String,
    pub function: String,
    pub level: &'static str,
    pub message: String,
    /// False when the site admin turned off sharing logs with the vendor.
    pub shared_with_vendor: bool,
}

/// An analytics event an app sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnalyticsEvent {
    pub at: Millis,
    pub installation: String,
    pub event: String,
    pub properties: String,
    /// False when the site admin blocked analytics: the event was dropped.
    pub delivered: bool,
}

/// A simulated HTTP request, as an endpoint sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A simulated endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A simulated remote host.
pub type Endpoint = Arc<dyn Fn(&EndpointRequest) -> EndpointResponse + Send + Sync>;

/// The simulated world an invocation may touch, moved into the `Store` for the invocation
/// and back out afterwards.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) kvs: Kvs,
    pub(crate) confluence: Confluence,
    pub(crate) ledger: Vec<EgressAttempt>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) analytics: Vec<AnalyticsEvent>,
    pub(crate) pushed: Vec<QueuePush>,
}

impl World {
    /// A world with nothing in it: the placeholder in a store made ahead of its invocation.
    fn empty(kvs: KvsLimits) -> World {
        World {
            kvs: Kvs::new(kvs),
            confluence: Confluence::default(),
            ledger: Vec::new(),
            logs: Vec::new(),
            analytics: Vec::new(),
            pushed: Vec::new(),
        }
    }
}

/// Instances of one app version with one memory limit, made ahead by workers.
struct Stock {
    /// Made and not yet taken (`None`: a worker could not make one).
    ready: mpsc::Receiver<Option<Prepared>>,
    tx: mpsc::Sender<Option<Prepared>>,
    /// Asked of the workers and not yet taken.
    pending: usize,
}

/// Instances kept ready (or being made) per app version and memory limit, with
/// `SimConfig::threads` > 1; the workers are asked for more, in one task, when fewer than
/// half are left, so that a worker is woken once per few invocations rather than for each.
const STOCK: usize = 8;
/// Finished stores are handed to the workers to free this many at a time.
const DROP_BATCH: usize = 4;
/// Finished stores handed to the workers and not freed yet, at most; past that the invoking
/// thread frees its own (each holds a pooling slot until it is freed).
const MAX_DROPS_IN_FLIGHT: usize = 2 * DROP_BATCH;

/// A fresh store with the app instantiated in it, and nothing of the world yet.
pub(crate) struct Prepared {
    app: Arc<App>,
    store: Store<HostState>,
    instance: bindings::App,
}

/// A payload an app pushed onto one of its queues (the `queue` import), waiting for the
/// simulation to deliver it to the queue's consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuePush {
    pub at: Millis,
    pub installation: String,
    pub queue: String,
    pub payload: String,
}

/// Installations of apps and the world they live in.
pub struct Platform {
    runtime: Arc<Runtime>,
    config: SimConfig,
    clock: VirtualClock,
    rng: Rng,
    apps: HashMap<String, Arc<App>>,
    installations: HashMap<String, Arc<Installation>>,
    /// The app version an installation runs, when it is not the one `add_app` registered
    /// (an installation waiting for its admin's consent keeps its old version).
    running: HashMap<String, Arc<App>>,
    /// Invocations of an installation to fail with a timeout without running (fault
    /// injection).
    timeouts: HashMap<String, u32>,
    /// What the rate limits counted in the last minute.
    rates: RateWindows,
    /// The components' WASI stdout and stderr, lent to each invocation in turn.
    stdio: [stdio::Captured; 2],
    endpoints: Arc<HashMap<String, Endpoint>>,
    world: Option<Box<World>>,
    trace: Vec<TraceEvent>,
    /// The workers of `SimConfig::threads`, started when first needed.
    pool: Option<pool::Pool>,
    /// Instances made ahead, by (app version, memory limit). Never iterated.
    stock: HashMap<(usize, u64), Stock>,
    /// Finished stores waiting to be handed to the workers, a batch at a time.
    to_drop: Vec<Store<HostState>>,
    /// Stores given to the workers to free and not yet freed.
    drops: Arc<std::sync::atomic::AtomicUsize>,
    /// Node apps' warm worker processes.
    node_workers: crate::node::Workers,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("clock", &self.clock)
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .field("installations", &self.installations.len())
            .field("trace", &self.trace.len())
            .finish_non_exhaustive()
    }
}

impl Platform {
    pub fn new(runtime: Arc<Runtime>, config: SimConfig) -> Platform {
        Platform::with_storage(runtime, config, crate::kvs::KvsStorage::Memory)
    }

    /// A platform whose hosted storage lives where `storage` says (memory, or one redb
    /// file per realm in a directory).
    pub fn with_storage(
        runtime: Arc<Runtime>,
        config: SimConfig,
        storage: crate::kvs::KvsStorage,
    ) -> Platform {
        Platform {
            runtime,
            clock: VirtualClock::starting_at(config.start),
            rng: Rng::seeded(config.seed),
            world: Some(Box::new(World {
                kvs: Kvs::with_storage(config.kvs, storage),
                confluence: Confluence::default(),
                ledger: Vec::new(),
                logs: Vec::new(),
                analytics: Vec::new(),
                pushed: Vec::new(),
            })),
            config,
            apps: HashMap::new(),
            installations: HashMap::new(),
            running: HashMap::new(),
            timeouts: HashMap::new(),
            rates: RateWindows::default(),
            stdio: Default::default(),
            endpoints: Arc::new(HashMap::new()),
            trace: Vec::new(),
            pool: None,
            stock: HashMap::new(),
            to_drop: Vec::new(),
            drops: Arc::default(),
            node_workers: crate::node::Workers::new(config.node_workers),
        }
    }

    pub fn add_app(&mut self, app: Arc<App>) {
        self.stock.clear();
        self.apps.insert(app.id.clone(), app);
    }

    /// Installs an app on a site: its hosted storage is pinned to the site's realm.
    pub fn install(&mut self, installation: Installation) {
        self.world_mut()
            .kvs
            .install(installation.scope(), installation.realm);
        self.installations
            .insert(installation.id.clone(), Arc::new(installation));
    }

    /// Makes an installation run `app` (a version of its app) from its next invocation on.
    pub fn run_version(&mut self, installation: &str, app: Arc<App>) {
        // Instances of versions nobody may run any more would hold pooling slots.
        self.stock.clear();
        self.node_workers.retire(installation);
        self.running.insert(installation.to_string(), app);
    }

    /// The installation, if it exists.
    pub fn installation(&self, id: &str) -> Option<&Installation> {
        self.installations.get(id).map(|i| &**i)
    }

    /// Changes a site admin's switches (analytics and log sharing) for one installation.
    pub fn set_admin(&mut self, installation: &str, admin: AdminSwitches) -> bool {
        let Some(i) = self.installations.get_mut(installation) else {
            return false;
        };
        Arc::make_mut(i).admin = admin;
        true
    }

    /// Migrates an installation's site to another realm: its hosted storage moves with it.
    /// Returns the number of keys moved.
    pub fn migrate(
        &mut self,
        installation: &str,
        to: Realm,
    ) -> Result<usize, crate::kvs::KvsError> {
        let Some(i) = self.installations.get(installation).cloned() else {
            return Err(crate::kvs::KvsError {
                code: crate::kvs::KvsErrorCode::UnknownInstallation,
                message: format!("no installation `{installation}`"),
            });
        };
        let moved = self.world_mut().kvs.migrate(&i.scope(), to)?;
        if let Some(i) = self.installations.get_mut(installation) {
            Arc::make_mut(i).realm = to;
        }
        Ok(moved)
    }

    /// Makes the next `calls` invocations of an installation time out without running
    /// (fault injection: the platform's own timeouts, whatever the app does).
    pub fn inject_timeouts(&mut self, installation: &str, calls: u32) {
        *self.timeouts.entry(installation.to_string()).or_insert(0) += calls;
    }

    /// The payloads apps pushed onto queues since the last call, oldest first.
    pub fn take_pushed(&mut self) -> Vec<QueuePush> {
        std::mem::take(&mut self.world_mut().pushed)
    }

    /// Registers a simulated remote host (e.g. `api.example.com`) that answers allowed
    /// fetches. An allowed fetch to a host with no endpoint fails with `HOST_UNREACHABLE`.
    pub fn add_endpoint(&mut self, host: &str, endpoint: Endpoint) {
        Arc::make_mut(&mut self.endpoints).insert(host.to_ascii_lowercase(), endpoint);
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn clock(&mut self) -> &mut VirtualClock {
        &mut self.clock
    }

    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    pub fn ledger(&self) -> &[EgressAttempt] {
        &self.world().ledger
    }

    pub fn logs(&self) -> &[LogLine] {
        &self.world().logs
    }

    pub fn analytics(&self) -> &[AnalyticsEvent] {
        &self.world().analytics
    }

    /// Cross-realm storage attempts refused so far.
    pub fn kvs_violations(&self) -> &[crate::kvs::RealmViolation] {
        self.world().kvs.violations()
    }

    /// Everything an installation stores (keys and values, secrets by key only).
    pub fn inspect(
        &self,
        installation: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, crate::kvs::KvsError> {
        match self.installations.get(installation) {
            Some(i) => self.world().kvs.inspect(&i.scope()),
            None => Ok(Vec::new()),
        }
    }

    /// The in-memory Confluence, read only.
    pub fn pages(&self) -> &Confluence {
        &self.world().confluence
    }

    pub fn kvs(&mut self) -> &mut Kvs {
        &mut self.world_mut().kvs
    }

    pub fn confluence(&mut self) -> &mut Confluence {
        &mut self.world_mut().confluence
    }

    /// Runs one invocation in a fresh `Store` and records it in the trace.
    pub fn invoke(
        &mut self,
        installation: &str,
        function: &str,
        call: Call,
    ) -> Result<Output, InvocationError> {
        self.invoke_as(installation, function, call, None)
    }

    /// Like [`Platform::invoke`], for a user: `account_id` is the invocation context's
    /// `account-id` (a resolver's calling user).
    pub fn invoke_as(
        &mut self,
        installation: &str,
        function: &str,
        call: Call,
        account_id: Option<&str>,
    ) -> Result<Output, InvocationError> {
        self.invoke_from(installation, function, call, account_id, None)
    }

    /// Like [`Platform::invoke_as`], for a resolver call that a UI module's frame made: a
    /// Node app's resolver sees the frame's module, `localId` and `extension` (the page or
    /// space it is shown on) in its request's `context`, as on the platform. (The component
    /// contract has no extension: components are unaffected.)
    pub fn invoke_from_ui(
        &mut self,
        installation: &str,
        function: &str,
        call: Call,
        account_id: Option<&str>,
        ui: &UiContext,
    ) -> Result<Output, InvocationError> {
        self.invoke_from(installation, function, call, account_id, Some(ui))
    }

    fn invoke_from(
        &mut self,
        installation: &str,
        function: &str,
        call: Call,
        account_id: Option<&str>,
        ui: Option<&UiContext>,
    ) -> Result<Output, InvocationError> {
        let at = self.clock.now();
        let Some(inst) = self.installations.get(installation).cloned() else {
            return self.record_refusal(
                at,
                installation,
                "",
                function,
                &call,
                InvocationError::UnknownInstallation(installation.to_string()),
            );
        };
        let app = self
            .running
            .get(installation)
            .or_else(|| self.apps.get(&inst.app))
            .cloned();
        let Some((app, limits)) = app.and_then(|a| {
            let l = *a.functions.get(function)?;
            Some((a, l))
        }) else {
            let e = InvocationError::UnknownFunction {
                app: inst.app.clone(),
                function: function.to_string(),
            };
            return self.record_refusal(at, installation, &inst.app, function, &call, e);
        };
        let max = self.config.limits.max_payload_bytes;
        if call.payload_bytes() > max {
            let e = InvocationError::PayloadTooLarge {
                bytes: call.payload_bytes(),
                limit: max,
            };
            return self.record_refusal(at, installation, &inst.app, function, &call, e);
        }
        // A user's invocations count per app: the key joins the two.
        let user = account_id.map(|a| format!("{}\u{1f}{a}", inst.app));
        let keys = [
            (RateScope::User, user.as_deref()),
            (RateScope::Installation, Some(installation)),
            (RateScope::App, Some(inst.app.as_str())),
        ];
        if let Some((scope, id, limit)) = self.rates.admit(&self.config.limits.rate, at, keys) {
            let id = match (scope, account_id) {
                (RateScope::User, Some(a)) => a.to_string(),
                _ => id,
            };
            let e = InvocationError::RateLimited { scope, id, limit };
            return self.record_refusal(at, installation, &inst.app, function, &call, e);
        }

        let timeout = self.timeout(&call, limits);
        if let Some(n) = self.timeouts.get_mut(installation).filter(|n| **n > 0) {
            *n -= 1;
            let e = InvocationError::Timeout {
                limit_ms: timeout.as_millis() as u64,
            };
            return self.record_refusal(at, installation, &inst.app, function, &call, e);
        }
        if let Code::Node(code) = &app.code {
            let code = code.clone();
            let run = NodeRun {
                at,
                function,
                account_id,
                ui,
                limits,
                timeout,
            };
            return self.invoke_node(inst, app, &code, call, run);
        }
        let world = self
            .world
            .take()
            .expect("the world is home between invocations");
        let prepared = self.take_ahead(&app, limits, timeout);
        let invocation = imports::Invocation {
            world,
            app: app.clone(),
            installation: inst.clone(),
            function: function.to_string(),
            account_id: account_id.map(str::to_string),
            endpoints: self.endpoints.clone(),
            now: at,
            deadline: Instant::now() + timeout,
            limits: self.config.limits,
            trace: self.config.trace,
            limiter: Limiter::new(limits.memory_mb << 20),
            wall_clock: VirtualWallClock(at),
            random: std::array::from_fn(|_| self.rng.next_u64()),
            stdio: self.stdio.clone(),
        };
        let (mut store, instance, empty) = match prepared {
            Some(Prepared {
                mut store,
                instance,
                ..
            }) => {
                let empty = store.data_mut().begin(invocation);
                // The deadline counts from the call, not from when the instance was made.
                store.set_epoch_deadline(self.runtime.epoch_ticks(timeout));
                (store, Some(instance), Some(empty))
            }
            None => (
                self.runtime.new_store(HostState::new(invocation), timeout),
                None,
                None,
            ),
        };

        let max_output = self.config.limits.max_payload_bytes;
        let handler = call.kind();
        let result = run(&app, &mut store, instance, call, max_output);
        let result = result.map_err(|e| classify(e, &store, timeout, limits, self.runtime.config));
        let result = result.and_then(|r| r);
        // What it printed last, even if it trapped or timed out, is in its logs.
        store.data_mut().take_output(true);
        // No line (and none of its strings) when the trace is off.
        let state = store.data();
        let event = self.config.trace.then(|| TraceEvent {
            at,
            app: inst.app.clone(),
            installation: installation.to_string(),
            function: function.to_string(),
            handler,
            outcome: result.as_ref().map(|_| ()).map_err(Clone::clone),
            log_lines: state.log_lines,
            log_lines_dropped: state.log_lines_dropped,
            fetches: state.fetches,
            node: None,
        });
        self.world = Some(match &self.pool {
            // Freeing the instance (resetting its memories) is a worker's job too.
            Some(pool) if self.drops.load(Ordering::Relaxed) < MAX_DROPS_IN_FLIGHT => {
                let empty = empty.unwrap_or_else(|| Box::new(World::empty(self.config.kvs)));
                let world = store.data_mut().swap_world(empty);
                self.to_drop.push(store);
                if self.to_drop.len() >= DROP_BATCH {
                    let batch = std::mem::take(&mut self.to_drop);
                    let drops = self.drops.clone();
                    drops.fetch_add(batch.len(), Ordering::Relaxed);
                    pool.spawn(move || {
                        let n = batch.len();
                        drop(batch);
                        drops.fetch_sub(n, Ordering::Relaxed);
                    });
                }
                world
            }
            _ => store.into_data().into_world(),
        });
        self.trace.extend(event);
        result
    }

    /// One invocation of a Node app, in its installation's warm worker (started when there is
    /// none): the world is lent to a `HostState` that answers the worker's platform calls, as
    /// a component's store would.
    fn invoke_node(
        &mut self,
        inst: Arc<Installation>,
        app: Arc<App>,
        code: &crate::node::NodeCode,
        call: Call,
        run: NodeRun<'_>,
    ) -> Result<Output, InvocationError> {
        let args = match crate::node::args::args(
            code,
            &inst,
            &call,
            run.function,
            run.account_id,
            run.at,
            run.ui,
        ) {
            Ok(a) => a,
            Err(e) => {
                return self.record_refusal(run.at, &inst.id, &inst.app, run.function, &call, e);
            }
        };
        let world = self
            .world
            .take()
            .expect("the world is home between invocations");
        let random: [u64; 8] = std::array::from_fn(|_| self.rng.next_u64());
        let mut seed = [
            random[0] as u32,
            (random[0] >> 32) as u32,
            random[1] as u32,
            (random[1] >> 32) as u32,
        ];
        if seed == [0; 4] {
            seed[0] = 1;
        }
        let runtime =
            crate::node::args::runtime_invocation(run.function, run.account_id, random[2]);
        let invocation = imports::Invocation {
            world,
            app: app.clone(),
            installation: inst.clone(),
            function: run.function.to_string(),
            account_id: run.account_id.map(str::to_string),
            endpoints: self.endpoints.clone(),
            now: run.at,
            deadline: Instant::now() + run.timeout,
            limits: self.config.limits,
            trace: self.config.trace,
            limiter: Limiter::new(run.limits.memory_mb << 20),
            wall_clock: VirtualWallClock(run.at),
            random,
            stdio: self.stdio.clone(),
        };
        let mut state = HostState::new(invocation);
        let (result, stats) = self.node_workers.invoke(
            &mut state,
            crate::node::NodeCall {
                code,
                app_key: Arc::as_ptr(&app) as usize,
                function: run.function,
                call: &call,
                timeout: run.timeout,
                memory_mb: run.limits.memory_mb,
                seed,
                runtime,
                args,
                max_output: self.config.limits.max_payload_bytes,
            },
        );
        let event = self.config.trace.then(|| TraceEvent {
            at: run.at,
            app: inst.app.clone(),
            installation: inst.id.clone(),
            function: run.function.to_string(),
            handler: call.kind(),
            outcome: result.as_ref().map(|_| ()).map_err(Clone::clone),
            log_lines: state.log_lines,
            log_lines_dropped: state.log_lines_dropped,
            fetches: state.fetches,
            node: Some(stats),
        });
        self.world = Some(state.into_world());
        self.trace.extend(event);
        result
    }

    /// With `SimConfig::threads` > 1: an instance of `app` made ahead by a worker, if one
    /// is ready (never waits for one), and asks the workers to make the next ones. What a
    /// worker makes is a fresh store with the app instantiated and nothing else: the
    /// invocation puts everything the app can observe into it before the call.
    fn take_ahead(
        &mut self,
        app: &Arc<App>,
        limits: FunctionLimits,
        timeout: Duration,
    ) -> Option<Prepared> {
        if self.config.threads <= 1 {
            return None;
        }
        let workers = self.config.threads - 1;
        let pool = self.pool.get_or_insert_with(|| pool::Pool::new(workers));
        let key = (Arc::as_ptr(app) as usize, limits.memory_mb);
        let stock = self.stock.entry(key).or_insert_with(|| {
            let (tx, ready) = mpsc::channel();
            Stock {
                ready,
                tx,
                pending: 0,
            }
        });
        let mut taken = None;
        let mut failed = false;
        while let Ok(p) = stock.ready.try_recv() {
            stock.pending -= 1;
            match p {
                // The key holds the `Arc`'s address, which a dropped version's could reuse.
                Some(p) if Arc::ptr_eq(&p.app, app) => {
                    taken = Some(p);
                    break;
                }
                Some(_) => {}
                None => failed = true,
            }
        }
        // A worker that could not instantiate (the pool's slots are taken) is not asked again
        // at once.
        if !failed && stock.pending <= STOCK / 2 {
            let n = STOCK - stock.pending;
            stock.pending = STOCK;
            let (tx, runtime, app) = (stock.tx.clone(), self.runtime.clone(), app.clone());
            let kvs = self.config.kvs;
            pool.spawn(move || {
                for _ in 0..n {
                    if tx
                        .send(runtime.prepare(app.clone(), limits, timeout, kvs))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        taken
    }

    fn timeout(&self, call: &Call, limits: FunctionLimits) -> Duration {
        let t = self.config.limits.timeouts;
        match call {
            Call::Resolver { .. } => t.resolver,
            Call::WebTrigger(_) => t.web_trigger,
            Call::Event(_) | Call::Schedule(_) | Call::Consume { .. } => {
                match limits.timeout_seconds {
                    Some(s) if t.honour_timeout_seconds => Duration::from_secs(s.clamp(1, 900)),
                    _ => t.async_default,
                }
            }
        }
    }

    fn record_refusal(
        &mut self,
        at: Millis,
        installation: &str,
        app: &str,
        function: &str,
        call: &Call,
        error: InvocationError,
    ) -> Result<Output, InvocationError> {
        self.trace.push(TraceEvent {
            at,
            app: app.to_string(),
            installation: installation.to_string(),
            function: function.to_string(),
            handler: call.kind(),
            outcome: Err(error.clone()),
            log_lines: 0,
            log_lines_dropped: 0,
            fetches: 0,
            node: None,
        });
        Err(error)
    }

    fn world(&self) -> &World {
        self.world
            .as_deref()
            .expect("the world is home between invocations")
    }

    fn world_mut(&mut self) -> &mut World {
        self.world
            .as_deref_mut()
            .expect("the world is home between invocations")
    }
}

/// What a Node invocation was asked, apart from the installation, the app and the call.
struct NodeRun<'a> {
    at: Millis,
    function: &'a str,
    account_id: Option<&'a str>,
    ui: Option<&'a UiContext>,
    limits: FunctionLimits,
    timeout: Duration,
}

/// Instantiates and calls the export; the outer error is wasmtime's (trap, limit), the
/// inner one the platform's judgement of what the guest answered.
fn run(
    app: &App,
    store: &mut Store<HostState>,
    instance: Option<bindings::App>,
    call: Call,
    max_output: usize,
) -> wasmtime::Result<Result<Output, InvocationError>> {
    let instance = match (instance, &app.code) {
        (Some(i), _) => i,
        (None, Code::Node(_)) => wasmtime::bail!("a Node app has no component to instantiate"),
        (None, Code::Component(pre)) => {
            let i = pre.instantiate(&mut *store)?;
            store.data_mut().instantiated = true;
            i
        }
    };
    Ok(match call {
        Call::Resolver { name, payload } => {
            match instance.call_resolver(&mut *store, &name, &payload)? {
                Ok(json) if json.len() > max_output => Err(too_big(json.len(), max_output)),
                Ok(json) => match serde_json::from_str::<serde::de::IgnoredAny>(&json) {
                    Ok(_) => Ok(Output::Json(json)),
                    Err(e) => Err(InvocationError::BadOutput {
                        reason: format!("the resolver's result is not JSON ({e})"),
                    }),
                },
                Err(e) => Err(app_error(e)),
            }
        }
        Call::WebTrigger(req) => {
            let req = bindings::WebRequest {
                method: req.method,
                path: req.path,
                headers: req.headers,
                query_parameters: req.query_parameters,
                body: req.body,
            };
            match instance.call_web_trigger(&mut *store, &req)? {
                Ok(r) if r.body.len() > max_output => Err(too_big(r.body.len(), max_output)),
                Ok(r) => check_web_response(WebResponse {
                    status_code: r.status_code,
                    headers: r.headers,
                    body: r.body,
                })
                .map(Output::WebResponse),
                Err(e) => Err(app_error(e)),
            }
        }
        Call::Event(event) => instance
            .call_on_event(&mut *store, &event)?
            .map(|()| Output::Done)
            .map_err(app_error),
        Call::Schedule(key) => instance
            .call_on_schedule(&mut *store, &key)?
            .map(|()| Output::Done)
            .map_err(app_error),
        Call::Consume { queue, payload } => instance
            .call_consume(&mut *store, &queue, &payload)?
            .map(|()| Output::Done)
            .map_err(app_error),
    })
}

/// The platform's rule for a dynamic web trigger's answer: a status code from 100 to 599
/// (anything else is [`InvocationError::BadOutput`], and the caller of the web trigger gets a
/// 500 from the platform, not the app's bytes). The body goes out as the app wrote it,
/// whatever its content type says: the platform does not parse it (the web-trigger reference's
/// own example answers `{statusCode: 200, headers: {}, body: 'Hello, world!'}`).
pub fn check_web_response(r: WebResponse) -> Result<WebResponse, InvocationError> {
    if !(100..=599).contains(&r.status_code) {
        return Err(InvocationError::BadOutput {
            reason: format!("status code {} is not an HTTP status", r.status_code),
        });
    }
    Ok(r)
}

fn too_big(bytes: usize, limit: usize) -> InvocationError {
    InvocationError::BadOutput {
        reason: format!("an answer of {bytes} bytes; the platform carries {limit}"),
    }
}

fn app_error(e: bindings::PlatformError) -> InvocationError {
    InvocationError::App {
        code: e.code,
        message: e.message,
    }
}

/// Turns what wasmtime reported into the platform's typed error.
fn classify(
    e: wasmtime::Error,
    store: &Store<HostState>,
    timeout: Duration,
    limits: FunctionLimits,
    config: RuntimeConfig,
) -> InvocationError {
    // A refused memory growth makes the guest's allocator abort with `unreachable`: the
    // limiter's record says what really happened.
    if store.data().limiter.hit() {
        return InvocationError::MemoryLimit {
            limit_mb: limits.memory_mb,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvocationError::Timeout {
            limit_ms: timeout.as_millis() as u64,
        },
        Some(Trap::StackOverflow) => InvocationError::StackOverflow,
        Some(Trap::OutOfFuel) => InvocationError::FuelExhausted {
            fuel: config.fuel.unwrap_or(0),
        },
        Some(t) => InvocationError::Trap {
            message: t.to_string(),
        },
        None if store.data().instantiated => InvocationError::Trap {
            message: format!("{e:#}"),
        },
        None => InvocationError::Instantiate {
            message: format!("{e:#}"),
        },
    }
}

fn int(n: &signoff_yaml::Node) -> Option<u64> {
    match n.value {
        signoff_yaml::Value::Int(i) if i > 0 => Some(i as u64),
        _ => None,
    }
}

/// Where `cargo xtask guests` puts the guest components: `$SIGNOFF_GUESTS_TARGET_DIR` or
/// `<workspace>/guests/target`, then `wasm32-wasip2/release/<name>.wasm`.
pub fn guest_path(workspace_root: &Path, name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("SIGNOFF_GUESTS_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("guests").join("target"));
    target
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{name}.wasm"))
}
