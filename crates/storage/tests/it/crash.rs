//! Crash safety: a child process writes approvals and is killed with SIGKILL at random
//! points; after each kill the store reopens, every acknowledged append is there, no partial
//! record is visible and every audit chain verifies. Then the same with IO errors injected
//! under redb (sled has no storage seam to inject them).
//!
//! The child is this test binary, re-run with `SIGNOFF_CRASH_CHILD` set (the `child_writer`
//! test does nothing otherwise). `SIGNOFF_CRASH_ITERATIONS=N` sets the number of kills per
//! adapter (default 6, for CI); `SIGNOFF_CRASH_SEED` the seed (printed on failure).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use signoff_core::notify::notifications;
use signoff_core::store::IndexEntry;
use signoff_core::{DocState, audit};

use signoff_storage::{
    Durability, EventStore, GroupCommit, LocalStore, RedbStore, SledStore, StoreConfig,
};

use crate::support::*;

pub(crate) const CHILD: &str = "SIGNOFF_CRASH_CHILD";
const DIR: &str = "SIGNOFF_CRASH_DIR";
pub(crate) const PREFIX: &str = "SIGNOFF_CRASH_PREFIX";
const GROUP: &str = "SIGNOFF_CRASH_GROUP";
/// Set for a redb child that writes a checkpoint of its heads every few appends.
const CHECKPOINTS: &str = "SIGNOFF_CRASH_CHECKPOINTS";

