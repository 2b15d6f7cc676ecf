//! Benchmark of the in-memory engine: decisions per second through decide (validate, hash
//! chaining, fold) and append, for a two-stage workflow with five peer reviewers and a QA
//! stage, and the time to replay a 10,000-record document; then the time to anchor and to
//! verify 100,000 records in 1,000 documents with a signed anchor, beside plain chain
//! verification of the same records.
//!
//! Run with `cargo run --release -p signoff-core --example bench`. Set `BENCH_DOCS` to
//! change the number of documents of the decision benchmark (default 20,000).

// The example is a small program: it owns stdout.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use signoff_core::event::Action;
use signoff_core::store::{EventStore, MemoryStore};
use signoff_core::{Command, DocState, Engine, FixedClock, Timestamp, Workflow, audit};

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

fn main() {
    let wf = Workflow::from_text(WORKFLOW, "bench.yaml").expect("the benchmark workflow is valid");
    let docs: usize = std::env::var("BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);

    // The machine may be shared: run each measurement a few times, report median and best.
    let rounds = 5;
    for (name, run) in [
        (
            "engine (in place, Vec append)",
            decisions_engine as fn(&Workflow, usize) -> (usize, Duration),
        ),
        ("EventStore (decide, append, adopt)", decisions_store),
    ] {
        let mut rates: Vec<f64> = (0..rounds)
            .map(|_| {
                let (decisions, elapsed) = run(&wf, docs);
                decisions as f64 / elapsed.as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "{name}: {} decisions per round, median {:.0} decisions/s, best {:.0} decisions/s ({rounds} rounds)",
            docs * DECIDERS.len(),
            rates[rounds / 2],
            rates[rounds - 1]
        );
    }

    let records = long_document(&wf, 10_000);
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let t = Instant::now();
            let state = DocState::replay(&wf, &records).expect("replay");
            std::hint::black_box(state);
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "replay of {} records: median {:.2} ms, best {:.2} ms, worst {:.2} ms (21 runs)",
        records.len(),
        times[10].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[20].as_secs_f64() * 1e3
    );
    let t = Instant::now();
    audit::verify(&records).expect("the chain verifies");
    println!(
        "verify of {} records (SHA-256 chain): {:.2} ms",
        records.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // `BENCH_ANCHORS=0` leaves the anchors out, so that an instruction count of the rest
    // (callgrind) compares with a build from before anchors existed.
    if std::env::var("BENCH_ANCHORS").as_deref() != Ok("0") {
        anchors(&wf);
    }
}

/// Signed anchors over 100,000 records in 1,000 documents: the time to anchor (hash lists,
/// digest, Ed25519 signature, the file's JSON) and to verify the store against the anchor
/// (parse the file, digest, signature, every record rehashed and compared), beside plain
/// chain verification of the same records.
fn anchors(wf: &Workflow) {
    use signoff_core::anchor::{Anchor, AnchoredDoc, SecretKey};
    const DOCS: usize = 1_000;
    const PER_DOC: usize = 100;
    let streams: Vec<(String, Vec<signoff_core::Record>)> = (0..DOCS)
        .map(|i| {
            let id = format!("doc-{i:04}");
            (id.clone(), document(wf, &id, PER_DOC))
        })
        .collect();
    let records = DOCS * PER_DOC;
    let key = SecretKey::from_bytes(&[7; 32]);
    let trusted = key.public_key();
    let at = Timestamp(1_767_225_600);
    let rounds = 5;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        (v[v.len() / 2], v[0])
    };
    let chain = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for (_, rs) in &streams {
                    audit::verify(rs).expect("the chain verifies");
                }
                t.elapsed()
            })
            .collect(),
    );
    let mut json = String::new();
    let anchor_time = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let docs = streams
                    .iter()
                    .map(|(id, rs)| AnchoredDoc::of(id, rs).expect("the chain verifies"))
                    .collect();
                let anchor = Anchor::sign(&key, at, docs).expect("sign");
                json = anchor.to_json();
                t.elapsed()
            })
            .collect(),
    );
    let verify_time = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let anchor = Anchor::parse(&json).expect("parse");
                let report = anchor
                    .verify(Some(&trusted))
                    .expect("the signature verifies")
                    .check(streams.iter().map(|(d, r)| (d.as_str(), r.as_slice())));
                assert!(report.is_ok());
                t.elapsed()
            })
            .collect(),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "anchors, {records} records in {DOCS} documents ({rounds} rounds, median / best):\n  \
         chain verification (baseline): {:.1} ms / {:.1} ms\n  \
         anchor (verify chains, hash lists, sign, JSON): {:.1} ms / {:.1} ms\n  \
         verify against the anchor (parse, signature, rehash and compare): {:.1} ms / {:.1} ms\n  \
         anchor file: {} bytes ({:.1} bytes per record)",
        ms(chain.0),
        ms(chain.1),
        ms(anchor_time.0),
        ms(anchor_time.1),
        ms(verify_time.0),
        ms(verify_time.1),
        json.len() + 1,
        (json.len() + 1) as f64 / records as f64
    );
}

