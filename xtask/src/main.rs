//! `cargo xtask`: the project's automation, in Rust so that it runs wherever cargo does.
//!
//! Commands: `ci`, `test`, `demo`, `ui`, `corpus DIR`, `bench roa`, `fuzz roa`. Run
//! `cargo xtask help` for details.

#![allow(clippy::print_stdout, clippy::print_stderr)] // xtask is a binary: it owns stdout.

mod browser;
mod guests;
mod node;
mod package;
mod ui;
// The same code that signoff-storage's tests use to start a throwaway PostgreSQL server
// (standard library only), so that `cargo xtask test` starts one server for the whole run.
#[path = "../../crates/storage/src/throwaway_pg.rs"]
#[allow(dead_code)]
mod throwaway_pg;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const HELP: &str = "\
cargo xtask: the signoff project's automation

USAGE:
    cargo xtask <COMMAND> [ARGS]

COMMANDS:
    test                 Build the guest and app components, install the example Node apps'
                         npm packages (npm ci; needs Node.js 20+), build the approval app's
                         Forge package (as `package`), run the apps' native tests,
                         then every test of the workspace (unit, integration, end-to-end, doc);
                         the PostgreSQL tests use SIGNOFF_PG_URL, or a throwaway server
                         (initdb and pg_ctl of the machine's PostgreSQL) started for the run;
                         then the browser tests (tests/browser: the console and the apps'
                         Custom UI in headless Chromium; Debian's chromium is installed when
                         missing and this runs as root)
    ci                   What CI runs: fmt --check, clippy -D warnings, the wasm build of
                         signoff-core, the tests with INSTA_UPDATE=no, and the real-manifest
                         corpus when ../shared exists
    demo                 The main job: build the approval app and run the flagship scenario
                         (an EU site through a simulated year: documents by state, signatures,
                         audit chains verified natively, egress, residency, RoA verdicts),
                         then a verdict line per example manifest
    corpus DIR           Check every manifest of DIR against DIR/expected.json; print a score
                         (exit 1 below 100%)
    bench roa            Benchmark roa-check: manifests/s on a 300-line manifest beside a bare
                         YAML parse, and a cold roa-check process beside a bare process spawn
    bench core           Benchmark signoff-core: decisions/s through decide -> append -> fold
                         for a two-stage workflow with 5 reviewers, and a 10,000-record replay
    bench storage        Benchmark the stores: durable decisions/s through the engine on redb
                         and sled beside bare redb commits of the same size, group commit
                         (1, 10, 100), and a pending list read from 100,000 documents
    bench postgres       Benchmark PgStore: durable decisions/s (single, group commit of 10
                         and 100) beside raw single-row INSERT transactions of the same size
                         and synchronous_commit and beside the same rows written by hand
                         (the floor), with 1, 2 and 4 writer processes, and a
                         pending list read from 100,000 documents (a throwaway server unless
                         SIGNOFF_PG_URL names one)
    bench sim            Benchmark the wasm host: p50/p99 of a trivial resolver through the
                         simulator beside bare wasmtime, the ratio, and invocations/s
    bench node           Benchmark the Node runtime: warm p50/p99 of a trivial resolver of
                         examples/apps/notes through the simulator beside the same function in
                         a bare Node process over the same channel, a cold start beside
                         `node -e 0`, invocations/s, and a simulated year of the notes app on
                         10 sites
    bench package        The flagship year (`signoff demo`) on the approval component and on
                         its Forge package (`signoff demo --app forge`), three runs each in
                         turns: wall time, invocations/s and the ratio
    bench scale          The approval app at scale in the simulator: 100 sites x 1,000 documents
                         x a simulated year (created, submitted, reminded, approved; the hourly
                         schedule all year): wall time, peak memory, simulated events/s
                         (SCALE_SITES, SCALE_DOCS change the size; SCALE_SHARDS=N runs the
                         sites as N independent simulations, one per core by default)
    browser              Only the browser tests (tests/browser), with what they need installed
    guests               Build the wasm components (wasm32-wasip2): the guests of signoff-sim
                         (guests/) and the apps (apps/, e.g. apps/approvals), all into
                         guests/target/wasm32-wasip2/release/
    package              Build the approval app as a Forge app in apps/approvals/forge, the
                         folder `forge deploy` takes: the engine component (as `guests`), the
                         Custom UI (as `ui`), the package's npm packages (npm ci), then jco
                         turns the component into JavaScript plus core wasm (engine/) and the
                         UI is copied to static/ui
    ui                   Build the apps' Custom UIs (apps/*/ui, npm projects) into the resource
                         folders their manifests declare (apps/approvals/static/ui): npm ci when
                         node_modules is missing or older than package-lock.json (needs Node.js
                         20+), then the build when a source is newer than its output
    wasm                 Check that signoff-core and signoff-storage's hosted adapter
                         (--no-default-features) compile for wasm32-wasip2 (adds the target
                         with rustup when it is missing)
    fuzz roa [SECONDS]   Fuzz the manifest parser with cargo-fuzz for SECONDS (default 60);
                         installs cargo-fuzz when it is missing (needs the nightly toolchain)
    help                 This text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test"] => test(),
        ["ci"] => ci(),
        ["demo"] => demo(),
        ["corpus", dir] => corpus(Path::new(dir)),
        ["bench", "roa"] => bench_roa(),
        ["bench", "core"] => bench_example("signoff-core", "bench-core"),
        ["bench", "sim"] => guests::bench_sim(&root()),
        ["bench", "scale"] => guests::bench_scale(&root()),
        ["bench", "node"] => bench_node(),
        ["browser"] => browser::test(&root()),
        ["bench", "storage"] => bench_example("signoff-storage", "bench-storage"),
        ["bench", "postgres"] => bench_postgres(),
        ["guests"] => guests::build_guests(&root()),
        ["package"] => package::package(&root()),
        ["bench", "package"] => package::bench(&root()),
        ["ui"] => ui::build_uis(&root()),
        ["wasm"] => wasm_check(),
        ["fuzz", "roa"] => fuzz_roa(60),
        ["fuzz", "roa", secs] => match secs.parse() {
            Ok(s) => fuzz_roa(s),
            Err(_) => Err(format!(
                "fuzz: SECONDS must be a whole number, got `{secs}`"
            )),
        },
        [] | ["help"] | ["--help"] | ["-h"] => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command `{}`\n\n{HELP}", other.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command, echoing it, and fails with its description if it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("$ {shown}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    eprintln!("  ({:.1} s)", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test() -> Result<(), String> {
    // The simulator's and the end-to-end tests run real guest and app components.
    guests::build_guests(&root())?;
    node::install_apps(&root())?;
    // The end-to-end tests run every approval scenario on the Forge package too.
    ui::build_uis(&root())?;
    package::build(&root())?;
    guests::test_apps(&root())?;
    workspace_tests(&[])?;
    browser::test(&root())
}

/// Every test of the workspace, doc tests first (nextest does not run them, and its summary
/// should close the output), with signoff-storage's `postgres` feature and a PostgreSQL
/// server: `SIGNOFF_PG_URL` when it is set, else a throwaway one that this run starts and
/// stops (also when a test fails; a watchdog stops it if this process is killed).
fn workspace_tests(envs: &[(&str, &str)]) -> Result<(), String> {
    with_postgres(|url| {
        let envs = envs.iter().copied().chain([("SIGNOFF_PG_URL", url)]);
        let features = ["--features", "signoff-storage/postgres"];
        run(cargo()
            .args(["test", "--workspace", "--doc", "--quiet"])
            .args(features)
            .envs(envs.clone()))?;
        if has_nextest() {
            run(cargo()
                .args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                    "--failure-output",
                    "final",
                ])
                .args(features)
                .envs(envs))
        } else {
            eprintln!("cargo-nextest not found; using cargo test");
            run(cargo()
                .args(["test", "--workspace", "--lib", "--bins", "--tests"])
                .args(features)
                .envs(envs))
        }
    })
}

