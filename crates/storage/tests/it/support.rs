//! Shared test helpers: temporary directories, adapters under test, records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use signoff_core::event::{Action, Event};
use signoff_core::notify::{Notification, NotificationKind};
use signoff_core::{Command, DocState, Record, Timestamp, Workflow};
use signoff_storage::hosted::{HostedStore, MemoryKvs};
use signoff_storage::{MemoryStore, RedbStore, SledStore, Store, StoreConfig};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "signoff-storage-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An adapter under test: how to open it in a directory, and whether it persists.
pub trait Adapter: 'static {
    type S: Store + 'static;
    const NAME: &'static str;
    const PERSISTENT: bool;
    fn open(dir: &Path, config: StoreConfig) -> Self::S;
    /// Closes `store` and opens it again; the in-memory store keeps the same instance.
    fn reopen(store: Self::S, dir: &Path, config: StoreConfig) -> Self::S {
        if Self::PERSISTENT {
            drop(store);
            Self::open(dir, config)
        } else {
            store
        }
    }
}

#[derive(Debug)]
pub struct Memory;
#[derive(Debug)]
pub struct Redb;
/// [`RedbStore`] writing a checkpoint of its heads after every few appends (instead of
/// every 512 documents or 4,096 appends), so that small workloads cross many checkpoints.
#[derive(Debug)]
pub struct RedbCheckpoints;
#[derive(Debug)]
pub struct Sled;
/// [`HostedStore`] over a [`MemoryKvs`]; reopening starts a new store on the same data.
#[derive(Debug)]
pub struct Hosted;

impl Adapter for Memory {
    type S = MemoryStore;
    const NAME: &'static str = "memory";
    const PERSISTENT: bool = false;
    fn open(_: &Path, _: StoreConfig) -> MemoryStore {
        MemoryStore::new()
    }
}

impl Adapter for Redb {
    type S = RedbStore;
    const NAME: &'static str = "redb";
    const PERSISTENT: bool = true;
    fn open(dir: &Path, config: StoreConfig) -> RedbStore {
        RedbStore::create(dir.join("store.redb"), config).unwrap()
    }
}

impl Adapter for RedbCheckpoints {
    type S = RedbStore;
    const NAME: &'static str = "redb-checkpoints";
    const PERSISTENT: bool = true;
    fn open(dir: &Path, config: StoreConfig) -> RedbStore {
        let store = RedbStore::create(dir.join("store.redb"), config).unwrap();
        store.set_checkpoint_limits(2, 3);
        store
    }
}

impl Adapter for Sled {
    type S = SledStore;
    const NAME: &'static str = "sled";
    const PERSISTENT: bool = true;
    fn open(dir: &Path, config: StoreConfig) -> SledStore {
        SledStore::create(dir.join("store.sled"), config).unwrap()
    }
}

impl Adapter for Hosted {
    type S = HostedStore<MemoryKvs>;
    const NAME: &'static str = "hosted";
    const PERSISTENT: bool = false;
    fn open(_: &Path, _: StoreConfig) -> HostedStore<MemoryKvs> {
        HostedStore::new(MemoryKvs::new())
    }
    fn reopen(store: Self::S, _: &Path, _: StoreConfig) -> Self::S {
        // Everything lives in the key-value store: a new adapter over it sees it all.
        HostedStore::new(store.into_inner())
    }
}

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

pub fn create_action() -> Action {
    Action::Create {
        title: "Travel policy".into(),
        content_hash: "h1".into(),
        page_owner: None,
        space_admins: vec![],
    }
}

pub fn approve(version: u32) -> Action {
    Action::Approve {
        version,
        signature: None,
    }
}

/// The basic template from core: draft, one approval stage (bob or carol), approved.
pub fn basic() -> Workflow {
    let text = include_str!("../../../core/templates/basic.yaml");
    Workflow::from_text(text, "basic.yaml").unwrap()
}

/// A synthetic record of `doc` at `seq` (not hash-chained: the stores do not look at hashes).
pub fn rec(doc: &str, seq: u64) -> Record {
    Record {
        doc: doc.into(),
        seq,
        at: Timestamp(1_767_225_600 + (seq % 1_000_000) as i64),
        actor: "alice".into(),
        on_behalf_of: None,
        version: 1,
        content_hash: "h1".into(),
        from_state: "draft".into(),
        to_state: "draft".into(),
        comment: Some(format!("record {seq}")),
        signature: None,
        event: Event::Signed,
        prev_hash: String::new(),
        hash: format!("{seq:064}"),
    }
}

pub fn recs(doc: &str, from: u64, n: u64) -> Vec<Record> {
    (from..from + n).map(|s| rec(doc, s)).collect()
}

pub fn note(doc: &str, seq: u64) -> Notification {
    Notification {
        doc: doc.into(),
        seq,
        at: Timestamp(1_767_225_600),
        kind: NotificationKind::Assigned,
        to: vec!["bob".into()],
        text: format!("please review {doc}"),
    }
}

