//! The browser tests (`tests/browser`): the console (`signoff sim serve`) and the apps'
//! Custom UI in headless Chromium, driven by playwright-core. The browser is the system's
//! Chromium (never a browser downloaded by a test tool): found at `$SIGNOFF_CHROMIUM` or
//! `/usr/bin/chromium`, installed from Debian's packages when this runs as root, and
//! otherwise named with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, node, run};

const FIX: &str = "the browser tests drive the system's Chromium: install it with \
    `sudo apt-get install -y chromium` (Debian), or set SIGNOFF_CHROMIUM to a Chromium or \
    Chrome binary";

/// Installs what the browser tests need and runs them against the debug `signoff` binary.
pub fn test(root: &Path) -> Result<(), String> {
    let chromium = chromium()?;
    let version = node::check_node()?;
    let dir = root.join("tests/browser");
    node::npm_ci(&version, &dir)?;
    // The console serves the apps' Custom UI from their static/ui folders.
    crate::ui::build_uis(root)?;
    // The console serves the binary's own build of the CLI.
    run(cargo().args(["build", "--quiet", "-p", "signoff-cli"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    eprintln!(
        "browser tests: {} with {}",
        dir.display(),
        chromium.display()
    );
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1", "."])
        .current_dir(&dir)
        .env("SIGNOFF_CHROMIUM", &chromium)
        .env("SIGNOFF_BIN", target.join("debug/signoff"))
        .env("SIGNOFF_SCREENSHOTS", target.join("browser-screenshots")))
}

/// The Chromium binary, installed from Debian's packages when it is missing and this runs
/// as root.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SIGNOFF_CHROMIUM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "SIGNOFF_CHROMIUM={} is not a file: {FIX}",
                p.display()
            ))
        };
    }
    let found = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    };
    if let Some(p) = found() {
        return Ok(p);
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root_user || !Path::new("/usr/bin/apt-get").is_file() {
        return Err(format!("Chromium not found: {FIX}"));
    }
    eprintln!("browser tests: installing Debian's chromium");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    found().ok_or_else(|| format!("Chromium still not found after apt-get: {FIX}"))
}
