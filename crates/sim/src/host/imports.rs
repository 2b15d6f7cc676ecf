//! The host side of the WIT imports: what an app's calls do, for the one installation the
//! platform is invoking. Nothing here takes a site, installation or realm from the guest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stdio::Captured;
use roa_check::address::Address;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{Deterministic, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::signoff::forge::{analytics, context, fetch, kvs, log, product, queue, types};
use super::{
    AnalyticsEvent, App, Endpoint, EndpointRequest, Installation, InvocationLimits, LogLine,
    QueuePush, World,
};
use crate::clock::Millis;
use crate::egress::{self, EGRESS_ERROR_CODE, EgressAttempt, Verdict};
use crate::kvs::{KvsError, Scope, SetOptions, TxOp};
use crate::product::{ContentState, ProductError};

type PlatformError = types::PlatformError;

/// Everything an invocation starts with.
pub(crate) struct Invocation {
    pub(crate) world: Box<World>,
    pub(crate) app: Arc<App>,
    pub(crate) installation: Arc<Installation>,
    pub(crate) function: String,
    pub(crate) account_id: Option<String>,
    pub(crate) endpoints: Arc<HashMap<String, Endpoint>>,
    pub(crate) now: Millis,
    pub(crate) deadline: Instant,
    pub(crate) limits: InvocationLimits,
    pub(crate) trace: bool,
    pub(crate) limiter: Limiter,
    pub(crate) wall_clock: VirtualWallClock,
    /// Drawn from the platform's seeded generator: WASI randomness replays with the seed.
    pub(crate) random: [u64; 8],
    /// Where WASI stdout and stderr go: the platform's pair, reused by every invocation (the
    /// end of each takes everything out), so an invocation allocates none.
    pub(crate) stdio: [Captured; 2],
}

/// The `T` of each invocation's `Store`.
pub(crate) struct HostState {
    pub(crate) world: Box<World>,
    app: Arc<App>,
    pub(crate) installation: Arc<Installation>,
    pub(crate) scope: Scope,
    function: String,
    pub(crate) account_id: Option<String>,
    endpoints: Arc<HashMap<String, Endpoint>>,
    pub(crate) now: Millis,
    started: Instant,
    deadline: Instant,
    limits: InvocationLimits,
    trace: bool,
    wasi: WasiCtx,
    /// What the guest wrote to WASI stdout and stderr, not yet taken as log lines.
    stdout: Captured,
    stderr: Captured,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) instantiated: bool,
    pub(crate) log_lines: usize,
    pub(crate) log_lines_dropped: usize,
    log_bytes: usize,
    pub(crate) fetches: u32,
}

impl HostState {
    pub(crate) fn new(mut i: Invocation) -> HostState {
        // The caller is one of the site's people from now on.
        if let Some(a) = &i.account_id {
            i.world.confluence.note_account(&i.installation.site, a);
        }
        let [stdout, stderr] = i.stdio.clone();
        HostState {
            wasi: wasi_ctx(&i, &stdout, &stderr),
            stdout,
            stderr,
            scope: i.installation.scope(),
            world: i.world,
            app: i.app,
            installation: i.installation,
            function: i.function,
            account_id: i.account_id,
            endpoints: i.endpoints,
            now: i.now,
            started: Instant::now(),
            deadline: i.deadline,
            limits: i.limits,
            trace: i.trace,
            table: ResourceTable::new(),
            limiter: i.limiter,
            instantiated: false,
            log_lines: 0,
            log_lines_dropped: 0,
            log_bytes: 0,
            fetches: 0,
        }
    }

