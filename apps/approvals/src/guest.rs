//! The component glue: the WIT exports call the app logic, and the app's seams are
//! implemented over the WIT imports (`crates/sim/wit/platform.wit`, world `app`).

wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit" });

use signoff::forge::{context, fetch, kvs, log, product};
use signoff_storage::hosted::{HostedStore, KeyPolicy, Kvs, KvsError, KvsOp, KvsPage};

use crate::app::App;
use crate::ports::{self, AppError, ContentState, Level, Page, Platform, Property};

/// Where analytics events go: the manifest's one egress entry (`category: analytics`,
/// `inScopeEUD: false`), which a site admin can block.
const ANALYTICS_URL: &str = "https://analytics.signoff.example/v1/events";

/// The hosted key-value store of the installation being invoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestKvs;

/// The platform's other imports.
#[derive(Debug, Clone, Copy, Default)]
struct GuestPlatform;

struct Approvals;

impl Guest for Approvals {
    fn resolver(name: String, payload: String) -> Result<String, PlatformError> {
        with_app(|app| app.resolver(&name, &payload))
    }

    fn on_event(event: String) -> Result<(), PlatformError> {
        with_app(|app| app.on_event(&event))
    }

    fn on_schedule(key: String) -> Result<(), PlatformError> {
        with_app(|app| app.on_schedule(&key))
    }

    fn web_trigger(_request: WebRequest) -> Result<WebResponse, PlatformError> {
        let (status_code, body) = with_app(|app| Ok(app.health()))?;
        Ok(WebResponse {
            status_code,
            headers: vec![("Content-Type".into(), vec!["application/json".into()])],
            body,
        })
    }

    fn consume(queue: String, _payload: String) -> Result<(), PlatformError> {
        Err(PlatformError {
            code: "UNKNOWN_QUEUE".into(),
            message: format!("the app consumes no queue (got `{queue}`)"),
        })
    }
}

export!(Approvals);

fn with_app<T>(
    f: impl FnOnce(&App<'_, HostedStore<GuestKvs>, GuestKvs, GuestPlatform>) -> Result<T, AppError>,
) -> Result<T, PlatformError> {
    // The engine's streams, index and outbox under `signoff:`; the app's own records under
    // `app:`, in the same installation's store.
    let store = HostedStore::new(GuestKvs);
    let app = App::new(&store, &GuestKvs, &GuestPlatform);
    f(&app).map_err(|e| PlatformError {
        code: e.code,
        message: e.message,
    })
}

impl Kvs for GuestKvs {
    fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        kvs::get(key).map_err(kvs_error)
    }

    fn set(&self, key: &str, value: &str, policy: KeyPolicy) -> Result<(), KvsError> {
        kvs::set(key, value, options(policy)).map_err(kvs_error)
    }

    fn delete(&self, key: &str) -> Result<(), KvsError> {
        kvs::delete(key).map_err(kvs_error)
    }

    fn query(&self, prefix: &str, limit: u32, cursor: Option<&str>) -> Result<KvsPage, KvsError> {
        let page = kvs::query(prefix, Some(limit), cursor).map_err(kvs_error)?;
        Ok(KvsPage {
            entries: page.results.into_iter().map(|e| (e.key, e.value)).collect(),
            cursor: page.cursor,
        })
    }

    fn transact(&self, ops: Vec<KvsOp>) -> Result<(), KvsError> {
        let ops: Vec<kvs::TxOp> = ops
            .into_iter()
            .map(|op| match op {
                KvsOp::Set { key, value, policy } => kvs::TxOp::Set((key, value, options(policy))),
                KvsOp::Delete { key } => kvs::TxOp::Delete(key),
            })
            .collect();
        kvs::transact(&ops).map_err(kvs_error)
    }
}

impl Platform for GuestPlatform {
    fn now_ms(&self) -> u64 {
        context::current().now_ms
    }

    fn caller(&self) -> Option<String> {
        // The resolver's calling user; none for events, schedules and web triggers. When
        // both are given, `App::actor` refuses a payload `accountId` that differs.
        context::current().account_id
    }

    fn get_page(&self, id: &str) -> Result<Option<Page>, AppError> {
        Ok(product::get_page(id).map_err(app_error)?.map(|p| Page {
            id: p.id,
            space: p.space,
            title: p.title,
            body: p.body,
            author: p.author,
            version: p.version,
        }))
    }

    fn get_property(&self, page: &str, key: &str) -> Result<Option<Property>, AppError> {
        Ok(product::get_property(page, key)
            .map_err(app_error)?
            .map(|p| Property {
                value: p.value,
                version: p.version,
            }))
    }

    fn set_property(
        &self,
        page: &str,
        key: &str,
        value: &str,
        version: u32,
    ) -> Result<(), AppError> {
        product::set_property(page, key, value, version)
            .map(|_| ())
            .map_err(app_error)
    }

    fn get_content_state(&self, page: &str) -> Result<Option<ContentState>, AppError> {
        Ok(product::get_content_state(page)
            .map_err(app_error)?
            .map(|s| ContentState {
                name: s.name,
                color: s.color,
            }))
    }

    fn set_content_state(&self, page: &str, state: &ContentState) -> Result<u32, AppError> {
        let state = product::ContentState {
            name: state.name.clone(),
            color: state.color.clone(),
        };
        product::set_content_state(page, &state)
            .map(|p| p.version)
            .map_err(app_error)
    }

    fn post(&self, url: &str, body: &str) -> Result<u16, AppError> {
        fetch::fetch(&fetch::Request {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        })
        .map(|r| r.status)
        .map_err(app_error)
    }

    fn track(&self, event: &str, properties: &str) -> Result<(), AppError> {
        // Egress to the declared analytics host, as a Forge app does: the platform's gate
        // drops it when the admin blocks analytics (`REQUEST_EGRESS_ALLOWLIST_ERR`).
        let properties: serde_json::Value =
            serde_json::from_str(properties).unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({ "event": event, "properties": properties });
        match self.post(ANALYTICS_URL, &body.to_string())? {
            200..=299 => Ok(()),
            status => Err(AppError {
                code: "ANALYTICS_UNAVAILABLE".into(),
                message: format!("the analytics host answered {status}"),
            }),
        }
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::write(level, message);
    }

    fn get_secret(&self, key: &str) -> Result<Option<String>, AppError> {
        kvs::get_secret(key).map_err(app_error)
    }

    fn set_secret(&self, key: &str, value: &str) -> Result<(), AppError> {
        kvs::set_secret(key, value).map_err(app_error)
    }

    fn random_bytes(&self, buf: &mut [u8]) -> Result<(), AppError> {
        // getrandom reads WASI's `random.get-random-bytes` on wasm32-wasip2.
        getrandom::fill(buf).map_err(|e| AppError {
            code: "RANDOM_UNAVAILABLE".into(),
            message: format!("no randomness for a new secret: {e}"),
        })
    }
}

fn options(policy: KeyPolicy) -> kvs::SetOptions {
    kvs::SetOptions {
        ttl_ms: None,
        fail_if_exists: policy == KeyPolicy::FailIfExists,
    }
}

fn kvs_error(e: PlatformError) -> KvsError {
    KvsError {
        code: e.code,
        message: e.message,
    }
}

fn app_error(e: PlatformError) -> AppError {
    ports::AppError {
        code: e.code,
        message: e.message,
    }
}
