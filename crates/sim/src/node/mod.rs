//! Forge apps written for Node.js, run as they are: the app's folder (`manifest.yml`,
//! `package.json`, `node_modules`, sources), its own `@forge/*` packages, and the globals the
//! platform's Node runtime provides (`__forge_fetch__`, `__forge_runtime__`), behind which sits
//! the same platform the wasm host serves (`serve.rs`). Each installation's app runs in a Node
//! process of its own (a *worker*), kept warm between invocations and evicted from a bounded
//! pool; the JavaScript that runs inside it (`crates/sim/node/*.js`) only moves frames and
//! installs the interception: every rule is judged here, in Rust.

pub(crate) mod args;
pub mod entities;
pub(crate) mod serve;
mod wire;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::host::{Call, InvocationError, Output, WebResponse};
use wire::{Link, Wait};

/// The JavaScript that runs inside a worker, written to a folder named by its hash.
const HOST_FILES: [(&str, &str); 5] = [
    ("host.js", include_str!("../../node/host.js")),
    ("worker.js", include_str!("../../node/worker.js")),
    ("channel.js", include_str!("../../node/channel.js")),
    ("globals.js", include_str!("../../node/globals.js")),
    ("egress.js", include_str!("../../node/egress.js")),
];

/// The oldest Node.js the platform offers (`nodejs20.x`).
pub const MIN_NODE_MAJOR: u32 = 20;

/// How long a new worker may take to start before the invocation fails.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a waiting invocation looks at its worker's resident memory.
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// Resident memory a worker may use above its function's `memoryMB` before it is stopped:
/// Node's own code and buffers, which the platform's figure also covers only roughly.
const RSS_ALLOWANCE_MB: u64 = 64;
/// The most stderr kept from a worker (the last bytes), to explain how it died.
const STDERR_KEPT: usize = 16 * 1024;

/// Why a Node app cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error(
        "Node.js {MIN_NODE_MAJOR} or later is needed to run Node apps ({found}); install it (Debian: `apt-get install nodejs`, or https://nodejs.org) or set SIGNOFF_NODE to its path"
    )]
    NodeMissing { found: String },
    #[error("{dir}: {message}")]
    App { dir: String, message: String },
    #[error("cannot prepare the Node host files in {dir}: {message}")]
    HostFiles { dir: String, message: String },
}

/// The Node.js found on this machine and how its workers are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEnv {
    pub node: PathBuf,
    pub version: (u32, u32, u32),
    /// Where the worker's own JavaScript lives.
    pub host_dir: PathBuf,
    pub isolation: Isolation,
}

/// What stands behind the in-process interception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Node's permission model (no child processes, workers, addons, file writes outside the
    /// worker's scratch folder, reads outside the app and the host) and a network namespace
    /// with no interface but loopback, which is down: a raw socket reaches nothing.
    PermissionsAndNetworkNamespace,
    /// Node's permission model only: this machine would not make a network namespace
    /// (`unshare -n` failed), so the interception in the process is the only network wall.
    PermissionsOnly,
}

impl Isolation {
    pub fn describe(self) -> &'static str {
        match self {
            Isolation::PermissionsAndNetworkNamespace => {
                "Node permission model + network namespace without interfaces"
            }
            Isolation::PermissionsOnly => {
                "Node permission model only (no network namespace could be made here)"
            }
        }
    }
}

