//! Native tests of the approval app's logic, over `HostedStore<MemoryKvs>` (the component's
//! store, over an in-memory key-value store) and a fake platform.

mod app;
mod fake;
mod snapshot;
mod totp;
mod ui;
