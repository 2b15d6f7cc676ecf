//! `cargo xtask bench node`: the Node runtime (issue #14).
//!
//! 1. Warm invocations of a trivial resolver (`ping` of `examples/apps/notes`, through
//!    `@forge/resolver`) through the whole simulator (invocation frame, runtime object,
//!    virtual clock and seed, trace), beside the same function called with the same
//!    arguments in a bare Node process over the same kind of channel (a Unix socket as
//!    stdin, the same length-prefixed JSON frames) with nothing else, the two in turns (20 blocks each) so that both see the same
//!    machine. The ratio of the p50s is the simulator's overhead.
//! 2. A cold start (a new worker: Node starts, the host files and the app's modules load,
//!    the call is answered) beside `node -e 0`.
//! 3. Warm invocations per second on one core (the simulation's thread; the worker is a
//!    second process, so both cores may be busy).
//! 4. A simulated year of the notes app on 10 sites: an hourly schedule, a page edit a day
//!    (a trigger delivery each) and a resolver call a week on every site.
//!
//! Goals: warm p50 under 1 ms, ratio under 2, cold start under twice a bare Node start,
//! 2,000 warm invocations/s, the year under 60 s. `BENCH_NODE_N` sets the warm calls (default
//! 5,000), `BENCH_NODE_SITES` the sites of the year (default 10). Needs the notes app's
//! packages (`cargo xtask bench node` installs them).

#![allow(clippy::print_stdout, clippy::print_stderr)] // A benchmark binary owns stdout.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signoff_sim::Realm;
use signoff_sim::clock::Millis;
use signoff_sim::egress::AdminSwitches;
use signoff_sim::flow::{FlowConfig, InstallSpec, Simulation};
use signoff_sim::host::{
    App, Call, Installation, Output, Platform, RateLimits, Runtime, RuntimeConfig, SimConfig,
};

const NOTES_ID: &str = "ari:cloud:ecosystem::app/6f1c0e2a-6d2b-4f0e-9a57-5e1f3c2b7a01";

/// The bare baseline: the same handler, the same frames, nothing else.
const BARE: &str = r#"
const net = require('net');
const handler = require(process.argv[1]).handler;
const sock = new net.Socket({ fd: 0, readable: true, writable: true });
let buf = Buffer.alloc(0);
const send = (v) => { const b = Buffer.from(JSON.stringify(v)); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); sock.write(Buffer.concat([h, b])); };
sock.on('data', async (c) => {
  buf = Buffer.concat([buf, c]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
    const n = buf.readUInt32BE(0);
    const f = JSON.parse(buf.subarray(4, 4 + n));
    buf = buf.subarray(4 + n);
    const value = await handler(...f.args);
    send({ t: 'done', inv: f.inv, ok: true, value: JSON.stringify(value) });
  }
});
"#;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn notes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/apps/notes")
}

fn load_notes(runtime: &Runtime) -> Result<Arc<App>, String> {
    let dir = notes_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.yml")).map_err(|e| e.to_string())?;
    runtime
        .load_node_app(&manifest, &dir, &BTreeMap::new())
        .map_err(|e| format!("{e} (run `cargo xtask bench node`, which installs the packages)"))
}

fn installation(id: &str) -> Installation {
    Installation {
        id: id.into(),
        app: NOTES_ID.into(),
        site: format!("{id}.atlassian.net"),
        realm: Realm::Eu,
        environment: "production".into(),
        admin: AdminSwitches::default(),
    }
}