impl NodeEnv {
    /// Finds `node` (`$SIGNOFF_NODE`, else on `PATH`), checks its version, writes the host files
    /// and probes for network namespaces.
    pub fn detect() -> Result<NodeEnv, NodeError> {
        let node = std::env::var_os("SIGNOFF_NODE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("node"));
        let out = Command::new(&node)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| NodeError::NodeMissing {
                found: format!("`{}` could not be started: {e}", node.display()),
            })?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let version = parse_version(&text).ok_or_else(|| NodeError::NodeMissing {
            found: format!("`{} --version` printed {text:?}", node.display()),
        })?;
        if version.0 < MIN_NODE_MAJOR {
            return Err(NodeError::NodeMissing {
                found: format!("found {text}"),
            });
        }
        let host_dir = write_host_files()?;
        let isolation = if probe_netns() {
            Isolation::PermissionsAndNetworkNamespace
        } else {
            Isolation::PermissionsOnly
        };
        Ok(NodeEnv {
            node,
            version,
            host_dir,
            isolation,
        })
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    Some((major, minor, patch))
}

fn write_host_files() -> Result<PathBuf, NodeError> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in HOST_FILES {
        for b in name.bytes().chain(text.bytes()) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let dir = std::env::temp_dir().join(format!("signoff-sim-node-{hash:016x}"));
    let fail = |e: std::io::Error| NodeError::HostFiles {
        dir: dir.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(fail)?;
    for (name, text) in HOST_FILES {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            // Written whole under another name, then renamed: a concurrent reader never sees
            // half a file.
            let tmp = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::write(&tmp, text).map_err(fail)?;
            std::fs::rename(&tmp, &path).map_err(fail)?;
        }
    }
    Ok(dir)
}

fn probe_netns() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Node app's code: its folder and where each function's handler lives.
#[derive(Debug)]
pub struct NodeCode {
    pub dir: PathBuf,
    pub handlers: BTreeMap<String, Handler>,
    /// Queue name to how its consumer is called.
    pub consumers: BTreeMap<String, Consumer>,
    /// The app's variables (`process.env`).
    pub variables: BTreeMap<String, String>,
    /// `app.storage.entities`.
    pub entities: entities::Entities,
    /// The product the app's modules extend (`confluence`, `jira`, `compass`, `bitbucket`):
    /// the one named in `installContext` and `contextAri`. Confluence when no module says.
    pub product: String,
    /// Function key to the key of the first UI module (in the manifest's order) whose
    /// `resolver.function` it is: a resolver call's `context.moduleKey`.
    pub ui_modules: BTreeMap<String, String>,
    /// The keys of the app's `webtrigger` modules (`webTrigger.getUrl` names one).
    pub web_triggers: std::collections::BTreeSet<String>,
    pub env: Arc<NodeEnv>,
}

/// Where a function's `handler` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// As the manifest says: `index.run`.
    pub handler: String,
    /// The module path under `src/`: `index`.
    pub module: String,
    /// The source file it resolved to.
    pub source: PathBuf,
    /// The bundle built from it, which the worker loads.
    pub file: PathBuf,
    /// The exported function: `run`.
    pub export: String,
}

/// How a queue's consumer is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumer {
    /// `@forge/events` 2 and later: `consumer {queue, function}`, called with the event.
    Function,
    /// `@forge/events` 1: `consumer {queue, resolver: {function, method}}`, called as a
    /// resolver with the method as its function key.
    Resolver { method: String },
}

