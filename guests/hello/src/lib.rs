//! A well-behaved app: a trivial resolver (`echo`, the bench's subject) and one resolver per
//! platform import, so the tests can drive every import through a real component.

wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit" });

use signoff::forge::{analytics, context, fetch, kvs, log, product, queue};

struct Hello;

impl Guest for Hello {
    fn resolver(name: String, payload: String) -> Result<String, PlatformError> {
        match name.as_str() {
            "echo" => Ok(payload),
            // What the guest's std sees of WASI randomness: a hash seed and the wall clock.
            "random" => {
                use std::hash::BuildHasher;
                let h = std::collections::hash_map::RandomState::new().hash_one(1u64);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                Ok(format!(r#"{{"hash":"{h:x}","now":{now}}}"#))
            }
            "context" => {
                let c = context::current();
                Ok(format!(
                    r#"{{"app":{},"environment":{},"site":{},"installation":{},"realm":{},"function":{},"now":{},"remainingPositive":{},"accountId":{}}}"#,
                    q(&c.app_id),
                    q(&c.environment),
                    q(&c.site),
                    q(&c.installation),
                    q(&c.realm),
                    q(&c.function),
                    c.now_ms,
                    c.remaining_ms > 0,
                    c.account_id.as_deref().map_or_else(|| "null".into(), q)
                ))
            }
            // payload: a key; stores {"n": <len>} under it, reads it back, queries the prefix.
            "kvs" => {
                let opts = kvs::SetOptions {
                    ttl_ms: None,
                    fail_if_exists: false,
                };
                kvs::set(&payload, r#"{"n":1}"#, opts)?;
                let got = kvs::get(&payload)?.unwrap_or_else(|| "null".into());
                let conflict = kvs::set(
                    &payload,
                    "2",
                    kvs::SetOptions {
                        ttl_ms: None,
                        fail_if_exists: true,
                    },
                )
                .err()
                .map(|e| e.code)
                .unwrap_or_default();
                let page = kvs::query("", Some(100), None)?;
                let keys: Vec<String> = page.results.iter().map(|e| q(&e.key)).collect();
                kvs::transact(&[
                    kvs::TxOp::Set((format!("{payload}.tx"), "true".into(), opts)),
                    kvs::TxOp::Delete(payload.clone()),
                ])?;
                let batch = kvs::batch_set(&[
                    kvs::Entry {
                        key: "ok-key".into(),
                        value: "1".into(),
                    },
                    kvs::Entry {
                        key: "bad/key".into(),
                        value: "1".into(),
                    },
                ])?;
                let batch: Vec<String> = batch
                    .into_iter()
                    .map(|r| q(&r.err().map(|e| e.code).unwrap_or_else(|| "ok".into())))
                    .collect();
                kvs::set_secret("token", r#""s3cret""#)?;
                let secret = kvs::get_secret("token")?.unwrap_or_default();
                let after: Vec<String> = kvs::query("", None, None)?
                    .results
                    .iter()
                    .map(|e| q(&e.key))
                    .collect();
                Ok(format!(
                    r#"{{"got":{got},"conflict":{},"keys":[{}],"batch":[{}],"secret":{secret},"after":[{}]}}"#,
                    q(&conflict),
                    keys.join(","),
                    batch.join(","),
                    after.join(",")
                ))
            }
            // payload: a URL; answers {"status": n, "body": "..."} or {"error": "CODE"}.
            "fetch" => Ok(
                match fetch::fetch(&fetch::Request {
                    method: "GET".into(),
                    url: payload,
                    headers: vec![],
                    body: String::new(),
                }) {
                    Ok(r) => format!(r#"{{"status":{},"body":{}}}"#, r.status, q(&r.body)),
                    Err(e) => format!(r#"{{"error":{}}}"#, q(&e.code)),
                },
            ),
            // payload: JSON; pushed onto the queue `work` for the consumer.
            "push" => {
                queue::push("work", &payload)?;
                Ok("null".into())
            }
            // payload: a page id; appends to the page's body (an app's own edit).
            "touch" => {
                let p = product::get_page(&payload)?.ok_or_else(|| PlatformError {
                    code: "NOT_FOUND".into(),
                    message: format!("no page {payload}"),
                })?;
                let p =
                    product::update_page(&p.id, &p.title, &format!("{} +", p.body), p.version + 1)?;
                Ok(p.version.to_string())
            }
            "log" => {
                log::write(log::Level::Info, &payload);
                Ok("null".into())
            }
            "track" => {
                analytics::track(&payload, r#"{"n":1}"#)?;
                Ok("null".into())
            }
            // Creates a page, sets a property twice (the second time with a stale version),
            // sets the content state, and reads everything back.
            "product" => {
                let p = product::create_page("ENG", &payload, "<p>draft</p>")?;
                let p = product::update_page(&p.id, &p.title, "<p>v2</p>", p.version + 1)?;
                let prop = product::set_property(&p.id, "approval", r#"{"state":"open"}"#, 1)?;
                let stale = product::set_property(&p.id, "approval", "{}", 1)
                    .err()
                    .map(|e| e.code)
                    .unwrap_or_default();
                let state = product::ContentState {
                    name: "In review".into(),
                    color: "#ffc400".into(),
                };
                let p = product::set_content_state(&p.id, &state)?;
                let st = product::get_content_state(&p.id)?
                    .map(|s| s.name)
                    .unwrap_or_default();
                let again = product::get_page(&p.id)?.map(|p| p.version).unwrap_or(0);
                Ok(format!(
                    r#"{{"id":{},"version":{},"property":{},"propertyVersion":{},"stale":{},"state":{},"readVersion":{again}}}"#,
                    q(&p.id),
                    p.version,
                    prop.value,
                    prop.version,
                    q(&stale),
                    q(&st)
                ))
            }
            other => Err(PlatformError {
                code: "UNKNOWN_RESOLVER".into(),
                message: format!("no resolver named `{other}`"),
            }),
        }
    }

    fn on_event(event: String) -> Result<(), PlatformError> {
        kvs::set(
            "last-event",
            &event,
            kvs::SetOptions {
                ttl_ms: None,
                fail_if_exists: false,
            },
        )
    }

    fn on_schedule(key: String) -> Result<(), PlatformError> {
        kvs::set(
            "last-schedule",
            &q(&key),
            kvs::SetOptions {
                ttl_ms: None,
                fail_if_exists: false,
            },
        )
    }

    fn web_trigger(request: WebRequest) -> Result<WebResponse, PlatformError> {
        Ok(WebResponse {
            status_code: 200,
            headers: vec![("Content-Type".into(), vec!["application/json".into()])],
            body: format!(
                r#"{{"method":{},"path":{}}}"#,
                q(&request.method),
                q(&request.path)
            ),
        })
    }

    fn consume(queue: String, payload: String) -> Result<(), PlatformError> {
        kvs::set(
            &format!("queue.{queue}"),
            &payload,
            kvs::SetOptions {
                ttl_ms: None,
                fail_if_exists: false,
            },
        )
    }
}

/// A JSON string literal.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export!(Hello);
