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
//! The wasm host (apps as components under time and memory limits), product events,
//! triggers, scenarios and the runtime RoA report are not built yet.

pub mod clock;
pub mod egress;
pub mod kvs;
pub mod realm;

pub use clock::{Millis, Rng, VirtualClock};
pub use realm::Realm;
