//! The integration tests of signoff-cli, in one binary to keep link times low. Some run the
//! built `signoff` binary as a user would, so that exit codes (101 for a panic) and
//! everything printed on stderr are what a user sees.

mod damaged;
mod old_times;
mod postgres;
mod sweep;

use std::path::PathBuf;

use signoff_core::Command;
use signoff_core::event::Action;

/// Runs `signoff ARGS` in-process; returns the exit code, stdout and stderr.
fn sh(args: &str) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = signoff_cli::run(
        std::iter::once("signoff").chain(args.split_whitespace()),
        &mut out,
        &mut err,
        false,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// A scratch directory, removed when the test ends.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}
