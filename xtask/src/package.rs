//! `cargo xtask package`: the approval app as a Forge app (`apps/approvals/forge`), the
//! folder `forge deploy` takes. Builds the engine component and the Custom UI, installs the
//! package's npm packages from its lock file, then `build/package.mjs` turns the component
//! into JavaScript plus core wasm with jco and writes `engine/` and `static/ui/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{guests, node, run, ui};

/// The package's folder.
pub fn package_dir(root: &Path) -> PathBuf {
    root.join("apps/approvals/forge")
}

/// Builds the package; prints where it is and what a Forge developer runs next.
pub fn package(root: &Path) -> Result<(), String> {
    guests::build_guests(root)?;
    ui::build_uis(root)?;
    build(root)?;
    let dir = package_dir(root);
    eprintln!(
        "package: {} is ready for `forge deploy` (apps/approvals/forge/README.md: deploying)",
        dir.display()
    );
    Ok(())
}

/// The package's own steps, once the component and the UI are built.
pub fn build(root: &Path) -> Result<(), String> {
    let version = node::check_node()?;
    let dir = package_dir(root);
    node::npm_ci(&version, &dir)?;
    let wasm = guests::guests_target_dir(root).join("wasm32-wasip2/release/approvals.wasm");
    let ui = root.join("apps/approvals/static/ui");
    let node = std::env::var("SIGNOFF_NODE").unwrap_or_else(|_| "node".into());
    run(Command::new(node)
        .arg("build/package.mjs")
        .arg(&wasm)
        .arg(&ui)
        .current_dir(&dir))
}
