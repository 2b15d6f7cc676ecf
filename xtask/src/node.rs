//! The Node.js side of the build: checks that `node` (20 or later) and `npm` are here, and
//! installs from their lock files the simulator's build tool (`crates/sim/node`: esbuild, which
//! builds Node apps as the Forge CLI does) and the example Node apps' packages
//! (`examples/apps/*`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// The oldest Node.js the platform runs (`nodejs20.x`), and so the simulator.
const MIN_MAJOR: u32 = 20;

const FIX: &str = "install Node.js 20 or later with npm (Debian: `apt-get install -y nodejs npm`; \
    elsewhere https://nodejs.org), or point SIGNOFF_NODE at a `node` binary";

/// Checks `node --version` and `npm --version`; the error says how to fix it.
pub fn check_node() -> Result<String, String> {
    let node = std::env::var("SIGNOFF_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("`{node}` could not be started ({e}): {FIX}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("`{node} --version` printed {version:?}: {FIX}"))?;
    if major < MIN_MAJOR {
        return Err(format!(
            "found Node.js {version}; signoff-sim needs {MIN_MAJOR} or later: {FIX}"
        ));
    }
    Command::new("npm")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .ok_or_else(|| format!("`npm` could not be started: {FIX}"))?;
    Ok(version)
}

/// The folders to install: `crates/sim/node`, then every folder of `examples/apps` with a
/// `package-lock.json`.
pub fn node_folders(root: &Path) -> Vec<PathBuf> {
    let mut apps: Vec<PathBuf> = std::fs::read_dir(root.join("examples/apps"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("package-lock.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    apps.sort();
    apps.insert(0, root.join("crates/sim/node"));
    apps
}

/// `npm ci` in every folder of [`node_folders`] whose installed packages are missing or older than its lock
/// file (npm writes `node_modules/.package-lock.json` when it installs).
pub fn install_apps(root: &Path) -> Result<(), String> {
    let version = check_node()?;
    for app in node_folders(root) {
        npm_ci(&version, &app)?;
    }
    Ok(())
}

/// `npm ci` in `dir` when its installed packages are missing or older than its lock file.
pub fn npm_ci(version: &str, dir: &Path) -> Result<(), String> {
    let lock = modified(&dir.join("package-lock.json"));
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_some() && installed >= lock {
        return Ok(());
    }
    eprintln!(
        "node {version}: installing the packages of {}",
        dir.display()
    );
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}