impl NodeCode {
    /// Resolves every function's handler in `dir` as the platform does (`index.run` is the
    /// export `run` of `src/index`), and checks that the app's dependencies are installed.
    pub fn load(
        dir: &Path,
        manifest: &roa_check::Manifest,
        variables: &BTreeMap<String, String>,
        env: Arc<NodeEnv>,
    ) -> Result<NodeCode, NodeError> {
        let fail = |message: String| NodeError::App {
            dir: dir.display().to_string(),
            message,
        };
        let dir = dir
            .canonicalize()
            .map_err(|e| fail(format!("not an app folder: {e}")))?;
        if !dir.join("package.json").is_file() {
            return Err(fail(
                "no package.json: is this a Forge app's folder?".into(),
            ));
        }
        if !dir.join("node_modules").is_dir() {
            return Err(fail(format!(
                "no node_modules: install the app's dependencies first (`npm ci --prefix {}`)",
                dir.display()
            )));
        }
        let mut handlers = BTreeMap::new();
        let mut consumers = BTreeMap::new();
        let mut ui_modules = BTreeMap::new();
        let mut web_triggers = std::collections::BTreeSet::new();
        let mut product = None;
        for m in &manifest.modules {
            if m.kind == "webtrigger"
                && let Some(key) = &m.key
            {
                web_triggers.insert(key.clone());
            }
            if let Some((prefix, _)) = m.kind.split_once(':') {
                let p = match prefix {
                    "jiraServiceManagement" => "jira",
                    p => p,
                };
                if product.is_none() && ["confluence", "jira", "compass", "bitbucket"].contains(&p)
                {
                    product = Some(p.to_string());
                }
                let function = m
                    .node
                    .get("resolver")
                    .and_then(|r| r.get("function"))
                    .and_then(|f| f.as_str());
                if let (Some(function), Some(key)) = (function, &m.key) {
                    ui_modules
                        .entry(function.to_string())
                        .or_insert_with(|| key.clone());
                }
            }
            if m.kind == "consumer" {
                let queue = m.node.get("queue").and_then(|q| q.as_str());
                let method = m
                    .node
                    .get("resolver")
                    .and_then(|r| r.get("method"))
                    .and_then(|r| r.as_str());
                if let Some(queue) = queue {
                    let c = match method {
                        Some(method) => Consumer::Resolver {
                            method: method.to_string(),
                        },
                        None => Consumer::Function,
                    };
                    consumers.insert(queue.to_string(), c);
                }
                continue;
            }
            if m.kind != "function" {
                continue;
            }
            let Some(key) = m.key.clone() else { continue };
            let Some(h) = m.node.get("handler").and_then(|h| h.as_str()) else {
                return Err(fail(format!("function `{key}` has no handler")));
            };
            let Some((module, export)) = h.rsplit_once('.') else {
                return Err(fail(format!(
                    "function `{key}`: handler `{h}` is not MODULE.EXPORT (such as index.run)"
                )));
            };
            if module.is_empty()
                || export.is_empty()
                || module.split('/').any(|p| p == ".." || p.is_empty())
            {
                return Err(fail(format!(
                    "function `{key}`: handler `{h}` does not name a module under src/"
                )));
            }
            let source = resolve_module(&dir, module).ok_or_else(|| {
                fail(format!(
                    "function `{key}`: handler `{h}`: no src/{module} with a .js, .jsx, .ts, .tsx, .mjs, .cjs, .mts or .cts extension (nor src/{module}/index.*)"
                ))
            })?;
            handlers.insert(
                key,
                Handler {
                    handler: h.to_string(),
                    module: module.to_string(),
                    source,
                    file: PathBuf::new(),
                    export: export.to_string(),
                },
            );
        }
        // Built as the Forge CLI builds an app: every handler module bundled by esbuild (from
        // npm) with the app's packages in it.
        let built = bundle(&dir, &handlers)?;
        let src = dir.join("src");
        for h in handlers.values_mut() {
            let rel = h.source.strip_prefix(&src).unwrap_or(&h.source);
            h.file = built.join(rel).with_extension("cjs");
        }
        let entities = entities::Entities::of(manifest)
            .map_err(|m| fail(format!("app.storage.entities: {m}")))?;
        Ok(NodeCode {
            dir,
            handlers,
            consumers,
            entities,
            product: product.unwrap_or_else(|| "confluence".to_string()),
            ui_modules,
            web_triggers,
            variables: variables.clone(),
            env,
        })
    }
}

/// Source extensions the Forge CLI's bundler takes.
const EXTENSIONS: [&str; 8] = ["ts", "tsx", "js", "jsx", "mjs", "cjs", "mts", "cts"];

fn resolve_module(dir: &Path, module: &str) -> Option<PathBuf> {
    let src = dir.join("src");
    let candidates = EXTENSIONS
        .iter()
        .map(|ext| src.join(format!("{module}.{ext}")))
        .chain(
            EXTENSIONS
                .iter()
                .map(|ext| src.join(module).join(format!("index.{ext}"))),
        );
    for c in candidates {
        if c.is_file() {
            // Symbolic links out of the app's folder are not followed.
            let real = c.canonicalize().ok()?;
            return real.starts_with(dir).then_some(real);
        }
    }
    None
}

/// The esbuild that builds Node apps: `$SIGNOFF_ESBUILD`, else the simulator's own pinned copy
/// (`crates/sim/node`, installed by `cargo xtask`), else the app's, else one on `PATH`.
fn esbuild(app: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SIGNOFF_ESBUILD") {
        return Ok(PathBuf::from(p));
    }
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/node_modules/.bin/esbuild");
    let theirs = app.join("node_modules/.bin/esbuild");
    for c in [ours, theirs] {
        if c.is_file() {
            return Ok(c);
        }
    }
    let on_path = Command::new("esbuild")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Ok(PathBuf::from("esbuild"));
    }
    Err(format!(
        "no esbuild to build the app with: run `npm ci --prefix {}` (what `cargo xtask test` does), install esbuild on PATH, or set SIGNOFF_ESBUILD",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("node").display()
    ))
}