/// Runs `f` with the URL of a PostgreSQL server: `SIGNOFF_PG_URL`, or a throwaway server
/// on a free port of 127.0.0.1, stopped when `f` returns.
fn with_postgres(f: impl FnOnce(&str) -> Result<(), String>) -> Result<(), String> {
    if let Ok(url) = std::env::var("SIGNOFF_PG_URL") {
        eprintln!("PostgreSQL: SIGNOFF_PG_URL");
        return f(&url);
    }
    let started = Instant::now();
    let server = throwaway_pg::ThrowawayServer::start().map_err(|e| e.to_string())?;
    eprintln!(
        "PostgreSQL: a throwaway server on 127.0.0.1:{} ({:.1} s to start)",
        server.port(),
        started.elapsed().as_secs_f64()
    );
    let result = f(&server.url());
    drop(server);
    result
}

/// `cargo xtask bench postgres`: the PgStore benchmark, in release, against SIGNOFF_PG_URL
/// or a throwaway server.
fn bench_postgres() -> Result<(), String> {
    with_postgres(|url| {
        run(cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "signoff-storage",
                "--features",
                "postgres",
                "--example",
                "bench-postgres",
            ])
            .env("SIGNOFF_PG_URL", url))
    })
}

fn shared_corpus() -> Option<PathBuf> {
    let dir = root().join("../shared/corpus/forge-manifests");
    dir.join("expected.json").is_file().then_some(dir)
}

