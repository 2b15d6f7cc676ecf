//! `signoff sim run|inspect`: runs a scenario on the simulated Forge platform and shows what
//! installations stored.
//!
//! Exit codes of `run`: 0 when every expectation holds, 1 when one fails (the output names
//! the seed that reproduces the run), 2 when the scenario or something it names cannot be
//! used (the message names the file, line and column).

use crate::safe::safe;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use signoff_sim::Realm;
use signoff_sim::kvs::{KvsStorage, inspect_dir};
use signoff_sim::scenario::{RunOptions, Scenario};

/// `signoff sim ...`
#[derive(Debug, clap::Subcommand)]
pub enum SimCommand {
    /// Runs a scenario (YAML) on the simulated platform and checks its expectations.
    Run(RunArgs),
    /// Shows the keys and values installations stored in a data directory written by
    /// `signoff sim run --data DIR`.
    Inspect(InspectArgs),
    /// Runs a scenario, then serves the simulated site in the browser: pages with the apps'
    /// Custom UI (resolvers run as the user picked in the console), the virtual clock, the
    /// egress ledger, the RoA report, storage, logs and the site admin's switches. Listens
    /// on 127.0.0.1 only; stop it with Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The scenario file: its sites, users, apps and steps set up what the console shows.
    pub scenario: PathBuf,
    /// Overrides the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The console's port on 127.0.0.1 (default: a free port, printed at start).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The port of the apps' frames on 127.0.0.1 (another origin than the console, as a
    /// Custom UI is on the platform; default: a free port).
    #[arg(long, default_value_t = 0)]
    pub frame_port: u16,
    /// Runs the scenario's app NAME from the Node app in DIR (as for `sim run`), e.g. the
    /// approval app's Forge package: `--node-app approvals=apps/approvals/forge`.
    #[arg(long = "node-app", value_name = "NAME=DIR", value_parser = parse_node_app)]
    pub node_app: Vec<(String, PathBuf)>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Overrides the scenario's seed (delays, reordering, jitter, the apps' randomness).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How to print the report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub report: Format,
    /// Writes the trace (every event of the run, every invocation, the egress ledger and the
    /// apps' log lines) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Keeps hosted storage in redb files in DIR (one per realm; earlier realm files there
    /// are replaced) for `signoff sim inspect`. Without it, storage is in memory.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Worker threads that make the apps' instances ahead of their invocations (1: each
    /// invocation makes its own). More pays only with an idle core; the output is the same
    /// whatever the number.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Runs the scenario's app NAME from the Node app in DIR (e.g. the Forge package
    /// apps/approvals/forge that `cargo xtask package` builds) instead of the code the
    /// scenario names; its manifests stay the scenario's. Repeatable.
    #[arg(long = "node-app", value_name = "NAME=DIR", value_parser = parse_node_app)]
    pub node_app: Vec<(String, PathBuf)>,
    /// Prints the apps' log lines on stderr after the run, a line each (virtual time,
    /// installation, function, level, message), as `forge logs` shows them to the vendor:
    /// lines of installations whose admin turned log sharing off are only counted.
    #[arg(long)]
    pub logs: bool,
    /// Writes a JUnit XML report to FILE, for CI dashboards: a test case per check (a `call`
    /// or `web-trigger` step with expectations, each expectation), with its failures.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Reads a scenario and runs the apps `--node-app` names from their Node folders.
fn load(
    path: &std::path::Path,
    node_apps: &[(String, PathBuf)],
) -> Result<Scenario, signoff_sim::scenario::ScenarioError> {
    Scenario::load(path).and_then(|s| {
        node_apps
            .iter()
            .try_fold(s, |s, (app, dir)| s.with_node_app(app, dir))
    })
}

fn parse_node_app(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!(
            "expected NAME=DIR (an app of the scenario and a Node app's folder), got `{s}`"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The data directory of a run (`signoff sim run --data DIR`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Only this installation.
    pub installation: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(cmd: &SimCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match cmd {
        SimCommand::Run(args) => run_scenario(args, out, err),
        SimCommand::Inspect(args) => inspect(args, out, err),
        SimCommand::Serve(args) => serve(args, out, err),
    }
}

fn serve(args: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let scenario = match load(&args.scenario, &args.node_app) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let tty = std::io::stderr().is_terminal();
    let bar = progress_bar("sim");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total.max(1));
        bar.set_position(done);
    };
    let options = RunOptions {
        seed: args.seed,
        storage: KvsStorage::Memory,
        progress: if tty { Some(&mut progress) } else { None },
        threads: None,
    };
    let outcome = scenario.run(options);
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let failed = outcome.failures.len();
    if failed > 0 {
        let _ = writeln!(
            err,
            "note: {failed} expectation(s) of the scenario failed; the console shows the run as it is"
        );
    }
    let config = signoff_console::Config {
        port: args.port,
        frame_port: args.frame_port,
    };
    let served = signoff_console::serve(
        outcome,
        config,
        |a| {
            let _ = writeln!(out, "signoff console: http://{}/", a.console);
            let _ = writeln!(out, "(apps' frames on http://{}; Ctrl-C stops)", a.frames);
            let _ = out.flush();
        },
        None,
    );
    match served {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            2
        }
    }
}