/// Bundles every handler module into `node_modules/.cache/signoff-sim/HASH/MODULE.cjs` inside
/// the app (so that a `require` left to run time finds the app's packages as the sources
/// would). HASH covers the build options, the handler modules, every source file of the app's
/// folder (JavaScript, TypeScript and JSON, outside `node_modules` and dot folders: a handler
/// may import modules beside `src/`, such as generated ones) and the package manager's record
/// of what it installed: an unchanged app is built once.
fn bundle(dir: &Path, handlers: &BTreeMap<String, Handler>) -> Result<PathBuf, NodeError> {
    let fail = |message: String| NodeError::App {
        dir: dir.display().to_string(),
        message,
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    feed(BUNDLE_OPTIONS.join(" ").as_bytes());
    // The modules built: two manifests over the same sources may name different handlers.
    let mut entries: Vec<&Path> = handlers.values().map(|h| h.source.as_path()).collect();
    entries.sort();
    entries.dedup();
    for e in &entries {
        feed(
            e.strip_prefix(dir)
                .unwrap_or(e)
                .to_string_lossy()
                .as_bytes(),
        );
        feed(&[0]);
    }
    let mut files = Vec::new();
    collect_sources(dir, &mut files, 0);
    files.sort();
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            feed(
                f.strip_prefix(dir)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            feed(&(bytes.len() as u64).to_le_bytes());
            feed(&bytes);
        }
    }
    // The packages are in the bundle too: what the package manager says it installed.
    for record in INSTALL_RECORDS {
        if let Ok(bytes) = std::fs::read(dir.join("node_modules").join(record)) {
            feed(record.as_bytes());
            feed(&(bytes.len() as u64).to_le_bytes());
            feed(&bytes);
        }
    }
    let out = dir
        .join("node_modules/.cache/signoff-sim")
        .join(format!("{hash:016x}"));
    if out.join(".built").is_file() {
        return Ok(out);
    }
    let esbuild = esbuild(dir).map_err(fail)?;
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let output = Command::new(&esbuild)
        .args(entries)
        .args(BUNDLE_OPTIONS)
        .arg(format!("--outbase={}", dir.join("src").display()))
        .arg(format!("--outdir={}", tmp.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run {}: {e}", esbuild.display())))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let err = String::from_utf8_lossy(&output.stderr);
        let err: String = err.chars().take(4000).collect();
        return Err(fail(format!(
            "the app does not build (esbuild):\n{}",
            err.trim_end()
        )));
    }
    std::fs::write(tmp.join(".built"), b"").map_err(|e| fail(e.to_string()))?;
    // Another process may have built the same hash meanwhile: either copy will do.
    if std::fs::rename(&tmp, &out).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if !out.join(".built").is_file() {
        return Err(fail(format!("cannot keep the build in {}", out.display())));
    }
    Ok(out)
}

/// What npm, Yarn and pnpm write into `node_modules` about the tree they installed: part of
/// the bundle's hash, so that a changed install builds the app again.
const INSTALL_RECORDS: [&str; 4] = [
    ".package-lock.json",
    ".yarn-integrity",
    ".yarn-state.yml",
    ".modules.yaml",
];

/// How a Forge app is built: one CommonJS bundle per handler module for Node with the app's
/// packages (`@forge/*` and the rest) inside it, unchanged, as the Forge CLI's webpack build
/// makes them; Node's own modules stay outside. A `require` that cannot be resolved at build
/// time (a computed name, an optional package inside `try`) is left for Node to resolve at
/// run time from the bundle's folder, which is inside the app's `node_modules`.
const BUNDLE_OPTIONS: [&str; 6] = [
    "--bundle",
    "--platform=node",
    "--format=cjs",
    "--target=node20",
    "--out-extension:.js=.cjs",
    "--log-level=error",
];

fn collect_sources(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    const SOURCES: [&str; 9] = ["js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "json"];
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        let name = e.file_name();
        let hidden = name.to_string_lossy().starts_with('.');
        if kind.is_dir() && depth < 32 && name != "node_modules" && !hidden {
            collect_sources(&path, out, depth + 1);
        } else if kind.is_file()
            && path
                .extension()
                .is_some_and(|x| SOURCES.iter().any(|s| x == *s))
        {
            out.push(path);
        }
    }
}

/// One running worker: a Node process serving one installation's app version.
struct Worker {
    key: (String, usize),
    child: Child,
    link: Link,
    stderr: Arc<Mutex<Vec<u8>>>,
    scratch: PathBuf,
    invocations: u64,
    /// The functions whose handler (file, module, export) this worker has been told.
    told: std::collections::HashSet<String>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends a worker that is waiting for work (host.js exits on it);
        // one that is busy or does not exit soon is killed.
        self.link.close();
        let patience = Instant::now() + Duration::from_millis(50);
        while Instant::now() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The warm workers of a platform, most recently used last, at most `max` alive.
pub(crate) struct Workers {
    live: Vec<Worker>,
    max: usize,
    started: u64,
}

/// The arguments a Node handler of `code` is called with for `call` (the platform's shapes:
/// the resolver's `{call, context}` or the event, then the function context), exactly as the
/// simulator passes them: for tests of a handler outside the simulator, and for the Node
/// benchmark, whose bare Node process gets the same arguments.
pub fn handler_args(
    code: &NodeCode,
    inst: &crate::host::Installation,
    call: &Call,
    function: &str,
    account: Option<&str>,
    now: crate::clock::Millis,
) -> Result<Value, InvocationError> {
    args::args(code, inst, call, function, account, now, None)
}

impl Workers {
    pub(crate) fn new(max: usize) -> Workers {
        Workers {
            live: Vec::new(),
            max: max.max(1),
            started: 0,
        }
    }
}

/// Warm workers kept per platform by default (`SimConfig::node_workers`).
pub const DEFAULT_WORKERS: usize = 16;

/// What the trace records about a Node invocation beyond the outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// A worker was started for this invocation.
    pub cold_start: bool,
    /// What the app tried and was refused (`connect example.com:443`, `dns.lookup ...`,
    /// `child_process.spawn ...`).
    pub refused: Vec<String>,
    /// Platform calls or log lines made by work an earlier invocation left pending after it
    /// returned (refused: the platform no longer serves that invocation).
    pub late: u64,
    /// Product calls answered with an error (`confluence GET /wiki/rest/api/search 404`,
    /// `jira POST /rest/api/3/permissions/check 404 PRODUCT_NOT_SIMULATED`), at most 20:
    /// what an app that swallows an error would otherwise hide.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub product_errors: Vec<String>,
}

/// Everything one Node invocation needs.
pub(crate) struct NodeCall<'a> {
    pub(crate) code: &'a NodeCode,
    pub(crate) app_key: usize,
    pub(crate) function: &'a str,
    pub(crate) call: &'a Call,
    pub(crate) timeout: Duration,
    pub(crate) memory_mb: u64,
    pub(crate) seed: [u32; 4],
    pub(crate) runtime: Value,
    pub(crate) args: Value,
    pub(crate) max_output: usize,
}

