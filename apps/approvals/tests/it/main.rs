//! Native tests of the approval app's logic, over core's `MemoryStore` (and the interim
//! key-value store), an in-memory key-value store and a fake platform.

mod app;
mod fake;
mod interim;
