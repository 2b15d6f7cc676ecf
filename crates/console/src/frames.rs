//! The apps' Custom UI in the console: each opened module gets a frame (an id naming the
//! installation, the module, the user and the page or space it is shown for), served from the
//! frames' own origin. The frame's HTML gets the console's bridge script first in `<head>`,
//! as the platform prepends its own (shared/spec/forge-node-runtime.md §5): it defines
//! `window.__bridge.callBridge`, which `@forge/bridge` calls, and sends `invoke` and
//! `getContext` here. `invoke` runs the module's resolver function as the frame's user.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::{Path as UrlPath, State as Axum};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use signoff_sim::host::{InvocationError, UiContext};

use crate::api::{Answer, Refused, Shared, State, UiModule, parse};

/// An opened module.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) installation: String,
    pub(crate) module: UiModule,
    pub(crate) account: String,
    /// What `view.getContext()` answers.
    pub(crate) context: Json,
    /// `permissions.content` options of the manifest (`unsafe-inline` for scripts, styles).
    pub(crate) inline_scripts: bool,
    pub(crate) inline_styles: bool,
}

/// The largest file of a resource the console serves.
const MAX_FILE: u64 = 32 << 20;

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/__signoff/bridge.js", get(bridge_script))
        .route("/frame/{id}/bridge", post(bridge))
        .route(
            "/frame/{id}/",
            get(|s, UrlPath(id): UrlPath<String>| file(s, id, String::new())),
        )
        .route(
            "/frame/{id}/{*path}",
            get(|s, UrlPath((id, path)): UrlPath<(String, String)>| file(s, id, path)),
        )
        .layer(axum::middleware::from_fn(crate::api::guard))
        .with_state(shared)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Open {
    installation: String,
    /// The module's key.
    module: String,
    /// The user the module is shown to (a name of the site's users or an account id).
    #[serde(rename = "as")]
    user: String,
    /// For content modules (byline items, content actions, macros): the page.
    page_id: Option<String>,
    /// For space modules (space settings, space pages): the space key.
    space_key: Option<String>,
}

/// `POST /api/frames`: opens a module for a user; answers the frame's URL.
pub(crate) async fn open(Axum(s): Axum<Shared>, body: axum::body::Bytes) -> Answer {
    let o: Open = parse(&body)?;
    let frames = s.addresses.frames;
    s.run(move |st| {
        let installed = st.installation(&o.installation)?;
        let module = st
            .ui_modules(&o.installation)
            .into_iter()
            .find(|m| m.key == o.module)
            .ok_or_else(|| {
                Refused::not_found(format!(
                    "installation {:?} has no module {:?} with a Custom UI",
                    o.installation, o.module
                ))
            })?;
        let account = st.user(&installed.site, &o.user)?;
        let site = st.site(&installed.site)?.clone();
        let extension = match (&o.page_id, &o.space_key) {
            (Some(page), _) => {
                let p = st
                    .sim
                    .platform()
                    .pages()
                    .get_page(&site.host, page)
                    .ok_or_else(|| {
                        Refused::not_found(format!("no page {page:?} on {}", site.host))
                    })?;
                json!({
                    "type": "page",
                    "content": {"id": p.id, "type": "page"},
                    "space": {"id": p.space, "key": p.space},
                })
            }
            (None, Some(space)) => json!({"space": {"id": space, "key": space}}),
            (None, None) => json!({}),
        };
        let id = st.next_frame_id();
        let i = st.sim.platform().installation(&o.installation).cloned();
        let context = json!({
            "accountId": account,
            "cloudId": site.host,
            "siteUrl": format!("https://{}", site.host),
            "locale": "en-US",
            "timezone": "UTC",
            "moduleKey": module.key,
            "localId": id,
            "environmentType": "DEVELOPMENT",
            "environmentId": i.map(|i| i.environment).unwrap_or_default(),
            "extension": extension,
            "theme": {"colorMode": "light"},
        });
        let csp = &installed.version.manifest.csp;
        let allows = |list: &str| {
            csp.iter()
                .any(|c| c.list == list && c.value.trim_matches('\'') == "unsafe-inline")
        };
        let frame = Frame {
            installation: o.installation.clone(),
            module,
            account,
            context,
            inline_scripts: allows("scripts"),
            inline_styles: allows("styles"),
        };
        let title = frame.module.title.clone();
        st.frames.insert(id.clone(), frame);
        Ok(axum::Json(json!({
            "id": id,
            "url": format!("http://{frames}/frame/{id}/"),
            "title": title,
        })))
    })
    .await?
}