/// A small deterministic generator (splitmix64): every random choice comes from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn iterations() -> u64 {
    std::env::var("SIGNOFF_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn seed() -> u64 {
    std::env::var("SIGNOFF_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
}

pub(crate) fn config(group: bool) -> StoreConfig {
    StoreConfig {
        durability: Durability::Immediate,
        group_commit: if group {
            GroupCommit::UpTo(8)
        } else {
            GroupCommit::Off
        },
    }
}

/// The child: four tasks, each creating, submitting and approving documents under the basic
/// workflow, one durable commit per command (records, index row and notifications together),
/// printing `ack DOC LEN` after each acknowledged commit. It runs until it is killed.
#[test]
fn child_writer() {
    let Ok(adapter) = std::env::var(CHILD) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR).unwrap());
    let prefix = std::env::var(PREFIX).unwrap();
    let group = std::env::var(GROUP).is_ok();
    let checkpoints = std::env::var(CHECKPOINTS).is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let store: Arc<dyn LocalStore> = match adapter.as_str() {
            "redb" => {
                let store = RedbStore::create(dir.join("store.redb"), config(group)).unwrap();
                if checkpoints {
                    store.set_checkpoint_limits(3, 5);
                }
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            "postgres" => Arc::new(pg_open(&pg_schema(&dir), config(group))),
            _ => Arc::new(SledStore::create(dir.join("store.sled"), config(group)).unwrap()),
        };
        let mut tasks = Vec::new();
        for task in 0..4 {
            let store = store.clone();
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let doc = format!("{prefix}-{task}-{n}");
                    let (wf, steps, _) = basic_life(&doc);
                    let mut state: Option<DocState> = None;
                    let mut len = 0;
                    for step in steps {
                        let mut s = state
                            .take()
                            .unwrap_or_else(|| DocState::replay(&wf, &step).unwrap());
                        if len > 0 {
                            for r in &step {
                                s.apply(&wf, r);
                            }
                        }
                        let notes: Vec<_> =
                            step.iter().flat_map(|r| notifications(&s, r)).collect();
                        let entry = IndexEntry::of(&s, &wf);
                        len = store
                            .commit(&doc, len, &step, Some(entry), &notes)
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {doc} {len}").unwrap();
                        out.flush().unwrap();
                        state = Some(s);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Checks a store after a crash: every acknowledged length is there, every stream is a whole
/// number of commits, verifies and replays, and (when the index rows were written in the same
/// commits, with `index_atomic`) the index agrees with the stream.
pub(crate) async fn check_after_crash(
    store: &dyn LocalStore,
    acked: &BTreeMap<String, u64>,
    index_atomic: bool,
    context: &str,
) {
    let (wf, steps, _) = basic_life("x");
    let whole: Vec<u64> = steps
        .iter()
        .scan(0, |n, s| {
            *n += s.len() as u64;
            Some(*n)
        })
        .collect();
    let docs: BTreeMap<String, u64> = store.documents().await.unwrap().into_iter().collect();
    for (doc, len) in acked {
        let have = docs.get(doc).copied().unwrap_or(0);
        assert!(
            have >= *len,
            "{context}: {doc} was acknowledged at {len} but has {have}"
        );
    }
    for (doc, len) in &docs {
        let records = store.read(doc, 0).await.unwrap();
        assert_eq!(records.len() as u64, *len, "{context}: {doc}");
        assert!(
            whole.contains(len),
            "{context}: {doc} holds a partial commit ({len} records)"
        );
        audit::verify(&records).unwrap_or_else(|e| panic!("{context}: {doc}: {e}"));
        let state = DocState::replay(&wf, &records).unwrap();
        if index_atomic {
            let entry = IndexEntry::of(&state, &wf);
            let in_state = store.by_state(&entry.state).await.unwrap();
            assert!(in_state.contains(doc), "{context}: index of {doc}");
        }
    }
}

fn crash_loop(adapter: &str) {
    let seed = seed();
    let mut rng = Rng(seed ^ adapter.len() as u64);
    let dir = TempDir::new(&format!("crash-{adapter}"));
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_acks = 0u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..iterations() {
        let group = i % 2 == 1;
        // redb: kills 2 and 3 of every 4 hit a writer that checkpoints its heads every few
        // appends; the others one that keeps them in the log's tail (the store's defaults
        // checkpoint after 512 documents or 4,096 appends, more than a child writes).
        let checkpoints = i % 4 >= 2;
        let mut envs = vec![(PREFIX, format!("i{i}"))];
        if group {
            envs.push((GROUP, "1".into()));
        }
        if checkpoints {
            envs.push((CHECKPOINTS, "1".into()));
        }
        #[cfg(feature = "postgres")]
        if adapter == "postgres" {
            envs.push(("SIGNOFF_PG_URL", pg_url()));
        }
        let (mut child, rx, reader) = spawn_writer(adapter, dir.path(), &envs);
        // One kill in four hits startup (opening, creating, recovering the store); the others
        // come at a random point after the first acknowledged commit, however slow the
        // machine is today.
        let mut lines = Vec::new();
        if rng.below(4) != 0 {
            loop {
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(line) => {
                        let ack = line.starts_with("ack ");
                        lines.push(line);
                        if ack {
                            break;
                        }
                    }
                    Err(e) => panic!("{adapter}: the child acknowledged nothing in a minute: {e}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        total_acks += count_acks(&lines, &mut acked);
        let context = format!("{adapter} kill {i} (SIGNOFF_CRASH_SEED={seed})");
        rt.block_on(async {
            let store: Option<Box<dyn LocalStore>> = match adapter {
                "redb" => {
                    open_retrying(|| RedbStore::open(dir.path().join("store.redb"), config(false)))
                        .map(|s| Box::new(s) as Box<dyn LocalStore>)
                }
                #[cfg(feature = "postgres")]
                "postgres" => Some(Box::new(pg_open(&pg_schema(dir.path()), config(false)))),
                _ => {
                    open_retrying(|| SledStore::open(dir.path().join("store.sled"), config(false)))
                        .map(|s| Box::new(s) as Box<dyn LocalStore>)
                }
            };
            match store {
                Some(store) => check_after_crash(store.as_ref(), &acked, true, &context).await,
                // Killed before the store was created: nothing can have been acknowledged.
                None => assert!(acked.is_empty(), "{context}: the store is gone"),
            }
        });
    }
    assert!(
        total_acks > 0,
        "{adapter}: the child never acknowledged anything"
    );
}

#[test]
fn redb_survives_sigkill() {
    crash_loop("redb");
}

#[test]
fn sled_survives_sigkill() {
    crash_loop("sled");
}

/// The client process is killed mid-transaction; the server stays up.
#[cfg(feature = "postgres")]
#[test]
fn postgres_client_survives_sigkill() {
    crash_loop("postgres");
}

/// Starts this test binary as a `child_writer` for `adapter` in `dir`, with `envs` (at least
/// the prefix of its document ids). Returns the child, its stdout lines as they come (read
/// on a thread of their own) and that thread.
pub(crate) fn spawn_writer(
    adapter: &str,
    dir: &std::path::Path,
    envs: &[(&str, String)],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::child_writer",
            "--test-threads",
            "1",
            "-q",
        ])
        .env(CHILD, adapter)
        .env(DIR, dir)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx, reader)
}

/// Folds a child's `ack DOC LEN` lines into `acked` (the longest length per document);
/// returns how many there were.
pub(crate) fn count_acks(lines: &[String], acked: &mut BTreeMap<String, u64>) -> u64 {
    let mut n = 0;
    for line in lines {
        let mut parts = line.split(' ');
        if parts.next() != Some("ack") {
            continue;
        }
        let (Some(doc), Some(len)) = (parts.next(), parts.next()) else {
            // The last line may have been cut by the kill: it was not acknowledged.
            continue;
        };
        let Ok(len) = len.parse::<u64>() else {
            continue;
        };
        n += 1;
        let e = acked.entry(doc.to_owned()).or_default();
        *e = (*e).max(len);
    }
    n
}

/// Which calls of a [`Failing`] backend spend its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every write, `set_len` and sync.
    Any,
    /// Writes only: the first failing call is a page write.
    Write,
    /// Syncs only: every write succeeds, the `fsync` that should make them durable fails.
    Sync,
}

/// A redb storage backend that fails the calls of its `fault` kind once its budget is spent
/// (and every one of them after that).
#[derive(Debug)]
pub(crate) struct Failing {
    pub inner: redb::backends::FileBackend,
    pub fault: Fault,
    pub budget: Arc<AtomicI64>,
}

impl Failing {
    fn spend(&self, kind: Fault) -> std::io::Result<()> {
        if self.fault != Fault::Any && self.fault != kind {
            return Ok(());
        }
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(std::io::Error::other(format!(
                "injected IO error ({kind:?})"
            )));
        }
        Ok(())
    }
}

impl redb::StorageBackend for Failing {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.spend(Fault::Write)?;
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
        self.spend(Fault::Sync)?;
        self.inner.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.spend(Fault::Write)?;
        self.inner.write(offset, data)
    }
}

