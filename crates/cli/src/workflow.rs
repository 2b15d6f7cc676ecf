//! `signoff workflow ...`: validate and show workflow definitions, and run scenario files.
//!
//! To be wired into the `signoff` binary as a subcommand group:
//! `Workflow { #[command(subcommand)] cmd: workflow::WorkflowCommand }`, then
//! `std::process::exit(workflow::run(&cmd, &mut stdout, &mut stderr).into())`.

use std::io::Write;
use std::path::{Path, PathBuf};

use signoff_core::Workflow;
use signoff_core::scenario;
use signoff_core::workflow::diagram::{Diagram, HighlightError};

/// The `workflow` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum WorkflowCommand {
    /// Validate a workflow definition (YAML or JSON); every problem is printed as
    /// FILE:LINE:COLUMN: CODE: MESSAGE on stdout (the codes are listed in crates/core/README.md).
    Validate {
        /// The definition file.
        file: PathBuf,
    },
    /// Draw the states, transitions and approval stages of a workflow: as text (the
    /// default), as Mermaid for Markdown (GitHub and Confluence render it), as Graphviz DOT,
    /// or as a self-contained SVG picture (the one the approval app shows).
    Show {
        /// The definition file.
        file: PathBuf,
        /// The drawing's format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
        /// Highlight this state, as a document's current state (exit code 2 if the workflow
        /// has no such state).
        #[arg(long, value_name = "STATE")]
        current: Option<String>,
        /// Highlight this approval stage of the --current state, too.
        #[arg(long, value_name = "STAGE", requires = "current")]
        stage: Option<String>,
    },
    /// Run scenario files and report every expectation that fails, with its place.
    Test {
        /// Scenario files (see crates/core/README.md for the format).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
}

/// The formats of `workflow show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    /// The text diagram (states, stages, transitions), one item a line.
    Text,
    /// A Mermaid flowchart, for a ```mermaid block in Markdown.
    Mermaid,
    /// A Graphviz digraph (`dot -Tpng`).
    Dot,
    /// A self-contained SVG picture, styled with Atlassian design tokens.
    Svg,
}

/// Exit codes.
const OK: u8 = 0;
const FAILED: u8 = 1;
/// An input could not be read or used: a file, or a `--current` state that is not there.
const UNREADABLE: u8 = 2;

/// Runs a `workflow` subcommand. Returns the exit code: 0 when all is well, 1 when a
/// definition is invalid or an expectation failed, 2 when an input could not be read (or
/// `show --current`/`--stage` names nothing in the workflow).
pub fn run(cmd: &WorkflowCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // Errors writing to stdout or stderr (a closed pipe) leave nothing better to do than
    // to stop writing; the exit code still tells the result.
    match cmd {
        WorkflowCommand::Validate { file } => match load(file, out, err) {
            None => UNREADABLE,
            Some(Err(())) => FAILED,
            Some(Ok(wf)) => {
                let _ = writeln!(
                    out,
                    "{}: ok: workflow {} with {} states, hash {}",
                    file.display(),
                    wf.name(),
                    wf.states().len(),
                    wf.hash()
                );
                OK
            }
        },
        WorkflowCommand::Show {
            file,
            format,
            current,
            stage,
        } => match load(file, out, err) {
            None => UNREADABLE,
            Some(Err(())) => FAILED,
            Some(Ok(wf)) => show(
                &wf,
                file,
                *format,
                current.as_deref(),
                stage.as_deref(),
                out,
                err,
            ),
        },
        WorkflowCommand::Test { scenarios } => test(scenarios, out, err),
    }
}

/// Draws a valid workflow in `format`, with `current` (and `stage`) highlighted.
fn show(
    wf: &Workflow,
    file: &Path,
    format: ShowFormat,
    current: Option<&str>,
    stage: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut diagram = Diagram::new(wf);
    if let Some(state) = current {
        diagram = match diagram.highlight(state, stage) {
            Ok(d) => d,
            Err(e) => {
                let option = match e {
                    HighlightError::UnknownState { .. } => "--current",
                    HighlightError::UnknownStage { .. } => "--stage",
                };
                let _ = writeln!(err, "signoff: {}: {option}: {e}", file.display());
                return UNREADABLE;
            }
        };
    }
    let drawing = match format {
        ShowFormat::Text => diagram.text(),
        ShowFormat::Mermaid => diagram.mermaid(),
        ShowFormat::Dot => diagram.dot(),
        ShowFormat::Svg => diagram.svg(),
    };
    let _ = write!(out, "{drawing}");
    OK
}

/// Reads and validates a definition. `None`: unreadable (reported on `err`); `Some(Err)`:
/// invalid (every diagnostic reported on `out`: they are the command's answer).
fn load(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Option<Result<Workflow, ()>> {
    let text = match read_text(file) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "signoff: {e}");
            return None;
        }
    };
    Some(
        Workflow::from_text(&text, &file.display().to_string()).map_err(|e| {
            for d in &e.diagnostics {
                let _ = writeln!(out, "{d}");
            }
            let n = e.diagnostics.len();
            let _ = writeln!(
                out,
                "{}: {n} problem{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
        }),
    )
}

fn test(scenarios: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (mut passed, mut failed, mut unreadable) = (0, 0, false);
    for path in scenarios {
        let text = match read_text(path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(err, "signoff: {e}");
                unreadable = true;
                failed += 1;
                continue;
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut read_workflow = |p: &str| read_text(&dir.join(p)).map_err(|e| e.to_string());
        match scenario::run(&text, &path.display().to_string(), &mut read_workflow) {
            Err(e) => {
                for d in &e.diagnostics {
                    let _ = writeln!(out, "{d}");
                    unreadable |= d.code == "unreadable";
                }
                let _ = writeln!(
                    out,
                    "FAIL {}: the scenario could not be run",
                    path.display()
                );
                failed += 1;
            }
            Ok(report) if report.failures.is_empty() => {
                let _ = writeln!(
                    out,
                    "ok   {} ({} steps, {} expectations)",
                    path.display(),
                    report.steps,
                    report.expectations
                );
                passed += 1;
            }
            Ok(report) => {
                for f in &report.failures {
                    let _ = writeln!(out, "{f}");
                }
                let n = report.failures.len();
                let _ = writeln!(
                    out,
                    "FAIL {} ({n} of {} expectations or steps failed)",
                    path.display(),
                    report.expectations.max(n)
                );
                failed += 1;
            }
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if unreadable {
        UNREADABLE
    } else if failed > 0 {
        FAILED
    } else {
        OK
    }
}

/// Reads a workflow or scenario: a regular file of at most 4 MiB (see
/// [`signoff_yaml::input`]), as UTF-8.
fn read_text(path: &Path) -> Result<String, signoff_yaml::input::InputError> {
    signoff_yaml::input::read_text(path, signoff_yaml::input::TEXT_LIMIT)
}
