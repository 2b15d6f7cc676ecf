//! The `signoff` binary.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    roa_check::cli::init_tracing("signoff");
    quiet_contained_panics();
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

/// Keeps the default panic hook from printing panics that the stores contain: redb and sled
/// panic on some damaged files, the store turns that into an error naming the file, and the
/// user should read that error alone, not a `panicked at` line from inside redb. Any other
/// panic is a bug and is printed as usual.
fn quiet_contained_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !signoff_storage::panic_is_contained() {
            default(info);
        }
    }));
}