fn ci() -> Result<(), String> {
    let insta = [("INSTA_UPDATE", "no"), ("CI", "true")];
    run(cargo().args(["fmt", "--all", "--check"]))?;
    // The guests and the apps are workspaces of their own, which `fmt --all` above does not
    // reach.
    for workspace in guests::COMPONENT_WORKSPACES {
        run(guests::component_cargo(&root(), workspace).args(["fmt", "--all", "--check"]))?;
    }
    guests::build_guests(&root())?;
    node::install_apps(&root())?;
    // The end-to-end tests run every approval scenario on the Forge package too.
    ui::build_uis(&root())?;
    package::build(&root())?;
    guests::test_apps(&root())?;
    // The apps natively (their logic and tests) and as components (the WIT glue).
    for target in [&["--all-targets"][..], &["--target", "wasm32-wasip2"][..]] {
        run(guests::component_cargo(&root(), "apps")
            .args(["clippy", "--quiet"])
            .args(target)
            .arg("--target-dir")
            .arg(guests::guests_target_dir(&root()))
            .args(["--", "-D", "warnings"]))?;
    }
    run(cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .envs(insta))?;
    wasm_check()?;
    let started = Instant::now();
    workspace_tests(&insta)?;
    browser::test(&root())?;
    eprintln!("tests took {:.1} s", started.elapsed().as_secs_f64());
    match shared_corpus() {
        Some(dir) => corpus(&dir)?,
        None => eprintln!("../shared/corpus/forge-manifests not found; corpus check skipped"),
    }
    eprintln!("ci: all green");
    Ok(())
}

/// `cargo xtask bench node`: the example apps' packages, then signoff-sim's `bench-node`
/// example in release.
fn bench_node() -> Result<(), String> {
    node::install_apps(&root())?;
    run(cargo().args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "signoff-sim",
        "--example",
        "bench-node",
    ]))
}