impl Workers {
    /// Stops every worker of an installation (uninstall, or an upgrade that replaced its
    /// version).
    pub(crate) fn retire(&mut self, installation: &str) {
        self.live.retain(|w| w.key.0 != installation);
    }

    pub(crate) fn invoke(
        &mut self,
        state: &mut crate::host::imports::HostState,
        c: NodeCall<'_>,
    ) -> (Result<Output, InvocationError>, NodeStats) {
        let mut stats = NodeStats::default();
        let key = (state.installation.id.clone(), c.app_key);
        let found = self.live.iter().position(|w| w.key == key);
        let mut worker = match found {
            Some(i) => self.live.remove(i),
            None => {
                stats.cold_start = true;
                while self.live.len() >= self.max {
                    self.live.remove(0);
                }
                match self.spawn(c.code, key.clone(), c.memory_mb) {
                    Ok(w) => w,
                    Err(message) => return (Err(InvocationError::Instantiate { message }), stats),
                }
            }
        };
        worker.invocations += 1;
        let inv = worker.invocations;
        // What stays the same from one invocation to the next goes to a worker once: the
        // installation's part of `__forge_runtime__` and the environment variables with its
        // first invocation, a function's handler with the first invocation of that function.
        let mut frame = json!({
            "t": "invoke",
            "inv": inv,
            "function": c.function,
            "args": c.args,
            "runtime": c.runtime,
            "now": state.now.0,
            "timeoutMs": c.timeout.as_millis() as u64,
            "seed": c.seed,
        });
        if inv == 1 {
            frame["base"] = json!({
                "runtime": args::runtime_base(c.code, &state.installation),
                "env": c.code.variables,
            });
        }
        if !worker.told.contains(c.function) {
            let handler = &c.code.handlers[c.function];
            frame["handler"] = json!({
                "file": handler.file,
                "module": handler.module,
                "export": handler.export,
                "handler": handler.handler,
            });
            worker.told.insert(c.function.to_string());
        }
        if let Err(e) = worker.link.send(&frame) {
            let message = format!("the worker did not take the invocation: {e}");
            return (Err(self.died(worker, message, c.memory_mb)), stats);
        }
        let deadline = Instant::now() + c.timeout;
        let rss_limit = (c.memory_mb + RSS_ALLOWANCE_MB) << 20;
        loop {
            let until = (Instant::now() + WATCH_EVERY).min(deadline);
            match worker.link.recv(until) {
                Ok(f) => match f.get("t").and_then(Value::as_str) {
                    Some("call") => {
                        let reply = serve::serve(state, c.code, &f, &mut stats);
                        if let Err(e) = worker.link.send(&reply) {
                            let message = format!("the worker's channel failed: {e}");
                            return (Err(self.died(worker, message, c.memory_mb)), stats);
                        }
                    }
                    Some("log") if frame_inv(&f) == inv => {
                        let level = f.get("level").and_then(Value::as_str).unwrap_or("info");
                        let message = f.get("message").and_then(Value::as_str).unwrap_or("");
                        state.node_log(level, message.to_string());
                    }
                    Some("refused") if frame_inv(&f) == inv => {
                        serve::refused(state, &f, &mut stats)
                    }
                    Some("done") if frame_inv(&f) == inv => {
                        stats.late += f.get("late").and_then(Value::as_u64).unwrap_or(0);
                        let result = outcome(&f, c.call, c.timeout, c.max_output);
                        // A crash leaves the process in a state nobody chose: start afresh.
                        if f.get("crash").is_some() {
                            drop(worker);
                        } else {
                            self.live.push(worker);
                        }
                        return (result, stats);
                    }
                    Some("exit") if frame_inv(&f) == inv => {
                        let code = f.get("code").and_then(Value::as_i64).unwrap_or(0);
                        drop(worker);
                        let message = format!("the app called process.exit({code})");
                        return (Err(InvocationError::Trap { message }), stats);
                    }
                    // Frames of an earlier invocation: its pending work, refused.
                    _ => stats.late += 1,
                },
                Err(Wait::Idle) => {
                    if Instant::now() >= deadline {
                        drop(worker);
                        let limit_ms = c.timeout.as_millis() as u64;
                        return (Err(InvocationError::Timeout { limit_ms }), stats);
                    }
                    if rss_bytes(worker.child.id()) > rss_limit {
                        drop(worker);
                        let limit_mb = c.memory_mb;
                        return (Err(InvocationError::MemoryLimit { limit_mb }), stats);
                    }
                }
                Err(Wait::Closed(why)) => {
                    return (Err(self.died(worker, why, c.memory_mb)), stats);
                }
            }
        }
    }