/// The bridge script, with the console's origin for the messages it sends it.
async fn bridge_script(Axum(s): Axum<Shared>) -> Response {
    let script = include_str!("assets/bridge.js").replace(
        "__CONSOLE_ORIGIN__",
        &format!("http://{}", s.addresses.console),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    (headers, script).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeCall {
    cmd: String,
    #[serde(default)]
    payload: Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokePayload {
    function_key: String,
    #[serde(default)]
    payload: Json,
}

/// `POST /frame/{id}/bridge`: a `callBridge` command the frame's script cannot answer itself.
async fn bridge(
    Axum(s): Axum<Shared>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Answer {
    let call: BridgeCall = parse(&body)?;
    s.run(move |st| {
        let frame = st
            .frames
            .get(&id)
            .cloned()
            .ok_or_else(|| Refused::not_found(format!("no frame {id:?}")))?;
        match call.cmd.as_str() {
            "getContext" => Ok(axum::Json(frame.context.clone())),
            "invoke" => invoke(st, &frame, call.payload),
            other => Err(Refused::bad(
                "NOT_SIMULATED",
                format!("the console does not answer the bridge command {other:?}"),
            )),
        }
    })
    .await?
}

fn invoke(st: &mut State, frame: &Frame, payload: Json) -> Answer {
    let p: InvokePayload = serde_json::from_value(payload)
        .map_err(|e| Refused::bad("BAD_PAYLOAD", format!("invoke: {e}")))?;
    let function = frame.module.resolver.clone().ok_or_else(|| {
        Refused::bad(
            "NO_RESOLVER",
            format!("module {:?} names no resolver function", frame.module.key),
        )
    })?;
    let ui = ui_of(&frame.context);
    let result = st
        .sim
        .call_resolver_from(
            &frame.installation,
            Some(&function),
            Some(&frame.account),
            &p.function_key,
            &p.payload.to_string(),
            Some(&ui),
        )
        .map_err(|e| Refused::bad("REFUSED", e.to_string()))?;
    let who = frame.account.clone();
    match result {
        Ok(text) => {
            st.note(json!(format!("{who} called {}: ok", p.function_key)));
            let value = serde_json::from_str(&text).unwrap_or(Json::Null);
            Ok(axum::Json(json!({"result": value})))
        }
        Err(e) => {
            let (code, message) = match &e {
                InvocationError::App { code, message } => (code.clone(), message.clone()),
                // As the platform answers a front end over its rate limit (HTTP 429).
                // The console's clock moves only when asked, so say how to let more through.
                e @ InvocationError::RateLimited { .. } => (
                    "RATE_LIMIT_EXCEEDED".to_string(),
                    format!("{e} (minutes of virtual time: move the clock to go on)"),
                ),
                other => ("INVOCATION_FAILED".to_string(), other.to_string()),
            };
            st.note(json!(format!("{who} called {}: {code}", p.function_key)));
            Ok(axum::Json(
                json!({"error": {"code": code, "message": message}}),
            ))
        }
    }
}

/// What the resolver's context says of the frame that called it: its module, localId and
/// extension (the page or space it is shown on), from what `view.getContext()` answers
/// there, as the platform forwards them.
fn ui_of(context: &Json) -> UiContext {
    let text = |k: &str| context[k].as_str().map(str::to_string);
    UiContext {
        module_key: text("moduleKey"),
        local_id: text("localId"),
        extension: context["extension"].clone(),
    }
}

/// A file of the frame's resource; HTML gets the bridge script first in `<head>`.
async fn file(Axum(s): Axum<Shared>, id: String, path: String) -> Response {
    let console = s.addresses.console;
    let frame = s.run(move |st| st.frames.get(&id).cloned()).await;
    let frame = match frame {
        Ok(Some(f)) => f,
        Ok(None) => return Refused::not_found("no such frame").into_response(),
        Err(e) => return e.into_response(),
    };
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path
    };
    let found = tokio::task::spawn_blocking(move || {
        read(&frame.module.dir, &path).map(|b| (b, path, frame))
    })
    .await;
    let (bytes, path, frame) = match found {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let kind = content_type(&path);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // The platform's policy for Custom UI (inline code only where the manifest's
    // `permissions.content` allows it; requests to the frame's own origin only), and only the
    // console may embed the frame.
    let inline = |yes: bool| if yes { " 'unsafe-inline'" } else { "" };
    let csp = format!(
        "default-src 'self'; script-src 'self'{}; style-src 'self'{}; img-src 'self' data: blob:; \
         font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
         frame-ancestors http://{console}",
        inline(frame.inline_scripts),
        inline(frame.inline_styles),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if kind.starts_with("text/html") {
        let html = String::from_utf8_lossy(&bytes);
        return (headers, with_bridge(&html)).into_response();
    }
    (headers, bytes).into_response()
}

/// Puts the bridge script first in `<head>` (or first in the document without one).
fn with_bridge(html: &str) -> String {
    const TAG: &str = "<script src=\"/__signoff/bridge.js\"></script>";
    let lower = html.to_ascii_lowercase();
    match lower.find("<head") {
        Some(at) => match lower[at..].find('>') {
            Some(end) => {
                let cut = at + end + 1;
                format!("{}{TAG}{}", &html[..cut], &html[cut..])
            }
            None => format!("{TAG}{html}"),
        },
        None => format!("{TAG}{html}"),
    }
}

/// Reads `path` under `dir`: no `..`, no absolute path, nothing that resolves outside.
fn read(dir: &Path, path: &str) -> Result<Vec<u8>, Refused> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(Refused::bad(
            "BAD_PATH",
            format!("{path:?} is not a plain relative path"),
        ));
    }
    let missing = || {
        Refused::not_found(format!(
            "{path:?} is not in the resource folder {} (was the UI built?)",
            dir.display()
        ))
    };
    let root = dir.canonicalize().map_err(|_| missing())?;
    let full: PathBuf = root.join(relative).canonicalize().map_err(|_| missing())?;
    if !full.starts_with(&root) {
        return Err(Refused::bad(
            "BAD_PATH",
            format!("{path:?} leads outside the resource"),
        ));
    }
    let meta = std::fs::metadata(&full).map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    if meta.len() > MAX_FILE {
        return Err(Refused::bad(
            "TOO_LARGE",
            format!("{path:?} is over 32 MiB"),
        ));
    }
    std::fs::read(&full).map_err(|_| missing())
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolver_call_names_the_frame_it_came_from() {
        let context = serde_json::json!({
            "accountId": "alice",
            "moduleKey": "approval-byline",
            "localId": "f3",
            "extension": {"type": "page", "content": {"id": "42", "type": "page"}, "space": {"id": "ENG", "key": "ENG"}},
        });
        let ui = ui_of(&context);
        assert_eq!(
            (ui.module_key.as_deref(), ui.local_id.as_deref()),
            (Some("approval-byline"), Some("f3"))
        );
        assert_eq!(ui.extension["content"]["id"], "42");
    }

    #[test]
    fn the_bridge_goes_first_in_head() {
        assert_eq!(
            with_bridge("<!doctype html><HTML><Head lang=x><script src=a.js></script></head>"),
            "<!doctype html><HTML><Head lang=x><script src=\"/__signoff/bridge.js\"></script><script src=a.js></script></head>"
        );
        assert_eq!(
            with_bridge("<p>hi</p>"),
            "<script src=\"/__signoff/bridge.js\"></script><p>hi</p>"
        );
    }

    #[test]
    fn paths_stay_inside_the_resource() {
        let dir = std::env::temp_dir().join(format!("signoff-console-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ui")).unwrap();
        std::fs::write(dir.join("ui/index.html"), "ok").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        let ui = dir.join("ui");
        assert_eq!(read(&ui, "index.html").unwrap(), b"ok");
        for bad in ["../secret.txt", "/etc/passwd", "a/../../secret.txt"] {
            assert_eq!(read(&ui, bad).unwrap_err().code, "BAD_PATH", "{bad}");
        }
        assert_eq!(read(&ui, "nothing.js").unwrap_err().code, "NOT_FOUND");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret.txt"), ui.join("link.txt")).unwrap();
            assert_eq!(read(&ui, "link.txt").unwrap_err().code, "BAD_PATH");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
