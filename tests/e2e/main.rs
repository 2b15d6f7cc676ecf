//! End-to-end tests: the `signoff` command line as a user drives it, the approval app as a
//! component inside the platform simulator, and the README's examples, which must print
//! exactly what the README shows.

mod app_scenarios;
mod approvals;
mod local;
mod readme;
mod roa;
mod sim;
mod workflow;