    /// The state of a store made ahead of its invocation (on a worker thread): the app and
    /// the memory limit, and nothing of the world. [`HostState::begin`] fills in the rest
    /// just before the call.
    pub(crate) fn ahead(app: Arc<App>, limiter: Limiter, kvs: crate::kvs::KvsLimits) -> HostState {
        let installation = Arc::new(Installation {
            id: String::new(),
            app: String::new(),
            site: String::new(),
            realm: crate::realm::Realm::Global,
            environment: String::new(),
            admin: Default::default(),
        });
        // Deterministic and closed like an invocation's, should instantiation ever run guest
        // code that reads it (Rust components do not).
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(VirtualWallClock(Millis(0)))
            .secure_random(Deterministic::new(vec![0]))
            .insecure_random(Deterministic::new(vec![0]))
            .insecure_random_seed(0)
            .build();
        HostState {
            wasi,
            stdout: Captured::default(),
            stderr: Captured::default(),
            scope: installation.scope(),
            world: Box::new(World::empty(kvs)),
            app,
            installation,
            function: String::new(),
            account_id: None,
            endpoints: Arc::default(),
            now: Millis(0),
            started: Instant::now(),
            deadline: Instant::now(),
            limits: super::InvocationLimits::forge(),
            trace: false,
            table: ResourceTable::new(),
            limiter,
            instantiated: false,
            log_lines: 0,
            log_lines_dropped: 0,
            log_bytes: 0,
            fetches: 0,
        }
    }

    /// Makes a store made ahead of time this invocation's: everything the app can observe
    /// comes from `i`, as with [`HostState::new`]. Returns the empty world the store held, to
    /// be put back with [`HostState::swap_world`] before the store is dropped elsewhere.
    pub(crate) fn begin(&mut self, i: Invocation) -> Box<World> {
        debug_assert!(Arc::ptr_eq(&self.app, &i.app));
        [self.stdout, self.stderr] = i.stdio.clone();
        self.wasi = wasi_ctx(&i, &self.stdout, &self.stderr);
        self.scope = i.installation.scope();
        self.installation = i.installation;
        self.function = i.function;
        self.account_id = i.account_id;
        self.endpoints = i.endpoints;
        self.now = i.now;
        self.started = Instant::now();
        self.deadline = i.deadline;
        self.limits = i.limits;
        self.trace = i.trace;
        std::mem::replace(&mut self.world, i.world)
    }

    /// Takes the world out of the store, leaving `empty` in its place.
    pub(crate) fn swap_world(&mut self, empty: Box<World>) -> Box<World> {
        std::mem::replace(&mut self.world, empty)
    }

    pub(crate) fn into_world(self) -> Box<World> {
        self.world
    }

    pub(crate) fn app_id(&self) -> &str {
        &self.app.id
    }

    /// Turns what the guest wrote to stdout (`info`) and stderr (`error`) into log lines:
    /// its complete lines that are not blank, and with `all` (at the end of the invocation)
    /// the rest.
    pub(crate) fn take_output(&mut self, all: bool) {
        for (stream, level) in [
            (self.stdout.clone(), log::Level::Info),
            (self.stderr.clone(), log::Level::Error),
        ] {
            let taken = stream.take(all);
            self.log_lines_dropped += taken.dropped;
            // Blank lines (Rust's panic message starts with one) say nothing: left out.
            for (line, at) in taken.lines {
                if !line.trim().is_empty() {
                    self.push_log(level, line, at);
                }
            }
        }
    }

    /// A Node app's log line (console output), under the same limits as the `log` import.
    pub(crate) fn node_log(&mut self, level: &str, message: String) {
        let level = match level {
            "debug" => log::Level::Debug,
            "warn" => log::Level::Warn,
            "error" => log::Level::Error,
            _ => log::Level::Info,
        };
        log::Host::write(self, level, message);
    }

    fn author(&self) -> String {
        format!("app:{}", self.app.id)
    }

    /// Whether a request carries the site's end-user data: a page's body or title (of a
    /// useful length, so that short words do not match), else the account id of one of the
    /// site's people (page authors, users who called an app), found in its body or URL.
    fn carried_content(&self, url: &str, body: &str) -> Option<String> {
        let c = &self.world.confluence;
        let site = &self.installation.site;
        c.content_in(site, &[body, url])
            .or_else(|| c.account_in(site, &[body, url]))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory limit of one invocation, remembering whether the guest hit it.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    hit: bool,
}

impl Limiter {
    pub(crate) fn new(memory_bytes: u64) -> Limiter {
        Limiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            hit: false,
        }
    }

    pub(crate) fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}

/// WASI's wall clock reads the simulation's clock, frozen for the invocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VirtualWallClock(pub(crate) Millis);

impl HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.0)
    }
}

impl types::Host for HostState {}