fn ping() -> Call {
    Call::Resolver {
        name: "ping".into(),
        payload: "{}".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn run() -> Result<(), String> {
    let n = env_num("BENCH_NODE_N", 5_000);
    let runtime = Runtime::new(RuntimeConfig::default()).map_err(|e| e.to_string())?;
    let node = runtime.node_env().map_err(|e| e.to_string())?;
    println!(
        "node {}.{}.{} ({}), {n} warm calls",
        node.version.0,
        node.version.1,
        node.version.2,
        node.isolation.describe()
    );
    let app = load_notes(&runtime)?;

    // 1 and 3: warm through the simulator.
    // Thousands of calls at one instant of virtual time: the platform's rate limit per user
    // would refuse most of them, and the cost of an invocation is what is measured here.
    let mut config = SimConfig::forge();
    config.limits.rate = RateLimits::none();
    let mut platform = Platform::new(runtime.clone(), config);
    platform.add_app(app.clone());
    platform.install(installation("bench"));
    for _ in 0..50 {
        expect_pong(platform.invoke_as("bench", "resolver", ping(), Some("alice")))?;
    }
    // 1: the same function in a bare Node process, measured in turns with the simulator (a
    // block of calls each, 20 times), so that both see the same machine: it is shared, and its
    // speed drifts over a run.
    let built = app
        .node()
        .and_then(|c| c.handlers.get("resolver"))
        .map(|h| h.file.clone())
        .ok_or("the notes app has no `resolver` function")?;
    // The bare process gets the very arguments the simulator passes for this call.
    let code = app.node().ok_or("the notes app is not a Node app")?;
    let args = signoff_sim::node::handler_args(
        code,
        &installation("bench"),
        &ping(),
        "resolver",
        Some("alice"),
        platform.now(),
    )
    .map_err(|e| e.to_string())?;
    let mut bare_node = Bare::start(&node.node, &built, args)?;
    for _ in 0..50 {
        bare_node.call()?;
    }
    const TURNS: usize = 20;
    let mut sim = Vec::with_capacity(n);
    let mut bare = Vec::with_capacity(n);
    for turn in 0..TURNS {
        let block = n / TURNS + usize::from(turn < n % TURNS);
        for _ in 0..block {
            let t = Instant::now();
            expect_pong(platform.invoke_as("bench", "resolver", ping(), Some("alice")))?;
            sim.push(t.elapsed());
        }
        for _ in 0..block {
            bare.push(bare_node.call()?);
        }
    }
    drop(bare_node);
    let sim_rate = n as f64 / sim.iter().sum::<Duration>().as_secs_f64();

    // A warm invocation that makes two platform calls (the hourly trigger: a KVS get and set).
    let mut two = Vec::with_capacity(n / 5);
    for i in 0..n / 5 + 50 {
        // An hour apart, as the trigger runs (the store's rate limit counts virtual seconds).
        platform.clock().advance_by(Millis::HOUR);
        let t = Instant::now();
        let r = platform.invoke("bench", "hourly", Call::Schedule("notes-hourly".into()));
        r.map_err(|e| format!("hourly failed: {e}"))?;
        if i >= 50 {
            two.push(t.elapsed());
        }
    }
    two.sort();

    sim.sort();
    bare.sort();
    let (sim50, bare50) = (percentile(&sim, 0.5), percentile(&bare, 0.5));
    println!();
    println!(
        "{:<44}{:>10}{:>11}{:>16}",
        "", "p50", "p99", "invocations/s"
    );
    println!(
        "{:<44}{:>7.1} µs{:>8.1} µs{:>16.0}",
        "simulator (warm worker, whole platform)",
        micros(sim50),
        micros(percentile(&sim, 0.99)),
        sim_rate
    );
    println!(
        "{:<44}{:>7.1} µs{:>8.1} µs",
        "simulator, hourly trigger (2 KVS calls)",
        micros(percentile(&two, 0.5)),
        micros(percentile(&two, 0.99)),
    );
    let bare_total: Duration = bare.iter().sum();
    println!(
        "{:<44}{:>7.1} µs{:>8.1} µs{:>16.0}",
        "bare Node (same function, args and channel)",
        micros(bare50),
        micros(percentile(&bare, 0.99)),
        n as f64 / bare_total.as_secs_f64()
    );
    println!(
        "\noverhead ratio (p50 simulator / p50 bare): {:.2}   goals: p50 < 1 ms, ratio < 2, >= 2,000/s",
        micros(sim50) / micros(bare50)
    );

    // 2: cold starts: one worker slot, two installations taking turns.
    let config = SimConfig {
        node_workers: 1,
        ..SimConfig::forge()
    };
    let mut cold_platform = Platform::new(runtime.clone(), config);
    cold_platform.add_app(app.clone());
    cold_platform.install(installation("a"));
    cold_platform.install(installation("b"));
    let mut cold = Vec::new();
    for i in 0..10 {
        let id = if i % 2 == 0 { "a" } else { "b" };
        let t = Instant::now();
        expect_pong(cold_platform.invoke_as(id, "resolver", ping(), Some("alice")))?;
        cold.push(t.elapsed());
    }
    let mut bare_start = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let s = Command::new(&node.node)
            .args(["-e", "0"])
            .status()
            .map_err(|e| e.to_string())?;
        if !s.success() {
            return Err("node -e 0 failed".into());
        }
        bare_start.push(t.elapsed());
    }
    cold.sort();
    bare_start.sort();
    let (c50, b50) = (percentile(&cold, 0.5), percentile(&bare_start, 0.5));
    println!(
        "\ncold start (median of 10): {:.1} ms through the simulator (worker, host files, the app's modules, the call) beside {:.1} ms for `node -e 0`: ratio {:.2}   goal < 2",
        c50.as_secs_f64() * 1e3,
        b50.as_secs_f64() * 1e3,
        c50.as_secs_f64() / b50.as_secs_f64()
    );

    // 4: a simulated year on 10 sites.
    let sites = env_num("BENCH_NODE_SITES", 10);
    let config = SimConfig {
        trace: false,
        node_workers: sites.max(1),
        ..SimConfig::forge()
    };
    let mut year = Simulation::new(runtime.clone(), config, FlowConfig::forge());
    if std::env::var_os("BENCH_NODE_SKIP_YEAR").is_some() {
        return Ok(());
    }
    let manifest =
        std::fs::read_to_string(notes_dir().join("manifest.yml")).map_err(|e| e.to_string())?;
    year.deploy_node("manifest.yml", &manifest, &notes_dir(), &BTreeMap::new())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut pages = Vec::new();
    for i in 0..sites {
        let site = format!("site{i:02}.atlassian.net");
        year.install(InstallSpec {
            id: format!("site{i:02}"),
            app: NOTES_ID.into(),
            site: site.clone(),
            realm: Realm::Eu,
            environment: "production".into(),
            admin: AdminSwitches::default(),
        })
        .map_err(|e| e.to_string())?;
        let page = year
            .create_page(&site, "alice", "ENG", "Runbook", "<p>v1</p>")
            .map_err(|e| e.to_string())?;
        pages.push((site, page.id));
    }
    let start = year.now();
    let mut resolver_calls = 0u64;
    for day in 1..=365u64 {
        year.run_until(start.plus(day * Millis::DAY));
        for (i, (site, page)) in pages.iter().enumerate() {
            year.edit_page(site, "bob", page, None, &format!("<p>day {day}</p>"))
                .map_err(|e| e.to_string())?;
            if day % 7 == 0 {
                let payload = format!(r#"{{"pageId":"{page}","text":"week {}"}}"#, day / 7);
                let r = year
                    .call_resolver(
                        &format!("site{i:02}"),
                        Some("resolver"),
                        Some("alice"),
                        "note.add",
                        &payload,
                    )
                    .map_err(|e| e.to_string())?;
                r.map_err(|e| format!("note.add failed: {e}"))?;
                resolver_calls += 1;
            }
        }
    }
    year.run_until(start.plus(365 * Millis::DAY + Millis::HOUR));
    let wall = started.elapsed();
    let stats = year.stats();
    let events = stats.product_events + stats.jobs + resolver_calls;
    println!(
        "\na simulated year of the notes app on {sites} sites: {:.1} s wall, {} invocations ({} dead letters), {:.0} simulated events/s   goal < 60 s",
        wall.as_secs_f64(),
        stats.invocations,
        stats.dead_letters,
        events as f64 / wall.as_secs_f64()
    );
    Ok(())
}

fn expect_pong(r: Result<Output, signoff_sim::host::InvocationError>) -> Result<(), String> {
    match r {
        Ok(Output::Json(t)) if t == "\"pong\"" => Ok(()),
        other => Err(format!("ping answered {other:?}")),
    }
}

/// The notes app's `ping` (from the same build the simulator runs) in a bare Node process
/// over a Unix socket as stdin.
struct Bare {
    child: std::process::Child,
    sock: UnixStream,
    frame: Vec<u8>,
    buf: Vec<u8>,
}

impl Bare {
    fn start(node: &Path, index: &Path, args: serde_json::Value) -> Result<Bare, String> {
        let (sock, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        let child = Command::new(node)
            .arg("-e")
            .arg(BARE)
            .arg(index)
            .current_dir(notes_dir())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .spawn()
            .map_err(|e| e.to_string())?;
        let frame = serde_json::json!({
            "t": "invoke",
            "inv": 1,
            "args": args,
        });
        let body = serde_json::to_vec(&frame).map_err(|e| e.to_string())?;
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        Ok(Bare {
            child,
            sock,
            frame: out,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// One call, timed from the frame sent to the answer read.
    fn call(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        self.sock
            .write_all(&self.frame)
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 4];
        self.sock.read_exact(&mut head).map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes(head) as usize;
        if len > self.buf.len() {
            return Err("the bare worker sent a frame that is too big".into());
        }
        self.sock
            .read_exact(&mut self.buf[..len])
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
