//! `signoff`: the command line for people who build and run document-approval apps on Forge.
//!
//! The binary is a thin shell over [`run`], which the end-to-end tests call in-process with
//! their own writers.

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

pub mod demo;
pub mod doc;
pub mod safe;
pub mod sim;
pub mod workflow;

/// The signoff command line.
#[derive(Debug, Parser)]
#[command(name = "signoff", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const LONG_ABOUT: &str = "\
signoff: build, check and run document-approval apps for Atlassian Forge on your laptop.

Today it checks Forge manifests for Runs-on-Atlassian eligibility and classifies upgrades
(`signoff roa`), validates, draws and unit-tests approval workflows (`signoff workflow`), and
runs documents through a workflow on a local store (`signoff doc`, `pending`, `audit`, `tick`;
the default store is ./signoff.redb, or postgres://... with --store), and runs apps (wasm
components, or real Forge apps written for Node.js with their own @forge/* packages) on a
simulated Forge platform from a scenario file (`signoff sim run`, `signoff sim inspect`).";

/// Top-level commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Runs-on-Atlassian checks for Forge manifests (the same as the `roa-check` binary).
    #[command(subcommand)]
    Roa(roa_check::cli::Command),
    /// Approval workflows: validate a definition, draw it, and run scenario tests.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// The simulated Forge platform: run a scenario, inspect what installations stored.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// The flagship demo: the approval app on an EU site through a simulated year, then
    /// documents by state, signatures, audit chains verified natively, egress, residency and
    /// the Runs-on-Atlassian verdicts (build the app first: `cargo xtask guests`).
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Local(doc::LocalCommand),
}

/// Parses `args` (including the program name) and runs the command, writing to `out` and
/// `err`. Returns the process exit code; usage errors give 2, like clap's own exit.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write, stdout_is_terminal: bool) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let rendered = e.render().to_string();
            let target: &mut dyn Write = if e.use_stderr() { err } else { out };
            let _ = target.write_all(rendered.as_bytes());
            return code;
        }
    };
    match &cli.command {
        Command::Roa(cmd) => roa_check::cli::run(cmd, out, err, stdout_is_terminal),
        Command::Workflow(cmd) => workflow::run(cmd, out, err),
        Command::Sim(cmd) => sim::run(cmd, out, err),
        Command::Demo(args) => demo::run(args, out, err),
        Command::Local(cmd) => doc::run(cmd, out, err),
    }
}
