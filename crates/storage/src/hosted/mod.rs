//! The seam to the platform's hosted key-value store (platform.md §6).
//!
//! [`Kvs`] is the small, synchronous surface that both sides implement: a wasm guest's
//! `wit-bindgen` imports (`signoff:forge/kvs`, see `crates/sim/wit/platform.wit`) and the
//! simulator's native store (`signoff-sim`), each already scoped to one installation. The
//! adapter over it implements core's storage traits within the platform's limits by design:
//! keys of at most [`MAX_KEY_LEN`] characters from the platform's alphabet, values of at most
//! [`MAX_VALUE_BYTES`], transactions of at most [`MAX_TRANSACTION_OPS`] operations, query
//! pages of at most [`MAX_PAGE`] entries.
//!
//! Values are JSON text, as they travel through the WIT contract; implementations may check
//! that they parse, the adapter only writes valid JSON.
//!
//! - [`HostedStore`]: core's storage traits over any [`Kvs`] (the key layout is documented
//!   there and in the crate README).
//! - [`MemoryKvs`]: a reference [`Kvs`] in memory that refuses what the platform refuses,
//!   with injectable `STORAGE_UNAVAILABLE` failures, for tests.

use std::fmt;

mod keys;
mod memory;
mod store;

pub use memory::{MAX_VALUE_DEPTH, MemoryKvs, MemoryKvsStats};
pub use store::{
    DEFAULT_PREFIX, HostedStore, InvalidPrefix, MAX_NAME_BYTES, MAX_SNAPSHOT_BYTES, Snapshot,
    StreamHead,
};

/// Keys: more than 1 and at most this many characters, from `[a-zA-Z0-9:._\s#-]`.
pub const MAX_KEY_LEN: usize = 500;
/// Values: at most 240 KiB of JSON text.
pub const MAX_VALUE_BYTES: usize = 240 * 1024;
/// Transactions: at most 25 operations, each key once, all or nothing.
pub const MAX_TRANSACTION_OPS: usize = 25;
/// Transactions: at most 4 MB in all.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Query pages: at most 100 entries.
pub const MAX_PAGE: u32 = 100;

/// `set`'s `keyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyPolicy {
    /// Write whether or not the key exists.
    #[default]
    Overwrite,
    /// `FAIL_IF_EXISTS`: refuse with `KEY_CONFLICT` when the key exists (inside a
    /// transaction, the whole transaction is refused).
    FailIfExists,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvsOp {
    Set {
        key: String,
        /// JSON text.
        value: String,
        policy: KeyPolicy,
    },
    Delete {
        key: String,
    },
}

/// One page of a prefix query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvsPage {
    /// Keys and JSON values, in lexicographic key order.
    pub entries: Vec<(String, String)>,
    /// Pass it back for the next page; `None` after the last page.
    pub cursor: Option<String>,
}

/// A refused call, with the platform's error code (`KEY_CONFLICT`, `MAX_SIZE`,
/// `TOO_MANY_OPERATIONS`, `RATE_LIMIT_EXCEEDED`, `STORAGE_UNAVAILABLE`, ...). A refused call
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvsError {
    pub code: String,
    pub message: String,
}

impl fmt::Display for KvsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for KvsError {}

impl KvsError {
    /// The code of a refused `FAIL_IF_EXISTS` write.
    pub const KEY_CONFLICT: &'static str = "KEY_CONFLICT";
    /// The code of a call the store could not serve (retrying later may succeed).
    pub const STORAGE_UNAVAILABLE: &'static str = "STORAGE_UNAVAILABLE";

    pub fn is_conflict(&self) -> bool {
        self.code == Self::KEY_CONFLICT
    }
}

/// One installation's hosted key-value store. `get` is strongly consistent; `query` lists
/// keys beginning with `prefix` in lexicographic order, `limit` (1 to [`MAX_PAGE`]) at a
/// time; `transact` is all or nothing.
pub trait Kvs: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<String>, KvsError>;
    fn set(&self, key: &str, value: &str, policy: KeyPolicy) -> Result<(), KvsError>;
    fn delete(&self, key: &str) -> Result<(), KvsError>;
    fn query(&self, prefix: &str, limit: u32, cursor: Option<&str>) -> Result<KvsPage, KvsError>;
    fn transact(&self, ops: Vec<KvsOp>) -> Result<(), KvsError>;
}

impl<K: Kvs + ?Sized> Kvs for &K {
    fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &str, policy: KeyPolicy) -> Result<(), KvsError> {
        (**self).set(key, value, policy)
    }
    fn delete(&self, key: &str) -> Result<(), KvsError> {
        (**self).delete(key)
    }
    fn query(&self, prefix: &str, limit: u32, cursor: Option<&str>) -> Result<KvsPage, KvsError> {
        (**self).query(prefix, limit, cursor)
    }
    fn transact(&self, ops: Vec<KvsOp>) -> Result<(), KvsError> {
        (**self).transact(ops)
    }
}
