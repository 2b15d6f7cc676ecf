//! One installation's hosted key-value store as a [`signoff_storage::hosted::Kvs`], so that
//! native code can read (and write) what a wasm app stored, through the same adapter the app
//! links: `signoff_storage::hosted::HostedStore<InstallationKvs>` reads the engine's
//! streams, index and outbox that `apps/approvals` wrote from inside the simulator.
//!
//! ```text
//! let scope = sim.platform().installation("acme").unwrap().scope();
//! let kvs = sim.platform_mut().kvs();
//! let store = HostedStore::new(InstallationKvs::new(kvs, scope, Realm::Eu, now));
//! for (doc, len) in block_on(store.documents())? { /* read, audit::verify */ }
//! ```
//!
//! (A sketch: `crates/cli/src/demo.rs` is the complete use, and `tests/it` runs it.)
//!
//! Every call goes through [`crate::kvs::Kvs`] like a guest's: with the installation's
//! [`Scope`], from the realm given (a call from another realm than the one the installation
//! is pinned to is refused with `CROSS_REALM_ACCESS` and recorded as a violation, exactly as
//! for an app), at a virtual time. The reader is a well-behaved client of the platform's
//! rate limit: each call advances its own time by one request's share of a second
//! (`1000 / requests_per_second` ms), so reading a whole installation never meets
//! `RATE_LIMIT_EXCEEDED` however many keys it holds. That time is the reader's own; the
//! simulation's clock does not move. Values cross as JSON text, as they do through the WIT
//! contract; text that is not JSON is refused with `INVALID_VALUE`.

use std::sync::Mutex;

use signoff_storage::hosted::{self, KeyPolicy, KvsOp, KvsPage};

use crate::clock::Millis;
use crate::kvs::{Kvs, KvsError, Scope, SetOptions, TxOp};
use crate::realm::Realm;

/// One installation's view of the simulator's hosted store (see the module docs).
#[derive(Debug)]
pub struct InstallationKvs<'a> {
    inner: Mutex<Inner<'a>>,
    scope: Scope,
    realm: Realm,
}

#[derive(Debug)]
struct Inner<'a> {
    kvs: &'a mut Kvs,
    now: Millis,
    step_ms: u64,
}

impl<'a> InstallationKvs<'a> {
    /// The store of installation `scope` as seen from `realm`, from virtual time `now` on.
    pub fn new(kvs: &'a mut Kvs, scope: Scope, realm: Realm, now: Millis) -> InstallationKvs<'a> {
        let rate = u64::from(kvs.limits().requests_per_second.max(1));
        InstallationKvs {
            inner: Mutex::new(Inner {
                kvs,
                now,
                step_ms: 1000u64.div_ceil(rate),
            }),
            scope,
            realm,
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn realm(&self) -> Realm {
        self.realm
    }

    /// The reader's virtual time: `now` at creation plus one step per call so far.
    pub fn now(&self) -> Millis {
        self.lock().now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<'a>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one call at the reader's time, then advances it.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut Kvs, &Scope, Realm, Millis) -> Result<T, KvsError>,
    ) -> Result<T, hosted::KvsError> {
        let mut inner = self.lock();
        let now = inner.now;
        inner.now = Millis(now.0.saturating_add(inner.step_ms));
        f(inner.kvs, &self.scope, self.realm, now).map_err(convert)
    }
}

fn convert(e: KvsError) -> hosted::KvsError {
    hosted::KvsError {
        code: e.code.as_str().to_string(),
        message: e.message,
    }
}

fn options(policy: KeyPolicy) -> SetOptions {
    SetOptions {
        ttl_ms: None,
        fail_if_exists: policy == KeyPolicy::FailIfExists,
    }
}

impl hosted::Kvs for InstallationKvs<'_> {
    fn get(&self, key: &str) -> Result<Option<String>, hosted::KvsError> {
        self.call(|kvs, scope, realm, now| kvs.get_text(scope, realm, now, key))
    }

    fn set(&self, key: &str, value: &str, policy: KeyPolicy) -> Result<(), hosted::KvsError> {
        self.call(|kvs, scope, realm, now| {
            kvs.set_text(scope, realm, now, key, value, options(policy))
        })
    }

    fn delete(&self, key: &str) -> Result<(), hosted::KvsError> {
        self.call(|kvs, scope, realm, now| kvs.delete(scope, realm, now, key))
    }

    fn query(
        &self,
        prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<KvsPage, hosted::KvsError> {
        let page = self.call(|kvs, scope, realm, now| {
            kvs.query_text(scope, realm, now, prefix, Some(limit as usize), cursor)
        })?;
        Ok(KvsPage {
            entries: page.results,
            cursor: page.cursor,
        })
    }

    fn transact(&self, ops: Vec<KvsOp>) -> Result<(), hosted::KvsError> {
        let mut tx = Vec::with_capacity(ops.len());
        for op in ops {
            tx.push(match op {
                KvsOp::Set { key, value, policy } => TxOp::SetText {
                    key,
                    text: value,
                    options: options(policy),
                },
                KvsOp::Delete { key } => TxOp::Delete { key },
            });
        }
        self.call(|kvs, scope, realm, now| kvs.transact(scope, realm, now, tx))
    }
}

/// Runs a future that waits on nothing: `HostedStore` over [`InstallationKvs`] is synchronous
/// underneath, so each of its futures is ready on the first poll.
///
/// # Panics
///
/// When the future is still pending after 1,000 polls (it waits on something else).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("a storage future was still pending after 1,000 polls")
}
