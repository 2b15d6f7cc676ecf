//! What a Node app's platform calls do. `__forge_fetch__` and the intercepted `fetch`/`http`
//! arrive here as `call` frames and are answered by the same platform the wasm host serves:
//! the hosted store (the KVS wire protocol of `@forge/kvs`), Confluence's REST API, queues
//! (`@forge/events`), and the egress gate with its ledger. Routes and shapes follow
//! `shared/spec/forge-node-runtime.md` §1, §2, §3.6 and §4.

use serde_json::{Value, json};

use super::entities::EntityError;
use super::{NodeCode, NodeStats};
use crate::egress::{BlockReason, EgressAttempt};
use crate::host::bindings::signoff::forge::fetch as wit_fetch;
use crate::host::imports::HostState;
use crate::kvs::{KvsError, KvsErrorCode, SetOptions, TxOp};
use crate::product::ProductError;

/// A `call` frame answered: the `reply` frame to send back.
pub(crate) fn serve(
    state: &mut HostState,
    code: &NodeCode,
    f: &Value,
    stats: &mut NodeStats,
) -> Value {
    let id = f.get("id").cloned().unwrap_or(Value::Null);
    let answer = match f.get("op").and_then(Value::as_str) {
        Some("fetch") => egress_fetch(state, f),
        Some("forge_fetch") => {
            let answer = forge_fetch(state, code, f);
            note_product_error(f, &answer, stats);
            answer
        }
        other => Answer::error("INVALID_CALL", format!("unknown platform call {other:?}")),
    };
    answer.into_reply(id)
}

/// The product calls (`requestConfluence`, `requestJira`, ...) answered with an error go to
/// the trace, so that an app that swallows a 404 (a route the simulation lacks, a page that
/// is gone) still shows it: `confluence GET /wiki/rest/api/search 404`, at most
/// [`MAX_PRODUCT_ERRORS`] per invocation.
fn note_product_error(f: &Value, answer: &Answer, stats: &mut NodeStats) {
    let target = f.get("target").unwrap_or(&Value::Null);
    if str_field(target, "type") != "fpp" || stats.product_errors.len() >= MAX_PRODUCT_ERRORS {
        return;
    }
    if let Answer::Http {
        status, headers, ..
    } = answer
        && *status >= 400
    {
        let path: String = str_field(f, "path").chars().take(200).collect();
        let proxy = headers
            .iter()
            .find(|(k, _)| k == "forge-proxy-error")
            .map(|(_, v)| format!(" {v}"))
            .unwrap_or_default();
        stats.product_errors.push(format!(
            "{} {} {path} {status}{proxy}",
            str_field(target, "remote"),
            str_field(f, "method"),
        ));
    }
}

/// Product errors an invocation's trace line keeps.
const MAX_PRODUCT_ERRORS: usize = 20;

/// A refusal the worker reports (a raw socket, a name lookup, a child process): in the trace,
/// and for network attempts in the egress ledger as blocked.
pub(crate) fn refused(state: &mut HostState, f: &Value, stats: &mut NodeStats) {
    let what = f
        .get("what")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let detail: String = str_field(f, "detail").chars().take(200).collect();
    let reason = if what.starts_with("dns.") {
        Some(BlockReason::NameLookup)
    } else if what.contains("connect") {
        Some(BlockReason::RawSocket)
    } else {
        None
    };
    if let Some(reason) = reason {
        let i = state.installation.clone();
        state.world.ledger.push(EgressAttempt {
            at: state.now,
            site: i.site.clone(),
            installation: i.id.clone(),
            realm: i.realm,
            method: what.to_ascii_uppercase(),
            destination: detail.clone(),
            category: "other",
            in_scope_eud: true,
            bytes: 0,
            allowed: false,
            blocked_because: Some(reason),
            manifest_entry: None,
            carries: None,
        });
    }
    if stats.refused.len() < 100 {
        stats.refused.push(format!("{what} {detail}"));
    }
}

