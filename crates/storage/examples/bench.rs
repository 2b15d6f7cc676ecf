//! Storage benchmark: durable decisions per second through the engine and the stores, against
//! the raw baseline of bare redb write transactions of the same size and durability; group
//! commit; and the time to read a user's pending list from 100,000 documents. Prints one
//! table.
//!
//! Run with `cargo run --release -p signoff-storage --example bench` (or
//! `cargo xtask bench storage`). `BENCH_ONLY=single|group|group1|group10|group100|pending`
//! runs one part. `BENCH_ONLY=many` runs a part that is not in the default run: single
//! durable decisions on documents chosen at random among `BENCH_MANY_DOCS` (default
//! 100,000), which takes a while to load. `BENCH_DECISIONS` sets the number of single
//! durable decisions per measurement (default 1,200); group-commit runs use 10 times as
//! many. The files go to a temporary directory on the same disk as `$TMPDIR`.

// The example is a small program: it owns stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use signoff_core::event::Action;
use signoff_core::store::IndexEntry;
use signoff_core::{Command, DocState, Timestamp, Workflow};
use signoff_storage::{
    DocumentIndex, Durability, EventStore, GroupCommit, LocalStore, RedbStore, SledStore,
    StoreConfig,
};

const WORKFLOW: &str = "
name: bench-two-stage
initial: draft
groups:
  peers: [r1, r2, r3, r4, r5]
  qa: [q1, q2]
states:
  - { name: draft, on: { submit: review } }
  - name: review
    on: { approved: published, rejected: draft }
    approval:
      stages:
        - name: peer
          groups: [{ name: peers, reviewers: [{ group: peers }], rule: all }]
        - name: qa
          groups: [{ name: qa, reviewers: [{ group: qa }], rule: any }]
  - { name: published, final: true, on: { edit: draft } }
";

const DECIDERS: [&str; 6] = ["r1", "r2", "r3", "r4", "r5", "q1"];
const T0: Timestamp = Timestamp(1_767_225_600);

const ROUNDS: usize = 3;

struct Row {
    what: String,
    batch: String,
    ops: usize,
    rate: f64,
    raw: Option<f64>,
    /// Bytes written per operation.
    written: Option<f64>,
}

