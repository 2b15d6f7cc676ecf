//! End-to-end tests: the `signoff` command line as a user drives it, and the README's
//! examples, which must print exactly what the README shows.

mod local;
mod readme;
mod roa;
mod sim;
mod workflow;
