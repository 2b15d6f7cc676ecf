//! The `signoff` binary.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let code = signoff_cli::run(
        std::env::args_os(),
        &mut stdout.lock(),
        &mut std::io::stderr(),
        tty,
    );
    ExitCode::from(code)
}
