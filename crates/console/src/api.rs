//! The console's own pages and its JSON API over the simulation. Every handler hands a job
//! to the simulation's thread and waits for its answer; a refused request (an unknown page,
//! user or installation, a malformed body) is a 4xx with `{"error": {"code", "message"}}`
//! and changes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;

use axum::Router;
use axum::extract::{Query, State as Axum};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use signoff_sim::Realm;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::Simulation;
use signoff_sim::report::RoaReport;
use signoff_sim::scenario::{RunOutcome, World};

use crate::{Addresses, Job};

/// The simulation and what the console keeps beside it. Lives on the simulation's thread.
pub struct State {
    pub(crate) sim: Simulation,
    pub(crate) world: World,
    pub(crate) file: String,
    pub(crate) seed: u64,
    /// The apps' frames handed out so far, by id.
    pub(crate) frames: BTreeMap<String, crate::frames::Frame>,
    next_frame: u64,
    /// What the console did, newest last: shown beside the clock.
    activity: Vec<Json>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("file", &self.file)
            .field("frames", &self.frames.len())
            .finish_non_exhaustive()
    }
}

/// The most frames remembered at once.
const MAX_FRAMES: u64 = 1000;

/// What every handler shares: the way to the simulation.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) jobs: mpsc::Sender<Job>,
    pub(crate) addresses: Addresses,
}

/// A refused request.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refused {
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

pub(crate) type Answer = Result<axum::Json<Json>, Refused>;

impl Shared {
    /// Runs `f` on the simulation's thread and returns its answer.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        let gone = || Refused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "STOPPED",
            message: "the simulation has stopped".into(),
        };
        self.jobs.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    async fn answer(
        &self,
        f: impl FnOnce(&mut State) -> Result<Json, Refused> + Send + 'static,
    ) -> Answer {
        self.run(f).await?.map(axum::Json)
    }
}

pub(crate) fn console_router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/console.js", get(|| async { asset("console.js") }))
        .route("/console.css", get(|| async { asset("console.css") }))
        .route("/api/state", get(state))
        .route("/api/page", get(page))
        .route("/api/page/create", post(create_page))
        .route("/api/page/edit", post(edit_page))
        .route("/api/clock", post(clock))
        .route("/api/ledger", get(ledger))
        .route("/api/report", get(report))
        .route("/api/storage", get(storage))
        .route("/api/logs", get(logs))
        .route("/api/invocations", get(invocations))
        .route("/api/admin", post(admin))
        .route("/api/migrate", post(migrate))
        .route("/api/consent", post(consent))
        .route("/api/frames", post(crate::frames::open))
        .layer(axum::middleware::from_fn(guard))
        .with_state(shared)
}