/// Creates, submits and approves documents through `commit` (records, index row and
/// notifications in one commit, as the CLI does) until a commit fails; records every
/// acknowledged length in `acked`. Returns the error and the document it hit.
async fn commit_until_error(
    store: &RedbStore,
    acked: &mut BTreeMap<String, u64>,
) -> (String, u64, signoff_core::store::StoreError) {
    for n in 0..10_000 {
        let doc = format!("d{n}");
        let (wf, steps, _) = basic_life(&doc);
        let mut records = Vec::new();
        let mut len = 0;
        for step in &steps {
            records.extend(step.iter().cloned());
            let state = DocState::replay(&wf, &records).unwrap();
            let notes: Vec<_> = step.iter().flat_map(|r| notifications(&state, r)).collect();
            let entry = IndexEntry::of(&state, &wf);
            match store.commit(&doc, len, step, Some(entry), &notes).await {
                Ok(l) => {
                    len = l;
                    acked.insert(doc.clone(), l);
                }
                Err(e) => return (doc, len, e),
            }
        }
    }
    panic!("no IO error after 10,000 documents");
}

/// Appends under a backend that fails at a chosen point: the N-th write (or `set_len`), the
/// N-th sync, or the N-th IO call of any kind (N from the seed). The commit that meets the
/// error reports it (it is not acknowledged), the store refuses writes until reopened, and
/// after reopening on a healthy file every acknowledged commit is there, no partial commit
/// is visible, every chain verifies and the index agrees with the streams.
#[test]
fn redb_keeps_acknowledged_appends_through_io_errors() {
    let seed = seed();
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let faults = [Fault::Any, Fault::Write, Fault::Sync];
    for round in 0..iterations().max(6) {
        let fault = faults[round as usize % faults.len()];
        let group = round % 2 == 1;
        // Syncs are fewer than writes (one or two per commit): a smaller range reaches them.
        let point = match fault {
            Fault::Sync => rng.below(30),
            _ => rng.below(120),
        } as i64;
        let dir = TempDir::new("io");
        let path = dir.path().join("store.redb");
        let budget = Arc::new(AtomicI64::new(i64::MAX));
        let context = format!(
            "IO round {round}: {fault:?} call {point} fails, group commit {group} \
             (SIGNOFF_CRASH_SEED={seed})"
        );
        let mut acked = BTreeMap::new();
        rt.block_on(async {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            let backend = Failing {
                inner: redb::backends::FileBackend::new(file).unwrap(),
                fault,
                budget: budget.clone(),
            };
            let store = RedbStore::with_backend(backend, &path, config(group)).unwrap();
            // Rounds 3 to 5 of every 6 checkpoint the heads every few appends, so that
            // errors also hit checkpoints.
            if round % 6 >= 3 {
                store.set_checkpoint_limits(3, 5);
            }
            budget.store(point, Ordering::SeqCst);
            let (doc, at, error) = commit_until_error(&store, &mut acked).await;
            assert!(
                matches!(&error, signoff_core::store::StoreError::Backend(m) if m.contains("injected IO error")),
                "{context}: {doc} at {at}: {error:?}"
            );
            assert_eq!(
                acked.get(&doc).copied().unwrap_or(0),
                at,
                "{context}: the failed commit was acknowledged"
            );
            // Once an IO error was seen, redb refuses further writes until reopened.
            assert!(
                store.append("late", 0, &recs("late", 0, 1)).await.is_err(),
                "{context}"
            );
        });
        assert!(
            budget.load(Ordering::SeqCst) < 0,
            "{context}: no error was injected"
        );
        rt.block_on(async {
            let store = RedbStore::open(&path, config(false)).unwrap();
            check_after_crash(&store, &acked, true, &context).await;
            // And the reopened store takes writes again.
            let (_, steps, _) = basic_life("after");
            assert_eq!(
                store.append("after", 0, &steps[0]).await,
                Ok(steps[0].len() as u64),
                "{context}"
            );
        });
    }
}
