//! The `roa-check` binary: `roa-check check FILE...` and `roa-check diff OLD NEW`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    roa_check::cli::init_tracing("roa-check");
    let cli = roa_check::cli::Cli::parse();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let code = roa_check::cli::run(
        &cli.command,
        &mut stdout.lock(),
        &mut std::io::stderr(),
        tty,
    );
    ExitCode::from(code)
}
