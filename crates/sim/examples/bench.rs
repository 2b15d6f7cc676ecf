//! `cargo xtask bench sim`: one invocation of a trivial resolver (`echo` of the `hello`
//! guest) through the whole simulator (fresh store, invocation context, limits, trace),
//! beside bare wasmtime instantiating the same component from an `InstancePre` on the same
//! engine and calling the same export with nothing else. The ratio is the simulator's
//! overhead. Goals (issue #5): p50 under 100 µs, ratio under 1.5, 5,000 invocations/s on
//! one core.
//!
//! Then virtual-time throughput (issue #5): simulated events per second of wall time for a
//! do-nothing app (the `idle` guest, whose exports all return at once; and `tiny`, the same
//! without the standard library, so without WASI) over a simulated year, in three cases:
//! page events nobody subscribes to (dispatched without an invocation), page events to a
//! subscribed trigger (one invocation each), and a `fiveMinute` scheduled trigger (one
//! invocation per firing); the cases with invocations run with 1 thread and with
//! `SimConfig::threads` = N (workers make the instances ahead). Goal: 100,000 simulated
//! events/s.
//!
//! Needs the guests built (`cargo xtask guests`). `SIM_BENCH_N` sets the number of
//! measured invocations (default 20,000), `SIM_BENCH_EVENTS` the number of page events of
//! the first virtual-time case (default 200,000; the subscribed cases run a quarter of
//! them), `SIM_BENCH_THREADS` the thread counts besides 1 (default `2`; e.g. `2,3`).

#![allow(clippy::print_stdout, clippy::print_stderr)] // A benchmark binary owns stdout.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use signoff_sim::Realm;
use signoff_sim::clock::Millis;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::{FlowConfig, InstallSpec, Simulation};
use signoff_sim::host::bindings::AppPre;
use signoff_sim::host::{
    Call, Installation, Output, Platform, Runtime, RuntimeConfig, SimConfig, guest_path,
};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const MANIFEST: &str = r#"
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000a110
  runtime:
    name: wasm32-wasip2
modules:
  function:
    - key: main
      handler: hello
"#;

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let n: usize = std::env::var("SIM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = guest_path(&root, "hello");
    if !wasm.exists() {
        return Err(format!(
            "{} is missing: run `cargo xtask guests` first",
            wasm.display()
        ));
    }
    // The runtime's defaults, unless `SIM_BENCH_KEEP_RESIDENT` (bytes) or
    // `SIM_BENCH_PAGEMAP` (0 or 1) say otherwise, to compare allocator settings.
    let mut config = RuntimeConfig::default();
    if let Some(k) = std::env::var("SIM_BENCH_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.keep_resident_bytes = k;
    }
    if let Ok(p) = std::env::var("SIM_BENCH_PAGEMAP") {
        config.pagemap_scan = p == "1";
    }
    let runtime = Runtime::new(config).map_err(|e| e.to_string())?;
    let component = runtime.compile(&wasm).map_err(|e| e.to_string())?;
    let app = runtime
        .load_app(MANIFEST, &component, &BTreeMap::new())
        .map_err(|e| e.to_string())?;

    // Through the simulator.
    // One thread: the instance is made within the measured invocation, as bare wasmtime's is.
    let mut platform = Platform::new(
        runtime.clone(),
        SimConfig {
            threads: 1,
            ..SimConfig::forge()
        },
    );
    platform.add_app(app);
    platform.install(Installation {
        id: "bench".into(),
        app: "ari:cloud:ecosystem::app/00000000-0000-0000-0000-00000000a110".into(),
        site: "bench.atlassian.net".into(),
        realm: Realm::Eu,
        environment: "production".into(),
        admin: AdminSwitches::default(),
    });
    let call = || Call::Resolver {
        name: "echo".into(),
        payload: r#"{"n":1}"#.into(),
    };
    let mut sim = || match platform.invoke("bench", "main", call()) {
        Ok(Output::Json(_)) => Ok(()),
        other => Err(format!("simulator invocation failed: {other:?}")),
    };

    // Bare wasmtime: the same engine and component, WASI defaults, no limits, no context,
    // no trace; the platform's imports are traps (echo calls none of them).
    let mut linker: Linker<Bare> = Linker::new(runtime.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| e.to_string())?;
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| e.to_string())?;
    let pre = linker
        .instantiate_pre(&component)
        .and_then(AppPre::new)
        .map_err(|e| e.to_string())?;
    let engine = runtime.engine().clone();
    let mut bare = || {
        let mut store = Store::new(
            &engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        // The engine has epoch interruption on; give the bare store all the time there is.
        store.set_epoch_deadline(u64::MAX / 2);
        let app = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
        match app.call_resolver(&mut store, "echo", r#"{"n":1}"#) {
            Ok(Ok(_)) => Ok(()),
            other => Err(format!("bare invocation failed: {other:?}")),
        }
    };

    let warm = (n / 10).max(100);
    let sim_times = measure(&mut sim, warm, n)?;
    let bare_times = measure(&mut bare, warm, n)?;
    let (s50, s99, s_rate) = summary(&sim_times);
    let (b50, b99, b_rate) = summary(&bare_times);
    println!("signoff-sim bench: {n} invocations of a trivial resolver (hello.echo), one thread");
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "", "p50", "p99", "invocations/s"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>14.0}",
        "simulator (store, context, limits)",
        us(s50),
        us(s99),
        s_rate
    );
    println!(
        "{:<34} {:>10} {:>10} {:>14.0}",
        "bare wasmtime (same engine)",
        us(b50),
        us(b99),
        b_rate
    );
    let ratio = s50.as_secs_f64() / b50.as_secs_f64();
    println!();
    println!(
        "overhead ratio (p50 simulator / p50 bare): {ratio:.2}   goals: p50 < 100 µs, ratio < 1.5, >= 5,000/s"
    );
    println!();
    virtual_time(&runtime, &root)
}