fn run_scenario(args: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let scenario = match load(&args.scenario, &args.node_app) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let storage = match &args.data {
        Some(dir) => {
            for realm in Realm::ALL {
                let _ = std::fs::remove_file(dir.join(format!("{realm}.redb")));
            }
            KvsStorage::Redb { dir: dir.clone() }
        }
        None => KvsStorage::Memory,
    };
    // A progress bar only for a person watching: stderr must be a terminal (indicatif draws
    // nothing otherwise, and a pipe gets no carriage returns).
    let tty = std::io::stderr().is_terminal();
    let bar = progress_bar("sim");
    let mut progress = |done: u64, total: u64| {
        // Virtual time in the largest unit the run spans at least twice.
        let unit = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ]
        .into_iter()
        .find(|(ms, _)| total >= 2 * ms)
        .unwrap_or((1, "ms"));
        bar.set_length(total.max(1));
        bar.set_position(done);
        bar.set_message(format!(
            "{}{u} of {}{u} simulated",
            done / unit.0,
            total.div_ceil(unit.0),
            u = unit.1,
        ));
    };
    let options = RunOptions {
        seed: args.seed,
        storage,
        progress: if tty { Some(&mut progress) } else { None },
        threads: Some(usize::from(args.threads)),
    };
    let outcome = scenario.run(options);
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            let seed = args.seed.unwrap_or(scenario.seed);
            let _ = writeln!(err, "(seed {seed})");
            return 2;
        }
    };
    if args.logs {
        print_logs(&outcome.sim, err);
    }
    if let Some(path) = &args.junit {
        let name = scenario
            .name
            .clone()
            .unwrap_or_else(|| outcome.file.clone());
        if let Err(e) = std::fs::write(path, junit(&name, &outcome)) {
            let _ = writeln!(err, "error: {}: {e}", path.display());
            return 2;
        }
    }
    if let Some(path) = &args.trace {
        let text = serde_json::to_string_pretty(&outcome.trace_json()).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            let _ = writeln!(err, "error: {}: {e}", path.display());
            return 2;
        }
    }
    let _ = match args.report {
        Format::Text => out.write_all(outcome.to_text().as_bytes()),
        Format::Json => {
            let text = serde_json::to_string_pretty(&outcome.summary()).unwrap_or_default();
            writeln!(out, "{text}")
        }
    };
    if outcome.passed() {
        0
    } else {
        let _ = writeln!(
            err,
            "{} expectation(s) failed; reproduce with: signoff sim run {} --seed {}",
            outcome.failures.len(),
            args.scenario.display(),
            outcome.seed
        );
        1
    }
}

/// The apps' log lines, as the vendor sees them: `TIME INSTALLATION FUNCTION LEVEL MESSAGE`,
/// a message's line breaks and other control characters escaped, so that each log line stays
/// one line and no app writes terminal escape sequences.
fn print_logs(sim: &signoff_sim::flow::Simulation, err: &mut dyn Write) {
    let logs = sim.platform().logs();
    let mut hidden = 0usize;
    for l in logs {
        if !l.shared_with_vendor {
            hidden += 1;
            continue;
        }
        let message = one_line(&l.message);
        let _ = writeln!(
            err,
            "{} {} {} {} {message}",
            l.at,
            l.installation,
            l.function,
            l.level.to_ascii_uppercase()
        );
    }
    let _ = match (logs.len(), hidden) {
        (0, _) => writeln!(err, "(no log lines)"),
        (_, 0) => Ok(()),
        (_, n) => writeln!(
            err,
            "({n} more log line(s) not shown: their site's admin turned off sharing logs with the vendor)"
        ),
    };
}