impl context::Host for HostState {
    fn current(&mut self) -> context::InvocationContext {
        let i = &self.installation;
        context::InvocationContext {
            app_id: i.app.clone(),
            environment: i.environment.clone(),
            site: i.site.clone(),
            installation: i.id.clone(),
            realm: i.realm.code().to_string(),
            function: self.function.clone(),
            now_ms: self.now.0,
            remaining_ms: self
                .deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
            account_id: self.account_id.clone(),
        }
    }
}

/// The largest payload a queue takes (the platform's async events carry 200 KB).
const MAX_QUEUE_PAYLOAD: usize = 200 * 1024;

impl queue::Host for HostState {
    fn push(&mut self, queue: String, payload: String) -> Result<(), PlatformError> {
        if queue.is_empty() || queue.len() > 100 {
            return Err(PlatformError {
                code: "INVALID_QUEUE".into(),
                message: format!("queue names have 1 to 100 characters, not {}", queue.len()),
            });
        }
        if payload.len() > MAX_QUEUE_PAYLOAD {
            return Err(PlatformError {
                code: "PAYLOAD_TOO_LARGE".into(),
                message: format!(
                    "a queue payload of {} bytes; queues take {MAX_QUEUE_PAYLOAD}",
                    payload.len()
                ),
            });
        }
        json(&queue, &payload)?;
        self.world.pushed.push(QueuePush {
            at: self.now,
            installation: self.installation.id.clone(),
            queue,
            payload,
        });
        Ok(())
    }
}

impl kvs::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let v = self.world.kvs.get_text(&self.scope, realm, now, &key);
        v.map_err(kvs_error)
    }

    fn set(
        &mut self,
        key: String,
        value: String,
        options: kvs::SetOptions,
    ) -> Result<(), PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let options = set_options(options);
        let r = self
            .world
            .kvs
            .set_text(&self.scope, realm, now, &key, &value, options);
        r.map_err(kvs_error)
    }

    fn delete(&mut self, key: String) -> Result<(), PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let r = self.world.kvs.delete(&self.scope, realm, now, &key);
        r.map_err(kvs_error)
    }

    fn query(
        &mut self,
        prefix: String,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> Result<kvs::Page, PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let page = self
            .world
            .kvs
            .query_text(
                &self.scope,
                realm,
                now,
                &prefix,
                limit.map(|l| l as usize),
                cursor.as_deref(),
            )
            .map_err(kvs_error)?;
        Ok(kvs::Page {
            results: page
                .results
                .into_iter()
                .map(|(key, value)| kvs::Entry { key, value })
                .collect(),
            cursor: page.cursor,
        })
    }

    fn transact(&mut self, ops: Vec<kvs::TxOp>) -> Result<(), PlatformError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                kvs::TxOp::Set((key, text, options)) => TxOp::SetText {
                    key,
                    text,
                    options: set_options(options),
                },
                kvs::TxOp::Delete(key) => TxOp::Delete { key },
            })
            .collect();
        let (realm, now) = (self.installation.realm, self.now);
        let r = self.world.kvs.transact(&self.scope, realm, now, ops);
        r.map_err(kvs_error)
    }

    fn batch_set(
        &mut self,
        entries: Vec<kvs::Entry>,
    ) -> Result<Vec<Result<(), PlatformError>>, PlatformError> {
        // A value that is not JSON fails its own entry only, as the batch is best effort.
        let items = entries.into_iter().map(|e| (e.key, e.value)).collect();
        let (realm, now) = (self.installation.realm, self.now);
        let results = self
            .world
            .kvs
            .batch_set_text(&self.scope, realm, now, items)
            .map_err(kvs_error)?;
        Ok(results.into_iter().map(|r| r.map_err(kvs_error)).collect())
    }

    fn get_secret(&mut self, key: String) -> Result<Option<String>, PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let v = self
            .world
            .kvs
            .get_secret_text(&self.scope, realm, now, &key);
        v.map_err(kvs_error)
    }

    fn set_secret(&mut self, key: String, value: String) -> Result<(), PlatformError> {
        let (realm, now) = (self.installation.realm, self.now);
        let r = self
            .world
            .kvs
            .set_secret_text(&self.scope, realm, now, &key, &value);
        r.map_err(kvs_error)
    }
}

