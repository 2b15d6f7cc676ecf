//! `signoff-storage`: embedded stores behind the storage traits of `signoff-core` (issue #4).
//!
//! - [`RedbStore`], the default: one redb file, ACID, checksummed, one fsync per durable
//!   commit.
//! - [`SledStore`]: for users who ask for sled. Durability comes only from an explicit
//!   `flush()`, which this adapter calls before acknowledging (see the crate README for
//!   what sled does and does not promise).
//! - [`MemoryStore`] (re-exported from core): nothing survives the process.
//!
//! - [`hosted::HostedStore`]: the same traits over the platform's hosted key-value store,
//!   through the small [`hosted::Kvs`] trait that both a wasm guest's bindings and the
//!   simulator's native store implement. It is the only adapter built without the default
//!   `embedded` feature (what a `wasm32-wasip2` guest links). [`hosted::MemoryKvs`] is its
//!   reference key-value store for tests: it refuses what the platform refuses.
//!
//! - [`PgStore`] (feature `postgres`): the same traits over a PostgreSQL database that
//!   several engine processes share; [`throwaway_pg`] starts a server for tests.
//!
//! All of them implement [`EventStore`], [`DocumentIndex`] and [`Outbox`] and pass the same
//! conformance suite (`tests/it/conformance.rs`).
//!
//! Durability is explicit ([`Durability`], [`StoreConfig`]) and durable by default: when
//! `append` returns `Ok` under [`Durability::Immediate`], the records are on disk. Writes go
//! through one dedicated writer thread per store, which can commit several concurrent
//! callers' operations in one durable transaction ([`GroupCommit`]); each caller is answered
//! only after the commit that carries its operation. Reads run on tokio's blocking pool
//! (`spawn_blocking`), or inline when there is no tokio runtime. Blocking storage calls never
//! run on the async executor threads.

#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
mod codec;
pub mod contain;
mod error;
pub mod hosted;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pg_tls;
#[cfg(feature = "embedded")]
mod readonly;
#[cfg(feature = "embedded")]
mod redb_store;
#[cfg(feature = "embedded")]
mod sled_store;
#[cfg(feature = "postgres")]
pub mod throwaway_pg;
#[cfg(feature = "embedded")]
mod writer;

use async_trait::async_trait;
pub use signoff_core::store::{
    DocumentIndex, EventStore, IndexEntry, MemoryStore, Outbox, StoreError,
};

pub use contain::panic_is_contained;
pub use error::{Damaged, OpenError};
#[cfg(feature = "postgres")]
pub use pg::{PG_SCHEMA_VERSION, PgConfig, PgError, PgOpen, PgStore};
#[cfg(feature = "embedded")]
pub use redb_store::RedbStore;
#[cfg(feature = "embedded")]
pub use sled_store::{SLED_JOURNAL_COMPACT_LINES, SledStore};
#[cfg(feature = "embedded")]
pub use writer::WriterStats;

/// The version of the on-disk layout that this build writes and reads. A store written by a
/// newer layout is refused with [`OpenError::NewerSchema`]; see the README for migrating.
pub const SCHEMA_VERSION: u64 = 3;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit reaches stable storage (fsync) before the callers it carries are
    /// answered. An approval acknowledged to the caller survives a crash or a power loss.
    #[default]
    Immediate,
    /// Commits are not synced: fast, for simulations and tests. A crash may lose any
    /// number of acknowledged writes (never a part of one: commits stay atomic).
    None,
}

/// Whether the writer may commit several callers' operations in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupCommit {
    /// One transaction (and, under [`Durability::Immediate`], one fsync) per operation.
    #[default]
    Off,
    /// Up to this many queued operations share one transaction and one fsync. Operations
    /// stay independent: a conflict in one fails that one only. Nothing waits for a batch
    /// to fill: the writer takes what is queued when it is free.
    UpTo(usize),
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreConfig {
    pub durability: Durability,
    pub group_commit: GroupCommit,
}

/// The three storage traits together, for code that wants one handle.
pub trait Store: EventStore + DocumentIndex + Outbox {}

impl<T: EventStore + DocumentIndex + Outbox + ?Sized> Store for T {}

/// Operations beyond the three traits that the persistent adapters share: an append
/// together with its index row and notifications in one atomic commit, the list of
/// documents, and the workflow definitions that documents pin.
#[async_trait]
pub trait LocalStore: Store {
    /// Appends `records` (as [`EventStore::append`]) and, in the same atomic commit,
    /// upserts `entry` and enqueues `notifications`. On a conflict nothing is stored.
    async fn commit(
        &self,
        doc: &str,
        expected: u64,
        records: &[signoff_core::Record],
        entry: Option<IndexEntry>,
        notifications: &[signoff_core::notify::Notification],
    ) -> Result<u64, StoreError>;
    /// Every document with its stream length, ordered by id.
    async fn documents(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Stores a workflow definition's source under its hash (idempotent).
    async fn put_workflow(&self, hash: &str, source: &str) -> Result<(), StoreError>;
    /// The source of the workflow definition stored under `hash`.
    async fn workflow(&self, hash: &str) -> Result<Option<String>, StoreError>;
}

impl StoreConfig {
    /// Durable, no group commit: the default.
    pub fn durable() -> StoreConfig {
        StoreConfig::default()
    }

    #[cfg(feature = "embedded")]
    pub(crate) fn max_batch(&self) -> usize {
        match self.group_commit {
            GroupCommit::Off => 1,
            GroupCommit::UpTo(n) => n.max(1),
        }
    }
}