    /// A worker that stopped answering: why, from its exit status and the end of its stderr.
    fn died(&mut self, mut worker: Worker, why: String, memory_mb: u64) -> InvocationError {
        let _ = worker.child.kill();
        let status = worker.child.wait().ok();
        // Give the stderr reader a moment to take what the process wrote last.
        std::thread::sleep(Duration::from_millis(20));
        let err = worker.stderr.lock().map(|e| e.clone()).unwrap_or_default();
        let err = String::from_utf8_lossy(&err);
        if err.contains("heap out of memory") || err.contains("Reached heap limit") {
            return InvocationError::MemoryLimit {
                limit_mb: memory_mb,
            };
        }
        // The error line (`Error: ...`, `SyntaxError: ...`), else the last line written.
        let last = err
            .lines()
            .find(|l| {
                let l = l.trim_start();
                l.split_once(':')
                    .is_some_and(|(head, _)| head.ends_with("Error") && !head.contains(' '))
            })
            .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("");
        InvocationError::Trap {
            message: format!(
                "the Node process ended ({why}; {}){}",
                status.map_or("no status".to_string(), |s| s.to_string()),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {}", last.trim())
                }
            ),
        }
    }

    fn spawn(
        &mut self,
        code: &NodeCode,
        key: (String, usize),
        memory_mb: u64,
    ) -> Result<Worker, String> {
        self.started += 1;
        let env = &code.env;
        let scratch = std::env::temp_dir().join(format!(
            "signoff-node-{}-{}",
            std::process::id(),
            self.started
        ));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot make {}: {e}", scratch.display()))?;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
        let mut cmd = match env.isolation {
            Isolation::PermissionsAndNetworkNamespace => {
                let mut c = Command::new("unshare");
                c.args(["-n", "--"]).arg(&env.node);
                c
            }
            Isolation::PermissionsOnly => Command::new(&env.node),
        };
        let (major, minor, _) = env.version;
        let permission = if major > 22 || (major == 22 && minor >= 13) {
            "--permission"
        } else {
            "--experimental-permission"
        };
        let reads = [&code.dir, &env.host_dir, &scratch];
        // Worker threads are allowed: egress.js puts the same walls around each.
        cmd.arg(permission).arg("--allow-worker");
        // A folder and everything under it: `DIR/*`, the flag once per folder (Node 20.20
        // reads only the first entry of a comma-separated list).
        for r in reads {
            cmd.arg(format!("--allow-fs-read={}/*", r.display()));
        }
        cmd.arg(format!("--allow-fs-write={}/*", scratch.display()))
            .arg(format!(
                "--max-old-space-size={}",
                (memory_mb * 7 / 8).max(16)
            ))
            // Node's own warnings would be the app's log lines: the permission model's
            // (experimental on Node 20) and the one `--allow-worker` prints at the first
            // worker thread (the walls around workers are egress.js's and the permission
            // model's, which Node applies inside workers too: tested).
            .args(if (major, minor) >= (20, 11) {
                &[
                    "--disable-warning=ExperimentalWarning",
                    "--disable-warning=SecurityWarning",
                ][..]
            } else {
                &["--no-warnings"][..]
            })
            .arg(env.host_dir.join("host.js"))
            .current_dir(&code.dir)
            .env_clear()
            .env("TZ", "UTC")
            .env("LANG", "C.UTF-8")
            .env("HOME", &scratch)
            .env("TMPDIR", &scratch)
            // The worker's end of the socket pair is its stdin: the channel (host.js puts an
            // empty stream in `process.stdin`'s place before any app code loads).
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env.node.display()))?;
        // The command holds our copy of the worker's end: closed now, so that the worker's
        // death reads as the end of the channel.
        drop(cmd);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let kept = stderr.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut k) = kept.lock() {
                        k.extend_from_slice(&chunk[..n]);
                        let excess = k.len().saturating_sub(STDERR_KEPT);
                        k.drain(..excess);
                    }
                }
            });
        }
        let mut worker = Worker {
            key,
            child,
            link: Link::new(ours),
            stderr,
            scratch,
            invocations: 0,
            told: std::collections::HashSet::new(),
        };
        match worker.link.recv(Instant::now() + START_TIMEOUT) {
            Ok(f) if f.get("t").and_then(Value::as_str) == Some("hello") => Ok(worker),
            Ok(f) => Err(format!("the worker greeted with {f}")),
            Err(Wait::Idle) => Err(format!(
                "the worker did not start within {} s",
                START_TIMEOUT.as_secs()
            )),
            Err(Wait::Closed(why)) => Err(match self.died(worker, why, memory_mb) {
                InvocationError::Trap { message } => message,
                other => other.to_string(),
            }),
        }
    }
}