/// Requests must name this machine (no DNS rebinding), and a request that changes anything
/// must carry `x-signoff-console` (a header a page of another origin cannot send without a
/// preflight, which the console never grants).
pub(crate) async fn guard(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    if !matches!(name, "127.0.0.1" | "localhost") {
        return Refused {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN_HOST",
            message: format!("the console answers 127.0.0.1 and localhost only, not {host:?}"),
        }
        .into_response();
    }
    if request.method() != axum::http::Method::GET
        && !request.headers().contains_key("x-signoff-console")
    {
        return Refused {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: "a request that changes something needs the header x-signoff-console".into(),
        }
        .into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The console's own files, built into the binary.
fn asset(name: &str) -> Response {
    let (body, kind): (&'static str, &'static str) = match name {
        "index.html" => (
            include_str!("assets/index.html"),
            "text/html; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-src http://127.0.0.1:*; img-src 'self' data:; style-src 'self'; script-src 'self'",
        ),
    );
    (headers, body).into_response()
}

impl State {
    pub(crate) fn new(outcome: RunOutcome) -> State {
        State {
            world: outcome.world,
            file: outcome.file,
            seed: outcome.seed,
            sim: outcome.sim,
            frames: BTreeMap::new(),
            next_frame: 1,
            activity: Vec::new(),
        }
    }

    pub(crate) fn next_frame_id(&mut self) -> String {
        let id = format!("f{}", self.next_frame);
        self.next_frame += 1;
        // A long session opens frames without end: the oldest are forgotten (a forgotten
        // frame's page answers 404 and the console opens a new one).
        if self.next_frame > MAX_FRAMES {
            self.frames
                .remove(&format!("f{}", self.next_frame - MAX_FRAMES));
        }
        id
    }

    pub(crate) fn note(&mut self, what: Json) {
        self.activity
            .push(json!({"at": self.sim.now().0, "what": what}));
        if self.activity.len() > 200 {
            self.activity.remove(0);
        }
    }

    /// A site by its scenario name or its host.
    pub(crate) fn site(&self, name: &str) -> Result<&signoff_sim::scenario::SiteInfo, Refused> {
        self.world
            .sites
            .iter()
            .find(|s| s.name == name || s.host == name)
            .ok_or_else(|| Refused::not_found(format!("no site {name:?} in this scenario")))
    }

    /// The realm a site's data lives in now (it moves when the site migrates).
    fn site_realm(&self, name: &str) -> Option<Realm> {
        let (id, _) = self
            .world
            .installs
            .iter()
            .find(|(_, (_, site))| site == name)?;
        Some(self.sim.platform().installation(id)?.realm)
    }

    /// A user of a site: by scenario name or account id; answers the account id.
    pub(crate) fn user(&self, site: &str, user: &str) -> Result<String, Refused> {
        let s = self.site(site)?;
        s.users
            .iter()
            .find(|(name, account)| *name == user || *account == user)
            .map(|(_, account)| account.clone())
            .ok_or_else(|| Refused::not_found(format!("no user {user:?} on site {:?}", s.name)))
    }

    /// The installation's app and manifest folder, and its running version's manifest.
    pub(crate) fn installation(&self, id: &str) -> Result<Installed, Refused> {
        let (app_name, site_name) = self
            .world
            .installs
            .get(id)
            .ok_or_else(|| Refused::not_found(format!("no installation {id:?}")))?;
        let app = self
            .world
            .apps
            .iter()
            .find(|a| &a.name == app_name)
            .ok_or_else(|| Refused::not_found(format!("no app {app_name:?}")))?;
        let (running, _) = self
            .sim
            .running(id)
            .ok_or_else(|| Refused::not_found(format!("no installation {id:?}")))?;
        let version = self
            .sim
            .versions(&app.id)
            .iter()
            .find(|v| v.number == running)
            .cloned()
            .ok_or_else(|| Refused::not_found(format!("no running version of {id:?}")))?;
        Ok(Installed {
            site: site_name.clone(),
            dir: app.manifest.parent().map(PathBuf::from).unwrap_or_default(),
            version,
        })
    }

    /// The UI modules (those with a `resource`) of an installation's running version.
    pub(crate) fn ui_modules(&self, id: &str) -> Vec<UiModule> {
        let Ok(i) = self.installation(id) else {
            return Vec::new();
        };
        let m = &i.version.manifest;
        let resources: BTreeMap<String, String> = m
            .root
            .get("resources")
            .and_then(signoff_yaml::Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .filter_map(|r| {
                Some((
                    r.get("key")?.scalar_string()?,
                    r.get("path")?.scalar_string()?,
                ))
            })
            .collect();
        m.modules
            .iter()
            .filter_map(|module| {
                let resource = module.field("resource")?.trim().to_string();
                let path = resources.get(&resource)?;
                let title = module
                    .node
                    .get("title")
                    .and_then(|t| t.scalar_string().or_else(|| t.get("text")?.scalar_string()))
                    .unwrap_or_else(|| module.key.clone().unwrap_or_default());
                let text = |field: &str| {
                    module
                        .node
                        .get(field)
                        .and_then(|t| t.scalar_string().or_else(|| t.get("text")?.scalar_string()))
                };
                Some(UiModule {
                    kind: module.kind.clone(),
                    key: module.key.clone()?,
                    title,
                    tooltip: text("tooltip"),
                    content_property_key: module
                        .field("contentPropertyKey")
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty()),
                    dir: i.dir.join(path),
                    resolver: module
                        .node
                        .get("resolver")
                        .and_then(|r| r.get("function"))
                        .and_then(signoff_yaml::Node::as_str)
                        .map(|s| s.trim().to_string()),
                })
            })
            .collect()
    }
}

/// The longest byline title or tooltip the console draws from a content property, in
/// characters; a longer one is cut with an ellipsis.
const BYLINE_TEXT_MAX: usize = 120;

impl State {
    /// The app items drawn on a page (content byline items, content actions) of every
    /// installation on the site: their titles and tooltips as Confluence draws them, from the
    /// manifest or, for a byline item with a `contentPropertyKey`, from that property of the
    /// page when it holds a JSON object with a string `title` (and `tooltip`). A property
    /// that is missing or holds something else leaves the manifest's text.
    pub(crate) fn page_items(&self, site: &str, page: &str) -> Result<Vec<Json>, Refused> {
        let info = self.site(site)?;
        let pages = self.sim.platform().pages();
        let mut items = Vec::new();
        for (id, (_, on)) in &self.world.installs {
            if *on != info.name {
                continue;
            }
            for m in self.ui_modules(id) {
                if m.kind != "confluence:contentBylineItem" && m.kind != "confluence:contentAction"
                {
                    continue;
                }
                let mut title = m.title.clone();
                let mut tooltip = m.tooltip.clone();
                let mut from = None;
                let property = m
                    .content_property_key
                    .as_deref()
                    .filter(|_| m.kind == "confluence:contentBylineItem")
                    .and_then(|key| pages.get_property(&info.host, page, key));
                if let Some(p) = property
                    && let Ok(Json::Object(v)) = serde_json::from_str::<Json>(&p.value)
                    && let Some(t) = v
                        .get("title")
                        .and_then(Json::as_str)
                        .filter(|t| !t.trim().is_empty())
                {
                    title = cut(t);
                    tooltip = v.get("tooltip").and_then(Json::as_str).map(cut).or(tooltip);
                    from = Some(p.key.clone());
                }
                items.push(json!({
                    "installation": id, "kind": m.kind, "key": m.key,
                    "title": title, "tooltip": tooltip, "fromProperty": from,
                }));
            }
        }
        Ok(items)
    }
}

/// A text cut to [`BYLINE_TEXT_MAX`] characters.
fn cut(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= BYLINE_TEXT_MAX {
        return text.to_string();
    }
    let mut out: String = text.chars().take(BYLINE_TEXT_MAX - 1).collect();
    out.push('…');
    out
}

/// An installation as the console needs it.
pub(crate) struct Installed {
    /// The scenario's site name.
    pub(crate) site: String,
    /// The manifest's folder.
    pub(crate) dir: PathBuf,
    pub(crate) version: std::sync::Arc<signoff_sim::flow::AppVersion>,
}

/// A module with a Custom UI resource.
#[derive(Debug, Clone)]
pub(crate) struct UiModule {
    pub(crate) kind: String,
    pub(crate) key: String,
    pub(crate) title: String,
    /// The manifest's `tooltip`.
    pub(crate) tooltip: Option<String>,
    /// A content byline item's `contentPropertyKey`: the page property whose `title` and
    /// `tooltip` replace the manifest's when the page is drawn.
    pub(crate) content_property_key: Option<String>,
    pub(crate) dir: PathBuf,
    pub(crate) resolver: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Handlers.

async fn state(Axum(s): Axum<Shared>) -> Answer {
    s.answer(|st| {
        let sites: Vec<Json> = st
            .world
            .sites
            .iter()
            .map(|site| {
                let mut spaces: BTreeMap<String, Vec<Json>> = BTreeMap::new();
                let pages = st.sim.platform().pages();
                let mut list: Vec<_> = pages.pages(&site.host).collect();
                list.sort_by(|a, b| a.space.cmp(&b.space).then(a.title.cmp(&b.title)));
                for p in list {
                    let trashed = pages.is_trashed(&site.host, &p.id);
                    let lozenge = pages.get_content_state(&site.host, &p.id);
                    spaces.entry(p.space.clone()).or_default().push(json!({
                        "id": p.id, "title": p.title, "version": p.version,
                        "trashed": trashed, "state": lozenge,
                    }));
                }
                json!({
                    "name": site.name, "host": site.host,
                    "realm": st.site_realm(&site.name).unwrap_or(site.realm),
                    "users": site.users.iter().map(|(n, a)| json!({"name": n, "accountId": a})).collect::<Vec<_>>(),
                    "spaces": spaces.into_iter().map(|(k, p)| json!({"key": k, "pages": p})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let installs: Vec<Json> = st
            .world
            .installs
            .iter()
            .map(|(id, (app, site))| {
                let (version, awaiting) = st.sim.running(id).unwrap_or((0, None));
                let i = st.sim.platform().installation(id);
                let modules: Vec<Json> = st
                    .ui_modules(id)
                    .into_iter()
                    .map(|m| json!({"kind": m.kind, "key": m.key, "title": m.title}))
                    .collect();
                json!({
                    "id": id, "app": app, "site": site, "version": version,
                    "awaitingConsent": awaiting,
                    "realm": i.map(|i| i.realm),
                    "analyticsBlocked": i.is_some_and(|i| i.admin.analytics_blocked),
                    "logsBlocked": i.is_some_and(|i| i.admin.logs_blocked),
                    "modules": modules,
                })
            })
            .collect();
        Ok(json!({
            "scenario": st.file,
            "seed": st.seed,
            "now": st.sim.now().0,
            "pending": st.sim.pending(),
            "stats": st.sim.stats(),
            "sites": sites,
            "installations": installs,
            "realms": Realm::ALL.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "activity": st.activity.iter().rev().take(20).collect::<Vec<_>>(),
        }))
    })
    .await
}

#[derive(Deserialize)]
struct PageQuery {
    site: String,
    id: String,
}

async fn page(Axum(s): Axum<Shared>, Query(q): Query<PageQuery>) -> Answer {
    s.answer(move |st| {
        let host = st.site(&q.site)?.host.clone();
        let pages = st.sim.platform().pages();
        let page = pages
            .get_page(&host, &q.id)
            .ok_or_else(|| Refused::not_found(format!("no page {:?} on {host}", q.id)))?;
        let items = st.page_items(&q.site, &q.id)?;
        Ok(json!({
            "site": host,
            "page": page,
            "items": items,
            "trashed": pages.is_trashed(&host, &q.id),
            "state": pages.get_content_state(&host, &q.id),
            "history": pages.history(&host, &q.id),
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePage {
    site: String,
    #[serde(rename = "as")]
    user: String,
    space: String,
    title: String,
    body: String,
}

async fn create_page(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let p: CreatePage = parse(&body)?;
    s.answer(move |st| {
        let host = st.site(&p.site)?.host.clone();
        let account = st.user(&p.site, &p.user)?;
        let page = st
            .sim
            .create_page(&host, &account, &p.space, &p.title, &p.body)
            .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
        st.note(json!(format!(
            "{account} created page {} \"{}\"",
            page.id, page.title
        )));
        Ok(json!({"page": page}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditPage {
    site: String,
    #[serde(rename = "as")]
    user: String,
    id: String,
    title: Option<String>,
    body: String,
}

async fn edit_page(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let p: EditPage = parse(&body)?;
    s.answer(move |st| {
        let host = st.site(&p.site)?.host.clone();
        let account = st.user(&p.site, &p.user)?;
        let page = st
            .sim
            .edit_page(&host, &account, &p.id, p.title.as_deref(), &p.body)
            .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
        st.note(json!(format!(
            "{account} edited page {} (version {})",
            page.id, page.version
        )));
        Ok(json!({"page": page}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    /// How far to move virtual time: `90s`, `15m`, `1h`, `1d`, or milliseconds.
    advance: Json,
}

/// The longest single move of the clock: a simulated year.
const MAX_ADVANCE_MS: u64 = 366 * 86_400_000;

async fn clock(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let c: Clock = parse(&body)?;
    let ms = match &c.advance {
        Json::Number(n) => n.as_u64(),
        Json::String(t) => signoff_sim::scenario::parse_duration(t.trim()),
        _ => None,
    }
    .filter(|ms| *ms <= MAX_ADVANCE_MS)
    .ok_or_else(|| {
        Refused::bad(
            "BAD_DURATION",
            format!(
                "advance: {} is not a duration of at most a year (90s, 15m, 1h, 1d)",
                c.advance
            ),
        )
    })?;
    s.answer(move |st| {
        let before = st.sim.stats().invocations;
        st.sim.run_for(ms);
        let ran = st.sim.stats().invocations - before;
        st.note(json!(format!(
            "the clock moved {ms} ms; {ran} invocation(s) ran"
        )));
        Ok(json!({"now": st.sim.now().0, "invocations": ran, "pending": st.sim.pending()}))
    })
    .await
}

async fn ledger(Axum(s): Axum<Shared>) -> Answer {
    s.answer(|st| Ok(json!({"ledger": st.sim.platform().ledger()})))
        .await
}

async fn report(Axum(s): Axum<Shared>) -> Answer {
    s.answer(|st| {
        let reports: Vec<Json> = st
            .world
            .apps
            .iter()
            .filter_map(|a| {
                let r = RoaReport::of(&st.sim, &a.id)?;
                Some(json!({"app": a.name, "text": r.to_text(), "report": r}))
            })
            .collect();
        Ok(json!({"reports": reports}))
    })
    .await
}

#[derive(Deserialize)]
struct StorageQuery {
    installation: String,
}

async fn storage(Axum(s): Axum<Shared>, Query(q): Query<StorageQuery>) -> Answer {
    s.answer(move |st| {
        let i = st
            .sim
            .platform()
            .installation(&q.installation)
            .cloned()
            .ok_or_else(|| Refused::not_found(format!("no installation {:?}", q.installation)))?;
        let keys = st
            .sim
            .platform()
            .inspect(&q.installation)
            .map_err(|e| Refused::bad("STORAGE", e.to_string()))?;
        Ok(json!({
            "installation": i.id, "realm": i.realm, "site": i.site,
            "keys": keys.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        }))
    })
    .await
}

async fn logs(Axum(s): Axum<Shared>) -> Answer {
    s.answer(|st| Ok(json!({"logs": st.sim.platform().logs()})))
        .await
}

async fn invocations(Axum(s): Axum<Shared>) -> Answer {
    s.answer(|st| {
        let trace = st.sim.platform().trace();
        let recent = &trace[trace.len().saturating_sub(200)..];
        Ok(json!({"total": trace.len(), "invocations": recent}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Admin {
    installation: String,
    analytics_blocked: Option<bool>,
    logs_blocked: Option<bool>,
}

async fn admin(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let a: Admin = parse(&body)?;
    s.answer(move |st| {
        let i = st
            .sim
            .platform()
            .installation(&a.installation)
            .cloned()
            .ok_or_else(|| Refused::not_found(format!("no installation {:?}", a.installation)))?;
        let switches = AdminSwitches {
            analytics_blocked: a.analytics_blocked.unwrap_or(i.admin.analytics_blocked),
            logs_blocked: a.logs_blocked.unwrap_or(i.admin.logs_blocked),
        };
        st.sim
            .set_admin(&a.installation, switches)
            .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
        st.note(json!(format!(
            "the admin of {} set analytics {}, logs {}",
            a.installation,
            if switches.analytics_blocked { "blocked" } else { "allowed" },
            if switches.logs_blocked { "not shared" } else { "shared" },
        )));
        Ok(json!({"analyticsBlocked": switches.analytics_blocked, "logsBlocked": switches.logs_blocked}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Migrate {
    site: String,
    realm: String,
}

async fn migrate(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let m: Migrate = parse(&body)?;
    let realm: Realm = m
        .realm
        .parse()
        .map_err(|e: signoff_sim::realm::UnknownRealm| Refused::bad("BAD_REALM", e.to_string()))?;
    s.answer(move |st| {
        let host = st.site(&m.site)?.host.clone();
        let moved = st
            .sim
            .migrate_site(&host, realm)
            .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
        st.note(json!(format!(
            "site {host} migrated to {realm}: {moved} key(s) moved"
        )));
        Ok(json!({"realm": realm, "moved": moved}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    installation: String,
}

async fn consent(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let c: Consent = parse(&body)?;
    s.answer(move |st| {
        let version = st
            .sim
            .consent(&c.installation)
            .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
        st.note(json!(format!(
            "the admin of {} consented: version {version} runs",
            c.installation
        )));
        Ok(json!({"version": version}))
    })
    .await
}

/// A JSON body of at most 1 MiB.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refused> {
    if body.len() > 1 << 20 {
        return Err(Refused::bad("TOO_LARGE", "the body is over 1 MiB"));
    }
    serde_json::from_slice(body).map_err(|e| Refused::bad("BAD_BODY", format!("the body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{BYLINE_TEXT_MAX, cut};

    #[test]
    fn byline_texts_are_trimmed_and_cut_at_the_limit() {
        assert_eq!(cut("  Approval: Draft "), "Approval: Draft");
        let exact = "é".repeat(BYLINE_TEXT_MAX);
        assert_eq!(cut(&exact), exact);
        let long = cut(&"é".repeat(BYLINE_TEXT_MAX + 1));
        assert_eq!(long.chars().count(), BYLINE_TEXT_MAX);
        assert!(long.ends_with('…'));
    }
}
