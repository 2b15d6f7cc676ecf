//! The `signoff` binary.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    init_tracing("signoff");
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

/// Installs the process's one `tracing` subscriber: events at the level `RUST_LOG` asks for
/// (warnings by default) go to stderr, so that a library's warning (a store's "the final
/// durable commit failed", say) reaches the person who ran the command. Colour only on a
/// terminal and never with `NO_COLOR`.
fn init_tracing(program: &str) {
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
