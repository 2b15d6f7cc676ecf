//! Integration tests for signoff-sim: one binary, a module per part of the platform.

mod egress;
mod flow;
mod host;
mod hosted;
mod kvs;
mod node;
mod scenario;
