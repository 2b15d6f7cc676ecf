//! `PgStore` beyond the conformance suite: several OS processes deciding on the same
//! documents, the server stopped with `pg_ctl stop -m immediate` in the middle of a load,
//! servers that are down or refuse the login, several outbox workers, and the schema's
//! version. (Client processes killed mid-transaction: `crash::postgres_client_survives_sigkill`.)
//!
//! The children are this test binary, re-run with `SIGNOFF_PG_DECIDER` set (the
//! `child_decider` test does nothing otherwise). `SIGNOFF_PG_LONG=1` runs longer versions
//! (more documents and processes, more server crashes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signoff_core::event::Action;
use signoff_core::notify::notifications;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::{Command, DocState, Timestamp, Workflow, audit};
use signoff_storage::throwaway_pg::ThrowawayServer;
use signoff_storage::{
    DocumentIndex, EventStore, GroupCommit, LocalStore, Outbox, PG_SCHEMA_VERSION, PgError,
    StoreConfig,
};

use crate::crash::{check_after_crash, config, count_acks, spawn_writer};
use crate::support::*;

const DECIDER: &str = "SIGNOFF_PG_DECIDER";
const SCHEMA: &str = "SIGNOFF_PG_SCHEMA";
const DOCS: &str = "SIGNOFF_PG_DOCS";

/// Five peers who must all approve, then one of two QA reviewers: six decisions per
/// document, each of which several processes may race to make.
const WORKFLOW: &str = "
name: pg-two-stage
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

/// Who each decider process acts as: every reviewer is in two processes, so they race.
const DECIDERS: [&str; 4] = ["r1,r2,r3,q1", "r3,r4,r5", "r5,r1,q2", "r2,r4,q1"];

const T0: Timestamp = Timestamp(1_767_225_600);

fn long() -> bool {
    std::env::var_os("SIGNOFF_PG_LONG").is_some()
}

fn workflow() -> Workflow {
    Workflow::from_text(WORKFLOW, "pg.yaml").unwrap()
}

