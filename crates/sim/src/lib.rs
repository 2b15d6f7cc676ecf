//! `signoff-sim`: a local simulator of the Forge platform (issue #5), growing in stages.
//!
//! What exists today are the platform's rules as plain Rust, each deterministic and tested:
//! - [`clock`]: the virtual clock and the seeded random generator every run is driven by;
//! - [`realm`]: data-residency realms;
//! - [`kvs`]: the hosted key-value store with the platform's limits and error codes, isolated
//!   per app, environment and installation, one physical store per realm, with pinning,
//!   migration, rate limits and fault injection;
//! - [`egress`]: the egress gate built from a manifest (via `roa-check`), the site admin's
//!   switches, and the ledger of every attempt.
//!
//! - [`product`]: the host product's API (an in-memory Confluence: pages, versions,
//!   content properties, content state);
//! - [`host`]: the wasm host. Apps are WebAssembly components speaking the WIT contract in
//!   `wit/platform.wit`, run by one `Engine` in a fresh `Store` per invocation under memory,
//!   time, fetch and log limits, with every failure a typed error in the trace.
//!
//! Product events, triggers as scheduled flows, scenarios and the runtime RoA report are not
//! built yet.

pub mod clock;
pub mod egress;
pub mod flow;
pub mod host;
pub mod kvs;
pub mod product;
pub mod realm;
pub mod redb_backend;
pub mod report;
pub mod scenario;

pub use clock::{Millis, Rng, VirtualClock};
pub use realm::Realm;