fn frame_inv(f: &Value) -> u64 {
    f.get("inv").and_then(Value::as_u64).unwrap_or(0)
}

/// Resident memory of a process, from `/proc` (0 where it cannot be read).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The platform's judgement of how an invocation ended.
fn outcome(
    f: &Value,
    call: &Call,
    timeout: Duration,
    max_output: usize,
) -> Result<Output, InvocationError> {
    if f.get("timeout").is_some() {
        return Err(InvocationError::Timeout {
            limit_ms: timeout.as_millis() as u64,
        });
    }
    if f.get("ok").and_then(Value::as_bool) != Some(true) {
        let e = f.get("error").cloned().unwrap_or(Value::Null);
        let name = e.get("name").and_then(Value::as_str).unwrap_or("Error");
        let code = e.get("code").and_then(Value::as_str);
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(how) = f.get("crash").and_then(Value::as_str) {
            return Err(InvocationError::Trap {
                message: format!("{how}: {name}: {message}"),
            });
        }
        return Err(app_error(name, code, message));
    }
    let value = f.get("value").and_then(Value::as_str);
    if value.is_some_and(|v| v.len() > max_output) {
        return Err(InvocationError::BadOutput {
            reason: format!(
                "an answer of {} bytes; the platform carries {max_output}",
                value.map_or(0, str::len)
            ),
        });
    }
    match call {
        Call::Resolver { .. } => Ok(Output::Json(value.unwrap_or("null").to_string())),
        Call::WebTrigger(_) => {
            let v: Value = value
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or(Value::Null);
            web_response(&v)
                .and_then(crate::host::check_web_response)
                .map(Output::WebResponse)
        }
        Call::Consume { .. } => {
            let v: Value = value
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or(Value::Null);
            // `InvocationError` / `QueueResponse.retry()` of @forge/events: `{_retry: true}`.
            if v.get("_retry").and_then(Value::as_bool) == Some(true) {
                let reason = v
                    .pointer("/retryOptions/retryReason")
                    .and_then(Value::as_str)
                    .unwrap_or("FUNCTION_RETRY_REQUEST");
                return Err(InvocationError::App {
                    code: reason.to_string(),
                    message: "the consumer asked for a retry".into(),
                });
            }
            Ok(Output::Done)
        }
        Call::Event(_) | Call::Schedule(_) => Ok(Output::Done),
    }
}