fn command(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

/// The child: decides on every document as each of its reviewers, in an order of its own,
/// re-reading the stream after each conflict; one commit (records, index row,
/// notifications) per decision. Prints `ack DOC LEN` per acknowledged commit, and at the
/// end `done ATTEMPTS ACKS CONFLICTS`.
#[test]
fn child_decider() {
    let Ok(who) = std::env::var(DECIDER) else {
        return;
    };
    let reviewers: Vec<&str> = who.split(',').collect();
    let schema = std::env::var(SCHEMA).unwrap();
    let docs: usize = std::env::var(DOCS).unwrap().parse().unwrap();
    let wf = workflow();
    let store = pg_open(&schema, StoreConfig::durable());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut attempts, mut acks, mut conflicts) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let offset = who.len();
    rt.block_on(async {
        for i in 0..docs {
            let doc = format!("doc-{}", (i + offset) % docs);
            loop {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "{who}: {doc} did not settle"
                );
                let records = store.read(&doc, 0).await.unwrap();
                let state = DocState::replay(&wf, &records).unwrap();
                if state.state_name(&wf) == "published" {
                    break;
                }
                let decided = reviewers.iter().find_map(|r| {
                    let c = command(
                        r,
                        Action::Approve {
                            version: 1,
                            signature: None,
                        },
                    );
                    state.decide(&wf, &c, T0).ok()
                });
                let Some(d) = decided else {
                    // None of ours may act yet (QA waits for the peers): let the others go on.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let notes: Vec<_> = d
                    .records
                    .iter()
                    .flat_map(|r| notifications(&d.state, r))
                    .collect();
                attempts += 1;
                match store
                    .commit(
                        &doc,
                        state.seq,
                        &d.records,
                        Some(IndexEntry::of(&d.state, &wf)),
                        &notes,
                    )
                    .await
                {
                    Ok(len) => {
                        acks += 1;
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {doc} {len}").unwrap();
                        out.flush().unwrap();
                    }
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("{who}: {e}"),
                }
            }
        }
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "done {attempts} {acks} {conflicts}").unwrap();
}

/// Several OS processes decide on the same documents at once: every decision is recorded
/// exactly once (acknowledged commits = decisions in the streams, six per document), every
/// chain verifies and replays to the final state, and every attempt was either acknowledged
/// or a typed conflict.
#[test]
fn processes_decide_on_the_same_documents() {
    let docs = if long() { 40 } else { 8 };
    let processes = if long() { 8 } else { 4 };
    let dir = TempDir::new("pg-deciders");
    let schema = pg_schema(dir.path());
    let wf = workflow();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = pg_open(&schema, StoreConfig::durable());
    rt.block_on(async {
        for i in 0..docs {
            let id = format!("doc-{i}");
            let c = DocState::create(&wf, &id, &command("alice", create_action()), T0).unwrap();
            let s = c
                .state
                .decide(&wf, &command("alice", Action::Submit), T0)
                .unwrap();
            let records = [c.records, s.records].concat();
            store
                .commit(&id, 0, &records, Some(IndexEntry::of(&s.state, &wf)), &[])
                .await
                .unwrap();
        }
    });
    let children: Vec<_> = (0..processes)
        .map(|i| {
            Process::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "postgres::child_decider",
                    "--test-threads",
                    "1",
                    "-q",
                ])
                .env(DECIDER, DECIDERS[i % DECIDERS.len()])
                .env(SCHEMA, &schema)
                .env(DOCS, docs.to_string())
                .env("SIGNOFF_PG_URL", pg_url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut attempts, mut acks, mut conflicts) = (0u64, 0u64, 0u64);
    let mut acked = BTreeMap::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "a decider failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
        count_acks(&lines, &mut acked);
        let done = lines
            .iter()
            .find_map(|l| l.strip_prefix("done "))
            .unwrap_or_else(|| panic!("a decider did not finish: {stdout}"));
        let n: Vec<u64> = done.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(n[0], n[1] + n[2], "attempts = acknowledged + conflicts");
        attempts += n[0];
        acks += n[1];
        conflicts += n[2];
    }
    assert_eq!(
        acks,
        docs as u64 * 6,
        "one acknowledged commit per decision"
    );
    assert_eq!(attempts, acks + conflicts);
    rt.block_on(async {
        let listed = store.documents().await.unwrap();
        assert_eq!(listed.len(), docs);
        for (doc, len) in listed {
            let records = store.read(&doc, 0).await.unwrap();
            assert_eq!(records.len() as u64, len);
            assert!(acked[&doc] <= len);
            audit::verify(&records).unwrap();
            let state = DocState::replay(&wf, &records).unwrap();
            assert_eq!(state.state_name(&wf), "published", "{doc}");
            // Every approval once: five peers and one QA reviewer.
            let approvers: Vec<&str> = records
                .iter()
                .filter_map(|r| match &r.event {
                    signoff_core::event::Event::Decided { reviewer, .. } => Some(reviewer.as_str()),
                    _ => None,
                })
                .collect();
            let distinct: BTreeSet<&str> = approvers.iter().copied().collect();
            assert_eq!(approvers.len(), 6, "{doc}: {approvers:?}");
            assert_eq!(distinct.len(), 6, "{doc}: {approvers:?}");
        }
        assert!(store.by_state("review").await.unwrap().is_empty());
        assert_eq!(store.by_state("published").await.unwrap().len(), docs);
    });
    // The conflicts are the contention: with four processes on eight documents there are
    // always some, and none of them wrote anything (checked above).
    assert!(
        conflicts > 0,
        "no conflicts among {processes} processes on {docs} documents"
    );
}

/// The server is stopped with `pg_ctl stop -m immediate` (every backend killed, no
/// checkpoint) while two processes commit, then started again: every acknowledged
/// decision is there, nothing half-written is visible, every chain verifies. This test
/// always runs a throwaway server of its own, whatever `SIGNOFF_PG_URL` says.
#[test]
fn server_crash_keeps_acknowledged_decisions() {
    let crashes = if long() { 5 } else { 2 };
    let server = ThrowawayServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("pg-server-crash");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut acked = BTreeMap::new();
    let mut total = 0;
    for crash in 0..crashes {
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let mut envs = vec![
                    (crate::crash::PREFIX, format!("c{crash}w{w}")),
                    ("SIGNOFF_PG_URL", server.url()),
                ];
                if w == 1 {
                    envs.push(("SIGNOFF_CRASH_GROUP", "1".into()));
                }
                spawn_writer("postgres", dir.path(), &envs)
            })
            .collect();
        // Let both acknowledge a few commits, then crash the server under them.
        let mut lines: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
        for (i, (_, rx, _)) in writers.iter().enumerate() {
            while lines[i].iter().filter(|l| l.starts_with("ack ")).count() < 5 {
                let line = rx
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("writer {i} acknowledged nothing: {e}"));
                lines[i].push(line);
            }
        }
        std::thread::sleep(Duration::from_millis(50 + 100 * crash as u64));
        server.stop_immediate().unwrap_or_else(|e| panic!("{e}"));
        for (i, (mut child, rx, reader)) in writers.into_iter().enumerate() {
            // They fail on the lost connection (or are killed here, whichever comes first).
            let _ = child.kill();
            child.wait().unwrap();
            reader.join().unwrap();
            lines[i].extend(rx.try_iter());
            total += count_acks(&lines[i], &mut acked);
        }
        server.restart().unwrap_or_else(|e| panic!("{e}"));
        let store = pg_try_open(&server.url(), &pg_schema(dir.path()), config(false))
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        let context = format!("server crash {crash}");
        rt.block_on(check_after_crash(&store, &acked, true, &context));
    }
    assert!(total >= 10 * crashes as u64);
}