/// The directory cargo builds into (`CARGO_TARGET_DIR`, else `target/`).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// `cargo xtask demo`: builds the app component and `signoff` (release), runs the flagship
/// scenario (`signoff demo examples/scenarios/flagship.yaml`: the approval app on an EU site
/// through a simulated year), then one verdict line per example manifest.
fn demo() -> Result<(), String> {
    guests::build_guests(&root())?;
    // The console the demo points at (`signoff sim serve`, printed below) shows the approval
    // app's Custom UI; without Node.js the demo still runs, and says what the console lacks.
    if let Err(e) = ui::build_uis(&root()) {
        eprintln!(
            "warning: the apps' Custom UI was not built, so the console will show no app frames: {e}"
        );
    }
    run(cargo().args(["build", "--release", "--quiet", "-p", "signoff-cli"]))?;
    let signoff = target_dir().join("release/signoff");
    println!("$ signoff demo examples/scenarios/flagship.yaml");
    let started = Instant::now();
    let status = Command::new(&signoff)
        .current_dir(root())
        .args(["demo", "examples/scenarios/flagship.yaml"])
        .env(
            "SIGNOFF_GUESTS_TARGET_DIR",
            guests::guests_target_dir(&root()),
        )
        .status()
        .map_err(|e| format!("cannot run {}: {e}", signoff.display()))?;
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("the flagship scenario failed ({status})"));
    }
    eprintln!("  (the simulated year took {took:.1} s)");
    let examples = root().join("examples/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    println!("\n$ signoff roa check examples/manifests/*.yml   (verdict lines)");
    for file in &files {
        let rel = file.strip_prefix(root()).unwrap_or(file);
        // Exit code 1 means "not eligible", which the demo expects for some examples.
        let output = Command::new(&signoff)
            .current_dir(root())
            .args(["roa", "check"])
            .arg(rel)
            .output()
            .map_err(|e| format!("cannot run signoff: {e}"))?;
        if output.status.code() == Some(2) {
            return Err(format!("{} could not be checked", rel.display()));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        println!("{}", text.lines().next().unwrap_or_default());
    }
    let rel = signoff.strip_prefix(root()).unwrap_or(&signoff);
    println!(
        "\nTo see the year in the browser (pages, the app's panel as any user, the clock, the \
         egress ledger, storage, logs):\n  {} sim serve examples/scenarios/flagship.yaml\nand open \
         the address it prints.",
        rel.display()
    );
    Ok(())
}

/// Checks every manifest of `dir` against `dir/expected.json` and prints a score.
fn corpus(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("expected.json"))
        .map_err(|e| format!("cannot read {}/expected.json: {e}", dir.display()))?;
    let expected: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}/expected.json: {e}", dir.display()))?;
    let mut total = 0;
    let mut passed = 0;
    let mut failures = Vec::new();
    let manifests = expected["manifests"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (file, want) in &manifests {
        total += 1;
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let want_rules: BTreeSet<String> = want["rules"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let want_eligible = want["eligible"].as_bool();
        let malformed_ok = want["malformed_ok"].as_bool().unwrap_or(false);
        match roa_check::check(file, &bytes) {
            Ok(report) => {
                let got: BTreeSet<String> =
                    report.error_rules().into_iter().map(String::from).collect();
                if Some(report.eligible) == want_eligible && got == want_rules {
                    passed += 1;
                } else {
                    failures.push(format!(
                        "{file}: expected eligible={want_eligible:?} {want_rules:?}, got eligible={} {got:?}",
                        report.eligible
                    ));
                }
            }
            Err(_) if malformed_ok => passed += 1,
            Err(e) => failures.push(format!("{file}: expected a verdict, got error {e}")),
        }
    }
    let pairs = expected["pairs"].as_object().cloned().unwrap_or_default();
    for (name, want) in &pairs {
        total += 1;
        let old = dir.join("pairs").join(format!("{name}__old.yml"));
        let new = dir.join("pairs").join(format!("{name}__new.yml"));
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let (o, n) = (read(&old)?, read(&new)?);
        let want_update = want["update"].as_str().unwrap_or("?");
        match roa_check::diff("old", &o, "new", &n) {
            Ok(d) if d.update.as_str() == want_update => passed += 1,
            Ok(d) => failures.push(format!(
                "{name}: expected {want_update}, got {} ({})",
                d.update.as_str(),
                d.reasons
                    .iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    let score = if total == 0 {
        0.0
    } else {
        100.0 * passed as f64 / total as f64
    };
    println!(
        "corpus {}: {passed}/{total} correct ({score:.1}%): {} manifests, {} upgrade pairs",
        dir.display(),
        manifests.len(),
        pairs.len()
    );
    // The plain closing line test-result readers understand.
    println!("corpus: {passed} passed, {} failed", total - passed);
    if total == 0 {
        return Err("the corpus is empty".into());
    }
    if passed == total {
        Ok(())
    } else {
        Err(format!("{} corpus case(s) wrong", total - passed))
    }
}

/// Makes sure a rustup target is installed (rustup reaches its own server for it).
fn ensure_target(target: &str) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    eprintln!("installing the {target} target (one time)");
    run(Command::new("rustup").args(["target", "add", target]))
}

fn wasm_check() -> Result<(), String> {
    ensure_target("wasm32-wasip2")?;
    run(cargo().args([
        "check",
        "--quiet",
        "-p",
        "signoff-core",
        "-p",
        "signoff-storage",
        "--no-default-features",
        "--target",
        "wasm32-wasip2",
    ]))
}

/// Runs a package's `bench` example in release.
fn bench_example(package: &str, example: &str) -> Result<(), String> {
    run(cargo().args([
        "run",
        "--release",
        "--quiet",
        "-p",
        package,
        "--example",
        example,
    ]))
}

fn bench_roa() -> Result<(), String> {
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "roa-check",
        "--bin",
        "roa-check",
    ]))?;
    run(cargo().args(["bench", "--quiet", "-p", "roa-check", "--bench", "roa"]))
}

fn fuzz_roa(seconds: u64) -> Result<(), String> {
    // cargo-fuzz needs the nightly toolchain: go through rustup's `cargo` proxy, not the
    // stable cargo that runs xtask, and drop the variables that pin the toolchain.
    let nightly = || {
        let mut cmd = Command::new("cargo");
        cmd.arg("+nightly")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTDOC");
        cmd
    };
    let has_fuzz = nightly()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        eprintln!("cargo-fuzz is missing; installing it (one time, about a minute)");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    // Seed the corpus with the project's own manifests, so the fuzzer starts from real shapes.
    let corpus = root().join("fuzz/corpus/roa_manifest");
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut seeds = Vec::new();
    collect_yaml(&root().join("crates/roa-check/tests/data"), &mut seeds);
    collect_yaml(&root().join("examples"), &mut seeds);
    for (i, seed) in seeds.iter().enumerate() {
        let _ = std::fs::copy(seed, corpus.join(format!("seed-{i}.yml")));
    }
    run(nightly().current_dir(root().join("fuzz")).args([
        "fuzz",
        "run",
        "roa_manifest",
        "corpus/roa_manifest",
        "--",
        &format!("-max_total_time={seconds}"),
        "-max_len=65536",
    ]))
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}