fn main() {
    let wf = Workflow::from_text(WORKFLOW, "bench.yaml").expect("the benchmark workflow is valid");
    let decisions: usize = std::env::var("BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_200);
    let dir = std::env::temp_dir().join(format!("signoff-storage-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let mut rows = Vec::new();

    // The engine's records per decision, to size the raw baseline's transactions alike.
    let bytes_per_decision = bytes_per_decision(&wf);
    let docs = decisions.div_ceil(DECIDERS.len());
    let n = docs * DECIDERS.len();

    // The disk is shared and fsync times drift: the measurements of one comparison run in
    // alternation, ROUNDS times, and the median rate of each is reported.
    let mut raw = Vec::new();
    let mut append = Vec::new();
    let mut commit = Vec::new();
    let mut sled = Vec::new();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    for round in (0..ROUNDS).filter(|_| run("single")) {
        let p = |name: &str| dir.join(format!("{name}-{round}"));
        raw.push(raw_redb(&p("raw.redb"), n, bytes_per_decision, 1, None));
        append.push(rt.block_on(engine_single_redb(&wf, &p("append.redb"), docs, false)));
        commit.push(rt.block_on(engine_single_redb(&wf, &p("commit.redb"), docs, true)));
        sled.push(rt.block_on(engine_single_sled(&wf, &p("s.sled"), docs)));
    }
    if run("single") {
        let raw_rate = median_rate(n, &raw);
        rows.push(Row {
            what: format!("raw redb write transactions, one {bytes_per_decision}-byte value each"),
            batch: "1".into(),
            ops: n,
            rate: raw_rate,
            raw: None,
            written: median_written(n, &raw),
        });
        for (what, times) in [
            ("engine decisions: decide + RedbStore::append", &append),
            (
                "engine decisions: decide + RedbStore::commit (records, index row, outbox)",
                &commit,
            ),
            (
                "engine decisions: decide + SledStore::append (flush + fsync)",
                &sled,
            ),
        ] {
            rows.push(Row {
                what: what.into(),
                batch: "1".into(),
                ops: n,
                rate: median_rate(n, times),
                raw: Some(raw_rate),
                written: median_written(n, times),
            });
        }
    }

    // Group commit: many concurrent callers, one durable transaction per batch.
    for batch in [1usize, 10, 100]
        .into_iter()
        .filter(|b| run("group") || run(&format!("group{b}")))
    {
        let n = n * if batch == 1 { 1 } else { 10 };
        let docs = n / DECIDERS.len();
        let mut raw = Vec::new();
        let mut spread = Vec::new();
        let mut engine = Vec::new();
        let mut full = Vec::new();
        let mut means = Vec::new();
        let mut full_means = Vec::new();
        for round in 0..ROUNDS {
            let p = |name: &str| dir.join(format!("{name}-{batch}-{round}"));
            let size = bytes_per_decision;
            raw.push(raw_redb(&p("raw.redb"), n, size, batch, None));
            spread.push(raw_redb(&p("spread.redb"), n, size, batch, Some(docs)));
            let (elapsed, mean) =
                rt.block_on(engine_group_redb(&wf, &p("g.redb"), docs, batch, false));
            engine.push(elapsed);
            means.push(mean);
            let (elapsed, mean) =
                rt.block_on(engine_group_redb(&wf, &p("f.redb"), docs, batch, true));
            full.push(elapsed);
            full_means.push(mean);
        }
        let mean = |m: &[f64]| m.iter().sum::<f64>() / m.len() as f64;
        // The baseline is the cheapest case for redb: sequential keys.
        let raw_rate = median_rate(n, &raw);
        rows.push(Row {
            what: format!("raw redb, {batch} values per write transaction, sequential keys"),
            batch: batch.to_string(),
            ops: n,
            rate: raw_rate,
            raw: None,
            written: median_written(n, &raw),
        });
        rows.push(Row {
            what: format!(
                "raw redb, {batch} values per write transaction, keys spread over {docs} documents"
            ),
            batch: batch.to_string(),
            ops: n,
            rate: median_rate(n, &spread),
            raw: None,
            written: median_written(n, &spread),
        });
        rows.push(Row {
            what: format!(
                "engine decisions: group commit, {} concurrent callers, RedbStore::append",
                callers(batch)
            ),
            batch: format!("up to {batch} (mean {:.1})", mean(&means)),
            ops: n,
            rate: median_rate(n, &engine),
            raw: Some(raw_rate),
            written: median_written(n, &engine),
        });
        rows.push(Row {
            what: format!(
                "engine decisions: group commit, {} concurrent callers, RedbStore::commit (records, index row, outbox)",
                callers(batch)
            ),
            batch: format!("up to {batch} (mean {:.1})", mean(&full_means)),
            ops: n,
            rate: median_rate(n, &full),
            raw: Some(raw_rate),
            written: median_written(n, &full),
        });
    }

    // Single decisions on documents chosen at random among many: each goes to a document
    // that no other decision of the run touched, so the heads a checkpoint writes fall into
    // as many leaves of `heads` as they can. Only on request: loading takes a while.
    if only == "many" {
        let many: usize = std::env::var("BENCH_MANY_DOCS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        // Enough documents for every round to take fresh ones.
        let many = many.max(decisions * ROUNDS);
        // The raw baseline writes values of the size of what is decided here: a first
        // approval (one record, smaller than the average decision).
        let size = first_approval_bytes(&wf);
        let path = dir.join("many.redb");
        rt.block_on(load_many(&wf, &path, many));
        let store = RedbStore::open(&path, StoreConfig::durable()).expect("store");
        let mut order: Vec<usize> = (0..many).collect();
        shuffle(&mut order, 0x5eed_0003);
        let mut raw = Vec::new();
        let mut engine = Vec::new();
        for (round, chosen) in order.chunks(decisions).take(ROUNDS).enumerate() {
            let p = dir.join(format!("many-raw-{round}.redb"));
            raw.push(raw_redb(&p, chosen.len(), size, 1, None));
            engine.push(rt.block_on(decide_many(&wf, &store, chosen)));
        }
        let n = decisions;
        let raw_rate = median_rate(n, &raw);
        rows.push(Row {
            what: format!("raw redb write transactions, one {size}-byte value each"),
            batch: "1".into(),
            ops: n,
            rate: raw_rate,
            raw: None,
            written: median_written(n, &raw),
        });
        rows.push(Row {
            what: format!(
                "engine decisions: decide + RedbStore::append, each on a document chosen at random among {many}"
            ),
            batch: "1".into(),
            ops: n,
            rate: median_rate(n, &engine),
            raw: Some(raw_rate),
            written: median_written(n, &engine),
        });
    }

    let (rows_read, docs_total) = if run("pending") {
        rt.block_on(pending_read(&dir.join("pending.redb")))
    } else {
        ((0, 0.0, 0.0), 0)
    };

    println!();
    println!(
        "All writes durable (Durability::Immediate: fsync before the caller is answered); median of {ROUNDS} alternating rounds."
    );
    println!();
    println!(
        "| measurement | batch | operations | per second | engine/raw | bytes written per operation |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let ratio = r
            .raw
            .map_or(String::new(), |raw| format!("{:.0}%", 100.0 * r.rate / raw));
        let written = r.written.map_or(String::new(), |b| format!("{b:.0}"));
        println!(
            "| {} | {} | {} | {:.0} | {} | {} |",
            r.what, r.batch, r.ops, r.rate, ratio, written
        );
    }
    println!(
        "| pending list of one user ({} of {docs_total} documents), RedbStore::by_reviewer | | 200 reads | median {:.3} ms, worst {:.3} ms | | |",
        rows_read.0, rows_read.1, rows_read.2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn median_rate(ops: usize, times: &[Measure]) -> f64 {
    median(times.iter().map(|m| ops as f64 / m.elapsed.as_secs_f64()))
}

/// The median of the bytes the process passed to `write` calls per operation, where the
/// system tells (Linux's `/proc/self/io`).
fn median_written(ops: usize, times: &[Measure]) -> Option<f64> {
    let bytes: Option<Vec<u64>> = times.iter().map(|m| m.written).collect();
    Some(median(bytes?.into_iter().map(|b| b as f64 / ops as f64)))
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One timed measurement: how long it took and how many bytes the process wrote meanwhile
/// (the pages redb or sled wrote: less sensitive to a busy machine than the time).
struct Measure {
    elapsed: Duration,
    written: Option<u64>,
}

struct Meter {
    start: Instant,
    written: Option<u64>,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            written: written(),
            start: Instant::now(),
        }
    }

    fn stop(self) -> Measure {
        let elapsed = self.start.elapsed();
        Measure {
            elapsed,
            written: written().zip(self.written).map(|(b, a)| b - a),
        }
    }
}

/// The bytes this process has passed to `write` calls so far (`wchar` of `/proc/self/io`).
fn written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
}

fn callers(batch: usize) -> usize {
    (batch * 2).clamp(8, 200)
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.to_owned(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

fn create() -> Action {
    Action::Create {
        title: "Spec".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    }
}

fn approve() -> Action {
    Action::Approve {
        version: 1,
        signature: None,
    }
}

/// A created and submitted document, its state and records.
fn submitted(wf: &Workflow, id: &str) -> (DocState, Vec<signoff_core::Record>) {
    let c = DocState::create(wf, id, &cmd("alice", create()), T0).expect("create");
    let s = c
        .state
        .decide(wf, &cmd("alice", Action::Submit), T0)
        .expect("submit");
    (s.state, [c.records, s.records].concat())
}

fn bytes_per_decision(wf: &Workflow) -> usize {
    let (mut state, _) = submitted(wf, "doc-000000");
    let mut bytes = 0;
    for who in DECIDERS {
        let d = state.decide(wf, &cmd(who, approve()), T0).expect("approve");
        bytes += d
            .records
            .iter()
            .map(|r| serde_json::to_vec(r).expect("json").len())
            .sum::<usize>();
        state = d.state;
    }
    bytes / DECIDERS.len()
}

/// The bytes of the records of a document's first approval (what `decide_many` appends).
fn first_approval_bytes(wf: &Workflow) -> usize {
    let (state, _) = submitted(wf, "doc-000000");
    let d = state
        .decide(wf, &cmd(DECIDERS[0], approve()), T0)
        .expect("approve");
    d.records
        .iter()
        .map(|r| serde_json::to_vec(r).expect("json").len())
        .sum()
}

/// `n` bare redb write transactions (or `n / batch` of `batch` writes), each write one value
/// of `size` bytes under a fresh key, with the given durability: what any redb user pays.
///
/// With `docs`, the keys are spread over that many documents as the engine's are (each
/// transaction then touches as many B-tree leaves as documents); without, they are
/// sequential (the cheapest case for redb).
fn raw_redb(
    path: &std::path::Path,
    n: usize,
    size: usize,
    batch: usize,
    docs: Option<usize>,
) -> Measure {
    const T: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("raw");
    let db = Database::create(path).expect("raw redb");
    let value = vec![b'x'; size];
    let names: Vec<String> = (0..docs.unwrap_or(1))
        .map(|i| format!("doc-{i:06}"))
        .collect();
    let start = Meter::start();
    let mut written = 0;
    while written < n {
        let mut txn = db.begin_write().expect("begin");
        txn.set_durability(redb::Durability::Immediate);
        {
            let mut t = txn.open_table(T).expect("table");
            for _ in 0..batch.min(n - written) {
                let (doc, seq) = match docs {
                    Some(d) => (names[written % d].as_str(), (written / d) as u64),
                    None => ("doc", written as u64),
                };
                t.insert((doc, seq), value.as_slice()).expect("insert");
                written += 1;
            }
        }
        txn.commit().expect("commit");
    }
    start.stop()
}

/// Creates and submits `docs` documents with non-durable commits (setup, not timed).
async fn setup(store: &dyn LocalStore, wf: &Workflow, docs: usize) -> Vec<(String, DocState)> {
    let mut out = Vec::with_capacity(docs);
    for i in 0..docs {
        let id = format!("doc-{i:06}");
        let (state, records) = submitted(wf, &id);
        store.append(&id, 0, &records).await.expect("setup append");
        out.push((id, state));
    }
    out
}

fn fast() -> StoreConfig {
    StoreConfig {
        durability: Durability::None,
        group_commit: GroupCommit::UpTo(1_000),
    }
}

/// Creates and submits `docs` documents with non-durable commits from 8 callers.
async fn load_many(wf: &Workflow, path: &std::path::Path, docs: usize) {
    let store = Arc::new(RedbStore::create(path, fast()).expect("store"));
    let wf = Arc::new(wf.clone());
    let mut tasks = Vec::new();
    for part in 0..8 {
        let (store, wf) = (store.clone(), wf.clone());
        tasks.push(tokio::spawn(async move {
            for i in (part..docs).step_by(8) {
                let id = format!("doc-{i:06}");
                let (_, records) = submitted(&wf, &id);
                store.append(&id, 0, &records).await.expect("load append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

/// One durable decision (the first reviewer's approval) on each of the `chosen` documents,
/// which `load_many` created and submitted, one after the other.
async fn decide_many(wf: &Workflow, store: &RedbStore, chosen: &[usize]) -> Measure {
    let states: Vec<(String, DocState)> = chosen
        .iter()
        .map(|i| {
            let id = format!("doc-{i:06}");
            let (state, _) = submitted(wf, &id);
            (id, state)
        })
        .collect();
    let command = cmd(DECIDERS[0], approve());
    let start = Meter::start();
    for (id, state) in states {
        let d = state.decide(wf, &command, T0).expect("approve");
        store
            .append(&id, state.seq, &d.records)
            .await
            .expect("append");
    }
    start.stop()
}

/// One caller, one durable commit per decision: decide, append with the expected version,
/// adopt the state (and with `full`, the index row and notifications in the same commit).
async fn engine_single_redb(
    wf: &Workflow,
    path: &std::path::Path,
    docs: usize,
    full: bool,
) -> Measure {
    let states = {
        let store = RedbStore::create(path, fast()).expect("store");
        setup(&store, wf, docs).await
    };
    let store = RedbStore::open(path, StoreConfig::durable()).expect("store");
    decide_all(&store, wf, states, full).await
}

async fn engine_single_sled(wf: &Workflow, path: &std::path::Path, docs: usize) -> Measure {
    let states = {
        let store = SledStore::create(path, fast()).expect("store");
        setup(&store, wf, docs).await
    };
    let store = SledStore::open(path, StoreConfig::durable()).expect("store");
    decide_all(&store, wf, states, false).await
}

async fn decide_all(
    store: &dyn LocalStore,
    wf: &Workflow,
    states: Vec<(String, DocState)>,
    full: bool,
) -> Measure {
    let commands: Vec<Command> = DECIDERS.iter().map(|w| cmd(w, approve())).collect();
    let start = Meter::start();
    for (id, mut state) in states {
        for c in &commands {
            let d = state.decide(wf, c, T0).expect("approve");
            if full {
                let (entry, notes) = index_and_notes(wf, &d);
                store
                    .commit(&id, state.seq, &d.records, Some(entry), &notes)
                    .await
                    .expect("commit");
            } else {
                store
                    .append(&id, state.seq, &d.records)
                    .await
                    .expect("append");
            }
            state = d.state;
        }
    }
    start.stop()
}

/// What `signoff doc` commits with a decision: the document's index row and notifications.
fn index_and_notes(
    wf: &Workflow,
    d: &signoff_core::state::Decided,
) -> (IndexEntry, Vec<signoff_core::notify::Notification>) {
    let notes = d
        .records
        .iter()
        .flat_map(|r| signoff_core::notify::notifications(&d.state, r))
        .collect();
    (IndexEntry::of(&d.state, wf), notes)
}

/// Many concurrent callers, each deciding on its own documents, with group commit (with
/// `full`, each decision also carries its index row and notifications).
async fn engine_group_redb(
    wf: &Workflow,
    path: &std::path::Path,
    docs: usize,
    batch: usize,
    full: bool,
) -> (Measure, f64) {
    let states = {
        let store = RedbStore::create(path, fast()).expect("store");
        setup(&store, wf, docs).await
    };
    let config = StoreConfig {
        durability: Durability::Immediate,
        group_commit: if batch == 1 {
            GroupCommit::Off
        } else {
            GroupCommit::UpTo(batch)
        },
    };
    let store = Arc::new(RedbStore::open(path, config).expect("store"));
    let wf = Arc::new(wf.clone());
    let callers = callers(batch);
    // The documents decided at the same moment are arbitrary ones, not neighbours by id:
    // dealt to the callers in a seeded random order (in id order, the documents of one batch
    // would sit side by side in every table keyed by document, which flatters the store).
    let mut states = states;
    shuffle(&mut states, 0x5eed_cafe);
    let mut shares: Vec<Vec<(String, DocState)>> = (0..callers).map(|_| Vec::new()).collect();
    for (i, s) in states.into_iter().enumerate() {
        shares[i % callers].push(s);
    }
    let start = Meter::start();
    let mut tasks = Vec::new();
    for share in shares {
        let store = store.clone();
        let wf = wf.clone();
        tasks.push(tokio::spawn(async move {
            for (id, mut state) in share {
                for who in DECIDERS {
                    let d = state
                        .decide(&wf, &cmd(who, approve()), T0)
                        .expect("approve");
                    if full {
                        let (entry, notes) = index_and_notes(&wf, &d);
                        store
                            .commit(&id, state.seq, &d.records, Some(entry), &notes)
                            .await
                            .expect("commit");
                    } else {
                        store
                            .append(&id, state.seq, &d.records)
                            .await
                            .expect("append");
                    }
                    state = d.state;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = start.stop();
    let stats = store.writer_stats();
    let mean_batch = stats.operations as f64 / stats.commits.max(1) as f64;
    (elapsed, mean_batch)
}

/// 100,000 index rows, each document waiting for 3 of 1,000 users; then the pending list of
/// one user, read 200 times through the async API. Returns (docs in the list, median ms,
/// worst ms) and the number of documents.
async fn pending_read(path: &std::path::Path) -> ((usize, f64, f64), usize) {
    const DOCS: usize = 100_000;
    {
        let store = Arc::new(RedbStore::create(path, fast()).expect("store"));
        let mut tasks = Vec::new();
        for part in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in (part..DOCS).step_by(8) {
                    let reviewers = (0..3)
                        .map(|k| format!("user-{:03}", (i * 7 + k * 331) % 1_000))
                        .collect();
                    store
                        .upsert(IndexEntry {
                            doc: format!("doc-{i:06}"),
                            state: "review".into(),
                            pending_reviewers: reviewers,
                            due_at: Some(Timestamp(T0.0 + i as i64)),
                        })
                        .await
                        .expect("upsert");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    }
    let store = RedbStore::open(path, StoreConfig::durable()).expect("store");
    let mut times = Vec::new();
    let mut found = 0;
    for i in 0..200 {
        let user = format!("user-{:03}", (i * 37) % 1_000);
        let t = Instant::now();
        found = store.by_reviewer(&user).await.expect("read").len();
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    ((found, ms(times[100]), ms(times[199])), DOCS)
}

/// Fisher-Yates with a xorshift64* generator: the same order for the same seed.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed.max(1);
    for i in (1..items.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
}