/// A server that is down, one that accepts the connection and never answers, and one that
/// refuses the login: each a typed error naming the host and port, within the timeout.
#[test]
fn connection_failures_are_typed_and_name_the_server() {
    let store = StoreConfig::durable();
    let quick = |url: &str| {
        let started = Instant::now();
        let config = signoff_storage::PgConfig {
            store,
            connect_timeout: Duration::from_secs(1),
            ..signoff_storage::PgConfig::default()
        };
        let got = pg_connect_with(url, config).map(|_| ());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: no hang"
        );
        got.unwrap_err()
    };

    // Down: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = quick(&format!("postgres://signoff:pw@127.0.0.1:{port}/postgres"));
    assert!(
        matches!(&e, PgError::Unreachable { server, .. } if *server == format!("127.0.0.1:{port}")),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}: ")),
        "{e}"
    );
    assert!(!e.to_string().contains("pw"), "{e}");

    // Silent: accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let e = quick(&format!("postgres://signoff@127.0.0.1:{port}/postgres"));
    assert_eq!(
        e,
        PgError::Timeout {
            server: format!("127.0.0.1:{port}"),
            seconds: 1
        }
    );
    assert_eq!(
        e.to_string(),
        format!("PostgreSQL at 127.0.0.1:{port} did not answer within 1 s")
    );
    drop(silent);

    // Refused: a user that does not exist, then a database that does not exist.
    let url = pg_url();
    let e = quick(&with_login(&url, "no_such_user", None));
    let PgError::LoginRefused {
        server,
        user,
        detail,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(user, "no_such_user");
    assert!(
        e.to_string().starts_with(&format!(
            "PostgreSQL at {server} refused the login of \"no_such_user\""
        )),
        "{e}"
    );
    assert!(detail.contains("no_such_user"), "{detail}");
    let e = quick(&with_login(&url, "", Some("no_such_database")));
    assert!(
        matches!(&e, PgError::LoginRefused { database, .. } if database == "no_such_database"),
        "{e:?}"
    );

    // Not a URL, and a schema name that is not one.
    assert!(matches!(quick("postgres://[bad"), PgError::BadUrl { .. }));
    let e = pg_try_open(&url, "Robert'); DROP TABLE students;--", store).unwrap_err();
    assert!(matches!(e, PgError::BadSchema { .. }), "{e:?}");
}

/// `url` with another user (keeping the password) or database.
fn with_login(url: &str, user: &str, database: Option<&str>) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (login, place) = rest.split_once('@').unwrap_or(("", rest));
    let login = match (user, login.split_once(':')) {
        ("", _) => login.to_owned(),
        (u, Some((_, pw))) => format!("{u}:{pw}"),
        (u, None) => u.to_owned(),
    };
    let place = match database {
        Some(db) => {
            let host = place.split(['/', '?']).next().unwrap();
            format!("{host}/{db}")
        }
        None => place.to_owned(),
    };
    format!("{scheme}://{login}@{place}")
}

