//! PgStore benchmark: durable decisions per second through the engine and `PgStore`
//! (single, group commit of 10 and 100) beside raw single-row `INSERT` transactions of the
//! same size on one connection with the same `synchronous_commit` (on); the same with 1, 2
//! and 4 writer processes; and a user's pending list read from 100,000 documents. Prints
//! one table.
//!
//! Beside `PgStore::commit`, a floor: the same rows written by hand with plain statements
//! (no expected-version check, no row lock, no function), what the layout itself costs; the
//! `engine/floor` column compares `commit` with it. A lean floor (single decisions) writes
//! only an append and one state row, in tables of its own: the least any layout could.
//!
//! The engine's stores run on this program's tokio runtime (`PgConfig::runtime`), like the
//! raw inserts; one row shows the default (the store's own runtime) beside them.
//!
//! Run with `cargo xtask bench postgres` (a throwaway server unless `SIGNOFF_PG_URL` names
//! one); `BENCH_ONLY=single|group|processes|pending` runs one part. `BENCH_DECISIONS` sets
//! the single decisions per measurement (default 1,200; group commit runs use 10 times as
//! many, process runs twice as many per process). Single decisions and raw single inserts
//! take turns in slices of about 100; group measurements are the median of three rounds;
//! documents are set up beforehand (without waiting for durability), followed by a
//! `CHECKPOINT`. Everything goes to a schema `bench_PID`, dropped at the end.

// The example is a small program: it owns stdout.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, Write};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signoff_core::event::Action;
use signoff_core::store::IndexEntry;
use signoff_core::{Command, DocState, Timestamp, Workflow};
use signoff_storage::throwaway_pg::ThrowawayServer;
use signoff_storage::{
    DocumentIndex, Durability, EventStore, GroupCommit, LocalStore, PgConfig, PgStore, StoreConfig,
};
use tokio_postgres::{Client, NoTls};

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
const CHILD: &str = "BENCH_PG_CHILD";

struct Row {
    what: String,
    ops: usize,
    rate: f64,
    raw: Option<f64>,
    /// WAL bytes written per operation (the server's WAL position before and after).
    wal: Option<f64>,
    /// The floor's rate in the same run, for `commit` rows.
    floor: Option<f64>,
}