/// An answer to a platform call: an HTTP-like response, or an error the worker throws.
pub(crate) enum Answer {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Error {
        code: String,
        message: String,
    },
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer::Http {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    fn raw_json(status: u16, body: String) -> Answer {
        Answer::Http {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    fn empty(status: u16) -> Answer {
        Answer::Http {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    fn error(code: &str, message: impl Into<String>) -> Answer {
        Answer::Error {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A response the `@forge/api` client turns into `ProxyRequestError(status, reason)`.
    fn proxy_error(status: u16, reason: &str) -> Answer {
        Answer::Http {
            status,
            headers: vec![("forge-proxy-error".into(), reason.into())],
            body: String::new(),
        }
    }

    fn into_reply(self, id: Value) -> Value {
        match self {
            Answer::Http {
                status,
                headers,
                body,
            } => {
                json!({"t": "reply", "id": id, "status": status, "headers": headers, "body": body})
            }
            Answer::Error { code, message } => {
                json!({"t": "reply", "id": id, "error": {"code": code, "message": message}})
            }
        }
    }
}

fn str_field<'a>(f: &'a Value, name: &str) -> &'a str {
    f.get(name).and_then(Value::as_str).unwrap_or("")
}

/// The request body as sent: text, or bytes carried one per character (`latin1`).
fn body_text(f: &Value) -> String {
    let body = str_field(f, "body");
    if f.get("latin1").and_then(Value::as_bool) == Some(true) {
        let bytes: Vec<u8> = body.chars().map(|c| c as u32 as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_string()
    }
}

fn headers_of(f: &Value) -> Vec<(String, String)> {
    f.get("headers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|h| {
                    Some((
                        h.get(0)?.as_str()?.to_string(),
                        h.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

// --- Egress: the same gate, ledger and endpoints as the wasm host's `fetch` import ----------

fn egress_fetch(state: &mut HostState, f: &Value) -> Answer {
    let req = wit_fetch::Request {
        method: str_field(f, "method").to_string(),
        url: str_field(f, "url").to_string(),
        headers: headers_of(f),
        body: body_text(f),
    };
    match wit_fetch::Host::fetch(state, req) {
        Ok(r) => Answer::Http {
            status: r.status,
            headers: r.headers,
            body: r.body,
        },
        Err(e) => Answer::error(&e.code, e.message),
    }
}

// --- `__forge_fetch__` -------------------------------------------------------------------

fn forge_fetch(state: &mut HostState, code: &NodeCode, f: &Value) -> Answer {
    let target = f.get("target").cloned().unwrap_or(Value::Null);
    let kind = str_field(&target, "type");
    let remote = str_field(&target, "remote");
    let path = str_field(f, "path");
    match (kind, remote) {
        ("kvs", _) => kvs(state, code, path, &body_text(f)),
        ("fpp", "confluence") => {
            let as_user = target.get("provider").and_then(Value::as_str) == Some("user");
            confluence(state, str_field(f, "method"), path, &body_text(f), as_user)
        }
        ("fpp", "stargate") if path.starts_with("/forge/entities/graphql") => {
            legacy_storage(state, code, &body_text(f))
        }
        ("fpp", "stargate") if path == "/graphql" => web_trigger_urls(state, code, &body_text(f)),
        ("fpp", "stargate") => stargate(state, path, &body_text(f)),
        ("fpp", "jira") => {
            let as_user = target.get("provider").and_then(Value::as_str) == Some("user");
            jira(state, str_field(f, "method"), path, &body_text(f), as_user)
        }
        ("fpp", "bitbucket") => Answer::proxy_error(404, "PRODUCT_NOT_SIMULATED"),
        _ => Answer::proxy_error(400, "NOT_SIMULATED"),
    }
}

// --- The KVS wire protocol (spec §2) --------------------------------------------------------

fn kvs_status(code: KvsErrorCode) -> u16 {
    match code {
        KvsErrorCode::KeyConflict => 409,
        KvsErrorCode::RateLimitExceeded => 429,
        KvsErrorCode::StorageUnavailable => 503,
        KvsErrorCode::CrossRealmAccess | KvsErrorCode::UnknownInstallation => 403,
        _ => 400,
    }
}

fn kvs_fail(e: KvsError) -> Answer {
    Answer::json(
        kvs_status(e.code),
        json!({"code": e.code.as_str(), "message": e.message}),
    )
}

fn not_found(key: &str) -> Answer {
    Answer::json(
        404,
        json!({"code": "KEY_NOT_FOUND", "message": format!("no value under key `{key}`")}),
    )
}

fn bad_request(code: &str, message: impl Into<String>) -> Answer {
    Answer::json(400, json!({"code": code, "message": message.into()}))
}

/// `{"key": ..., "value": <the stored text>}` without rebuilding the value.
fn entry_text(key: &str, value: &str) -> String {
    format!(
        "{{\"key\":{},\"value\":{value}}}",
        Value::String(key.to_string())
    )
}

fn kvs(state: &mut HostState, code: &NodeCode, path: &str, body: &str) -> Answer {
    let Some(op) = path.strip_prefix("/api/v1/") else {
        return bad_request("INVALID_PATH", format!("no KVS operation at {path}"));
    };
    let req: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(
                "INVALID_REQUEST",
                format!("the request body is not JSON: {e}"),
            );
        }
    };
    if let Some(entity_op) = op.strip_prefix("entity/") {
        return entity(state, code, entity_op, &req);
    }
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    let key = str_field(&req, "key").to_string();
    let store = &mut state.world.kvs;
    match op {
        "get" | "secret/get" => {
            let r = if op == "get" {
                store.get_text(&scope, realm, now, &key)
            } else {
                store.get_secret_text(&scope, realm, now, &key)
            };
            match r {
                Ok(Some(v)) => Answer::raw_json(200, entry_text(&key, &v)),
                Ok(None) => not_found(&key),
                Err(e) => kvs_fail(e),
            }
        }
        "set" | "secret/set" => {
            let Some(value) = req.get("value") else {
                return bad_request("INVALID_VALUE", "set needs a value");
            };
            let text = value.to_string();
            let options = match set_options(req.get("options")) {
                Ok(o) => o,
                Err(a) => return a,
            };
            let wants = req
                .pointer("/options/returnValue")
                .and_then(Value::as_str)
                .map(str::to_string);
            let previous = match wants.as_deref() {
                Some("PREVIOUS") => match store.get_text(&scope, realm, now, &key) {
                    Ok(p) => p,
                    Err(e) => return kvs_fail(e),
                },
                _ => None,
            };
            let r = if op == "set" {
                store.set_text(&scope, realm, now, &key, &text, options)
            } else {
                store.set_secret_text(&scope, realm, now, &key, &text)
            };
            match (r, wants.as_deref()) {
                (Err(e), _) => kvs_fail(e),
                (Ok(()), Some("LATEST")) => Answer::raw_json(200, entry_text(&key, &text)),
                (Ok(()), Some("PREVIOUS")) => match previous {
                    Some(p) => Answer::raw_json(200, entry_text(&key, &p)),
                    None => Answer::empty(200),
                },
                (Ok(()), _) => Answer::empty(200),
            }
        }
        "delete" | "secret/delete" => {
            let r = if op == "delete" {
                store.delete(&scope, realm, now, &key)
            } else {
                store.delete_secret(&scope, realm, now, &key)
            };
            match r {
                Ok(()) => Answer::empty(204),
                Err(e) => kvs_fail(e),
            }
        }
        "query" => {
            let mut prefix = String::new();
            for w in req
                .get("where")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if w.get("property").and_then(Value::as_str) != Some("key") {
                    return bad_request(
                        "QUERY_WHERE_FIELD_INVALID",
                        "queries filter on the property `key` only",
                    );
                }
                if w.get("condition").and_then(Value::as_str) != Some("BEGINS_WITH") {
                    return bad_request(
                        "QUERY_WHERE_INVALID",
                        "the key condition must be BEGINS_WITH",
                    );
                }
                prefix = w
                    .pointer("/values/0")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
            }
            let limit = req.get("limit").and_then(Value::as_u64).map(|l| l as usize);
            let cursor = req.get("after").and_then(Value::as_str);
            match store.query_text(&scope, realm, now, &prefix, limit, cursor) {
                Ok(page) => {
                    let data: Vec<String> =
                        page.results.iter().map(|(k, v)| entry_text(k, v)).collect();
                    let cursor = page
                        .cursor
                        .map(|c| format!(",\"cursor\":{}", Value::String(c)))
                        .unwrap_or_default();
                    Answer::raw_json(200, format!("{{\"data\":[{}]{cursor}}}", data.join(",")))
                }
                Err(e) => kvs_fail(e),
            }
        }
        "batch/set" | "batch/get" | "batch/delete" => batch(state, code, op, &req),
        "transaction" => transaction(state, code, &req),
        other => bad_request("INVALID_PATH", format!("no KVS operation `{other}`")),
    }
}

fn set_options(o: Option<&Value>) -> Result<SetOptions, Answer> {
    let mut options = SetOptions::default();
    let Some(o) = o else { return Ok(options) };
    if let Some(ttl) = o.get("ttl") {
        let value = ttl.get("value").and_then(Value::as_u64);
        let unit = match ttl.get("unit").and_then(Value::as_str) {
            Some("SECONDS") => 1_000,
            Some("MINUTES") => 60_000,
            Some("HOURS") => 3_600_000,
            Some("DAYS") => 86_400_000,
            _ => 0,
        };
        match value {
            Some(v) if unit > 0 => options.ttl_ms = Some(v.saturating_mul(unit)),
            _ => {
                return Err(bad_request(
                    "INVALID_TTL",
                    "ttl needs a whole value and a unit (SECONDS, MINUTES, HOURS, DAYS)",
                ));
            }
        }
    }
    match o.get("keyPolicy").and_then(Value::as_str) {
        None | Some("OVERRIDE") => {}
        Some("FAIL_IF_EXISTS") => options.fail_if_exists = true,
        Some(other) => {
            return Err(bad_request(
                "INVALID_KEY_POLICY",
                format!("unknown keyPolicy `{other}`"),
            ));
        }
    }
    Ok(options)
}

fn batch(state: &mut HostState, code: &NodeCode, op: &str, req: &Value) -> Answer {
    let Some(items) = req.as_array() else {
        return bad_request("INVALID_REQUEST", "a batch is an array of items");
    };
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    if items.iter().any(|i| i.get("entityName").is_some()) {
        return entity_batch(state, code, op, items);
    }
    let limit = state.world.kvs.limits().max_batch_keys;
    if items.len() > limit {
        return bad_request(
            "TOO_MANY_KEYS",
            format!("a batch takes at most {limit} keys, not {}", items.len()),
        );
    }
    let key_of = |i: &Value| {
        i.get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let fail = |key: String, e: KvsError| json!({"key": key, "error": {"code": e.code.as_str(), "message": e.message}});
    match op {
        "batch/set" => {
            let pairs: Vec<(String, String)> = items
                .iter()
                .map(|i| {
                    (
                        key_of(i),
                        i.get("value").map(Value::to_string).unwrap_or_default(),
                    )
                })
                .collect();
            match state
                .world
                .kvs
                .batch_set_text(&scope, realm, now, pairs.clone())
            {
                Ok(results) => {
                    for ((key, _), r) in pairs.into_iter().zip(results) {
                        match r {
                            Ok(()) => ok.push(json!({"key": key})),
                            Err(e) => failed.push(fail(key, e)),
                        }
                    }
                }
                Err(e) => return kvs_fail(e),
            }
        }
        "batch/get" => {
            for i in items {
                let key = key_of(i);
                match state.world.kvs.get_text(&scope, realm, now, &key) {
                    Ok(Some(v)) => ok.push(json!({"key": key, "value": serde_json::from_str::<Value>(&v).unwrap_or(Value::Null)})),
                    Ok(None) => failed.push(json!({"key": key, "error": {"code": "KEY_NOT_FOUND", "message": "no value under this key"}})),
                    Err(e) => failed.push(fail(key, e)),
                }
            }
        }
        _ => {
            for i in items {
                let key = key_of(i);
                match state.world.kvs.delete(&scope, realm, now, &key) {
                    Ok(()) => ok.push(json!({"key": key})),
                    Err(e) => failed.push(fail(key, e)),
                }
            }
        }
    }
    Answer::json(200, json!({"successfulKeys": ok, "failedKeys": failed}))
}

fn transaction(state: &mut HostState, code: &NodeCode, req: &Value) -> Answer {
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    let list = |name: &str| {
        req.get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (sets, deletes, checks) = (list("set"), list("delete"), list("check"));
    let entity_of = |i: &Value| {
        i.get("entityName")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for item in sets.iter().chain(&deletes).chain(&checks) {
        if let Some(name) = entity_of(item) {
            let e = match code.entities.get(&name) {
                Ok(e) => e,
                Err(e) => return entity_fail(e),
            };
            if let Some(v) = item.get("value")
                && let Err(err) = e.check(&name, v)
            {
                return entity_fail(err);
            }
        }
    }
    // Conditions are judged against the values as they are now: the simulation runs one
    // invocation at a time, so nothing changes between the check and the write.
    for item in sets.iter().chain(&deletes).chain(&checks) {
        let Some(cond) = item.get("conditions") else {
            continue;
        };
        let key = str_field(item, "key");
        let read = match entity_of(item) {
            Some(name) => state
                .world
                .kvs
                .entity_get_text(&scope, realm, now, &name, key),
            None => state.world.kvs.get_text(&scope, realm, now, key),
        };
        let current = match read {
            Ok(v) => v.and_then(|t| serde_json::from_str::<Value>(&t).ok()),
            Err(e) => return kvs_fail(e),
        };
        match conditions_hold(cond, current.as_ref()) {
            Ok(true) => {}
            Ok(false) => {
                return Answer::json(
                    409,
                    json!({"code": "CONDITION_FAILED", "message": format!("a condition on `{key}` does not hold")}),
                );
            }
            Err(m) => return bad_request("INVALID_FILTER_CONDITION", m),
        }
    }
    let mut ops = Vec::new();
    for s in &sets {
        let options = match set_options(s.get("options")) {
            Ok(o) => o,
            Err(a) => return a,
        };
        let key = str_field(s, "key").to_string();
        let text = s.get("value").map(Value::to_string).unwrap_or_default();
        ops.push(match entity_of(s) {
            Some(entity) => TxOp::EntitySetText {
                entity,
                key,
                text,
                options,
            },
            None => TxOp::SetText { key, text, options },
        });
    }
    for d in &deletes {
        let key = str_field(d, "key").to_string();
        ops.push(match entity_of(d) {
            Some(entity) => TxOp::EntityDelete { entity, key },
            None => TxOp::Delete { key },
        });
    }
    match state.world.kvs.transact(&scope, realm, now, ops) {
        Ok(()) => Answer::empty(200),
        Err(e) => kvs_fail(e),
    }
}

fn entity_fail(e: EntityError) -> Answer {
    bad_request(e.code, e.message)
}

/// `/api/v1/entity/{get,set,delete,query}`.
fn entity(state: &mut HostState, code: &NodeCode, op: &str, req: &Value) -> Answer {
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    let name = str_field(req, "entityName").to_string();
    let def = match code.entities.get(&name) {
        Ok(d) => d,
        Err(e) => return entity_fail(e),
    };
    let key = str_field(req, "key").to_string();
    let store = &mut state.world.kvs;
    match op {
        "get" => match store.entity_get_text(&scope, realm, now, &name, &key) {
            Ok(Some(v)) => Answer::raw_json(200, entry_text(&key, &v)),
            Ok(None) => not_found(&key),
            Err(e) => kvs_fail(e),
        },
        "set" => {
            let Some(value) = req.get("value") else {
                return bad_request("INVALID_ENTITY_VALUE", "set needs a value");
            };
            if let Err(e) = def.check(&name, value) {
                return entity_fail(e);
            }
            let options = match set_options(req.get("options")) {
                Ok(o) => o,
                Err(a) => return a,
            };
            let text = value.to_string();
            match store.entity_set_text(&scope, realm, now, &name, &key, &text, options) {
                Ok(()) if req.pointer("/options/returnValue").is_some() => {
                    Answer::raw_json(200, entry_text(&key, &text))
                }
                Ok(()) => Answer::empty(200),
                Err(e) => kvs_fail(e),
            }
        }
        "delete" => match store.entity_delete(&scope, realm, now, &name, &key) {
            Ok(()) => Answer::empty(204),
            Err(e) => kvs_fail(e),
        },
        "query" => {
            let rows = match store.entity_scan(&scope, realm, now, &name) {
                Ok(r) => r,
                Err(e) => return kvs_fail(e),
            };
            let rows = rows
                .into_iter()
                .map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(Value::Null)))
                .collect();
            match def.query(req, rows) {
                Ok((page, cursor)) => {
                    let data: Vec<Value> = page
                        .into_iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect();
                    let mut body = json!({"data": data});
                    if let Some(c) = cursor {
                        body["cursor"] = json!(c);
                    }
                    Answer::json(200, body)
                }
                Err(e) => entity_fail(e),
            }
        }
        other => bad_request("INVALID_PATH", format!("no entity operation `{other}`")),
    }
}

/// A batch whose items name entities (items without one are plain keys).
fn entity_batch(state: &mut HostState, code: &NodeCode, op: &str, items: &[Value]) -> Answer {
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    let limit = state.world.kvs.limits().max_batch_keys;
    if items.len() > limit {
        return bad_request(
            "TOO_MANY_KEYS",
            format!("a batch takes at most {limit} keys, not {}", items.len()),
        );
    }
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for i in items {
        let key = str_field(i, "key").to_string();
        let name = i
            .get("entityName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let tag = |v: Value| match &name {
            Some(n) => {
                let mut v = v;
                v["entityName"] = json!(n);
                v
            }
            None => v,
        };
        let result: Result<Option<Value>, (String, String)> = (|| {
            let store = &mut state.world.kvs;
            let kvs_err = |e: KvsError| (e.code.as_str().to_string(), e.message);
            match (op, &name) {
                ("batch/set", Some(n)) => {
                    let def = code
                        .entities
                        .get(n)
                        .map_err(|e| (e.code.to_string(), e.message))?;
                    let value = i.get("value").cloned().unwrap_or(Value::Null);
                    def.check(n, &value)
                        .map_err(|e| (e.code.to_string(), e.message))?;
                    store
                        .entity_set_text(
                            &scope,
                            realm,
                            now,
                            n,
                            &key,
                            &value.to_string(),
                            SetOptions::default(),
                        )
                        .map_err(kvs_err)?;
                    Ok(None)
                }
                ("batch/set", None) => {
                    let value = i.get("value").map(Value::to_string).unwrap_or_default();
                    store
                        .set_text(&scope, realm, now, &key, &value, SetOptions::default())
                        .map_err(kvs_err)?;
                    Ok(None)
                }
                ("batch/get", _) => {
                    let v = match &name {
                        Some(n) => store.entity_get_text(&scope, realm, now, n, &key),
                        None => store.get_text(&scope, realm, now, &key),
                    }
                    .map_err(kvs_err)?;
                    match v {
                        Some(t) => Ok(Some(serde_json::from_str(&t).unwrap_or(Value::Null))),
                        None => Err(("KEY_NOT_FOUND".into(), "no value under this key".into())),
                    }
                }
                (_, Some(n)) => store
                    .entity_delete(&scope, realm, now, n, &key)
                    .map(|()| None)
                    .map_err(kvs_err),
                (_, None) => store
                    .delete(&scope, realm, now, &key)
                    .map(|()| None)
                    .map_err(kvs_err),
            }
        })();
        match result {
            Ok(Some(v)) => ok.push(tag(json!({"key": key, "value": v}))),
            Ok(None) => ok.push(tag(json!({"key": key}))),
            Err((code, message)) => failed.push(tag(
                json!({"key": key, "error": {"code": code, "message": message}}),
            )),
        }
    }
    Answer::json(200, json!({"successfulKeys": ok, "failedKeys": failed}))
}

/// `{and|or: [{property, condition, values}]}` against a value (`None`: absent).
pub(crate) fn conditions_hold(cond: &Value, value: Option<&Value>) -> Result<bool, String> {
    let (all, list) = match (cond.get("and"), cond.get("or")) {
        (Some(Value::Array(l)), None) => (true, l),
        (None, Some(Value::Array(l))) => (false, l),
        _ => return Err("conditions take `and` or `or` with a list".into()),
    };
    let mut results = Vec::with_capacity(list.len());
    for c in list {
        let property = str_field(c, "property");
        let name = str_field(c, "condition");
        let values = c
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let field = value.and_then(|v| property.split('.').try_fold(v, |v, p| v.get(p)));
        results.push(condition(name, field, &values)?);
    }
    Ok(if all {
        results.iter().all(|r| *r)
    } else {
        results.iter().any(|r| *r)
    })
}

fn condition(name: &str, field: Option<&Value>, values: &[Value]) -> Result<bool, String> {
    use std::cmp::Ordering;
    let first = values.first();
    let cmp = |a: &Value, b: &Value| -> Option<Ordering> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        }
    };
    let ord = || field.zip(first).and_then(|(f, v)| cmp(f, v));
    Ok(match name {
        "EXISTS" => field.is_some(),
        "NOT_EXISTS" => field.is_none(),
        "EQUAL_TO" => field.is_some() && field == first,
        "NOT_EQUAL_TO" => field != first,
        "GREATER_THAN" => ord() == Some(Ordering::Greater),
        "GREATER_THAN_EQUAL_TO" => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
        "LESS_THAN" => ord() == Some(Ordering::Less),
        "LESS_THAN_EQUAL_TO" => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
        "BETWEEN" => match (field, values.first(), values.get(1)) {
            (Some(f), Some(a), Some(b)) => {
                matches!(cmp(f, a), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(f, b), Some(Ordering::Less | Ordering::Equal))
            }
            _ => false,
        },
        "BEGINS_WITH" => {
            matches!((field, first), (Some(Value::String(f)), Some(Value::String(p))) if f.starts_with(p.as_str()))
        }
        "CONTAINS" => contains(field, first),
        "NOT_CONTAINS" => !contains(field, first),
        other => return Err(format!("unknown condition `{other}`")),
    })
}

fn contains(field: Option<&Value>, v: Option<&Value>) -> bool {
    match (field, v) {
        (Some(Value::String(f)), Some(Value::String(s))) => f.contains(s.as_str()),
        (Some(Value::Array(a)), Some(v)) => a.contains(v),
        _ => false,
    }
}

// --- Confluence's REST API (spec §4) ---------------------------------------------------------

fn confluence(
    state: &mut HostState,
    method: &str,
    path: &str,
    body: &str,
    as_user: bool,
) -> Answer {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let author = match (&state.account_id, as_user) {
        (Some(a), true) => a.clone(),
        _ => format!("app:{}", state.app_id()),
    };
    let site = state.installation.site.clone();
    let body_json = || serde_json::from_str::<Value>(body).ok();
    match (method, segments.as_slice()) {
        ("GET", ["wiki", "api", "v2", "pages", id]) => {
            match state.world.confluence.get_page(&site, id) {
                Some(p)
                    if !state.world.confluence.is_trashed(&site, id)
                        || query.contains("status") =>
                {
                    // `version=N`: the page as it was at that version.
                    match query_param(query, "version").map(|v| v.parse::<u32>()) {
                        None => Answer::json(200, page_v2(&site, &p, query)),
                        Some(Ok(n)) => match state
                            .world
                            .confluence
                            .history(&site, id)
                            .iter()
                            .find(|v| v.version == n)
                        {
                            Some(old) => Answer::json(200, page_v2(&site, old, query)),
                            None => {
                                v2_error(404, "NOT_FOUND", format!("page {id} has no version {n}"))
                            }
                        },
                        Some(Err(_)) => {
                            v2_error(400, "INVALID_REQUEST_PARAMETER", "version is a number")
                        }
                    }
                }
                _ => v2_error(404, "NOT_FOUND", format!("no page {id}")),
            }
        }
        // One version's details (no body: the page at a version is `?version=N`).
        ("GET", ["wiki", "api", "v2", "pages", id, "versions", number]) => {
            let history = state.world.confluence.history(&site, id);
            let Ok(n) = number.parse::<u32>() else {
                return v2_error(400, "INVALID_REQUEST_PARAMETER", "the version is a number");
            };
            let Some(i) = history.iter().position(|v| v.version == n) else {
                return v2_error(404, "NOT_FOUND", format!("page {id} has no version {n}"));
            };
            let brief = |v: Option<&crate::product::Page>| {
                v.map_or(Value::Null, |v| json!({"number": v.version, "authorId": v.author, "message": "", "minorEdit": false, "createdAt": Value::Null}))
            };
            let v = &history[i];
            Answer::json(
                200,
                json!({"number": v.version, "authorId": v.author, "message": "", "minorEdit": false, "createdAt": Value::Null, "contentTypeModified": false, "collaborators": [v.author], "prevVersion": brief(i.checked_sub(1).and_then(|j| history.get(j))), "nextVersion": brief(history.get(i + 1))}),
            )
        }
        ("PUT", ["wiki", "api", "v2", "pages", id]) => {
            let Some(b) = body_json() else {
                return v2_error(400, "INVALID_REQUEST_PARAMETER", "the body is not JSON");
            };
            let Some(number) = b.pointer("/version/number").and_then(Value::as_u64) else {
                return v2_error(
                    400,
                    "INVALID_REQUEST_PARAMETER",
                    "version.number is required",
                );
            };
            let title = str_field(&b, "title").to_string();
            let value = b
                .pointer("/body/value")
                .or_else(|| b.pointer("/body/storage/value"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let r = state.world.confluence.update_page(
                &site,
                &author,
                id,
                &title,
                &value,
                number as u32,
            );
            match r {
                Ok(p) => Answer::json(200, page_v2(&site, &p, "body-format=storage")),
                Err(e) => product_fail(e),
            }
        }
        ("POST", ["wiki", "api", "v2", "pages"]) => {
            let Some(b) = body_json() else {
                return v2_error(400, "INVALID_REQUEST_PARAMETER", "the body is not JSON");
            };
            let space = str_field(&b, "spaceId").to_string();
            let title = str_field(&b, "title").to_string();
            let value = b
                .pointer("/body/value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match state
                .world
                .confluence
                .create_page(&site, &author, &space, &title, &value)
            {
                Ok(p) => Answer::json(200, page_v2(&site, &p, "body-format=storage")),
                Err(e) => product_fail(e),
            }
        }
        // Page lists: all of a site's pages (`space-id`, `title`, `status` filters), or a
        // space's, in id order, `limit` (1 to 250, 25 by default) at a time, the next batch
        // behind `_links.next` (its cursor is the last id given).
        ("GET", ["wiki", "api", "v2", "pages"]) => page_list(state, &site, None, query),
        ("GET", ["wiki", "api", "v2", "spaces", id, "pages"]) => {
            page_list(state, &site, Some(id), query)
        }
        // A page's versions, newest first, `limit` at a time (cursor: the last number given).
        ("GET", ["wiki", "api", "v2", "pages", id, "versions"]) => {
            if state.world.confluence.get_page(&site, id).is_none() {
                return v2_error(404, "NOT_FOUND", format!("no page {id}"));
            }
            let Some(limit) = list_limit(query) else {
                return v2_error(400, "INVALID_REQUEST_PARAMETER", "limit is 1 to 250");
            };
            let below = query_param(query, "cursor").and_then(|c| c.parse::<u32>().ok());
            let versions: Vec<&crate::product::Page> = state
                .world
                .confluence
                .history(&site, id)
                .iter()
                .rev()
                .filter(|v| below.is_none_or(|b| v.version < b))
                .take(limit + 1)
                .collect();
            let more = versions.len() > limit;
            let results: Vec<Value> = versions
                .iter()
                .take(limit)
                .map(|v| json!({"number": v.version, "message": "", "minorEdit": false, "authorId": v.author, "createdAt": Value::Null}))
                .collect();
            let mut links = json!({"base": format!("https://{site}/wiki")});
            if more && let Some(last) = versions.get(limit - 1) {
                links["next"] = json!(format!(
                    "/wiki/api/v2/pages/{id}/versions?cursor={}&limit={limit}",
                    last.version
                ));
            }
            Answer::json(200, json!({"results": results, "_links": links}))
        }
        // Footer comments on pages (no comment events: those are not simulated).
        ("POST", ["wiki", "api", "v2", "footer-comments"]) => {
            let Some(b) = body_json() else {
                return v2_error(400, "INVALID_REQUEST_PARAMETER", "the body is not JSON");
            };
            let Some(page) = b.get("pageId").and_then(|p| match p {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                return v2_error(
                    400,
                    "INVALID_REQUEST_PARAMETER",
                    "pageId is required (comments on blog posts and replies are not simulated)",
                );
            };
            let value = b
                .pointer("/body/value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let representation = b
                .pointer("/body/representation")
                .and_then(Value::as_str)
                .unwrap_or("storage");
            match state
                .world
                .confluence
                .add_comment(&site, &author, &page, &value)
            {
                Ok(c) => Answer::json(200, comment_v2(&site, &c, representation)),
                Err(e) => product_fail(e),
            }
        }
        ("GET", ["wiki", "api", "v2", "footer-comments", id]) => {
            match state.world.confluence.comment(&site, id) {
                Some(c) => Answer::json(200, comment_v2(&site, c, "storage")),
                None => v2_error(404, "NOT_FOUND", format!("no comment {id}")),
            }
        }
        ("DELETE", ["wiki", "api", "v2", "footer-comments", id]) => {
            if state.world.confluence.delete_comment(&site, id) {
                Answer::Http {
                    status: 204,
                    headers: Vec::new(),
                    body: String::new(),
                }
            } else {
                v2_error(404, "NOT_FOUND", format!("no comment {id}"))
            }
        }
        ("GET", ["wiki", "api", "v2", "pages", id, "footer-comments"]) => {
            if state.world.confluence.get_page(&site, id).is_none() {
                return v2_error(404, "NOT_FOUND", format!("no page {id}"));
            }
            let results: Vec<Value> = state
                .world
                .confluence
                .comments_on(&site, id)
                .into_iter()
                .map(|c| comment_v2(&site, c, "storage"))
                .collect();
            Answer::json(
                200,
                json!({"results": results, "_links": {"base": format!("https://{site}/wiki")}}),
            )
        }
        // Groups (the scenario's `groups:`): a user's, all of them, a group's members; v1
        // lists with `start` and `limit` (200 by default).
        ("GET", ["wiki", "rest", "api", "user", "memberof"]) => {
            let Some(account) = query_param(query, "accountId") else {
                return v1_error(400, "accountId is required");
            };
            let groups: Vec<Value> = state
                .world
                .confluence
                .groups(&site)
                .filter(|(_, members)| members.contains(&account))
                .map(|(name, _)| group_v1(name))
                .collect();
            v1_list(groups, query)
        }
        ("GET", ["wiki", "rest", "api", "group"]) => {
            let groups: Vec<Value> = state
                .world
                .confluence
                .groups(&site)
                .map(|(name, _)| group_v1(name))
                .collect();
            v1_list(groups, query)
        }
        ("GET", ["wiki", "rest", "api", "group", "member"]) => {
            let Some(name) = query_param(query, "name") else {
                return v1_error(400, "name is required");
            };
            match state
                .world
                .confluence
                .groups(&site)
                .find(|(g, _)| **g == name)
            {
                Some((_, members)) => {
                    let members: Vec<Value> = members
                        .iter()
                        .map(|m| json!({"type": "known", "accountId": m, "accountType": "atlassian", "publicName": m, "displayName": m}))
                        .collect();
                    v1_list(members, query)
                }
                None => v1_error(404, format!("no group {name}")),
            }
        }
        // Spaces exist in the simulated Confluence by having pages; a space's id is its key
        // (Confluence's are numbers: apps that read `spaceId` from a page and look the
        // space up, as they must on the platform, get the same answer here).
        ("GET", ["wiki", "api", "v2", "spaces", id]) => {
            if state.world.confluence.pages(&site).any(|p| p.space == *id) {
                Answer::json(
                    200,
                    json!({"id": id, "key": id, "name": id, "type": "global", "status": "current", "homepageId": Value::Null, "_links": {"webui": format!("/spaces/{id}"), "base": format!("https://{site}/wiki")}}),
                )
            } else {
                v2_error(404, "NOT_FOUND", format!("no space {id}"))
            }
        }
        ("GET", ["wiki", "rest", "api", "content", id, "property", key]) => {
            if state.world.confluence.get_page(&site, id).is_none() {
                return v1_error(404, format!("no content {id}"));
            }
            match state.world.confluence.get_property(&site, id, key) {
                Some(p) => Answer::json(200, property_v1(id, &p)),
                None => v1_error(404, format!("no property `{key}` on content {id}")),
            }
        }
        ("POST", ["wiki", "rest", "api", "content", id, "property"]) => {
            let Some(b) = body_json() else {
                return v1_error(400, "the body is not JSON");
            };
            let key = str_field(&b, "key").to_string();
            if state
                .world
                .confluence
                .get_property(&site, id, &key)
                .is_some()
            {
                return v1_error(
                    400,
                    format!("property `{key}` already exists on content {id}"),
                );
            }
            let value = b
                .get("value")
                .map(Value::to_string)
                .unwrap_or_else(|| "null".into());
            match state
                .world
                .confluence
                .set_property(&site, id, &key, &value, 1)
            {
                Ok(p) => Answer::json(200, property_v1(id, &p)),
                Err(e) => product_fail_v1(e),
            }
        }
        ("PUT", ["wiki", "rest", "api", "content", id, "property", key]) => {
            let Some(b) = body_json() else {
                return v1_error(400, "the body is not JSON");
            };
            let Some(number) = b.pointer("/version/number").and_then(Value::as_u64) else {
                return v1_error(400, "version.number is required");
            };
            let value = b
                .get("value")
                .map(Value::to_string)
                .unwrap_or_else(|| "null".into());
            match state
                .world
                .confluence
                .set_property(&site, id, key, &value, number as u32)
            {
                Ok(p) => Answer::json(200, property_v1(id, &p)),
                Err(e) => product_fail_v1(e),
            }
        }
        ("GET", ["wiki", "rest", "api", "content", id, "state"]) => {
            if state.world.confluence.get_page(&site, id).is_none() {
                return v1_error(404, format!("no content {id}"));
            }
            let s = state.world.confluence.get_content_state(&site, id);
            Answer::json(
                200,
                json!({"contentState": s.map(|s| json!({"id": state_id(&s.name), "name": s.name, "color": s.color})), "lastUpdated": Value::Null}),
            )
        }
        ("PUT", ["wiki", "rest", "api", "content", id, "state"]) => {
            let Some(b) = body_json() else {
                return v1_error(400, "the body is not JSON");
            };
            let state_value = crate::product::ContentState {
                name: str_field(&b, "name").to_string(),
                color: str_field(&b, "color").to_string(),
            };
            match state
                .world
                .confluence
                .set_content_state(&site, &author, id, state_value.clone())
            {
                Ok(_) => Answer::json(
                    200,
                    json!({"contentState": {"id": state_id(&state_value.name), "name": state_value.name, "color": state_value.color}, "lastUpdated": Value::Null}),
                ),
                Err(e) => product_fail_v1(e),
            }
        }
        _ => v2_error(
            404,
            "NOT_FOUND",
            format!(
                "{method} {path}: not part of the simulated Confluence REST API (crates/sim/README.md lists what is)"
            ),
        ),
    }
}

/// A query parameter's value, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| crate::scenario::percent_decode(v))
    })
}

// --- Jira: the few routes real apps of the corpus need -----------------------------------

/// The groups whose members are Jira administrators (global `ADMINISTER`) on a simulated
/// site: the scenario's groups of these names.
const JIRA_ADMIN_GROUPS: [&str; 3] = ["jira-administrators", "site-admins", "administrators"];

/// The simulated Jira REST API: permission checks (`POST /rest/api/3/permissions/check`) and
/// the builds and deployments APIs (`POST /rest/builds/0.1/bulk`,
/// `/rest/deployments/0.1/bulk`, `DELETE .../bulkByProperties`), which take what they are
/// given. Anything else answers 404 naming the route.
fn jira(state: &mut HostState, method: &str, path: &str, body: &str, as_user: bool) -> Answer {
    let (path, _query) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let site = state.installation.site.clone();
    let body_json = || serde_json::from_str::<Value>(body).ok();
    let jira_error = |status: u16, message: String| {
        Answer::json(status, json!({"errorMessages": [message], "errors": {}}))
    };
    match (method, segments.as_slice()) {
        ("POST", ["rest", "api", "2" | "3", "permissions", "check"]) => {
            let Some(b) = body_json() else {
                return jira_error(400, "the body is not JSON".into());
            };
            // As the user: the caller; as the app: the `accountId` asked about.
            let account = match (as_user, &state.account_id) {
                (true, Some(a)) => Some(a.clone()),
                (true, None) => return jira_error(401, "no user is signed in".into()),
                (false, _) => b
                    .get("accountId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let c = &state.world.confluence;
            let known = account
                .as_deref()
                .is_some_and(|a| c.knows_account(&site, a));
            let admin = account.as_deref().is_some_and(|a| {
                c.groups(&site).any(|(g, members)| {
                    JIRA_ADMIN_GROUPS.contains(&g.as_str()) && members.iter().any(|m| m == a)
                })
            });
            let globals: Vec<Value> = b
                .get("globalPermissions")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .filter(|p| match *p {
                            "ADMINISTER" | "SYSTEM_ADMIN" => admin,
                            _ => known,
                        })
                        .map(|p| json!(p))
                        .collect()
                })
                .unwrap_or_default();
            let projects: Vec<Value> = b
                .get("projectPermissions")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter(|_| known)
                        .flat_map(|p| {
                            let projects = p.get("projects").cloned().unwrap_or(json!([]));
                            let issues = p.get("issues").cloned().unwrap_or(json!([]));
                            p.get("permissions")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .map(move |perm| json!({"permission": perm, "projects": projects, "issues": issues}))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Answer::json(
                200,
                json!({"globalPermissions": globals, "projectPermissions": projects}),
            )
        }
        ("POST", ["rest", "builds", "0.1", "bulk"]) => {
            let Some(b) = body_json() else {
                return jira_error(400, "the body is not JSON".into());
            };
            let accepted: Vec<Value> = b
                .get("builds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|x| json!({"pipelineId": x.get("pipelineId"), "buildNumber": x.get("buildNumber")}))
                .collect();
            Answer::json(
                202,
                json!({"acceptedBuilds": accepted, "rejectedBuilds": [], "unknownIssueKeys": []}),
            )
        }
        ("POST", ["rest", "deployments", "0.1", "bulk"]) => {
            let Some(b) = body_json() else {
                return jira_error(400, "the body is not JSON".into());
            };
            let accepted: Vec<Value> = b
                .get("deployments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|x| json!({"pipelineId": x.pointer("/pipeline/id"), "environmentId": x.pointer("/environment/id"), "deploymentSequenceNumber": x.get("deploymentSequenceNumber")}))
                .collect();
            Answer::json(
                202,
                json!({"acceptedDeployments": accepted, "rejectedDeployments": [], "unknownIssueKeys": [], "unknownAssociations": []}),
            )
        }
        ("DELETE", ["rest", "builds" | "deployments", "0.1", "bulkByProperties"]) => Answer::Http {
            status: 202,
            headers: Vec::new(),
            body: String::new(),
        },
        _ => jira_error(
            404,
            format!(
                "{method} {path}: not part of the simulated Jira REST API (crates/sim/README.md lists what is)"
            ),
        ),
    }
}

/// A footer comment as pages v2 gives it.
fn comment_v2(site: &str, c: &crate::product::Comment, representation: &str) -> Value {
    json!({
        "id": c.id,
        "status": "current",
        "title": format!("Re: comment {}", c.id),
        "pageId": c.page,
        "version": {"number": 1, "message": "", "minorEdit": false, "authorId": c.author},
        "body": {representation: {"representation": representation, "value": c.body}},
        "_links": {"webui": format!("/pages/{}?focusedCommentId={}", c.page, c.id), "base": format!("https://{site}/wiki")},
    })
}

/// A group as the v1 REST API gives it (its id derived from its name).
fn group_v1(name: &str) -> Value {
    json!({"type": "group", "name": name, "id": format!("{:08x}-0000-4000-8000-000000000000", state_id(name))})
}

/// A v1 list: `start` (0) and `limit` (200, at most 1,000) over `items`.
fn v1_list(items: Vec<Value>, query: &str) -> Answer {
    let start = query_param(query, "start")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = query_param(query, "limit")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(200)
        .clamp(1, 1000);
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    Answer::json(
        200,
        json!({"results": page, "start": start, "limit": limit, "size": page.len(), "_links": {}}),
    )
}

/// A list's `limit`: 25 when absent, `None` when not 1 to 250.
fn list_limit(query: &str) -> Option<usize> {
    match query_param(query, "limit") {
        None => Some(25),
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=250).contains(l)),
    }
}

/// `GET /wiki/api/v2/pages` and `/spaces/{id}/pages`.
fn page_list(state: &HostState, site: &str, space: Option<&str>, query: &str) -> Answer {
    let Some(limit) = list_limit(query) else {
        return v2_error(400, "INVALID_REQUEST_PARAMETER", "limit is 1 to 250");
    };
    let spaces: Option<Vec<String>> = match space {
        Some(s) => Some(vec![s.to_string()]),
        None => query_param(query, "space-id").map(|v| v.split(',').map(str::to_string).collect()),
    };
    let title = query_param(query, "title");
    let statuses: Vec<String> = query_param(query, "status")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["current".to_string()]);
    let after = query_param(query, "cursor");
    let c = &state.world.confluence;
    // Ids are numbers: in numeric order, as Confluence sorts by id.
    let mut pages: Vec<&crate::product::Page> = c
        .pages(site)
        .filter(|p| spaces.as_ref().is_none_or(|s| s.contains(&p.space)))
        .filter(|p| title.as_deref().is_none_or(|t| p.title == t))
        .filter(|p| {
            let status = if c.is_trashed(site, &p.id) {
                "trashed"
            } else {
                "current"
            };
            statuses.iter().any(|s| s == status)
        })
        .collect();
    let key = |id: &str| (id.len(), id.to_string());
    pages.sort_by_key(|p| key(&p.id));
    let start = after
        .as_deref()
        .map_or(0, |a| pages.partition_point(|p| key(&p.id) <= key(a)));
    let page: Vec<Value> = pages[start..]
        .iter()
        .take(limit)
        .map(|p| page_v2(site, p, query))
        .collect();
    let mut links = json!({"base": format!("https://{site}/wiki")});
    if pages.len() > start + limit {
        let last = &pages[start + limit - 1].id;
        let path = match space {
            Some(s) => format!("/wiki/api/v2/spaces/{s}/pages"),
            None => "/wiki/api/v2/pages".to_string(),
        };
        links["next"] = json!(format!("{path}?cursor={last}&limit={limit}"));
    }
    Answer::json(200, json!({"results": page, "_links": links}))
}

fn state_id(name: &str) -> u64 {
    name.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000
}

fn page_v2(site: &str, p: &crate::product::Page, query: &str) -> Value {
    let mut v = json!({
        "id": p.id,
        "status": "current",
        "title": p.title,
        "spaceId": p.space,
        "parentId": Value::Null,
        "parentType": Value::Null,
        "authorId": p.author,
        "ownerId": p.author,
        "version": {"number": p.version, "message": "", "minorEdit": false, "authorId": p.author},
        "_links": {"webui": format!("/spaces/{}/pages/{}", p.space, p.id), "base": format!("https://{site}/wiki")},
    });
    let format = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("body-format="))
        .unwrap_or("");
    match format {
        "storage" | "view" | "export_view" | "styled_view" | "editor" => {
            v["body"] = json!({ format: {"representation": format, "value": p.body} });
        }
        "atlas_doc_format" => {
            v["body"] =
                json!({ format: {"representation": format, "value": storage_to_adf(&p.body)} });
        }
        _ => {}
    }
    v
}

/// A page's storage-format body as an Atlassian Document Format document (JSON text): a
/// paragraph (or heading) per block with its text. Marks, tables, macros and media are not
/// carried over (crates/sim/README.md).
pub(crate) fn storage_to_adf(html: &str) -> String {
    let mut blocks: Vec<Value> = Vec::new();
    let mut text = String::new();
    let mut heading: Option<u64> = None;
    let mut rest = html;
    let flush = |text: &mut String, heading: Option<u64>, blocks: &mut Vec<Value>| {
        let t = unescape(text.trim());
        text.clear();
        if t.is_empty() {
            return;
        }
        let content = json!([{"type": "text", "text": t}]);
        blocks.push(match heading {
            Some(level) => {
                json!({"type": "heading", "attrs": {"level": level}, "content": content})
            }
            None => json!({"type": "paragraph", "content": content}),
        });
    };
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            text.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("")
            .to_string();
        let block = matches!(
            name.as_str(),
            "p" | "div"
                | "li"
                | "br"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "blockquote"
                | "pre"
        );
        if block {
            flush(&mut text, heading, &mut blocks);
            heading = match name.as_bytes() {
                [b'h', d @ b'1'..=b'6'] if !tag.starts_with('/') => Some(u64::from(d - b'0')),
                _ => None,
            };
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    flush(&mut text, heading, &mut blocks);
    json!({"type": "doc", "version": 1, "content": blocks}).to_string()
}

fn unescape(t: &str) -> String {
    t.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn property_v1(content: &str, p: &crate::product::Property) -> Value {
    json!({
        "id": format!("{content}-{}", p.key),
        "key": p.key,
        "value": serde_json::from_str::<Value>(&p.value).unwrap_or(Value::Null),
        "version": {"number": p.version, "minorEdit": false},
    })
}

fn v2_error(status: u16, code: &str, detail: impl Into<String>) -> Answer {
    Answer::json(
        status,
        json!({"errors": [{"status": status, "code": code, "title": code, "detail": detail.into()}]}),
    )
}

fn v1_error(status: u16, message: impl Into<String>) -> Answer {
    Answer::json(
        status,
        json!({"statusCode": status, "data": {"authorized": status != 403, "valid": false, "errors": [], "successful": false}, "message": message.into()}),
    )
}

fn product_status(e: &ProductError) -> u16 {
    match e.code {
        "NOT_FOUND" => 404,
        "CONFLICT" => 409,
        _ => 400,
    }
}

fn product_fail(e: ProductError) -> Answer {
    let status = product_status(&e);
    v2_error(status, e.code, e.message)
}

fn product_fail_v1(e: ProductError) -> Answer {
    let status = product_status(&e);
    v1_error(status, e.message)
}

// --- Legacy `storage` of @forge/api 7 and older: GraphQL (spec §2.4) ----------------------
// The same hosted store as @forge/kvs (on the platform both read the same data): plain keys,
// secrets (`encrypted: true`) and custom entities.

fn legacy_storage(state: &mut HostState, code: &NodeCode, body: &str) -> Answer {
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return Answer::json(
            400,
            json!({"errors": [{"message": "the body is not JSON", "extensions": {"errorType": "BAD_REQUEST", "statusCode": 400}}]}),
        );
    };
    let query = str_field(&req, "query");
    let vars = req.get("variables").cloned().unwrap_or(Value::Null);
    let input = vars.get("input").cloned().unwrap_or(Value::Null);
    let (scope, realm, now) = (state.scope.clone(), state.installation.realm, state.now);
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let encrypted = |v: &Value| v.get("encrypted").and_then(Value::as_bool) == Some(true);
    // Mutations answer `{data: {NAMESPACE: {METHOD: {success, errors}}}}`.
    let mutation = |ns: &str, method: &str, r: Result<(), (String, String, u16)>| {
        let outcome = match r {
            Ok(()) => json!({"success": true, "errors": []}),
            Err((code, message, status)) => {
                json!({"success": false, "errors": [{"message": message, "extensions": {"errorType": code, "statusCode": status}}]})
            }
        };
        Answer::json(200, json!({"data": {ns: {method: outcome}}}))
    };
    let query_error = |code: String, message: String, status: u16| {
        Answer::json(
            200,
            json!({"errors": [{"message": message, "extensions": {"errorType": code, "statusCode": status}}]}),
        )
    };
    let kvs_err = |e: KvsError| (e.code.as_str().to_string(), e.message, kvs_status(e.code));
    let ent_err = |e: EntityError| (e.code.to_string(), e.message, 400u16);
    let store = &mut state.world.kvs;
    if query.contains("appStoredCustomEntities(") {
        let name = str_of(&vars, "entityName");
        let def = match code.entities.get(&name) {
            Ok(d) => d,
            Err(e) => return query_error(e.code.into(), e.message, 400),
        };
        let rows = match store.entity_scan(&scope, realm, now, &name) {
            Ok(r) => r
                .into_iter()
                .map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(Value::Null)))
                .collect(),
            Err(e) => return query_error(e.code.as_str().into(), e.message, kvs_status(e.code)),
        };
        return match def.query(&vars, rows) {
            Ok((page, cursor)) => {
                let edges: Vec<Value> = page
                    .into_iter()
                    .map(|(k, v)| json!({"node": {"key": k, "value": v}, "cursor": Value::Null}))
                    .collect();
                let n = edges.len();
                Answer::json(
                    200,
                    json!({"data": {"appStoredCustomEntities": {"edges": edges, "pageInfo": {"hasNextPage": cursor.is_some(), "hasPreviousPage": false}, "totalCount": n, "cursor": cursor}}}),
                )
            }
            Err(e) => query_error(e.code.into(), e.message, 400),
        };
    }
    if query.contains("setAppStoredCustomEntity(") {
        let name = str_of(&input, "entityName");
        let value = input.get("value").cloned().unwrap_or(Value::Null);
        let r = code
            .entities
            .get(&name)
            .and_then(|d| d.check(&name, &value))
            .map_err(ent_err)
            .and_then(|()| {
                store
                    .entity_set_text(
                        &scope,
                        realm,
                        now,
                        &name,
                        &str_of(&input, "key"),
                        &value.to_string(),
                        SetOptions::default(),
                    )
                    .map_err(kvs_err)
            });
        return mutation("appStorageCustomEntity", "setAppStoredCustomEntity", r);
    }
    if query.contains("deleteAppStoredCustomEntity(") {
        let name = str_of(&input, "entityName");
        let r = code.entities.get(&name).map_err(ent_err).and_then(|_| {
            store
                .entity_delete(&scope, realm, now, &name, &str_of(&input, "key"))
                .map_err(kvs_err)
        });
        return mutation("appStorageCustomEntity", "deleteAppStoredCustomEntity", r);
    }
    if query.contains("appStoredCustomEntity(") {
        let name = str_of(&vars, "entityName");
        if let Err(e) = code.entities.get(&name) {
            return query_error(e.code.into(), e.message, 400);
        }
        let key = str_of(&vars, "key");
        return match store.entity_get_text(&scope, realm, now, &name, &key) {
            Ok(v) => {
                let value = v
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .unwrap_or(Value::Null);
                Answer::json(
                    200,
                    json!({"data": {"appStoredCustomEntity": {"key": key, "entityName": name, "value": value}}}),
                )
            }
            Err(e) => query_error(e.code.as_str().into(), e.message, kvs_status(e.code)),
        };
    }
    if query.contains("appStoredEntities(") {
        let mut prefix = String::new();
        for w in vars
            .get("where")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if w.get("field").and_then(Value::as_str) != Some("key")
                || w.get("condition").and_then(Value::as_str) != Some("STARTS_WITH")
            {
                return query_error(
                    "BAD_REQUEST".into(),
                    "queries filter on the key with STARTS_WITH only".into(),
                    400,
                );
            }
            prefix = str_of(w, "value");
        }
        let limit = vars
            .get("limit")
            .and_then(Value::as_u64)
            .map(|l| l as usize);
        let cursor = vars.get("cursor").and_then(Value::as_str);
        return match store.query_text(&scope, realm, now, &prefix, limit, cursor) {
            Ok(page) => {
                let n = page.results.len();
                let edges: Vec<Value> = page
                    .results
                    .into_iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        // The package continues from the last edge's cursor.
                        let c = if i + 1 == n { page.cursor.clone() } else { None };
                        json!({"node": {"key": k, "value": serde_json::from_str::<Value>(&v).unwrap_or(Value::Null)}, "cursor": c})
                    })
                    .collect();
                Answer::json(
                    200,
                    json!({"data": {"appStoredEntities": {"edges": edges}}}),
                )
            }
            Err(e) => query_error(e.code.as_str().into(), e.message, kvs_status(e.code)),
        };
    }
    if query.contains("setAppStoredEntity(") {
        let key = str_of(&input, "key");
        let text = input
            .get("value")
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into());
        let r = if encrypted(&input) {
            store.set_secret_text(&scope, realm, now, &key, &text)
        } else {
            store.set_text(&scope, realm, now, &key, &text, SetOptions::default())
        };
        return mutation("appStorage", "setAppStoredEntity", r.map_err(kvs_err));
    }
    if query.contains("deleteAppStoredEntity(") {
        let key = str_of(&input, "key");
        let r = if encrypted(&input) {
            store.delete_secret(&scope, realm, now, &key)
        } else {
            store.delete(&scope, realm, now, &key)
        };
        return mutation("appStorage", "deleteAppStoredEntity", r.map_err(kvs_err));
    }
    if query.contains("appStoredEntity(") {
        let key = str_of(&vars, "key");
        let r = if encrypted(&vars) {
            store.get_secret_text(&scope, realm, now, &key)
        } else {
            store.get_text(&scope, realm, now, &key)
        };
        return match r {
            Ok(v) => {
                let value = v
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .unwrap_or(Value::Null);
                Answer::json(
                    200,
                    json!({"data": {"appStoredEntity": {"key": key, "value": value}}}),
                )
            }
            Err(e) => query_error(e.code.as_str().into(), e.message, kvs_status(e.code)),
        };
    }
    query_error(
        "NOT_SIMULATED".into(),
        "this storage query is not part of the simulated legacy storage API".into(),
        400,
    )
}

// --- Stargate: queues of `@forge/events` (spec §3.6) ------------------------------------------

/// Events per push, and bytes per event body (the client checks both too).
const MAX_EVENTS: usize = 50;
const MAX_EVENT_BYTES: usize = 200 * 1024;

/// `webTrigger.getUrl`, `deleteUrl` and `queryUrls` of `@forge/api` (GraphQL on stargate,
/// spec §3.5). A web trigger's URL is the same for an installation on every run, derived from
/// the installation and the trigger's key; the query lists every web trigger of the app (not
/// only those asked for before). The simulation calls a web trigger by its key (a scenario's
/// `web-trigger` step), never by URL.
fn web_trigger_urls(state: &HostState, code: &NodeCode, body: &str) -> Answer {
    let gql_error = |message: String| {
        Answer::json(
            200,
            json!({"errors": [{"message": message, "extensions": {"errorType": "BAD_REQUEST", "statusCode": 400}}]}),
        )
    };
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return gql_error("the body is not JSON".into());
    };
    let query = str_field(&req, "query");
    let vars = req.get("variables").unwrap_or(&Value::Null);
    let inst = &state.installation.id;
    let id_of = |key: &str| {
        let h = key
            .bytes()
            .chain([0])
            .chain(inst.bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        format!("{h:016x}")
    };
    let url_of = |key: &str| {
        format!(
            "https://{}.hello.atlassian-dev.net/x1/{}",
            crate::node::args::cloud_id(&state.installation.site),
            id_of(key)
        )
    };
    if query.contains("createWebTriggerUrl") {
        let key = vars
            .pointer("/input/triggerKey")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !code.web_triggers.contains(key) {
            return gql_error(format!("the app has no webtrigger module `{key}`"));
        }
        Answer::json(
            200,
            json!({"data": {"createWebTriggerUrl": {"url": url_of(key)}}}),
        )
    } else if query.contains("deleteWebTriggerUrl") {
        let id = str_field(vars, "id");
        let known = code.web_triggers.iter().any(|k| id_of(k) == id);
        Answer::json(
            200,
            json!({"data": {"deleteWebTriggerUrl": {"success": known, "message": if known { Value::Null } else { json!(format!("no web trigger URL {id}")) }}}}),
        )
    } else if query.contains("webTriggerUrlsByAppContext") {
        let list: Vec<Value> = code
            .web_triggers
            .iter()
            .map(|k| json!({"triggerKey": k, "url": url_of(k)}))
            .collect();
        Answer::json(200, json!({"data": {"webTriggerUrlsByAppContext": list}}))
    } else {
        Answer::proxy_error(404, "NOT_SIMULATED")
    }
}

fn stargate(state: &mut HostState, path: &str, body: &str) -> Answer {
    if !path.starts_with("/webhook/queue/publish/") {
        return Answer::proxy_error(404, "NOT_SIMULATED");
    }
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return Answer::json(400, json!({"errorMessage": "the body is not JSON"}));
    };
    let queue = str_field(&req, "queueName").to_string();
    let job = str_field(&req, "jobId").to_string();
    let valid_queue = !queue.is_empty()
        && queue.len() <= 100
        && queue
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_queue {
        return Answer::json(
            400,
            json!({"errorMessage": format!("invalid queue name `{queue}`")}),
        );
    }
    let events = req
        .get("payload")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Answer::json(
            400,
            json!({"errorMessage": format!("a push takes 1 to {MAX_EVENTS} events, not {}", events.len())}),
        );
    }
    // @forge/events 1 pushes raw values under schema `.../forge/app-event`; 2 and later push
    // `{body, delayInSeconds?}` under `.../forge/app-event-2`.
    let v2 = req
        .get("schema")
        .and_then(Value::as_str)
        .is_some_and(|s| s.ends_with("-2"));
    for (n, e) in events.iter().enumerate() {
        let body = if v2 {
            e.get("body").cloned().unwrap_or(Value::Null)
        } else {
            e.clone()
        };
        let delay = if v2 {
            e.get("delayInSeconds").and_then(Value::as_u64).unwrap_or(0)
        } else {
            0
        };
        let event = json!({"body": body, "jobId": job, "eventId": format!("{job}-{n}"), "v2": v2, "delayInSeconds": delay});
        let text = event.to_string();
        if text.len() > MAX_EVENT_BYTES {
            return Answer::json(
                413,
                json!({"errorMessage": format!("event {n} is {} bytes; events hold {MAX_EVENT_BYTES}", text.len())}),
            );
        }
        state.world.pushed.push(crate::host::QueuePush {
            at: state.now,
            installation: state.installation.id.clone(),
            queue: queue.clone(),
            payload: text,
        });
    }
    Answer::json(201, json!({"jobId": job}))
}
