//! `cargo xtask bench roa`: how fast roa-check is, beside baselines measured in the same run.
//!
//! 1. Manifests checked per second on one core for a 300-line manifest (parse, model, rules),
//!    beside a bare `saphyr-parser` pass over the same text: the ratio is roa-check's cost
//!    over just reading the YAML.
//! 2. A cold `roa-check check` process on one manifest, beside spawning `true`: the
//!    difference is what roa-check itself adds to a CI step.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A benchmark program reports on stdout.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let manifest = manifest_300_lines();
    let lines = manifest.lines().count();
    let bytes = manifest.as_bytes();
    let report = roa_check::check("bench.yml", bytes).expect("the bench manifest parses");
    // For profiling (`valgrind --tool=callgrind`): run only the check loop, a fixed count.
    if std::env::var_os("ROA_BENCH_PROFILE_CHECK").is_some() {
        for _ in 0..2000 {
            black_box(roa_check::check("bench.yml", black_box(bytes)).ok());
        }
        return;
    }
    println!(
        "roa-check benchmark: a {lines}-line manifest, {} bytes, {} findings",
        bytes.len(),
        report.findings.len()
    );
    println!();
    println!("| what | per second (one core) | mean | ratio |");
    println!("|---|---:|---:|---:|");
    let bare = rate(|| {
        let n = saphyr_parser::Parser::new_from_str(black_box(&manifest)).count();
        black_box(n);
    });
    let check = rate(|| {
        black_box(roa_check::check("bench.yml", black_box(bytes)).ok());
    });
    let diff = rate(|| {
        black_box(roa_check::diff("a", black_box(bytes), "b", black_box(bytes)).ok());
    });
    row("bare YAML parse (saphyr-parser events)", bare, 1.0);
    row(
        "roa-check check (parse + model + rules)",
        check,
        bare / check,
    );
    row(
        "roa-check diff (two loads + rules + diff)",
        diff,
        bare / diff,
    );
    println!();

    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/roa-check");
    if !exe.exists() {
        eprintln!("{} not built; run `cargo xtask bench roa`", exe.display());
        return;
    }
    let file = std::env::temp_dir().join("roa-check-bench-manifest.yml");
    std::fs::write(&file, &manifest).expect("temp dir is writable");
    let spawn = cold(Command::new("true"));
    let mut cmd = Command::new(&exe);
    cmd.arg("check").arg(&file);
    let process = cold(cmd);
    println!("| cold process, one manifest | median | p90 |");
    println!("|---|---:|---:|");
    println!(
        "| bare spawn of `true` (baseline) | {} | {} |",
        ms(spawn.0),
        ms(spawn.1)
    );
    println!(
        "| `roa-check check` | {} | {} |",
        ms(process.0),
        ms(process.1)
    );
    println!(
        "\nroa-check adds {} to a bare process start (median).",
        ms(process.0.saturating_sub(spawn.0))
    );
}

/// Runs `f` repeatedly for about two seconds after a warm-up; returns calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn row(what: &str, per_sec: f64, ratio: f64) {
    println!(
        "| {what} | {per_sec:.0} | {:.1} µs | {ratio:.2}× |",
        1e6 / per_sec
    );
}

/// Median and 90th percentile wall time of 60 runs of `cmd` (after 5 warm-ups).
fn cold(mut cmd: Command) -> (Duration, Duration) {
    cmd.stdout(std::process::Stdio::null());
    for _ in 0..5 {
        let _ = cmd.status();
    }
    let mut times: Vec<Duration> = (0..60)
        .map(|_| {
            let t = Instant::now();
            let _ = cmd.status();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() * 9 / 10])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A realistic manifest of about 300 lines: UI modules, functions, triggers, scopes and
/// egress of every shape.
fn manifest_300_lines() -> String {
    let mut s = String::from(
        "app:\n  id: ari:cloud:ecosystem::app/11111111-2222-3333-4444-555555555555\n  runtime:\n    name: nodejs22.x\n    memoryMB: 256\nmodules:\n",
    );
    s.push_str("  function:\n");
    for i in 0..36 {
        s.push_str(&format!(
            "    - key: fn-{i}\n      handler: index.handler{i}\n      timeoutSeconds: 60\n"
        ));
    }
    s.push_str("  trigger:\n");
    for i in 0..8 {
        s.push_str(&format!(
            "    - key: trigger-{i}\n      function: fn-{i}\n      events:\n        - avi:confluence:created:page\n        - avi:confluence:updated:page\n"
        ));
    }
    s.push_str("  confluence:contentBylineItem:\n");
    for i in 0..8 {
        s.push_str(&format!(
            "    - key: byline-{i}\n      title: Status {i}\n      resource: ui\n      resolver:\n        function: fn-{i}\n"
        ));
    }
    s.push_str("  webtrigger:\n    - key: health\n      function: fn-0\n      response:\n        type: static\n        outputs:\n          - key: ok\n            statusCode: 200\n");
    s.push_str(
        "  scheduledTrigger:\n    - key: hourly\n      function: fn-1\n      interval: hour\n",
    );
    s.push_str("resources:\n  - key: ui\n    path: static/ui\npermissions:\n  scopes:\n");
    for i in 0..42 {
        s.push_str(&format!("    - read:scope-{i}:confluence\n"));
    }
    s.push_str(
        "  content:\n    styles:\n      - unsafe-inline\n  external:\n    fetch:\n      backend:\n",
    );
    for i in 0..10 {
        s.push_str(&format!(
            "        - address: https://analytics{i}.example.com\n          category: analytics\n          inScopeEUD: false\n"
        ));
    }
    s.push_str("      client:\n");
    for i in 0..5 {
        s.push_str(&format!("        - https://client{i}.example.com\n"));
    }
    s.push_str("    images:\n      - address: secure.gravatar.com\n      - address: https://images.example.com\n");
    s
}
