//! The wasm components: the guests of `signoff-sim` (the `guests/` workspace) and the apps
//! (the `apps/` workspace, e.g. `apps/approvals`), built for `wasm32-wasip2`; and the
//! simulator's benchmark that runs one of them.
//!
//! Both workspaces build into one target directory, so every component lands in
//! `$SIGNOFF_GUESTS_TARGET_DIR/wasm32-wasip2/release/<name>.wasm`, by default
//! `guests/target/wasm32-wasip2/release/<name>.wasm` (`hello.wasm`, `hostile.wasm`,
//! `approvals.wasm`), where the tests and the bench look for them
//! (`signoff_sim::host::guest_path`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

const TARGET: &str = "wasm32-wasip2";

/// The workspaces of wasm components, relative to the root.
pub const COMPONENT_WORKSPACES: [&str; 3] = ["guests", "guests/tiny", "apps"];

/// Builds every guest and app component in release (release keeps them small and fast)
/// and lists the `.wasm` files built.
pub fn build_guests(root: &Path) -> Result<(), String> {
    crate::ensure_target(TARGET)?;
    let target_dir = guests_target_dir(root);
    for workspace in COMPONENT_WORKSPACES {
        run(component_cargo(root, workspace)
            .args(["build", "--release", "--quiet", "--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir))?;
    }
    let out = target_dir.join(TARGET).join("release");
    let mut built: Vec<PathBuf> = std::fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    built.sort();
    if built.is_empty() {
        return Err(format!("no .wasm file was built in {}", out.display()));
    }
    for p in &built {
        let size = std::fs::metadata(p).map_or(0, |m| m.len());
        eprintln!("  guest {} ({} KiB)", p.display(), size / 1024);
    }
    Ok(())
}

/// `cargo xtask bench sim`: builds the guests, then runs the simulator's bench in release
/// (p50/p99 of one trivial resolver invocation through the simulator beside bare wasmtime,
/// the ratio, and invocations per second on one core; then simulated events per second of
/// a do-nothing app over a simulated year).
pub fn bench_sim(root: &Path) -> Result<(), String> {
    sim_example(root, "bench-sim")
}

/// `cargo xtask bench scale`: builds the components, then runs the simulator's `scale`
/// example in release (the approval app on 100 sites x 1,000 documents through a simulated
/// year; wall time, peak memory and simulated events per second).
pub fn bench_scale(root: &Path) -> Result<(), String> {
    sim_example(root, "scale")
}

/// Builds the components, then runs one of signoff-sim's examples in release against them.
fn sim_example(root: &Path, example: &str) -> Result<(), String> {
    build_guests(root)?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "signoff-sim",
            "--example",
        ])
        .arg(example)
        .env("SIGNOFF_GUESTS_TARGET_DIR", guests_target_dir(root));
    run(&mut cmd)
}

/// The native tests of the apps' logic (the components' own code has no native build).
pub fn test_apps(root: &Path) -> Result<(), String> {
    run(component_cargo(root, "apps")
        .args(["test", "--quiet"])
        .arg("--target-dir")
        .arg(guests_target_dir(root)))
}

/// `cargo` in one of the component workspaces. They are workspaces of their own: the outer
/// build's target directory and flags must not leak into them.
pub fn component_cargo(root: &Path, workspace: &str) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root.join(workspace))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd
}

pub fn guests_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("SIGNOFF_GUESTS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("guests").join("target"))
}