/// Four workers drain one outbox at once (each with its own pool, as separate processes
/// would): every notification is delivered exactly once. A claimed item that is not
/// acknowledged comes back when its lease runs out.
#[test]
fn outbox_workers_deliver_each_notification_once() {
    const ITEMS: u64 = 200;
    let dir = TempDir::new("pg-outbox");
    let schema = pg_schema(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let producer = pg_open(&schema, StoreConfig::durable());
    rt.block_on(async {
        let items: Vec<_> = (0..ITEMS).map(|i| note(&format!("d{i}"), i)).collect();
        producer.enqueue(&items).await.unwrap();
    });
    let workers: Vec<Arc<_>> = (0..4)
        .map(|_| Arc::new(pg_open(&schema, StoreConfig::durable())))
        .collect();
    let delivered = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in workers {
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = w.claim(7, Duration::from_secs(60)).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for (id, n) in batch {
                        got.push(n.seq);
                        w.ack(id).await.unwrap();
                    }
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let mut sorted = delivered.clone();
    sorted.sort();
    assert_eq!(sorted, (0..ITEMS).collect::<Vec<_>>(), "each exactly once");
    rt.block_on(async {
        assert!(producer.pending(10).await.unwrap().is_empty());
        // Leases: a claimed item is skipped until its lease ends, then handed out again.
        producer.enqueue(&[note("late", 1)]).await.unwrap();
        let first = producer
            .claim(10, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            producer
                .claim(10, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let again = producer.claim(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(again, first);
        producer.ack(again[0].0).await.unwrap();
        assert_eq!(
            producer.ack(again[0].0).await,
            Err(StoreError::UnknownOutboxItem(again[0].0))
        );

        // A worker's own acknowledgement counts only while it holds the lease; a failed
        // delivery is given back at once.
        producer
            .enqueue(&[note("held", 1), note("given back", 2)])
            .await
            .unwrap();
        let short = producer.claim(1, Duration::from_millis(200)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !producer.ack_claimed(short[0].0).await.unwrap(),
            "lease ran out"
        );
        let taken = producer.claim(1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(taken, short, "handed out again");
        assert!(producer.ack_claimed(taken[0].0).await.unwrap());
        assert!(!producer.ack_claimed(taken[0].0).await.unwrap(), "gone");
        let failed = producer.claim(1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(failed[0].1.doc, "given back");
        assert!(
            producer
                .claim(1, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty()
        );
        producer.release(failed[0].0).await.unwrap();
        assert_eq!(
            producer.claim(1, Duration::from_secs(60)).await.unwrap(),
            failed
        );
    });
}

/// `PgOpen::ReadOnly` and `PgOpen::Existing` open only a store that is there: a schema
/// without one is `PgError::NoStore` and stays as it was (not created); `PgOpen::Create`
/// makes it, and then the others open it.
#[test]
fn only_create_makes_a_store() {
    let dir = TempDir::new("pg-open");
    let schema = pg_schema(dir.path());
    let open = |mode: signoff_storage::PgOpen| {
        pg_connect_with(
            &pg_url(),
            signoff_storage::PgConfig {
                schema: schema.clone(),
                pool_size: 1,
                open: mode,
                ..signoff_storage::PgConfig::default()
            },
        )
    };
    let schemas = || {
        let url = pg_url();
        let name = schema.clone();
        on_a_thread_of_its_own(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get(0);
            drop(client);
            let _ = driver.await;
            n
        })
    };
    for mode in [
        signoff_storage::PgOpen::ReadOnly,
        signoff_storage::PgOpen::Existing,
    ] {
        let e = open(mode).unwrap_err();
        assert!(
            matches!(&e, PgError::NoStore { schema: s, .. } if *s == schema),
            "{mode:?}: {e:?}"
        );
        assert!(
            e.to_string().starts_with("no signoff store in the schema"),
            "{e}"
        );
    }
    assert_eq!(schemas(), 0, "nothing created");
    let store = open(signoff_storage::PgOpen::Create).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(store.append("d", 0, &recs("d", 0, 1)).await, Ok(1));
    });
    drop(store);
    for mode in [
        signoff_storage::PgOpen::ReadOnly,
        signoff_storage::PgOpen::Existing,
    ] {
        let store = open(mode).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        rt.block_on(async {
            assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 1));
        });
    }
}

/// The schema is created once when several processes' stores connect to a new one at the
/// same moment; a schema of a newer layout version is refused, naming the server.
#[test]
fn schema_is_created_once_and_versioned() {
    let dir = TempDir::new("pg-schema");
    let schema = pg_schema(dir.path());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            std::thread::spawn(move || pg_open(&schema, StoreConfig::durable()))
        })
        .collect();
    let stores: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(stores[0].append("d", 0, &recs("d", 0, 2)).await, Ok(2));
        assert_eq!(stores[3].read("d", 0).await.unwrap(), recs("d", 0, 2));
    });
    drop(stores);
    // A newer signoff's schema.
    let admin = pg_open(&schema, StoreConfig::durable());
    let server = admin.server().to_owned();
    drop(admin);
    set_version(&schema, PG_SCHEMA_VERSION + 1);
    let e = pg_try_open(&pg_url(), &schema, StoreConfig::durable()).unwrap_err();
    assert_eq!(
        e,
        PgError::NewerSchema {
            server,
            schema: schema.clone(),
            found: PG_SCHEMA_VERSION + 1,
            supported: PG_SCHEMA_VERSION
        }
    );
    set_version(&schema, PG_SCHEMA_VERSION);
    let store = pg_open(
        &schema,
        StoreConfig {
            group_commit: GroupCommit::UpTo(4),
            ..StoreConfig::durable()
        },
    );
    rt.block_on(async {
        assert_eq!(store.read("d", 0).await.unwrap().len(), 2);
    });
    drop(store);
    // An earlier signoff's schema (layout 1, without `signoff_commit_set`): migrated to 2 on
    // connect, its data kept, and group commits on distinct documents take the new path.
    assert_eq!(PG_SCHEMA_VERSION, 2);
    pg_sql(&format!(
        "DROP FUNCTION \"{schema}\".signoff_commit_set; \
         UPDATE \"{schema}\".meta SET value = 1 WHERE key = 'schema_version'"
    ));
    let store = Arc::new(pg_open(
        &schema,
        StoreConfig {
            group_commit: GroupCommit::UpTo(4),
            ..StoreConfig::durable()
        },
    ));
    assert_eq!(
        pg_sql(&format!(
            "SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'"
        )),
        Some("2".to_string())
    );
    assert_eq!(
        pg_sql(&format!(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = '{schema}' AND p.proname = 'signoff_commit_set'"
        )),
        Some("1".to_string())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 2));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let doc = format!("m{i}");
                    store.append(&doc, 0, &recs(&doc, 0, 1)).await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(1));
        }
        assert_eq!(store.read("m7", 0).await.unwrap(), recs("m7", 0, 1));
    });
}