/// A real, hash-chained life of a document under the basic workflow: created, submitted,
/// approved by bob. Returns the records of each step.
pub fn basic_life(doc: &str) -> (Workflow, Vec<Vec<Record>>, DocState) {
    let wf = basic();
    let c = DocState::create(
        &wf,
        doc,
        &cmd("alice", create_action()),
        t("2026-01-05T09:00:00Z"),
    )
    .unwrap();
    let s = c
        .state
        .decide(
            &wf,
            &cmd("alice", Action::Submit),
            t("2026-01-05T10:00:00Z"),
        )
        .unwrap();
    let a = s
        .state
        .decide(&wf, &cmd("bob", approve(1)), t("2026-01-06T08:30:00Z"))
        .unwrap();
    let state = a.state.clone();
    (wf, vec![c.records, s.records, a.records], state)
}

/// [`PgStore`] in a schema of its own (named after the test's directory, so that a reopen
/// finds it), on the server of `SIGNOFF_PG_URL` or on a throwaway server this process starts.
/// Its group commits on distinct documents take `signoff_commit_set` from one operation on
/// (`set_batch_min` 1), so that the differential test and the conformance suite check the
/// set-based form; [`PgShared`] keeps the default, which writes small batches one by one.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct Pg;

#[cfg(feature = "postgres")]
impl Adapter for Pg {
    type S = signoff_storage::PgStore;
    const NAME: &'static str = "postgres";
    const PERSISTENT: bool = true;
    fn open(dir: &Path, config: StoreConfig) -> signoff_storage::PgStore {
        pg_open(&pg_schema(dir), config)
    }
}

/// [`PgStore`] on the test's own tokio runtime (`PgConfig::runtime`), when it is opened
/// inside one; on a runtime of its own otherwise.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PgShared;

#[cfg(feature = "postgres")]
impl Adapter for PgShared {
    type S = signoff_storage::PgStore;
    const NAME: &'static str = "postgres-shared";
    const PERSISTENT: bool = true;
    fn open(dir: &Path, config: StoreConfig) -> signoff_storage::PgStore {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let min = signoff_storage::PgConfig::default().set_batch_min;
        pg_connect(&pg_url(), &pg_schema(dir), config, runtime, min)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The server the PostgreSQL tests use: `SIGNOFF_PG_URL` (as `cargo xtask test` sets it), or
/// a throwaway server started once per process (stopped by its watchdog when the process
/// ends).
#[cfg(feature = "postgres")]
pub fn pg_url() -> String {
    use signoff_storage::throwaway_pg::ThrowawayServer;
    use std::sync::OnceLock;
    static SERVER: OnceLock<ThrowawayServer> = OnceLock::new();
    if let Ok(url) = std::env::var("SIGNOFF_PG_URL") {
        return url;
    }
    SERVER
        .get_or_init(|| ThrowawayServer::start().unwrap_or_else(|e| panic!("{e}")))
        .url()
}

/// A schema name unique to `dir` (and so to the test that made it).
#[cfg(feature = "postgres")]
pub fn pg_schema(dir: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("t_{h:016x}")
}

/// Connects to the test server's `schema`, from any context: the connection is made on a
/// thread of its own (the store then runs on its own runtime).
#[cfg(feature = "postgres")]
pub fn pg_open(schema: &str, store: StoreConfig) -> signoff_storage::PgStore {
    pg_try_open(&pg_url(), schema, store).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(feature = "postgres")]
pub fn pg_try_open(
    url: &str,
    schema: &str,
    store: StoreConfig,
) -> Result<signoff_storage::PgStore, signoff_storage::PgError> {
    pg_connect(url, schema, store, None, 1)
}

#[cfg(feature = "postgres")]
fn pg_connect(
    url: &str,
    schema: &str,
    store: StoreConfig,
    runtime: Option<tokio::runtime::Handle>,
    set_batch_min: usize,
) -> Result<signoff_storage::PgStore, signoff_storage::PgError> {
    let config = signoff_storage::PgConfig {
        store,
        schema: schema.to_owned(),
        pool_size: 4,
        runtime,
        set_batch_min,
        ..signoff_storage::PgConfig::default()
    };
    pg_connect_with(url, config)
}

/// Connects to `url` with `config`, from any context: the connection is made on a thread of
/// its own.
#[cfg(feature = "postgres")]
pub fn pg_connect_with(
    url: &str,
    config: signoff_storage::PgConfig,
) -> Result<signoff_storage::PgStore, signoff_storage::PgError> {
    let url = url.to_owned();
    on_a_thread_of_its_own(async move { signoff_storage::PgStore::connect(&url, config).await })
}

/// Runs `fut` to its end on a runtime of its own, on a thread of its own: callable from any
/// context, a runtime's thread too.
#[cfg(feature = "postgres")]
pub fn on_a_thread_of_its_own<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .unwrap()
}

/// Opens a store that another handle may still hold for a moment: a killed process's file
/// lock goes with it, and sled lets go of its lock once its flusher thread has let go of a
/// dropped database, but give them time. `None` when there is no store (a child killed
/// before creating it).
pub fn open_retrying<S>(open: impl Fn() -> Result<S, signoff_storage::OpenError>) -> Option<S> {
    for _ in 0..250 {
        match open() {
            Ok(s) => return Some(s),
            Err(signoff_storage::OpenError::Missing { .. }) => return None,
            Err(signoff_storage::OpenError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store stayed locked")
}

/// sled lets go of its file lock once its flusher thread has let go of the database, which
/// can be a moment after the last handle is dropped: a reopen right after waits for it.
pub fn sled_open(path: &std::path::Path) -> sled::Db {
    for _ in 0..250 {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    panic!("{} stayed locked", path.display())
}
