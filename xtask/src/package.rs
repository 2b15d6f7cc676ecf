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

/// `cargo xtask bench package`: the flagship year (`signoff demo`) on the component and on
/// the Forge package, in turns (three each, so that the shared machine's load falls on both
/// alike): wall time, invocations per second, and the package's time over the component's.
pub fn bench(root: &Path) -> Result<(), String> {
    package(root)?;
    run(crate::cargo().args(["build", "--release", "--quiet", "-p", "signoff-cli"]))?;
    let signoff = crate::target_dir().join("release/signoff");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut invocations = 0u64;
    for turn in 0..3 {
        for (i, app) in ["component", "forge"].into_iter().enumerate() {
            let started = std::time::Instant::now();
            let out = Command::new(&signoff)
                .current_dir(root)
                .args(["demo", "--app", app])
                .env("SIGNOFF_GUESTS_TARGET_DIR", guests::guests_target_dir(root))
                .output()
                .map_err(|e| format!("cannot run {}: {e}", signoff.display()))?;
            let took = started.elapsed().as_secs_f64();
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                return Err(format!(
                    "signoff demo --app {app} failed:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            // "..., 365 simulated days: 8852 invocations (8760 scheduled runs)"
            invocations = text
                .split(" invocations")
                .next()
                .and_then(|s| s.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("no invocation count in:\n{text}"))?;
            eprintln!("  turn {}: {app:<9} {took:.2} s", turn + 1);
            times[i].push(took);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (c, f) = (median(&mut times[0]), median(&mut times[1]));
    println!("flagship year ({invocations} invocations), median of 3 runs each, in turns:");
    println!(
        "  component (wasmtime):      {c:>6.2} s  {:>7.0} invocations/s",
        invocations as f64 / c
    );
    println!(
        "  Forge package (Node, jco): {f:>6.2} s  {:>7.0} invocations/s",
        invocations as f64 / f
    );
    println!("  package / component:       {:.2}", f / c);
    Ok(())
}
