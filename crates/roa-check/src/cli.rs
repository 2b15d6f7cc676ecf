//! The command-line front end shared by the `roa-check` binary and `signoff roa`.
//!
//! It reads files and writes to the writers it is given; the binaries own stdout and stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::render::{self, Format, Outcome};
use crate::{InputError, Update};

/// Offline, explainable Runs-on-Atlassian checks for Forge manifests.
#[derive(Debug, clap::Parser)]
#[command(name = "roa-check", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const LONG_ABOUT: &str = "\
Offline, explainable Runs-on-Atlassian (RoA) checks for Forge manifests.

`check` tells whether each manifest keeps the RoA badge and explains every finding at its line
and column. `diff` tells whether a new version is a major update (site admins must consent) or
a minor one (applied automatically), with a reason for each difference. Nothing is sent
anywhere: the files are read and judged on this machine.";

/// The two commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check manifests for Runs-on-Atlassian eligibility.
    ///
    /// Exit codes: 0 every manifest is eligible, 1 at least one is not, 2 at least one could
    /// not be read or parsed (the worst of all files wins).
    Check(CheckArgs),
    /// Classify the update from OLD to NEW as major, minor or none.
    ///
    /// Exit codes: 0 on success whatever the verdict (1 with --fail-on when the update is at
    /// least that class), 2 when a manifest could not be read or parsed.
    Diff(DiffArgs),
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files (manifest.yml).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The manifest of the version installed today.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The manifest of the version to deploy.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Exit with code 1 when the update is at least this class (for CI gates).
    #[arg(long, value_enum, value_name = "CLASS")]
    pub fail_on: Option<FailOn>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Output options shared by both commands.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// When to colour text output (auto: only on a terminal, and never when NO_COLOR is set).
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
}

/// `--fail-on` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Major,
    Minor,
}

/// `--color` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl OutputArgs {
    fn color(&self, stdout_is_terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// Runs a command and returns the process exit code.
pub fn run(
    command: &Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stdout_is_terminal: bool,
) -> u8 {
    let result = match command {
        Command::Check(args) => run_check(args, out, err, stdout_is_terminal),
        Command::Diff(args) => run_diff(args, out, err, stdout_is_terminal),
    };
    // A closed pipe (`roa-check ... | head`) is not the manifest's fault; report and move on.
    result.unwrap_or_else(|e| {
        let _ = writeln!(err, "roa-check: cannot write output: {e}");
        2
    })
}

fn run_check(
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    tty: bool,
) -> std::io::Result<u8> {
    let outcomes: Vec<Outcome> = args
        .files
        .iter()
        .map(|path| {
            let name = display(path);
            read(path).and_then(|bytes| crate::check(&name, &bytes))
        })
        .collect();
    let text = match args.output.format {
        Format::Text => render::check_text(&outcomes, args.output.color(tty)),
        Format::Json => render::check_json(&outcomes),
        Format::Sarif => render::check_sarif(&outcomes),
    };
    out.write_all(text.as_bytes())?;
    let mut code = 0;
    for outcome in &outcomes {
        match outcome {
            Err(e) => {
                // Text output already shows it; for JSON and SARIF also tell the person.
                if args.output.format != Format::Text {
                    writeln!(err, "roa-check: {e}")?;
                }
                code = 2;
            }
            Ok(r) if !r.eligible => code = code.max(1),
            Ok(_) => {}
        }
    }
    Ok(code)
}

fn run_diff(
    args: &DiffArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    tty: bool,
) -> std::io::Result<u8> {
    let (old_name, new_name) = (display(&args.old), display(&args.new));
    let loaded = read(&args.old)
        .and_then(|o| crate::load(&old_name, &o))
        .and_then(|o| Ok((o, read(&args.new).and_then(|n| crate::load(&new_name, &n))?)));
    let (old, new) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            writeln!(err, "roa-check: {e}")?;
            return Ok(2);
        }
    };
    let d = crate::diff_manifests(&old, &new);
    let text = match args.output.format {
        Format::Text => render::diff_text(&old_name, &new_name, &d, args.output.color(tty)),
        Format::Json => render::diff_json(&d),
        Format::Sarif => render::diff_sarif(&old_name, &new_name, &d),
    };
    out.write_all(text.as_bytes())?;
    let fail = match args.fail_on {
        Some(FailOn::Major) => d.update == Update::Major,
        Some(FailOn::Minor) => d.update >= Update::Minor,
        None => false,
    };
    Ok(u8::from(fail))
}

fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    // Only regular files, their size checked before reading (`/dev/zero`, a FIFO or a sparse
    // 2 GB file is refused at once); the YAML budget's limit applies to the bytes read.
    signoff_yaml::input::read_file(path, signoff_yaml::input::TEXT_LIMIT).map_err(|e| {
        let message = e.to_string();
        let prefix = format!("{}: ", display(path));
        InputError {
            file: display(path),
            line: None,
            column: None,
            message: message.strip_prefix(&prefix).unwrap_or(&message).to_owned(),
        }
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Installs the process's one `tracing` subscriber (for the binaries: `roa-check` and
/// `signoff` call it first thing): events at the level `RUST_LOG` asks for
/// (warnings by default) go to stderr, so that a library's warning (a store's "the final
/// durable commit failed", say) reaches the person who ran the command. Colour only on a
/// terminal and never with `NO_COLOR`.
pub fn init_tracing(program: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            #[allow(clippy::print_stderr)] // the binary owns stderr
            {
                eprintln!("{program}: RUST_LOG={spec:?} is not a filter ({e}); showing warnings");
            }
            EnvFilter::new("warn")
        }),
        _ => EnvFilter::new("warn"),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .without_time()
        .try_init();
}
