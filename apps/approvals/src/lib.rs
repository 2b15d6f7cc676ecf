//! `approvals`: the signoff document-approval app for Confluence, as a WebAssembly component
//! for the (simulated) Forge platform (issue #6).
//!
//! All workflow logic is `signoff-core`'s: the app turns platform calls (resolvers, product
//! events, scheduled triggers, the web trigger) into engine commands, keeps the records in
//! the hosted key-value store, and mirrors each document's state onto its page (the content
//! state lozenge and a `signoff-summary` content property).
//!
//! The logic ([`app::App`]) is generic over the storage traits (`LocalStore`: core's three
//! traits and an atomic commit), over the [`Kvs`] seam for the app's own small records, and
//! over a [`ports::Platform`] for everything else the platform offers, so it runs natively
//! in unit tests over `MemoryKvs` and a fake platform. The component glue (`guest`, wasm32
//! only) implements those seams over the WIT imports of `crates/sim/wit/platform.wit`:
//! `HostedStore<GuestKvs>` keeps the engine's records in the hosted key-value store.
//!
//! [`Kvs`]: signoff_storage::hosted::Kvs

pub mod app;
pub mod block;
pub mod payload;
pub mod ports;
pub mod snapshot;
pub mod store;
pub mod totp;

// The bindings wit-bindgen generates use unsafe code (nothing else in the app does) and
// functions with many arguments.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, clippy::too_many_arguments)]
mod guest;
