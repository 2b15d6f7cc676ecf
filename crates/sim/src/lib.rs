//! `signoff-sim`: a local simulator of the Forge platform (issue #5).
//!
//! The platform's rules as plain Rust, each deterministic and tested:
//! - [`clock`]: the virtual clock and the seeded random generator every run is driven by;
//! - [`realm`]: data-residency realms;
//! - [`kvs`]: the hosted key-value store with the platform's limits and error codes, isolated
//!   per app, environment and installation, one physical store per realm, with pinning,
//!   migration, rate limits and fault injection;
//! - [`egress`]: the egress gate built from a manifest (via `roa-check`), the site admin's
//!   switches, and the ledger of every attempt;
//! - [`product`]: the host product's API (an in-memory Confluence: pages, versions,
//!   content properties, content state, and the product events of every change);
//! - [`host`]: the wasm host. Apps are WebAssembly components speaking the WIT contract in
//!   `wit/platform.wit`, run by one `Engine` in a fresh `Store` per invocation under memory,
//!   time, fetch and log limits, with every failure a typed error in the trace;
//! - [`flow`]: the simulation over time, a discrete-event [`flow::Simulation`] on the host:
//!   product events with seeded delays, reordering, retries and dead letters; scheduled
//!   triggers; web triggers; queues; deploys classified major or minor by `roa-check`, with
//!   the site admin's consent; fault injection. Same seed, byte-identical trace;
//! - [`hosted`]: one installation's hosted store as `signoff_storage::hosted::Kvs`, so
//!   `HostedStore` reads natively what an app stored from inside the simulator;
//! - [`report`]: the runtime RoA report, `roa-check`'s static verdict beside what the app was
//!   seen doing (egress by destination, blocked attempts, page content sent, cross-realm
//!   access), as text or JSON;
//! - [`scenario`]: YAML scenarios that set up sites, apps and installations and drive a
//!   simulation with timed steps and expectations (`signoff sim run`).

pub mod clock;
pub mod egress;
pub mod flow;
pub mod host;
pub mod hosted;
pub mod kvs;
pub mod loopback;
pub mod node;
pub mod product;
pub mod realm;
pub mod redb_backend;
pub mod report;
pub mod scenario;

pub use clock::{Millis, Rng, VirtualClock};
pub use realm::Realm;