/// Simulated events per second of wall time, for a do-nothing app over a simulated year.
fn virtual_time(runtime: &std::sync::Arc<Runtime>, root: &Path) -> Result<(), String> {
    let events: u64 = std::env::var("SIM_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let threads: Vec<usize> = std::env::var("SIM_BENCH_THREADS")
        .unwrap_or_else(|_| "2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .filter(|t| *t > 1)
        .collect();
    let idle = runtime
        .compile(&guest_path(root, "idle"))
        .map_err(|e| e.to_string())?;
    let tiny = runtime
        .compile(&guest_path(root, "tiny"))
        .map_err(|e| e.to_string())?;
    let year = 365 * Millis::DAY;
    let app = |modules: &str| {
        format!(
            "app:\n  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000000ba\n  runtime: {{name: wasm32-wasip2}}\nmodules:\n  function:\n    - {{key: main, handler: idle}}\n{modules}"
        )
    };
    let trigger =
        "  trigger:\n    - {key: pages, function: main, events: [avi:confluence:updated:page]}\n";
    let schedule = "  scheduledTrigger:\n    - {key: tick, function: main, interval: fiveMinute}\n";
    // Each case: a fresh world with one installation of `manifest`, `n` page edits spread
    // evenly over the year, then the rest of the year; returns (events, wall time,
    // invocations).
    let case = |manifest: &str,
                component: &Component,
                n: u64,
                threads: usize|
     -> Result<(u64, Duration, Duration, u64), String> {
        let config = SimConfig {
            threads,
            ..SimConfig::forge()
        };
        let mut sim = Simulation::new(runtime.clone(), config, FlowConfig::forge());
        sim.deploy("bench.yml", manifest, component, &BTreeMap::new())
            .map_err(|e| e.to_string())?;
        sim.install(InstallSpec {
            id: "bench".into(),
            app: "ari:cloud:ecosystem::app/00000000-0000-0000-0000-0000000000ba".into(),
            site: "bench.atlassian.net".into(),
            realm: Realm::Eu,
            environment: "production".into(),
            admin: AdminSwitches::default(),
        })
        .map_err(|e| e.to_string())?;
        let site = "bench.atlassian.net";
        let page = sim
            .create_page(site, "acc-bench", "B", "Bench", "x")
            .map_err(|e| e.to_string())?;
        let start = sim.now();
        let (t, cpu) = (Instant::now(), cpu_time());
        let step = year / n.max(1);
        for i in 0..n {
            sim.run_until(start.plus(i * step));
            sim.edit_page(site, "acc-bench", &page.id, None, "x")
                .map_err(|e| e.to_string())?;
        }
        sim.run_until(start.plus(year));
        let wall = t.elapsed();
        let cpu = cpu_time().saturating_sub(cpu);
        let stats = sim.stats();
        if stats.dead_letters > 0 {
            return Err("a do-nothing app failed".into());
        }
        // Simulated events: page events (with or without an invocation) and schedule
        // firings; retries would count too, but a do-nothing app has none.
        let delivered = stats.product_events - stats.unheard_events;
        let fired = stats.jobs.saturating_sub(delivered);
        Ok((n + fired, wall, cpu, stats.invocations))
    };
    let (none, subscribed, scheduled) = (app(""), app(trigger), app(schedule));
    let mut rows = vec![(
        "page events, no subscriber",
        1,
        case(&none, &idle, events, 1)?,
    )];
    for t in std::iter::once(1).chain(threads.iter().copied()) {
        rows.push((
            "page events to a subscribed trigger",
            t,
            case(&subscribed, &idle, events / 4, t)?,
        ));
    }
    for t in std::iter::once(1).chain(threads.iter().copied()) {
        rows.push((
            "a fiveMinute scheduled trigger",
            t,
            case(&scheduled, &idle, 0, t)?,
        ));
    }
    for t in std::iter::once(1).chain(threads.iter().copied()) {
        rows.push((
            "page events to a trigger, tiny (no std)",
            t,
            case(&subscribed, &tiny, events / 4, t)?,
        ));
    }
    println!(
        "virtual time: a do-nothing app (guests/idle; guests/tiny where named) over 365 simulated days"
    );
    println!();
    println!(
        "{:<40} {:>7} {:>8} {:>11} {:>8} {:>18} {:>12}",
        "", "threads", "events", "invocations", "wall", "simulated events/s", "cpu µs/event"
    );
    for (name, threads, (n, wall, cpu, invocations)) in rows {
        println!(
            "{:<40} {:>7} {:>8} {:>11} {:>6.2} s {:>18.0} {:>12.1}",
            name,
            threads,
            n,
            invocations,
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n.max(1) as f64
        );
    }
    println!();
    println!(
        "goal: >= 100,000 simulated events/s (load average now: {})",
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

/// The process's CPU time so far (user and system, all threads), from `/proc/self/stat`
/// (zero where there is none): the cost of a case apart from what other processes take.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command (which may hold spaces) are space-separated; utime and
    // stime are the 12th and 13th of them, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn measure(
    f: &mut impl FnMut() -> Result<(), String>,
    warm: usize,
    n: usize,
) -> Result<Vec<Duration>, String> {
    for _ in 0..warm {
        f()?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(times)
}

/// p50, p99 and the rate the measured calls add up to.
fn summary(times: &[Duration]) -> (Duration, Duration, f64) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    let total: Duration = times.iter().sum();
    (at(0.50), at(0.99), times.len() as f64 / total.as_secs_f64())
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
