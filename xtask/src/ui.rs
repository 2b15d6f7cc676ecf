//! The apps' Custom UIs: every `apps/*/ui` folder with a `package.json` is an npm project
//! whose `build.mjs` writes the resource folder its app's manifest declares (for the approval
//! app, `apps/approvals/static/ui`). `cargo xtask ui` installs its packages from the lock
//! file (`npm ci`) when they are missing or older than the lock file, and builds when a
//! source is newer than the built files; with nothing changed it only compares times.
//!
//! The build output is not committed: a checkout builds it with this command.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::node::check_node;
use crate::run;

/// A UI project: its folder, and the folder its build writes.
#[derive(Debug)]
pub struct UiProject {
    pub dir: PathBuf,
    pub out: PathBuf,
}

/// Builds every app's UI that is missing or older than its sources. The one function to
/// call from `cargo xtask test` and `ci` (before anything serves `static/ui`).
pub fn build_uis(root: &Path) -> Result<(), String> {
    let projects = ui_projects(root);
    if projects.is_empty() {
        return Ok(());
    }
    let version = check_node()?;
    for p in &projects {
        build_ui(p, &version)?;
    }
    Ok(())
}

/// The UI projects: `apps/<app>/ui` with a `package.json`, writing `apps/<app>/static/ui`.
pub fn ui_projects(root: &Path) -> Vec<UiProject> {
    let mut out: Vec<UiProject> = std::fs::read_dir(root.join("apps"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|app| app.join("ui/package.json").is_file())
                .map(|app| UiProject {
                    dir: app.join("ui"),
                    out: app.join("static/ui"),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

fn build_ui(p: &UiProject, node_version: &str) -> Result<(), String> {
    // Test processes and developers may build at the same time: one npm at a time per
    // folder (npm ci deletes node_modules first), as the simulator's Node tests do with the
    // same lock file name.
    let lock_path = p.dir.join(".signoff-npm.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    // `File::lock` is Rust 1.89, past the libraries' MSRV (1.85); xtask is a developer
    // tool built with the current toolchain, like the tests that already lock this way.
    #[allow(clippy::incompatible_msrv)]
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;

    let lock_file = modified(&p.dir.join("package-lock.json"));
    let installed = modified(&p.dir.join("node_modules/.package-lock.json"));
    let install = installed.is_none() || installed < lock_file;
    if install {
        eprintln!(
            "node {node_version}: installing the packages of {}",
            p.dir.display()
        );
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&p.dir))?;
    }
    let built = ["index.html", "app.js", "app.css"]
        .iter()
        .map(|f| modified(&p.out.join(f)))
        .min()
        .flatten();
    let sources = newest(&[
        p.dir.join("src"),
        p.dir.join("build.mjs"),
        p.dir.join("package.json"),
        p.dir.join("package-lock.json"),
    ]);
    if !install && built.is_some() && built >= sources {
        eprintln!("{}: up to date", p.out.display());
        return Ok(());
    }
    let node = std::env::var("SIGNOFF_NODE").unwrap_or_else(|_| "node".into());
    run(Command::new(node).arg("build.mjs").current_dir(&p.dir))
}

/// The newest modification time of the files under `paths` (folders are walked).
fn newest(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut best = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if let Ok(t) = meta.modified() {
            best = best.max(Some(t));
        }
    }
    best
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}