/// A thrown error as the platform reports it: its platform code when it carries one
/// (`REQUEST_EGRESS_ALLOWLIST_ERR`, a KVS code, ...), else `FUNCTION_ERR`.
fn app_error(name: &str, code: Option<&str>, message: String) -> InvocationError {
    let platform = |s: &str| {
        s.len() > 2
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    match code
        .filter(|c| platform(c))
        .or(Some(name).filter(|n| platform(n)))
    {
        Some(code) => InvocationError::App {
            code: code.to_string(),
            message,
        },
        None => InvocationError::App {
            code: "FUNCTION_ERR".into(),
            message: format!("{name}: {message}"),
        },
    }
}

/// A dynamic web trigger's answer (`{statusCode, headers?: {name: [values]}, body?}`), or a
/// static one's `{outputKey}` (answered with the manifest's output by the simulation).
fn web_response(v: &Value) -> Result<WebResponse, InvocationError> {
    if v.get("outputKey").is_some() && v.get("statusCode").is_none() {
        return Ok(WebResponse {
            status_code: 200,
            headers: vec![("content-type".into(), vec!["application/json".into()])],
            body: v.to_string(),
        });
    }
    let Some(status) = v.get("statusCode").and_then(Value::as_u64) else {
        return Err(InvocationError::BadOutput {
            reason: "a web trigger must answer an object with a numeric statusCode".into(),
        });
    };
    let mut headers = Vec::new();
    if let Some(h) = v.get("headers").and_then(Value::as_object) {
        for (k, vals) in h {
            let vals = match vals {
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            headers.push((k.clone(), vals));
        }
    }
    let body = match v.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(WebResponse {
        status_code: u16::try_from(status).unwrap_or(0),
        headers,
        body,
    })
}