impl fetch::Host for HostState {
    fn fetch(&mut self, req: fetch::Request) -> Result<fetch::Response, PlatformError> {
        // 100 per started minute of run time (platform.md §5), as log lines are counted.
        let minutes = self.started.elapsed().as_secs() / 60 + 1;
        if u64::from(self.fetches) >= u64::from(self.limits.max_fetches) * minutes {
            return Err(PlatformError {
                code: "OUTBOUND_REQUEST_LIMIT".into(),
                message: format!(
                    "an invocation may make {} outbound requests per started minute of its run time",
                    self.limits.max_fetches
                ),
            });
        }
        self.fetches += 1;
        let gate = egress::Request {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body_bytes: req.body.len(),
        };
        let verdict = self.app.egress.check(&gate, self.installation.admin);
        let i = &self.installation;
        let mut attempt = EgressAttempt {
            at: self.now,
            site: i.site.clone(),
            installation: i.id.clone(),
            realm: i.realm,
            method: req.method.clone(),
            destination: egress::destination(&req.url),
            category: "other",
            in_scope_eud: true,
            bytes: req.body.len(),
            allowed: false,
            blocked_because: None,
            manifest_entry: None,
            carries: self.carried_content(&req.url, &req.body),
        };
        match verdict {
            Verdict::Blocked(reason) => {
                // An analytics entry the admin switched off is still analytics egress: the
                // ledger says what the entry declares.
                if reason == crate::egress::BlockReason::AnalyticsBlockedByAdmin
                    && let Verdict::Allowed { in_scope_eud, .. } = self
                        .app
                        .egress
                        .check(&gate, crate::egress::AdminSwitches::default())
                {
                    attempt.category = "analytics";
                    attempt.in_scope_eud = in_scope_eud;
                }
                attempt.blocked_because = Some(reason);
                self.world.ledger.push(attempt);
                Err(PlatformError {
                    code: EGRESS_ERROR_CODE.into(),
                    message: format!("{}: {}", egress::destination(&req.url), reason.describe()),
                })
            }
            Verdict::Allowed {
                analytics,
                in_scope_eud,
                entry,
            } => {
                attempt.allowed = true;
                attempt.category = if analytics { "analytics" } else { "other" };
                attempt.in_scope_eud = in_scope_eud;
                attempt.manifest_entry = Some(entry);
                self.world.ledger.push(attempt);
                let host = Address::parse(&req.url).host;
                let Some(endpoint) = self.endpoints.get(&host) else {
                    return Err(PlatformError {
                        code: "HOST_UNREACHABLE".into(),
                        message: format!("no simulated endpoint answers for {host}"),
                    });
                };
                let r = endpoint(&EndpointRequest {
                    method: req.method,
                    url: req.url,
                    headers: req.headers,
                    body: req.body,
                });
                Ok(fetch::Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                })
            }
        }
    }
}

impl product::Host for HostState {
    fn get_page(&mut self, id: String) -> Result<Option<product::Page>, PlatformError> {
        Ok(self
            .world
            .confluence
            .get_page(&self.installation.site, &id)
            .map(page))
    }

    fn create_page(
        &mut self,
        space: String,
        title: String,
        body: String,
    ) -> Result<product::Page, PlatformError> {
        let author = self.author();
        let site = &self.installation.site;
        let r = self
            .world
            .confluence
            .create_page(site, &author, &space, &title, &body);
        r.map(page).map_err(product_error)
    }

    fn update_page(
        &mut self,
        id: String,
        title: String,
        body: String,
        version: u32,
    ) -> Result<product::Page, PlatformError> {
        let author = self.author();
        let site = &self.installation.site;
        let r = self
            .world
            .confluence
            .update_page(site, &author, &id, &title, &body, version);
        r.map(page).map_err(product_error)
    }

    fn get_property(
        &mut self,
        page_id: String,
        key: String,
    ) -> Result<Option<product::ContentProperty>, PlatformError> {
        let site = &self.installation.site;
        Ok(self
            .world
            .confluence
            .get_property(site, &page_id, &key)
            .map(|p| product::ContentProperty {
                key: p.key,
                value: p.value,
                version: p.version,
            }))
    }

    fn set_property(
        &mut self,
        page_id: String,
        key: String,
        value: String,
        version: u32,
    ) -> Result<product::ContentProperty, PlatformError> {
        let site = &self.installation.site;
        let r = self
            .world
            .confluence
            .set_property(site, &page_id, &key, &value, version);
        r.map(|p| product::ContentProperty {
            key: p.key,
            value: p.value,
            version: p.version,
        })
        .map_err(product_error)
    }