/// The run as a JUnit XML report: one test suite, a test case per check, named after its line
/// and what it checked, with a `<failure>` per failed part.
fn junit(name: &str, outcome: &signoff_sim::scenario::RunOutcome) -> String {
    let failed = outcome
        .checks
        .iter()
        .filter(|c| !c.failures.is_empty())
        .count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"signoff sim\" tests=\"{}\" failures=\"{failed}\">\n",
        outcome.checks.len()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
        xml_attr(name),
        outcome.checks.len()
    ));
    x.push_str(&format!(
        "    <properties>\n      <property name=\"file\" value=\"{}\"/>\n      <property name=\"seed\" value=\"{}\"/>\n    </properties>\n",
        xml_attr(&outcome.file),
        outcome.seed
    ));
    for c in &outcome.checks {
        x.push_str(&format!(
            "    <testcase name=\"line {}: {}\" classname=\"{}\" file=\"{}\" line=\"{}\">",
            c.line,
            xml_attr(&c.what),
            xml_attr(&outcome.file),
            xml_attr(&outcome.file),
            c.line
        ));
        if c.failures.is_empty() {
            x.push_str("</testcase>\n");
            continue;
        }
        x.push('\n');
        for f in &c.failures {
            x.push_str(&format!(
                "      <failure message=\"{}\">{}:{}:{}: {} (checked at {}; reproduce with --seed {})</failure>\n",
                xml_attr(f),
                xml(&outcome.file),
                c.line,
                c.column,
                xml(f),
                c.at,
                outcome.seed,
            ));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Text for an XML attribute or element: the five special characters escaped, and the
/// characters XML 1.0 cannot carry at all (most control characters) written as `\u{..}`.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for an XML attribute value: as [`xml`], and line breaks and tabs as character
/// references, which attribute-value normalisation would otherwise turn into spaces.
fn xml_attr(text: &str) -> String {
    xml(text)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// An app's text as one line that never drives the terminal: line breaks and other control
/// characters (escape sequences among them) are written escaped; tabs stay.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn inspect(args: &InspectArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if !args.data.is_dir() {
        let _ = writeln!(err, "error: {}: not a directory", args.data.display());
        return 2;
    }
    let keys = match inspect_dir(&args.data) {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", args.data.display());
            return 2;
        }
    };
    let keys: Vec<_> = keys
        .into_iter()
        .filter(|k| {
            args.installation
                .as_ref()
                .is_none_or(|i| *i == k.scope.installation)
        })
        .collect();
    if let Some(i) = &args.installation
        && keys.is_empty()
    {
        let _ = writeln!(
            err,
            "error: installation `{i}` stored nothing in {}",
            args.data.display()
        );
        return 2;
    }
    match args.format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&keys).unwrap_or_default();
            let _ = writeln!(out, "{text}");
        }
        Format::Text => {
            let mut last = None;
            for k in &keys {
                let head = (&k.scope.installation, k.realm);
                if last != Some(head) {
                    let _ = writeln!(
                        out,
                        "{} (realm {}, {} {})",
                        safe(&k.scope.installation),
                        k.realm,
                        safe(&k.scope.app),
                        safe(&k.scope.environment)
                    );
                    last = Some(head);
                }
                // What an app stored is printed escaped (a key or value with a carriage
                // return or a bidirectional override must not draw on the terminal);
                // `--format json` stays exact.
                let _ = writeln!(out, "  {} = {}", safe(&k.key), safe(&k.value.to_string()));
            }
        }
    }
    0
}

/// A progress bar on stderr, `NAME: [#####     ]  42%  message`; drawn only when stderr is a
/// terminal.
pub(crate) fn progress_bar(name: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{name}: [{{bar:30}}] {{percent:>3}}%  {{msg}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("## ");
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn attributes_keep_their_line_breaks() {
        assert_eq!(super::xml_attr("a\nb\r\tc<"), "a&#10;b&#13;&#9;c&lt;");
    }

    #[test]
    fn xml_text_is_escaped_and_never_invalid() {
        assert_eq!(
            super::xml("a<b & \"c\" 'd'>\u{1b}\u{0}é"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\\u{001b}\\u{0000}é"
        );
    }

    #[test]
    fn log_lines_stay_one_line_and_never_drive_the_terminal() {
        assert_eq!(one_line("plain é\ttab"), "plain é\ttab");
        assert_eq!(one_line("a\nb\r\n"), "a\\nb\\r\\n");
        assert_eq!(
            one_line("\u{1b}[2Jcleared\u{7}"),
            "\\u{001b}[2Jcleared\\u{0007}"
        );
        assert_eq!(one_line("\u{9b}31m"), "\\u{009b}31m");
    }
}
