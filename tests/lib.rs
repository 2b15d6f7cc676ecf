//! Shared helpers for the end-to-end tests: run the `signoff` command line in-process, from
//! the workspace root, exactly as a user would type it.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// What a command printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `signoff ARGS...` in-process with the working directory at the workspace root.
/// Every test in this binary uses the same directory, so setting it is race-free.
pub fn signoff(args: &[&str]) -> Run {
    std::env::set_current_dir(root()).expect("the workspace root exists");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = std::iter::once("signoff").chain(args.iter().copied());
    let code = signoff_cli::run(argv, &mut out, &mut err, false);
    Run {
        code,
        stdout: String::from_utf8(out).expect("signoff prints UTF-8"),
        stderr: String::from_utf8(err).expect("signoff prints UTF-8"),
    }
}