    fn get_content_state(
        &mut self,
        page_id: String,
    ) -> Result<Option<product::ContentState>, PlatformError> {
        let site = &self.installation.site;
        Ok(self
            .world
            .confluence
            .get_content_state(site, &page_id)
            .map(|s| product::ContentState {
                name: s.name,
                color: s.color,
            }))
    }

    fn set_content_state(
        &mut self,
        page_id: String,
        state: product::ContentState,
    ) -> Result<product::Page, PlatformError> {
        let author = self.author();
        let site = &self.installation.site;
        let state = ContentState {
            name: state.name,
            color: state.color,
        };
        let r = self
            .world
            .confluence
            .set_content_state(site, &author, &page_id, state);
        r.map(page).map_err(product_error)
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        // What the guest printed before this line comes before it.
        self.take_output(false);
        self.push_log(level, message, Instant::now());
    }
}

impl HostState {
    /// One log line written at `at`, within the limits: 100 lines per started minute of run
    /// time (counted at `at`), 200 KB per invocation; the rest is dropped and counted.
    fn push_log(&mut self, level: log::Level, message: String, at: Instant) {
        let minutes = at.saturating_duration_since(self.started).as_secs() / 60 + 1;
        let lines_allowed = self.limits.log_lines_per_minute as u64 * minutes;
        if self.log_lines as u64 >= lines_allowed
            || self.log_bytes + message.len() > self.limits.max_log_bytes
        {
            self.log_lines_dropped += 1;
            return;
        }
        self.log_lines += 1;
        self.log_bytes += message.len();
        if !self.trace {
            return;
        }
        self.world.logs.push(LogLine {
            at: self.now,
            installation: self.installation.id.clone(),
            function: self.function.clone(),
            level: match level {
                log::Level::Debug => "debug",
                log::Level::Info => "info",
                log::Level::Warn => "warn",
                log::Level::Error => "error",
            },
            message,
            shared_with_vendor: !self.installation.admin.logs_blocked,
        });
    }
}

impl analytics::Host for HostState {
    fn track(&mut self, event: String, properties: String) -> Result<(), PlatformError> {
        json(&event, &properties)?;
        if !self.trace {
            return Ok(());
        }
        self.world.analytics.push(AnalyticsEvent {
            at: self.now,
            installation: self.installation.id.clone(),
            event,
            properties,
            delivered: !self.installation.admin.analytics_blocked,
        });
        Ok(())
    }
}

fn json(what: &str, text: &str) -> Result<serde_json::Value, PlatformError> {
    serde_json::from_str(text).map_err(|e| PlatformError {
        code: "INVALID_JSON".into(),
        message: format!("the value of `{what}` is not JSON: {e}"),
    })
}

fn set_options(o: kvs::SetOptions) -> SetOptions {
    SetOptions {
        ttl_ms: o.ttl_ms,
        fail_if_exists: o.fail_if_exists,
    }
}

fn kvs_error(e: KvsError) -> PlatformError {
    PlatformError {
        code: e.code.as_str().into(),
        message: e.message,
    }
}

fn product_error(e: ProductError) -> PlatformError {
    PlatformError {
        code: e.code.into(),
        message: e.message,
    }
}

fn page(p: crate::product::Page) -> product::Page {
    product::Page {
        id: p.id,
        space: p.space,
        title: p.title,
        body: p.body,
        author: p.author,
        version: p.version,
    }
}

/// No preopened directories, no environment, no arguments, stdin closed, stdout and stderr
/// kept to become log lines, no sockets and no name lookups; the wall clock is the
/// simulation's, and randomness comes from the simulation's seed.
fn wasi_ctx(i: &Invocation, stdout: &Captured, stderr: &Captured) -> WasiCtx {
    let bytes: Vec<u8> = i.random[1..].iter().flat_map(|w| w.to_le_bytes()).collect();
    let seed = u128::from(i.random[0]) << 64 | u128::from(i.random[1]);
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(i.wall_clock)
        .secure_random(Deterministic::new(bytes.clone()))
        .insecure_random(Deterministic::new(bytes))
        .insecure_random_seed(seed)
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .build()
}