fn main() {
    let _server;
    let url = match std::env::var("SIGNOFF_PG_URL") {
        Ok(url) => url,
        Err(_) => {
            let s = ThrowawayServer::start().expect("a throwaway PostgreSQL server");
            let url = s.url();
            _server = s;
            url
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Ok(role) = std::env::var(CHILD) {
        rt.block_on(child(&url, &role));
        return;
    }
    let decisions: usize = std::env::var("BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_200);
    let schema = format!("bench_{}", std::process::id());
    let wf = workflow();
    let size = bytes_per_decision(&wf);
    let mut rows = Vec::new();
    rt.block_on(async {
        let admin = connect(&url).await;
        let version: String = admin
            .query_one("SHOW server_version", &[])
            .await
            .expect("version")
            .get(0);
        let sync: String = admin
            .query_one("SHOW synchronous_commit", &[])
            .await
            .expect("synchronous_commit")
            .get(0);
        println!(
            "PostgreSQL {version} at {}, synchronous_commit = {sync}; {size} bytes of records per decision",
            url.split('@').next_back().unwrap_or("?")
        );

        if part("single") {
        // Single decisions. The documents are set up first, then a checkpoint, so that no
        // measurement pays for the set-up's writes. The disk's fsync latency here swings
        // within seconds (other builds share it), so raw inserts and the engine take turns
        // in slices of about 100 operations, and each rate is its total over the slices.
        let single = decisions.div_ceil(6);
        let a = setup(&url, &schema, &wf, single, "s").await;
        let o = setup(&url, &schema, &wf, single, "o").await;
        let c = setup(&url, &schema, &wf, single, "c").await;
        let f = setup(&url, &schema, &wf, single, "f").await;
        let l = setup(&url, &schema, &wf, single, "l").await;
        let lean = Lean::new(&url, &schema, "l").await;
        checkpoint(&admin).await;
        let store = open(&url, &schema, GroupCommit::Off).await;
        let own = open_on(&url, &schema, GroupCommit::Off, None).await;
        let raw_conn = Raw::new(&url, &schema, size).await;
        let floor = Floor::new(&url, &schema).await;
        let slices = decisions.div_ceil(100).max(1);
        let chunk = single.div_ceil(slices);
        let mut totals = [(0usize, 0f64); 6];
        let mut wal = [0i64; 6];
        let add = |t: &mut (usize, f64), (n, secs): (usize, f64)| {
            t.0 += n;
            t.1 += secs;
        };
        let (mut a, mut o, mut c, mut f, mut l) = (
            a.into_iter(),
            o.into_iter(),
            c.into_iter(),
            f.into_iter(),
            l.into_iter(),
        );
        for _ in 0..slices {
            let at = lsn(&admin).await;
            add(&mut totals[0], raw_conn.run(chunk * 6, 1).await);
            let at = wal_since(&admin, at, &mut wal[0]).await;
            let part: Vec<_> = a.by_ref().take(chunk).collect();
            add(&mut totals[1], decide_timed(&store, &wf, part, false).await);
            let at = wal_since(&admin, at, &mut wal[1]).await;
            let part: Vec<_> = o.by_ref().take(chunk).collect();
            add(&mut totals[2], decide_timed(&own, &wf, part, false).await);
            let at = wal_since(&admin, at, &mut wal[2]).await;
            let part: Vec<_> = c.by_ref().take(chunk).collect();
            add(&mut totals[3], decide_timed(&store, &wf, part, true).await);
            let at = wal_since(&admin, at, &mut wal[3]).await;
            let part: Vec<_> = f.by_ref().take(chunk).collect();
            add(&mut totals[4], floor.run(&wf, part, 1).await);
            let at = wal_since(&admin, at, &mut wal[4]).await;
            let part: Vec<_> = l.by_ref().take(chunk).collect();
            add(&mut totals[5], lean.run(&wf, part).await);
            wal_since(&admin, at, &mut wal[5]).await;
        }
        drop(store);
        drop(own);
        let rate = |t: (usize, f64)| t.0 as f64 / t.1;
        let raw1 = rate(totals[0]);
        let names = [
            format!("raw INSERT transactions, one {size}-byte row each"),
            "decisions: decide + PgStore::append".into(),
            "decisions: decide + PgStore::append, the store's own runtime (default)".into(),
            "decisions: decide + PgStore::commit (records, index row, outbox)".into(),
            "floor: decide + the same rows as a commit, plain statements (no check, no lock)".into(),
            "lean floor: decide + an append row and a current-state row only (no pending-list index, no outbox)".into(),
        ];
        for (i, what) in names.into_iter().enumerate() {
            rows.push(Row {
                what,
                ops: totals[i].0,
                rate: rate(totals[i]),
                raw: (i > 0).then_some(raw1),
                wal: Some(wal[i] as f64 / totals[i].0 as f64),
                floor: (i == 3).then(|| rate(totals[4])),
            });
        }

        }

        // Group commit.
        for batch in [10, 100].into_iter().filter(|_| part("group")) {
            let n = decisions * 10;
            let mut prepared = Vec::new();
            for round in 0..ROUNDS {
                let a = setup(&url, &schema, &wf, n.div_ceil(6), &format!("g{batch}a{round}")).await;
                let c = setup(&url, &schema, &wf, n.div_ceil(6), &format!("g{batch}c{round}")).await;
                let f = setup(&url, &schema, &wf, n.div_ceil(6), &format!("g{batch}f{round}")).await;
                prepared.push((a, c, f));
            }
            checkpoint(&admin).await;
            let store = Arc::new(open(&url, &schema, GroupCommit::UpTo(batch)).await);
            let floor = Floor::new(&url, &schema).await;
            let (mut raw, mut append, mut commit) = (Vec::new(), Vec::new(), Vec::new());
            let mut floors = Vec::new();
            let (mut append_mean, mut commit_mean) = (Vec::new(), Vec::new());
            let mut wal = [0i64; 4];
            for (a, c, f) in prepared {
                let at = lsn(&admin).await;
                raw.push(raw_inserts(&url, &schema, n, batch, size).await);
                let at = wal_since(&admin, at, &mut wal[0]).await;
                let before = store.writer_stats();
                append.push(decide_group(store.clone(), &wf, a, batch * 2, false).await);
                let at = wal_since(&admin, at, &mut wal[1]).await;
                let middle = store.writer_stats();
                commit.push(decide_group(store.clone(), &wf, c, batch * 2, true).await);
                let at = wal_since(&admin, at, &mut wal[2]).await;
                let after = store.writer_stats();
                let (done, secs) = floor.run(&wf, f, batch).await;
                floors.push(done as f64 / secs);
                wal_since(&admin, at, &mut wal[3]).await;
                append_mean.push(mean_batch(before, middle));
                commit_mean.push(mean_batch(middle, after));
            }
            let r = median(&raw);
            rows.push(Row {
                what: format!("raw: {batch} single-row INSERTs per transaction (pipelined)"),
                ops: n,
                rate: r,
                raw: None,
                wal: Some(wal[0] as f64 / (n * ROUNDS) as f64),
                floor: None,
            });
            rows.push(Row {
                what: format!(
                    "decisions: group commit up to {batch} (mean {:.1}), {} callers, PgStore::append",
                    median(&append_mean),
                    batch * 2
                ),
                ops: n,
                rate: median(&append),
                raw: Some(r),
                wal: Some(wal[1] as f64 / (n * ROUNDS) as f64),
                floor: None,
            });
            rows.push(Row {
                what: format!(
                    "decisions: group commit up to {batch} (mean {:.1}), {} callers, PgStore::commit",
                    median(&commit_mean),
                    batch * 2
                ),
                ops: n,
                rate: median(&commit),
                raw: Some(r),
                wal: Some(wal[2] as f64 / (n * ROUNDS) as f64),
                floor: Some(median(&floors)),
            });
            rows.push(Row {
                what: format!(
                    "floor: decide + the same rows as a commit, plain statements, {batch} decisions per transaction (one caller, pipelined)"
                ),
                ops: n,
                rate: median(&floors),
                raw: Some(r),
                wal: Some(wal[3] as f64 / (n * ROUNDS) as f64),
                floor: None,
            });
        }
    });

    // Several writer processes.
    for procs in [1, 2, 4].into_iter().filter(|_| part("processes")) {
        let n = decisions * 2;
        let raw = processes(&rt, &url, &schema, "raw", procs, n);
        let engine = processes(&rt, &url, &schema, "engine", procs, n);
        rows.push(Row {
            what: format!("{procs} processes: raw INSERT transactions"),
            ops: n * procs,
            rate: raw,
            raw: None,
            wal: None,
            floor: None,
        });
        rows.push(Row {
            what: format!("{procs} processes: decide + PgStore::commit"),
            ops: n * procs,
            rate: engine,
            raw: Some(raw),
            wal: None,
            floor: None,
        });
    }

    let pending = part("pending").then(|| rt.block_on(pending_read(&url, &schema)));

    println!();
    println!(
        "| measurement | operations | per second | engine/raw | engine/floor | WAL bytes per operation |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let ratio = r
            .raw
            .map(|raw| format!("{:.0}%", 100.0 * r.rate / raw))
            .unwrap_or_default();
        let of_floor = r
            .floor
            .map(|f| format!("{:.0}%", 100.0 * r.rate / f))
            .unwrap_or_default();
        let wal = r.wal.map(|w| format!("{w:.0}")).unwrap_or_default();
        println!(
            "| {} | {} | {:.0} | {} | {} | {} |",
            r.what, r.ops, r.rate, ratio, of_floor, wal
        );
    }
    if let Some((found, med, worst)) = pending {
        println!(
            "| pending list of one user ({found} of 100000 documents), PgStore::by_reviewer | 200 reads | median {med:.3} ms, worst {worst:.3} ms | | | |"
        );
    }
    rt.block_on(async {
        let admin = connect(&url).await;
        let _ = admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    });
}

fn workflow() -> Workflow {
    Workflow::from_text(WORKFLOW, "bench.yaml").expect("the benchmark workflow is valid")
}

async fn connect(url: &str) -> Client {
    let mut config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    config.options("-c synchronous_commit=on");
    let (client, conn) = config.connect(NoTls).await.expect("a connection");
    tokio::spawn(conn);
    client
}

/// A durable store on this program's runtime (`PgConfig::runtime`, as a service on tokio
/// would run it; the raw inserts run there too).
async fn open(url: &str, schema: &str, group: GroupCommit) -> PgStore {
    open_on(url, schema, group, Some(tokio::runtime::Handle::current())).await
}

async fn open_on(
    url: &str,
    schema: &str,
    group: GroupCommit,
    runtime: Option<tokio::runtime::Handle>,
) -> PgStore {
    let config = PgConfig {
        store: StoreConfig {
            durability: Durability::Immediate,
            group_commit: group,
        },
        schema: schema.to_owned(),
        runtime,
        ..PgConfig::default()
    };
    PgStore::connect(url, config).await.expect("the store")
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.to_owned(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

fn approve() -> Action {
    Action::Approve {
        version: 1,
        signature: None,
    }
}

fn submitted(wf: &Workflow, id: &str) -> (DocState, Vec<signoff_core::Record>) {
    let create = Action::Create {
        title: "Spec".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    };
    let c = DocState::create(wf, id, &cmd("alice", create), T0).expect("create");
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
        bytes += serde_json::to_vec(&d.records).expect("json").len();
        state = d.state;
    }
    bytes / DECIDERS.len()
}

/// `docs` created and submitted documents, written without waiting for durability (set-up
/// is not measured).
async fn setup(
    url: &str,
    schema: &str,
    wf: &Workflow,
    docs: usize,
    tag: &str,
) -> Vec<(String, DocState)> {
    let config = PgConfig {
        store: StoreConfig {
            durability: Durability::None,
            group_commit: GroupCommit::UpTo(100),
        },
        schema: schema.to_owned(),
        ..PgConfig::default()
    };
    let store = Arc::new(PgStore::connect(url, config).await.expect("the store"));
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..docs)
        .collect::<Vec<_>>()
        .chunks(docs.div_ceil(50).max(1))
    {
        let store = store.clone();
        let wf = wf.clone();
        let ids: Vec<String> = chunk.iter().map(|i| format!("{tag}-{i:06}")).collect();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for id in ids {
                let (state, records) = submitted(&wf, &id);
                store
                    .commit(&id, 0, &records, Some(IndexEntry::of(&state, &wf)), &[])
                    .await
                    .expect("set-up");
                out.push((id, state));
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("set-up task"));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Every decision of every document, one caller, one after the other: ops/s.
async fn decide_all(
    store: &PgStore,
    wf: &Workflow,
    docs: Vec<(String, DocState)>,
    full: bool,
) -> f64 {
    let (n, secs) = decide_timed(store, wf, docs, full).await;
    n as f64 / secs
}

/// Every decision of every document, one caller, one after the other: (decisions, seconds).
async fn decide_timed(
    store: &PgStore,
    wf: &Workflow,
    docs: Vec<(String, DocState)>,
    full: bool,
) -> (usize, f64) {
    let started = Instant::now();
    let mut n = 0;
    for (id, mut state) in docs {
        for who in DECIDERS {
            let d = state.decide(wf, &cmd(who, approve()), T0).expect("approve");
            if full {
                let notes: Vec<_> = d
                    .records
                    .iter()
                    .flat_map(|r| signoff_core::notify::notifications(&d.state, r))
                    .collect();
                store
                    .commit(
                        &id,
                        state.seq,
                        &d.records,
                        Some(IndexEntry::of(&d.state, wf)),
                        &notes,
                    )
                    .await
                    .expect("commit");
            } else {
                store
                    .append(&id, state.seq, &d.records)
                    .await
                    .expect("append");
            }
            state = d.state;
            n += 1;
        }
    }
    (n, started.elapsed().as_secs_f64())
}

/// The documents shared among `callers` concurrent tasks, each deciding on its own: ops/s.
async fn decide_group(
    store: Arc<PgStore>,
    wf: &Workflow,
    docs: Vec<(String, DocState)>,
    callers: usize,
    full: bool,
) -> f64 {
    let total = docs.len() * DECIDERS.len();
    let mut shares: Vec<Vec<(String, DocState)>> = (0..callers).map(|_| Vec::new()).collect();
    for (i, d) in docs.into_iter().enumerate() {
        shares[i % callers].push(d);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        let store = store.clone();
        let wf = wf.clone();
        tasks.spawn(async move {
            for (id, mut state) in share {
                for who in DECIDERS {
                    let d = state
                        .decide(&wf, &cmd(who, approve()), T0)
                        .expect("approve");
                    if full {
                        let notes: Vec<_> = d
                            .records
                            .iter()
                            .flat_map(|r| signoff_core::notify::notifications(&d.state, r))
                            .collect();
                        store
                            .commit(
                                &id,
                                state.seq,
                                &d.records,
                                Some(IndexEntry::of(&d.state, &wf)),
                                &notes,
                            )
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
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("caller");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// One connection for raw single-row inserts of `size` bytes into a table of the schema.
struct Raw {
    client: Client,
    insert: tokio_postgres::Statement,
    begin: tokio_postgres::Statement,
    commit: tokio_postgres::Statement,
    value: String,
    doc: Vec<u8>,
}

impl Raw {
    async fn new(url: &str, schema: &str, size: usize) -> Raw {
        let client = connect(url).await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.raw \
                 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc bytea NOT NULL, \
                 v text NOT NULL)"
            ))
            .await
            .expect("raw table");
        let insert = client
            .prepare(&format!(
                "INSERT INTO {schema}.raw (doc, v) VALUES ($1, $2)"
            ))
            .await
            .expect("prepare");
        let begin = client.prepare("BEGIN").await.expect("prepare");
        let commit = client.prepare("COMMIT").await.expect("prepare");
        Raw {
            client,
            insert,
            begin,
            commit,
            value: "x".repeat(size),
            doc: b"doc-raw".to_vec(),
        }
    }

    /// `n` inserts, `batch` per transaction (1: autocommit; more: `BEGIN`, the inserts and
    /// `COMMIT` pipelined): (rows, seconds).
    async fn run(&self, n: usize, batch: usize) -> (usize, f64) {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.doc, &self.value];
        let started = Instant::now();
        if batch == 1 {
            for _ in 0..n {
                self.client
                    .execute(&self.insert, &params)
                    .await
                    .expect("insert");
            }
        } else {
            for _ in 0..n / batch {
                let mut futures: Vec<Pending<'_, u64>> = Vec::new();
                futures.push(Box::pin(self.client.execute(&self.begin, &[])));
                for _ in 0..batch {
                    futures.push(Box::pin(self.client.execute(&self.insert, &params)));
                }
                futures.push(Box::pin(self.client.execute(&self.commit, &[])));
                for r in join_in_order(futures).await {
                    r.expect("batch");
                }
            }
        }
        (n / batch * batch, started.elapsed().as_secs_f64())
    }
}

/// The floor: the rows a decision's `commit` writes (the stream's length, the append, the
/// index row, the reviewer rows that went and came, the notifications), written by hand
/// into the store's own tables with plain statements pipelined between `BEGIN` and
/// `COMMIT`: no expected-version check, no lock beyond what the updates take, no function.
/// What the layout costs before the store does anything of its own.
struct Floor {
    client: Client,
    begin: tokio_postgres::Statement,
    commit: tokio_postgres::Statement,
    length: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
    index: tokio_postgres::Statement,
    gone: tokio_postgres::Statement,
    came: tokio_postgres::Statement,
    outbox: tokio_postgres::Statement,
}

/// The least any layout with a current-state row can write for a decision in one transaction:
/// the append (records) and one updated row of the document's state (length, state,
/// reviewers, due date; no secondary index, so the update is HOT), in two tables of their own
/// copied from the store's documents `TAG-...`. No pending-list index and no outbox: a bound
/// below what the requirements allow.
struct Lean {
    client: Client,
    begin: tokio_postgres::Statement,
    commit: tokio_postgres::Statement,
    state: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
}

impl Lean {
    async fn new(url: &str, schema: &str, tag: &str) -> Lean {
        let client = connect(url).await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.lean_docs (doc bytea PRIMARY KEY, len bigint NOT NULL, \
                   state bytea NOT NULL, reviewers bytea[] NOT NULL, due_at bigint);
                 CREATE TABLE {schema}.lean_appends (doc bytea NOT NULL, first bigint NOT NULL, \
                   count integer NOT NULL, records text NOT NULL, PRIMARY KEY (doc, first));
                 INSERT INTO {schema}.lean_docs
                   SELECT s.doc, s.len, i.state, i.reviewers, i.due_at
                   FROM {schema}.streams s JOIN {schema}.index_rows i USING (doc)
                   WHERE s.doc LIKE convert_to('{tag}-%', 'UTF8');
                 INSERT INTO {schema}.lean_appends
                   SELECT doc, first, count, records FROM {schema}.appends
                   WHERE doc LIKE convert_to('{tag}-%', 'UTF8');
                 ANALYZE {schema}.lean_docs; ANALYZE {schema}.lean_appends;"
            ))
            .await
            .expect("the lean floor's tables");
        let prepare = |sql: String| {
            let client = &client;
            async move { client.prepare(&sql).await.expect("prepare") }
        };
        Lean {
            begin: prepare("BEGIN".into()).await,
            commit: prepare("COMMIT".into()).await,
            state: prepare(format!(
                "UPDATE {schema}.lean_docs SET len = $2, state = $3, reviewers = $4, \
                 due_at = $5 WHERE doc = $1"
            ))
            .await,
            append: prepare(format!(
                "INSERT INTO {schema}.lean_appends (doc, first, count, records) \
                 VALUES ($1, $2, $3, $4)"
            ))
            .await,
            client,
        }
    }

    /// Every decision of every document, document by document, one transaction each:
    /// (decisions, seconds).
    async fn run(&self, wf: &Workflow, docs: Vec<(String, DocState)>) -> (usize, f64) {
        let started = Instant::now();
        let mut n = 0;
        for (id, mut state) in docs {
            for who in DECIDERS {
                let d = state.decide(wf, &cmd(who, approve()), T0).expect("approve");
                let entry = IndexEntry::of(&d.state, wf);
                let doc = id.as_bytes().to_vec();
                let (len, first) = (d.state.seq as i64, state.seq as i64);
                let count = d.records.len() as i32;
                let records = serde_json::to_string(&d.records).expect("json");
                let st = entry.state.into_bytes();
                let reviewers: Vec<Vec<u8>> = entry
                    .pending_reviewers
                    .iter()
                    .map(|r| r.as_bytes().to_vec())
                    .collect();
                let due = entry.due_at.map(|t| t.0);
                let c = &self.client;
                let state_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                    [&doc, &len, &st, &reviewers, &due];
                let append_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&doc, &first, &count, &records];
                let futures: Vec<Pending<'_, u64>> = vec![
                    Box::pin(c.execute(&self.begin, &[])),
                    Box::pin(c.execute(&self.state, &state_params)),
                    Box::pin(c.execute(&self.append, &append_params)),
                    Box::pin(c.execute(&self.commit, &[])),
                ];
                for r in join_in_order(futures).await {
                    r.expect("the lean floor's transaction");
                }
                state = d.state;
                n += 1;
            }
        }
        (n, started.elapsed().as_secs_f64())
    }
}

/// One decision's rows, as the floor writes them.
struct FloorOp {
    doc: Vec<u8>,
    len: i64,
    first: i64,
    count: i32,
    records: String,
    state: Vec<u8>,
    reviewers: Vec<Vec<u8>>,
    due: Option<i64>,
    gone: Vec<Vec<u8>>,
    came: Vec<Vec<u8>>,
    items: Vec<String>,
}

impl Floor {
    async fn new(url: &str, schema: &str) -> Floor {
        let client = connect(url).await;
        let prepare = |sql: String| {
            let client = &client;
            async move { client.prepare(&sql).await.expect("prepare") }
        };
        Floor {
            begin: prepare("BEGIN".into()).await,
            commit: prepare("COMMIT".into()).await,
            length: prepare(format!("UPDATE {schema}.streams SET len = $2 WHERE doc = $1")).await,
            append: prepare(format!(
                "INSERT INTO {schema}.appends (doc, first, count, records) VALUES ($1, $2, $3, $4)"
            ))
            .await,
            index: prepare(format!(
                "UPDATE {schema}.index_rows SET state = $2, reviewers = $3, due_at = $4 WHERE doc = $1"
            ))
            .await,
            gone: prepare(format!(
                "DELETE FROM {schema}.index_reviewers WHERE doc = $1 AND reviewer = ANY ($2)"
            ))
            .await,
            came: prepare(format!(
                "INSERT INTO {schema}.index_reviewers (reviewer, doc) SELECT unnest($2::bytea[]), $1"
            ))
            .await,
            outbox: prepare(format!(
                "INSERT INTO {schema}.outbox (item) SELECT unnest($1::text[])"
            ))
            .await,
            client,
        }
    }

    /// Every decision of every document (`decide`, notifications and JSON as for the
    /// engine), `batch` decisions per transaction: (decisions, seconds).
    async fn run(
        &self,
        wf: &Workflow,
        mut docs: Vec<(String, DocState)>,
        batch: usize,
    ) -> (usize, f64) {
        let started = Instant::now();
        let mut n = 0;
        let mut ops = Vec::new();
        // One decision at a time: document by document, as `decide_timed` goes. Several per
        // transaction: round by round over all the documents, so that a transaction's
        // decisions are on different documents, as a group commit's of many callers are.
        let order: Vec<(usize, &str)> = if batch == 1 {
            (0..docs.len())
                .flat_map(|d| DECIDERS.map(|who| (d, who)))
                .collect()
        } else {
            DECIDERS
                .iter()
                .flat_map(|who| (0..docs.len()).map(move |d| (d, *who)))
                .collect()
        };
        for (d, who) in order {
            let (id, state) = &mut docs[d];
            let d = state.decide(wf, &cmd(who, approve()), T0).expect("approve");
            let before = IndexEntry::of(state, wf).pending_reviewers;
            let after = IndexEntry::of(&d.state, wf);
            let items = d
                .records
                .iter()
                .flat_map(|r| signoff_core::notify::notifications(&d.state, r))
                .map(|n| serde_json::to_string(&n).expect("json"))
                .collect();
            ops.push(FloorOp {
                doc: id.as_bytes().to_vec(),
                len: d.state.seq as i64,
                first: state.seq as i64,
                count: d.records.len() as i32,
                records: serde_json::to_string(&d.records).expect("json"),
                state: after.state.into_bytes(),
                gone: before
                    .iter()
                    .filter(|r| !after.pending_reviewers.contains(r))
                    .map(|r| r.as_bytes().to_vec())
                    .collect(),
                came: after
                    .pending_reviewers
                    .iter()
                    .filter(|r| !before.contains(r))
                    .map(|r| r.as_bytes().to_vec())
                    .collect(),
                reviewers: after
                    .pending_reviewers
                    .iter()
                    .map(|r| r.as_bytes().to_vec())
                    .collect(),
                due: after.due_at.map(|t| t.0),
                items,
            });
            *state = d.state;
            n += 1;
            if ops.len() == batch {
                self.write(&ops).await;
                ops.clear();
            }
        }
        if !ops.is_empty() {
            self.write(&ops).await;
        }
        (n, started.elapsed().as_secs_f64())
    }

    async fn write(&self, ops: &[FloorOp]) {
        let c = &self.client;
        // Each future owns its parameter list and sends its statement when first polled.
        let mut futures: Vec<Pending<'_, u64>> = vec![Box::pin(c.execute(&self.begin, &[]))];
        for op in ops {
            futures.push(Box::pin(async move {
                c.execute(&self.length, &[&op.doc, &op.len]).await
            }));
            futures.push(Box::pin(async move {
                c.execute(&self.append, &[&op.doc, &op.first, &op.count, &op.records])
                    .await
            }));
            futures.push(Box::pin(async move {
                c.execute(&self.index, &[&op.doc, &op.state, &op.reviewers, &op.due])
                    .await
            }));
            if !op.gone.is_empty() {
                futures.push(Box::pin(async move {
                    c.execute(&self.gone, &[&op.doc, &op.gone]).await
                }));
            }
            if !op.came.is_empty() {
                futures.push(Box::pin(async move {
                    c.execute(&self.came, &[&op.doc, &op.came]).await
                }));
            }
            if !op.items.is_empty() {
                futures.push(Box::pin(async move {
                    c.execute(&self.outbox, &[&op.items]).await
                }));
            }
        }
        futures.push(Box::pin(c.execute(&self.commit, &[])));
        for r in join_in_order(futures).await {
            r.expect("the floor's transaction");
        }
    }
}

/// `n` raw inserts on a new connection, `batch` per transaction: rows/s.
async fn raw_inserts(url: &str, schema: &str, n: usize, batch: usize, size: usize) -> f64 {
    let (rows, secs) = Raw::new(url, schema, size).await.run(n, batch).await;
    rows as f64 / secs
}

/// A boxed future of a pipeline.
type Pending<'a, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>,
>;

/// Polls the futures in order until all are done (a pipeline: each sends when first polled).
async fn join_in_order<'a, T>(
    mut futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>>,
) -> Vec<T> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// `procs` copies of this program, each doing `n` single durable operations of `role`
/// (`raw` inserts or `engine` decisions with `commit`) once all are ready: total ops/s.
fn processes(
    rt: &tokio::runtime::Runtime,
    url: &str,
    schema: &str,
    role: &str,
    procs: usize,
    n: usize,
) -> f64 {
    let mut children: Vec<_> = (0..procs)
        .map(|i| {
            Process::new(std::env::current_exe().expect("this program"))
                .env(CHILD, format!("{role}:{n}:{schema}:p{procs}-{i}"))
                .env("SIGNOFF_PG_URL", url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("a child")
        })
        .collect();
    let mut outs: Vec<_> = children
        .iter_mut()
        .map(|c| std::io::BufReader::new(c.stdout.take().expect("stdout")).lines())
        .collect();
    for out in &mut outs {
        let line = out.next().expect("ready").expect("ready");
        assert_eq!(line, "ready");
    }
    rt.block_on(async { checkpoint(&connect(url).await).await });
    let started = Instant::now();
    for c in &mut children {
        let mut stdin = c.stdin.take().expect("stdin");
        writeln!(stdin, "go").expect("go");
    }
    for c in &mut children {
        assert!(c.wait().expect("child").success());
    }
    (n * procs) as f64 / started.elapsed().as_secs_f64()
}

async fn child(url: &str, role: &str) {
    let mut parts = role.splitn(4, ':');
    let (kind, n, schema, tag) = (
        parts.next().unwrap_or(""),
        parts
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let wf = workflow();
    let size = bytes_per_decision(&wf);
    let go = || {
        println!("ready");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    };
    match kind {
        "raw" => {
            // Warm the connection and table, then wait.
            raw_inserts(url, schema, 1, 1, size).await;
            go();
            raw_inserts(url, schema, n, 1, size).await;
        }
        _ => {
            let docs = setup(url, schema, &wf, n.div_ceil(6), tag).await;
            let store = open(url, schema, GroupCommit::Off).await;
            go();
            decide_all(&store, &wf, docs, true).await;
        }
    }
}

/// 100,000 index rows (two reviewers each among 1,000 users, and `u-bench` on 300 of them),
/// loaded with SQL into the store's tables, then 200 reads of `u-bench`'s pending list.
async fn pending_read(url: &str, schema: &str) -> (usize, f64, f64) {
    let store = open(url, schema, GroupCommit::Off).await;
    let admin = connect(url).await;
    admin
        .batch_execute(&format!(
            "INSERT INTO {schema}.index_rows (doc, state, reviewers, due_at)
               SELECT convert_to('p-' || lpad(i::text, 6, '0'), 'UTF8'), convert_to('review', 'UTF8'),
                      ARRAY[convert_to('u' || (i % 1000), 'UTF8'), convert_to('u' || ((i * 7) % 1000), 'UTF8')],
                      1767225600 + i
               FROM generate_series(1, 100000) AS i;
             INSERT INTO {schema}.index_reviewers (reviewer, doc)
               SELECT DISTINCT unnest(reviewers), doc FROM {schema}.index_rows WHERE doc >= convert_to('p-', 'UTF8')
               ON CONFLICT DO NOTHING;
             INSERT INTO {schema}.index_reviewers (reviewer, doc)
               SELECT convert_to('u-bench', 'UTF8'), convert_to('p-' || lpad((i * 333)::text, 6, '0'), 'UTF8')
               FROM generate_series(1, 300) AS i;
             ANALYZE {schema}.index_rows; ANALYZE {schema}.index_reviewers;"
        ))
        .await
        .expect("load 100,000 documents");
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..200 {
        let started = Instant::now();
        found = store.by_reviewer("u-bench").await.expect("read").len();
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        found,
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

/// Flushes everything written so far (the set-up's unsynced commits) before a measurement.
/// Needs a superuser (a throwaway server's user is one); otherwise the measurement goes on
/// without it.
async fn checkpoint(client: &Client) {
    let _ = client.batch_execute("CHECKPOINT").await;
}

fn mean_batch(before: signoff_storage::WriterStats, after: signoff_storage::WriterStats) -> f64 {
    (after.operations - before.operations) as f64 / (after.commits - before.commits).max(1) as f64
}

/// The server's WAL position, in bytes.
async fn lsn(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
            &[],
        )
        .await
        .expect("the WAL position")
        .get(0)
}

/// Adds the WAL written since `at` to `total`; returns the position now.
async fn wal_since(client: &Client, at: i64, total: &mut i64) -> i64 {
    let now = lsn(client).await;
    *total += now - at;
    now
}

/// Whether `BENCH_ONLY` (`single`, `group`, `processes` or `pending`) leaves this part in.
fn part(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only == name)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