/// A document `id` with `n` records: edit, submit and approve, over and over.
fn document(wf: &Workflow, id: &str, n: usize) -> Vec<signoff_core::Record> {
    let now = Timestamp(1_767_225_600);
    let mut d = DocState::create(wf, id, &cmd("alice", create()), now).expect("create");
    let mut records = std::mem::take(&mut d.records);
    let mut state = d.state;
    let run = |state: &mut DocState, records: &mut Vec<_>, c: Command| {
        let mut d = state.decide(wf, &c, now).expect("decide");
        records.append(&mut d.records);
        *state = d.state;
    };
    while records.len() < n {
        run(&mut state, &mut records, cmd("alice", Action::Submit));
        let version = state.version;
        for who in DECIDERS {
            run(&mut state, &mut records, cmd(who, approve(version)));
        }
        let hash = format!("h{}", state.version + 1);
        run(
            &mut state,
            &mut records,
            cmd(
                "alice",
                Action::Edit {
                    content_hash: hash,
                    changed: None,
                },
            ),
        );
    }
    records.truncate(n);
    records
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.to_owned(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

fn approve(version: u32) -> Action {
    Action::Approve {
        version,
        signature: None,
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

const DECIDERS: [&str; 6] = ["r1", "r2", "r3", "r4", "r5", "q1"];

/// Six decisions per document through the in-memory [`Engine`]. Documents are created and
/// submitted first, outside the timed part.
fn decisions_engine(wf: &Workflow, docs: usize) -> (usize, Duration) {
    let mut engine = Engine::new();
    let hash = engine.register(wf.clone()).hash().to_owned();
    let clock = FixedClock(Timestamp(1_767_225_600));
    let ids: Vec<String> = (0..docs).map(|i| format!("doc-{i}")).collect();
    for id in &ids {
        engine
            .create(id, &hash, &cmd("alice", create()), &clock)
            .expect("create");
        engine
            .execute(id, &cmd("alice", Action::Submit), &clock)
            .expect("submit");
    }
    let commands: Vec<Command> = DECIDERS.iter().map(|who| cmd(who, approve(1))).collect();
    let start = Instant::now();
    let mut decisions = 0;
    for id in &ids {
        for c in &commands {
            engine.execute(id, c, &clock).expect("approve");
            decisions += 1;
        }
    }
    (decisions, start.elapsed())
}

/// The same through the [`EventStore`] seam: decide, append with the expected version, adopt.
fn decisions_store(wf: &Workflow, docs: usize) -> (usize, Duration) {
    let store = MemoryStore::new();
    let now = Timestamp(1_767_225_600);
    let mut states = Vec::with_capacity(docs);
    for i in 0..docs {
        let id = format!("doc-{i}");
        let created = DocState::create(wf, &id, &cmd("alice", create()), now).expect("create");
        block_on(store.append(&id, 0, &created.records)).expect("append");
        let submitted = created
            .state
            .decide(wf, &cmd("alice", Action::Submit), now)
            .expect("submit");
        block_on(store.append(&id, 1, &submitted.records)).expect("append");
        states.push(submitted.state);
    }
    let commands: Vec<Command> = DECIDERS.iter().map(|who| cmd(who, approve(1))).collect();
    let start = Instant::now();
    let mut decisions = 0;
    for state in &mut states {
        for c in &commands {
            let d = state.decide(wf, c, now).expect("decide");
            block_on(store.append(&state.doc, state.seq, &d.records)).expect("append");
            *state = d.state;
            decisions += 1;
        }
    }
    (decisions, start.elapsed())
}

/// A document with `n` records: edit, submit and approve, over and over.
fn long_document(wf: &Workflow, n: usize) -> Vec<signoff_core::Record> {
    document(wf, "long", n)
}

/// Polls a future that never waits (the in-memory store) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