/// Runs `sql` (simple query protocol, several statements allowed) as the test server's
/// user: the first column of the last row it returns, if any.
fn pg_sql(sql: &str) -> Option<String> {
    let url = pg_url();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let mut last = None;
            for m in client.simple_query(&sql).await.unwrap() {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
                    last = row.get(0).map(str::to_owned);
                }
            }
            drop(client);
            let _ = driver.await;
            last
        })
    })
    .join()
    .unwrap()
}

/// Sets the schema's recorded layout version behind the store's back.
fn set_version(schema: &str, version: i64) {
    pg_sql(&format!(
        "UPDATE \"{schema}\".meta SET value = {version} WHERE key = 'schema_version'"
    ));
}

/// Group commit with many callers at once: commits that carry index rows and
/// notifications (one statement per batch), commits that conflict (nothing of them
/// written), and batches mixed with plain upserts, enqueues and acks (pipelined in one
/// transaction). Everything lands as if the operations had run one by one.
#[test]
fn group_commit_keeps_each_operation_whole() {
    const DOCS: usize = 48;
    let dir = TempDir::new("pg-group");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let config = StoreConfig {
        group_commit: GroupCommit::UpTo(16),
        ..StoreConfig::durable()
    };
    let store = Arc::new(pg_open(&pg_schema(dir.path()), config));
    let user = |i: usize| format!("u{}", i % 3);
    rt.block_on(async {
        store
            .enqueue(&[note("old", 0), note("old", 1)])
            .await
            .unwrap();
        let old: Vec<u64> = store
            .pending(10)
            .await
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let mut tasks = Vec::new();
        for i in 0..DOCS {
            let store = store.clone();
            let (u1, u2) = (user(i), user(i + 1));
            let old = old.clone();
            tasks.push(tokio::spawn(async move {
                let doc = format!("g{i:02}");
                let entry = IndexEntry {
                    doc: doc.clone(),
                    state: if i % 2 == 0 {
                        "even".into()
                    } else {
                        "odd".into()
                    },
                    pending_reviewers: vec![u1, u2],
                    due_at: Some(Timestamp(i as i64)),
                };
                let notes = [note(&doc, 0), note(&doc, 1)];
                let len = store
                    .commit(&doc, 0, &recs(&doc, 0, 2), Some(entry.clone()), &notes)
                    .await
                    .unwrap();
                assert_eq!(len, 2);
                // A stale writer: refused, and nothing of it is stored.
                let stale = store
                    .commit(&doc, 1, &recs(&doc, 1, 1), Some(entry), &[note(&doc, 9)])
                    .await;
                assert_eq!(
                    stale,
                    Err(StoreError::Conflict {
                        doc: doc.clone(),
                        expected: 1,
                        actual: 2
                    })
                );
                match i % 4 {
                    0 => store
                        .upsert(IndexEntry {
                            doc: format!("plain{i}"),
                            state: "plain".into(),
                            pending_reviewers: vec!["p".into()],
                            due_at: None,
                        })
                        .await
                        .unwrap(),
                    1 => store
                        .enqueue(&[note(&format!("extra{i}"), 0)])
                        .await
                        .unwrap(),
                    2 if i < 8 => store.ack(old[i / 4]).await.unwrap(),
                    _ => store
                        .append(&doc, 2, &recs(&doc, 2, 1))
                        .await
                        .map(|_| ())
                        .unwrap(),
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for i in 0..DOCS {
            let doc = format!("g{i:02}");
            let want = if i % 4 == 3 || (i % 4 == 2 && i >= 8) {
                3
            } else {
                2
            };
            assert_eq!(store.read(&doc, 0).await.unwrap(), recs(&doc, 0, want));
        }
        for u in 0..3 {
            let want: Vec<String> = (0..DOCS)
                .filter(|i| user(*i) == format!("u{u}") || user(i + 1) == format!("u{u}"))
                .map(|i| format!("g{i:02}"))
                .collect();
            assert_eq!(store.by_reviewer(&format!("u{u}")).await.unwrap(), want);
        }
        assert_eq!(store.by_state("even").await.unwrap().len(), DOCS / 2);
        assert_eq!(store.by_reviewer("p").await.unwrap().len(), DOCS / 4);
        assert_eq!(
            store.due_before(Timestamp(9)).await.unwrap(),
            (0..10).map(|i| format!("g{i:02}")).collect::<Vec<_>>()
        );
        let pending = store.pending(1000).await.unwrap();
        // Two per commit, in order and side by side; the extra enqueues; no stale note.
        assert_eq!(pending.len(), 2 * DOCS + DOCS / 4);
        assert!(pending.iter().all(|(_, n)| n.seq != 9 && n.doc != "old"));
        for w in pending.windows(2) {
            assert!(w[0].0 < w[1].0);
            if w[0].1.doc == w[1].1.doc {
                assert_eq!((w[0].1.seq, w[1].1.seq), (0, 1));
            }
        }
    });
    let stats = store.writer_stats();
    assert!(
        stats.operations > stats.commits,
        "some batches held several operations: {stats:?}"
    );
}

/// A TCP proxy in front of the test server that can stop passing bytes on (a hung server or
/// a network that drops packets without closing the connection).
struct FreezingProxy {
    port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    fn start(target: std::net::SocketAddr) -> FreezingProxy {
        use std::io::Read;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            while flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => {
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                Ok(n) => {
                                    // Bytes read just as the freeze began are held too.
                                    while flag.load(Ordering::SeqCst) {
                                        std::thread::sleep(Duration::from_millis(10));
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy { port, frozen }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A server that stops answering in the middle of the work: each operation fails after
/// `operation_timeout`, naming the server, instead of hanging; once the server answers
/// again, the store works on new connections and nothing half-done is visible.
#[test]
fn a_server_that_stops_answering_fails_operations_in_bounded_time() {
    let dir = TempDir::new("pg-frozen");
    let schema = pg_schema(dir.path());
    let url = pg_url();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = FreezingProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let through = url.replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
    assert_ne!(through, url, "{url}");
    let config = signoff_storage::PgConfig {
        store: StoreConfig::durable(),
        schema,
        pool_size: 2,
        operation_timeout: Duration::from_secs(1),
        ..signoff_storage::PgConfig::default()
    };
    let store = pg_connect_with(&through, config).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(store.append("d", 0, &recs("d", 0, 2)).await, Ok(2));
        proxy.freeze(true);
        for attempt in ["a read", "a write"] {
            let started = Instant::now();
            let e = if attempt == "a read" {
                store.read("d", 0).await.map(|_| ()).unwrap_err()
            } else {
                store
                    .append("d", 2, &recs("d", 2, 1))
                    .await
                    .map(|_| ())
                    .unwrap_err()
            };
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "{attempt} took {took:?}");
            let text = e.to_string();
            assert!(
                text.contains(&format!(
                    "PostgreSQL at 127.0.0.1:{} did not answer within 1000 ms",
                    proxy.port
                )),
                "{attempt}: {text}"
            );
            assert!(
                !text.contains(signoff_storage::throwaway_pg::PASSWORD),
                "{text}"
            );
        }
        proxy.freeze(false);
        // The write that timed out was never acknowledged: it committed or it did not,
        // whole. The store answers again on fresh connections.
        let records = store.read("d", 0).await.unwrap();
        assert!(
            records.len() == 2 || records == recs("d", 0, 3),
            "{records:?}"
        );
        let at = records.len() as u64;
        assert_eq!(store.append("d", at, &recs("d", at, 1)).await, Ok(at + 1));
        assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, at + 1));
    });
}

/// Connects to `url` with a small pool, on a thread of its own.
fn connect_to(url: &str, schema: &str) -> Result<signoff_storage::PgStore, PgError> {
    let config = signoff_storage::PgConfig {
        schema: schema.to_owned(),
        pool_size: 2,
        ..signoff_storage::PgConfig::default()
    };
    pg_connect_with(url, config)
}

/// How many of the server's connections named `name` use TLS, and how many there are (asked
/// over a plain connection of its own).
fn tls_backends(url: &str, name: &str) -> (i64, i64) {
    let url = format!("{url}?sslmode=disable&application_name=observer");
    let name = name.to_owned();
    on_a_thread_of_its_own(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                &[&name],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        (row.get(0), row.get(1))
    })
}

/// A CA of our own, which signed nothing the server has.
fn other_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let out = Process::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other-ca.pem",
            "-days",
            "3",
            "-subj",
            "/CN=another CA",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("other-ca.pem")
}

/// `sslcert` and `sslkey` against a server that wants a client certificate signed by its CA
/// and naming the user (`clientcert=verify-full`): the store gets in with one and works, and
/// is refused without one or with a certificate of another CA; a key file readable by others,
/// an encrypted key and a certificate file that is not there are refused before any
/// connection, naming the file.
#[test]
fn tls_client_certificates() {
    let server = ThrowawayServer::start_mtls().unwrap_or_else(|e| panic!("{e}"));
    let base = server.url();
    let ca = server.ca_file().display().to_string();
    let (cert, key) = server.client_cert();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let dir = TempDir::new("pg-mtls");
    let schema = pg_schema(dir.path());
    let name = format!("127.0.0.1:{}", server.port());
    let full = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let store = connect_to(&format!("{full}&sslcert={cert}&sslkey={key}"), &schema)
        .unwrap_or_else(|e| panic!("with the client certificate: {e}"));
    rt.block_on(async {
        assert_eq!(store.append("d", 0, &recs("d", 0, 2)).await, Ok(2));
        assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 2));
    });
    drop(store);

    // Without a certificate, and with a self-signed one of another CA: the server says no.
    let e = connect_to(&full, &schema).unwrap_err();
    assert!(
        matches!(&e, PgError::LoginRefused { server, detail, .. } if *server == name
            && detail.contains("requires a valid client certificate")),
        "{e:?}"
    );
    let other = other_ca(dir.path()).display().to_string();
    let other_key = dir.path().join("other.key");
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = connect_to(
        &format!("{full}&sslcert={other}&sslkey={}", other_key.display()),
        &schema,
    )
    .unwrap_err();
    assert!(e.to_string().contains(&name), "{e}");
    assert!(e.to_string().contains("UnknownCA"), "{e}");
    assert!(
        !e.to_string()
            .contains(signoff_storage::throwaway_pg::PASSWORD),
        "{e}"
    );

    // Refused before connecting: a key others may read, an encrypted key, no such file.
    let with_key = |key: &std::path::Path| {
        connect_to(
            &format!("{full}&sslcert={cert}&sslkey={}", key.display()),
            &schema,
        )
        .unwrap_err()
    };
    let open = dir.path().join("open.key");
    std::fs::copy(&key, &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = with_key(&open);
    assert!(
        matches!(&e, PgError::Tls { detail, .. } if detail.contains("has group or world access")
            && detail.contains("open.key")),
        "{e:?}"
    );
    let locked = dir.path().join("locked.key");
    let out = Process::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-in",
            &key,
            "-passout",
            "pass:secret",
            "-out",
        ])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = with_key(&locked);
    assert!(
        matches!(&e, PgError::Tls { detail, .. } if detail.contains("is encrypted")),
        "{e:?}"
    );
    let e = connect_to(&format!("{full}&sslcert=/nonexistent/client.crt"), &schema).unwrap_err();
    assert!(
        matches!(&e, PgError::BadUrl { detail } if detail == "sslcert /nonexistent/client.crt: no such file"),
        "{e:?}"
    );
}

