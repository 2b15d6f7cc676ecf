//! What a Node handler is called with, and the `__forge_runtime__` it sees: the platform's
//! shapes (shared/spec/forge-node-runtime.md §1.2, §3), filled from the invocation.

use serde_json::{Value, json};

use super::{Consumer, NodeCode};
use crate::clock::Millis;
use crate::host::{Call, Installation, InvocationError};

/// A site's cloud id: a UUID-shaped name derived from its host, the same on every run.
pub fn cloud_id(site: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in site.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

fn bare_app_id(app: &str) -> &str {
    app.rsplit('/').next().unwrap_or(app)
}

fn environment_type(environment: &str) -> &'static str {
    match environment.to_ascii_lowercase().as_str() {
        "production" => "PRODUCTION",
        "staging" => "STAGING",
        _ => "DEVELOPMENT",
    }
}

/// What `__forge_runtime__` holds that is the same for every invocation of one installation's
/// code: sent once to each worker (with the app's environment variables), so that an
/// invocation's frame carries only what changes ([`runtime_invocation`]). The fields that
/// change are here as nulls, in their places, and host.js fills them in.
pub(crate) fn runtime_base(code: &NodeCode, inst: &Installation) -> Value {
    let cloud = cloud_id(&inst.site);
    json!({
        "appContext": {
            "appId": bare_app_id(&inst.app),
            "appVersion": "1",
            "environmentId": inst.environment,
            "environmentType": environment_type(&inst.environment),
            "invocationId": null,
            "installationId": inst.id,
            "moduleKey": null,
            "functionKey": null,
            "installation": {"id": inst.id, "contexts": [{"cloudId": cloud}]},
            "permissions": {"scopes": [], "external": {}},
        },
        "contextAri": format!("ari:cloud:{}::site/{cloud}", code.product),
        "aaid": null,
        "proxy": {"token": "signoff-sim", "url": "https://forge-proxy.signoff-sim.invalid", "host": "forge-proxy.signoff-sim.invalid"},
        "tracing": null,
        "container": {"appCodeDir": code.dir},
        "externalAuth": [],
    })
}

/// What `__forge_runtime__` holds for one invocation beyond [`runtime_base`].
pub(crate) fn runtime_invocation(
    function: &str,
    account: Option<&str>,
    invocation_id: u64,
) -> Value {
    json!({
        "invocationId": format!("{invocation_id:016x}"),
        "functionKey": function,
        "aaid": account,
        "tracing": {"traceId": format!("{invocation_id:032x}"), "spanId": format!("{:016x}", invocation_id.rotate_left(17))},
    })
}

/// The handler's second argument (function-reference/arguments).
fn function_context(code: &NodeCode, inst: &Installation, account: Option<&str>) -> Value {
    let cloud = cloud_id(&inst.site);
    let mut c = json!({
        "installContext": format!("ari:cloud:{}::site/{cloud}", code.product),
        "installation": {
            "ari": {"installationId": inst.id},
            "contexts": [{"cloudId": cloud}],
        },
    });
    if let Some(a) = account {
        c["principal"] = json!({"accountId": a});
    }
    c
}

/// The context a Custom UI sends with `invoke` (what `view.getContext()` returns there): the
/// module is the calling frame's when it is known (`ui`: its key, `localId` and extension),
/// else the first UI module whose resolver is `function` (the function's own key if none is),
/// with the extension's ARI as `localId`, as the platform forms it, and no extension.
fn ui_context(
    code: &NodeCode,
    inst: &Installation,
    account: Option<&str>,
    function: &str,
    ui: Option<&crate::host::UiContext>,
) -> Value {
    let mut c = default_ui_context(code, inst, account, function);
    if let Some(ui) = ui {
        if let Some(k) = &ui.module_key {
            c["moduleKey"] = json!(k);
        }
        if let Some(l) = &ui.local_id {
            c["localId"] = json!(l);
        }
        c["extension"] = ui.extension.clone();
    }
    c
}

fn default_ui_context(
    code: &NodeCode,
    inst: &Installation,
    account: Option<&str>,
    function: &str,
) -> Value {
    let module = code
        .ui_modules
        .get(function)
        .map_or(function, String::as_str);
    json!({
        "accountId": account,
        "cloudId": cloud_id(&inst.site),
        "siteUrl": format!("https://{}", inst.site),
        "localId": format!(
            "ari:cloud:ecosystem::extension/{}/{}/static/{module}",
            bare_app_id(&inst.app),
            inst.environment
        ),
        "moduleKey": module,
        "environmentId": inst.environment,
        "environmentType": environment_type(&inst.environment),
        "extension": {},
        "locale": "en-US",
        "timezone": "UTC",
    })
}

fn parse(what: &str, text: &str) -> Result<Value, InvocationError> {
    serde_json::from_str(text).map_err(|e| InvocationError::BadOutput {
        reason: format!("the {what} is not JSON: {e}"),
    })
}

/// The handler's arguments for a call.
pub(crate) fn args(
    code: &NodeCode,
    inst: &Installation,
    call: &Call,
    function: &str,
    account: Option<&str>,
    now: Millis,
    ui: Option<&crate::host::UiContext>,
) -> Result<Value, InvocationError> {
    let fc = function_context(code, inst, account);
    Ok(match call {
        Call::Resolver { name, payload } => json!([
            {"call": {"functionKey": name, "payload": parse("resolver payload", payload)?}, "context": ui_context(code, inst, account, function, ui)},
            fc,
        ]),
        Call::Event(event) => json!([parse("event", event)?, fc]),
        Call::Schedule(key) => json!([
            {"context": {"cloudId": cloud_id(&inst.site), "moduleKey": key}, "contextToken": format!("signoff-sim-{}", now.0)},
            fc,
        ]),
        Call::WebTrigger(r) => {
            let pairs = |v: &[(String, Vec<String>)]| {
                Value::Object(v.iter().map(|(k, vals)| (k.clone(), json!(vals))).collect())
            };
            json!([
                {"method": r.method, "path": r.path, "headers": pairs(&r.headers), "queryParameters": pairs(&r.query_parameters), "body": r.body},
                fc,
            ])
        }
        Call::Consume { queue, payload } => {
            let v = parse("queue payload", payload)?;
            // Pushed by a Node app through `@forge/events`: `{body, jobId, eventId, v2}`; pushed
            // another way (a scenario, a component): the payload is the body.
            let wrapped = v.get("jobId").is_some() && v.get("v2").is_some();
            let (body, job, event) = if wrapped {
                (
                    v["body"].clone(),
                    v["jobId"].clone(),
                    v.get("eventId").cloned().unwrap_or(Value::Null),
                )
            } else {
                (
                    v,
                    json!(format!("signoff-sim-{}", now.0)),
                    json!(format!("signoff-sim-{}-0", now.0)),
                )
            };
            match code.consumers.get(queue) {
                Some(Consumer::Resolver { method }) => json!([
                    {"call": {"functionKey": method, "payload": body, "jobId": job}, "context": {}},
                    fc,
                ]),
                _ => json!([
                    {"body": body, "queueName": queue, "jobId": job, "eventId": event},
                    fc,
                ]),
            }
        }
    })
}