/// `sslmode` and `sslrootcert` as libpq reads them, against a server whose certificate names
/// 127.0.0.1 only: `verify-full` with its CA connects over TLS, and refuses the name
/// `localhost`, another CA, a file with no certificate and the system's CAs; `verify-ca`
/// accepts `localhost`; `require` encrypts without checking, but checks the chain when given
/// a root file; `disable` stays plain; `require` against a server without TLS is refused.
#[test]
fn tls_connections_follow_sslmode() {
    let server = ThrowawayServer::start_tls().unwrap_or_else(|e| panic!("{e}"));
    let base = server.url();
    let by_name = base.replace("@127.0.0.1:", "@localhost:");
    assert_ne!(by_name, base);
    let ca = server.ca_file().display().to_string();
    let dir = TempDir::new("pg-tls");
    let schema = pg_schema(dir.path());
    let other = other_ca(dir.path()).display().to_string();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let empty = empty.display().to_string();
    let name = format!("127.0.0.1:{}", server.port());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Connects and works, and every connection of the store is (or is not) encrypted.
    let works = |url: &str, app: &str, tls: bool| {
        let store = connect_to(&format!("{url}&application_name={app}"), &schema)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        rt.block_on(async {
            let n = store.read("d", 0).await.unwrap().len() as u64;
            if n == 0 {
                assert_eq!(store.append("d", 0, &recs("d", 0, 2)).await, Ok(2));
            }
            assert_eq!(store.read("d", 0).await.unwrap(), recs("d", 0, 2));
        });
        let (encrypted, all) = tls_backends(&base, app);
        assert!(all >= 1, "{url}: no connection named {app}");
        assert_eq!(
            encrypted,
            if tls { all } else { 0 },
            "{url}: {encrypted} of {all} use TLS"
        );
        drop(store);
    };
    // Refused with a TLS error naming the server (and never the password).
    let refused = |url: &str, server_name: &str, says: &str| {
        let e = connect_to(url, &schema).unwrap_err();
        assert!(
            matches!(&e, PgError::Tls { server, .. } if server == server_name),
            "{url}: {e:?}"
        );
        assert!(e.to_string().contains(says), "{url}: {e}");
        assert!(
            !e.to_string()
                .contains(signoff_storage::throwaway_pg::PASSWORD),
            "{e}"
        );
    };
    let localhost = format!("localhost:{}", server.port());

    works(
        &format!("{base}?sslmode=verify-full&sslrootcert={ca}"),
        "full",
        true,
    );
    refused(
        &format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
        &localhost,
        "not valid for name",
    );
    works(
        &format!("{by_name}?sslmode=verify-ca&sslrootcert={ca}"),
        "ca",
        true,
    );
    refused(
        &format!("{base}?sslmode=verify-full&sslrootcert={other}"),
        &name,
        "UnknownIssuer",
    );
    refused(
        &format!("{base}?sslmode=verify-full&sslrootcert={empty}"),
        &name,
        "no PEM certificate",
    );
    refused(
        &format!("{base}?sslrootcert=system"),
        &name,
        "UnknownIssuer",
    );
    works(&format!("{base}?sslmode=require"), "require", true);
    refused(
        &format!("{base}?sslmode=require&sslrootcert={other}"),
        &name,
        "UnknownIssuer",
    );
    works(&format!("{base}?sslmode=disable"), "plain", false);
    let e = connect_to(&format!("{base}?sslmode=sometimes"), &schema).unwrap_err();
    assert!(
        matches!(&e, PgError::BadUrl { detail } if detail.contains("verify-full")),
        "{e:?}"
    );

    // A server without TLS, where it is required.
    let plain = pg_url();
    let e = connect_to(&format!("{plain}?sslmode=require"), &schema).unwrap_err();
    assert!(matches!(&e, PgError::Tls { .. }), "{e:?}");
}
