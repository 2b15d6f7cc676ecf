//! [`PgStore`]: the storage traits over a PostgreSQL database that several engine processes
//! share (issue #17).
//!
//! Layout (schema version [`PG_SCHEMA_VERSION`], all in one PostgreSQL schema, `signoff` by
//! default): names (document ids, states, reviewers) are `bytea`, so that any Rust string
//! is stored exactly (PostgreSQL's `text` refuses NUL) and `ORDER BY` sorts them by bytes,
//! like Rust's `String`; records and notifications are JSON text.
//!
//! | table | columns |
//! | --- | --- |
//! | `meta` | `key text` primary key, `value bigint`: `schema_version` |
//! | `streams` | `doc` primary key, `len`: the stream's length, the row an append locks |
//! | `appends` | (`doc`, `first`) primary key, `count`, `records`: one append's records as a JSON array |
//! | `index_rows` | `doc` primary key, `state`, `reviewers bytea[]`, `due_at`; indexes on (`state`, `doc`) and (`due_at`, `doc`) |
//! | `index_reviewers` | (`reviewer`, `doc`) primary key: the pending lists |
//! | `outbox` | `id` identity primary key, `item`, `leased_until` (see [`PgStore::claim`]) |
//! | `workflows` | `hash` primary key, `source bytea` |
//!
//! Every write is one statement: the functions `signoff_commit` (expected-version check,
//! records, index row, notifications) and `signoff_upsert` (an index row and its reviewer
//! rows) run inside the server, so a single write is one round trip and one transaction.
//! Under group commit a batch of appends is one statement too: `signoff_commit_set` (layout
//! version 2) when its documents are distinct, a few set-based statements for the whole
//! batch, else `signoff_commit_batch`, `signoff_commit` for each in turn; a batch with other
//! writes is pipelined as `BEGIN`, its statements and `COMMIT` on one connection. Either way
//! one round trip and one WAL flush.
//!
//! **Concurrency.** An append with `expected` = 0 inserts the stream's row (`ON CONFLICT DO
//! NOTHING`), any other updates it `WHERE len = expected`: of two processes appending at the
//! same position, the second waits on the row lock, re-checks the condition against the
//! committed row (READ COMMITTED), finds it false and returns a conflict without writing. The
//! primary key of `appends` would refuse a duplicate position even if that logic were wrong.
//! A batch takes its row locks in one global order (by document id, then workflow hash,
//! then outbox id), so batches of different processes do not deadlock; a batch that the
//! server still aborts as a deadlock or serialization failure wrote nothing and is retried.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use signoff_core::notify::Notification;
use signoff_core::store::{DocumentIndex, EventStore, IndexEntry, Outbox, StoreError};
use signoff_core::{Record, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Statement};

use crate::codec::{check_records, encode_notifications};
use crate::writer::WriterStats;
use crate::{Durability, GroupCommit, LocalStore, StoreConfig};

/// The version of the PostgreSQL layout that this build writes and reads.
pub const PG_SCHEMA_VERSION: i64 = 2;

/// How a [`PgStore`] connects.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Durability and group commit, as for the embedded stores. `Durability::Immediate`
    /// sets `synchronous_commit = on` on every connection (the commit's WAL is flushed
    /// before the server answers); `Durability::None` sets it `off`.
    pub store: StoreConfig,
    /// The PostgreSQL schema holding the tables (created if missing): lowercase letters,
    /// digits and `_`, at most 63 bytes, not starting with a digit.
    pub schema: String,
    /// The most connections the store opens (at least 1).
    pub pool_size: usize,
    /// How long to wait for a connection to the server (TCP connect and login together)
    /// before giving up with [`PgError::Timeout`].
    pub connect_timeout: Duration,
    /// How long an operation waits for a free connection of the pool.
    pub wait_timeout: Duration,
    /// How long one operation (a read, a commit, a claim, the migration on connect) may
    /// take in all, its wait for a connection included (so keep it above `wait_timeout`,
    /// whose own error comes first). A server that stops answering in the middle of a query
    /// (a hung host, a network that drops packets without closing the connection) fails the
    /// operation after this long, naming the server, instead of holding it until TCP gives
    /// up; the store then closes its idle connections, so the next operation starts afresh.
    /// Also the server's `statement_timeout` on every connection, so that a statement the
    /// server is still running (waiting on a lock, say) is cancelled there too.
    pub operation_timeout: Duration,
    /// Where the connections and operations run. `None` (the default): on a runtime the
    /// store starts for itself (one worker thread), so it can be polled from any executor
    /// or none, at the price of two thread hand-offs per operation. `Some(handle)`: on the
    /// caller's tokio runtime (it needs the IO and time drivers: `enable_all`), inline in
    /// the caller's task when it runs inside a runtime; for a service that is on tokio
    /// anyway. Use such a store only from within that runtime.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Group commits of at least this many appends, all on distinct documents, are written
    /// by `signoff_commit_set` (a dozen set-based statements for the batch); smaller ones by
    /// `signoff_commit_batch` (one `signoff_commit` per append). Default 32: measured here,
    /// the set-based form is slower at 10 bare appends and faster at 100 (1.6 times with
    /// index rows and notifications).
    pub set_batch_min: usize,
    /// What connecting may write to the schema (default [`PgOpen::Create`]).
    pub open: PgOpen,
}

/// What [`PgStore::connect`] may do to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgOpen {
    /// Create the store when the schema has none; migrate an older layout.
    #[default]
    Create,
    /// Open a store that is there ([`PgError::NoStore`] otherwise, and nothing is created:
    /// a mistyped schema name does not become an empty store); migrate an older layout.
    Existing,
    /// As `Existing`, and write nothing: an older layout stays as it is (its reads work as
    /// they are). For readers that must not change the database.
    ReadOnly,
}

impl Default for PgConfig {
    fn default() -> PgConfig {
        PgConfig {
            store: StoreConfig::durable(),
            schema: "signoff".into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(60),
            runtime: None,
            set_batch_min: SET_BATCH_MIN,
            open: PgOpen::Create,
        }
    }
}

/// Why a [`PgStore`] could not be opened. Each names the server (host and port), never the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    #[error(
        "not a PostgreSQL URL ({detail}): expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    BadUrl { detail: String },
    #[error(
        "{schema:?} cannot be a signoff schema name: use lowercase letters, digits and _, at \
         most 63 bytes, not starting with a digit"
    )]
    BadSchema { schema: String },
    #[error("cannot reach PostgreSQL at {server}: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("PostgreSQL at {server} did not answer within {seconds} s")]
    Timeout { server: String, seconds: u64 },
    #[error(
        "PostgreSQL at {server} refused the login of {user:?} to database {database:?}: {detail}"
    )]
    LoginRefused {
        server: String,
        user: String,
        database: String,
        detail: String,
    },
    #[error(
        "the signoff schema {schema:?} in PostgreSQL at {server} has layout version {found}, but \
         this build of signoff reads version {supported} at most: use a newer signoff"
    )]
    NewerSchema {
        server: String,
        schema: String,
        found: i64,
        supported: i64,
    },
    #[error("no signoff store in the schema {schema:?} of PostgreSQL at {server}")]
    NoStore { server: String, schema: String },
    #[error("no TLS connection to PostgreSQL at {server}: {detail}")]
    Tls { server: String, detail: String },
    #[error("PostgreSQL at {server}: {detail}")]
    Server { server: String, detail: String },
}

/// Streams, index, outbox and workflow definitions in a PostgreSQL database, shared by any
/// number of processes.
///
/// By default the store runs its connections on a small tokio runtime of its own (one
/// worker thread), so its futures can be polled from any executor or none; callers wait on
/// a oneshot channel. With [`PgConfig::runtime`] it runs on the caller's runtime instead.
/// Encoding and decoding JSON happen on the caller's task. Dropping the store closes its
/// connections; every operation that was acknowledged is committed.
#[derive(Debug)]
pub struct PgStore {
    inner: Arc<Inner>,
    writer: Option<mpsc::UnboundedSender<Request>>,
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or
    /// libpq's `key=value` form), creates or migrates the schema in one transaction, and
    /// starts the pool. A server that is down, does not answer within
    /// [`PgConfig::connect_timeout`] or refuses the login is a [`PgError`] naming it.
    pub async fn connect(url: &str, config: PgConfig) -> Result<PgStore, PgError> {
        let (url, tls) = crate::pg_tls::split(url).map_err(|detail| PgError::BadUrl { detail })?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| PgError::BadUrl {
            detail: describe(&e),
        })?;
        pg.ssl_mode(crate::pg_tls::tokio_mode(&tls.mode));
        if !valid_schema(&config.schema) {
            return Err(PgError::BadSchema {
                schema: config.schema.clone(),
            });
        }
        let server = Server::of(&pg);
        pg.connect_timeout(config.connect_timeout);
        let sync = match config.store.durability {
            Durability::Immediate => "on",
            Durability::None => "off",
        };
        let operation_timeout = config.operation_timeout.max(Duration::from_millis(1));
        let options = format!(
            "{} -c synchronous_commit={sync} -c statement_timeout={}",
            pg.get_options().unwrap_or_default(),
            operation_timeout.as_millis()
        );
        pg.options(options.trim());
        if pg.get_application_name().is_none() {
            pg.application_name("signoff");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls.mode {
            crate::pg_tls::TlsMode::Disable => Manager::from_config(pg, NoTls, manager_config),
            _ => {
                let rustls = crate::pg_tls::client_config(&tls).map_err(|detail| PgError::Tls {
                    server: server.name.clone(),
                    detail,
                })?;
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(rustls);
                Manager::from_config(pg, connector, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| server.error(e.to_string()))?;
        // Made after everything above that can fail: a runtime must not be dropped inside
        // the caller's async context.
        let (runtime, handle) = match &config.runtime {
            Some(handle) => (None, handle.clone()),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("signoff-pg")
                    .enable_all()
                    .build()
                    .map_err(|e| server.error(format!("cannot start the store's runtime: {e}")))?;
                let handle = rt.handle().clone();
                (Some(rt), handle)
            }
        };
        let inner = Arc::new(Inner {
            sql: Sql::new(&config.schema),
            schema: config.schema.clone(),
            pool,
            server,
            connect_timeout: config.connect_timeout,
            operation_timeout,
            commits: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            set_batch_min: config.set_batch_min.max(1),
        });
        let open = config.open;
        let (tx, rx) = oneshot::channel();
        let setup = inner.clone();
        let migrate = async move {
            let migrated = match tokio::time::timeout(operation_timeout, setup.migrate(open)).await
            {
                Ok(m) => m,
                Err(_) => Err(PgError::Timeout {
                    server: setup.server.name.clone(),
                    seconds: operation_timeout.as_secs().max(1),
                }),
            };
            let _ = tx.send(migrated);
        };
        if runtime.is_none() && tokio::runtime::Handle::try_current().is_ok() {
            migrate.await;
        } else {
            handle.spawn(migrate);
        }
        let migrated = rx.await.unwrap_or_else(|_| {
            Err(inner
                .server
                .error("the store's runtime stopped while connecting".into()))
        });
        if let Err(e) = migrated {
            if let Some(rt) = runtime {
                rt.shutdown_background();
            }
            return Err(e);
        }
        let writer = match config.store.group_commit {
            GroupCommit::UpTo(n) if n > 1 => {
                let (tx, rx) = mpsc::unbounded_channel();
                handle.spawn(write_batches(inner.clone(), rx, n));
                Some(tx)
            }
            _ => None,
        };
        Ok(PgStore {
            inner,
            writer,
            handle,
            runtime,
        })
    }

    /// The server, as `HOST:PORT`.
    pub fn server(&self) -> &str {
        &self.inner.server.name
    }

    /// The PostgreSQL schema of the store.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// How many transactions this handle committed (or attempted), and how many operations
    /// they carried (their ratio is the mean group-commit batch).
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            operations: self.inner.operations.load(Ordering::Relaxed),
        }
    }

    /// Takes up to `limit` unacknowledged notifications that no other worker holds, oldest
    /// first, and holds them for `lease`: until then, `claim` in any process skips them.
    /// Deliver each, then [`Outbox::ack`] it. Several workers in several processes can drain
    /// the outbox at once without one item going to two of them; an item whose lease ran
    /// out before its ack (a worker that died or was too slow) is handed out again: delivery
    /// stays at least once.
    pub async fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<(u64, Notification)>, StoreError> {
        let limit = clamp(limit as u64);
        let millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let raw = self
            .call(move |inner| async move {
                let conn = inner.conn().await?;
                let stmt = inner.prepare(&conn, &inner.sql.claim).await?;
                let rows = conn
                    .query(&stmt, &[&limit, &millis])
                    .await
                    .map_err(|e| inner.server.store_error(&e))?;
                let mut out: Vec<(i64, String)> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                out.sort();
                Ok(out)
            })
            .await?;
        decode_outbox(raw)
    }

    /// Acknowledges a notification [`claim`](Self::claim) handed out, if its lease has not
    /// run out: `true` when it was removed; `false` when the lease had ended (another worker
    /// may hold it now, and will deliver it again) or it is gone already.
    pub async fn ack_claimed(&self, id: u64) -> Result<bool, StoreError> {
        Ok(self.on_item(|sql| &sql.ack_claimed, id).await? == 1)
    }

    /// Gives a claimed notification back before its lease ends (its delivery failed), so that
    /// the next `claim`, in any worker, may take it at once.
    pub async fn release(&self, id: u64) -> Result<(), StoreError> {
        self.on_item(|sql| &sql.release, id).await.map(|_| ())
    }

    /// Runs one of the outbox's statements on one item (`$1` its id): rows affected.
    async fn on_item(&self, pick: fn(&Sql) -> &String, id: u64) -> Result<u64, StoreError> {
        let id = clamp(id);
        self.call(move |inner| async move {
            let conn = inner.conn().await?;
            let stmt = inner.prepare(&conn, pick(&inner.sql)).await?;
            conn.execute(&stmt, &[&id])
                .await
                .map_err(|e| inner.server.store_error(&e))
        })
        .await
    }

    /// Runs `f` on the store's runtime and waits for its answer (inline, when the store
    /// runs on the caller's runtime and is called from inside it).
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let inner = self.inner.clone();
        if self.runtime.is_none() && tokio::runtime::Handle::try_current().is_ok() {
            // On the caller's runtime, as configured: no hand-off.
            return self.inner.bounded(f(inner)).await;
        }
        let (tx, rx) = oneshot::channel();
        let bound = self.inner.clone();
        self.handle.spawn(async move {
            let _ = tx.send(bound.bounded(f(inner)).await);
        });
        rx.await.map_err(|_| closed())?
    }

    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        match &self.writer {
            Some(writer) => {
                let (reply, answer) = oneshot::channel();
                writer.send(Request { op, reply }).map_err(|_| closed())?;
                answer.await.map_err(|_| closed())?
            }
            None => {
                self.call(move |inner| async move {
                    inner.commits.fetch_add(1, Ordering::Relaxed);
                    inner.operations.fetch_add(1, Ordering::Relaxed);
                    inner.single(&op).await
                })
                .await
            }
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The writer task ends when its channel closes; the runtime's tasks are dropped with
        // it, which closes the connections (the server rolls back anything unfinished, and
        // nothing unfinished was acknowledged).
        drop(self.writer.take());
        self.inner.pool.close();
        if let Some(rt) = self.runtime.take() {
            // Not `drop`: a store may be dropped inside another runtime, where blocking on
            // this one's shutdown is not allowed.
            rt.shutdown_background();
        }
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
    ) -> Result<u64, StoreError> {
        self.commit(doc, expected, records, None, &[]).await
    }

    async fn read(&self, doc: &str, from: u64) -> Result<Vec<Record>, StoreError> {
        let key = doc.as_bytes().to_vec();
        let start = clamp(from);
        let raw = self
            .call(move |inner| async move {
                let conn = inner.conn().await?;
                let stmt = inner.prepare(&conn, &inner.sql.read).await?;
                let rows = conn
                    .query(&stmt, &[&key, &start])
                    .await
                    .map_err(|e| inner.server.store_error(&e))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut records = Vec::new();
        for (first, json) in raw {
            let chunk: Vec<Record> = serde_json::from_str(&json).map_err(|e| {
                StoreError::Backend(format!(
                    "PostgreSQL at {}: the append of {doc} at {first} does not decode: {e}",
                    self.inner.server.name
                ))
            })?;
            let skip = usize::try_from(from.saturating_sub(first as u64)).unwrap_or(usize::MAX);
            records.extend(chunk.into_iter().skip(skip));
        }
        Ok(records)
    }
}

#[async_trait]
impl DocumentIndex for PgStore {
    async fn upsert(&self, entry: IndexEntry) -> Result<(), StoreError> {
        self.write(Op::Upsert(Row::of(&entry))).await.map(|_| ())
    }

    async fn by_state(&self, state: &str) -> Result<Vec<String>, StoreError> {
        self.docs(
            |sql| sql.by_state.clone(),
            Param::Bytes(state.as_bytes().to_vec()),
        )
        .await
    }

    async fn by_reviewer(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.docs(
            |sql| sql.by_reviewer.clone(),
            Param::Bytes(user.as_bytes().to_vec()),
        )
        .await
    }

    async fn due_before(&self, t: Timestamp) -> Result<Vec<String>, StoreError> {
        self.docs(|sql| sql.due_before.clone(), Param::Int(t.0))
            .await
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn enqueue(&self, items: &[Notification]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let items = json_texts(encode_notifications(items)?)?;
        self.write(Op::Enqueue(items)).await.map(|_| ())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<(u64, Notification)>, StoreError> {
        let limit = clamp(limit as u64);
        let raw = self
            .call(move |inner| async move {
                let conn = inner.conn().await?;
                let stmt = inner.prepare(&conn, &inner.sql.pending).await?;
                let rows = conn
                    .query(&stmt, &[&limit])
                    .await
                    .map_err(|e| inner.server.store_error(&e))?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
            .await?;
        decode_outbox(raw)
    }

    async fn ack(&self, id: u64) -> Result<(), StoreError> {
        let Ok(key) = i64::try_from(id) else {
            return Err(StoreError::UnknownOutboxItem(id));
        };
        self.write(Op::Ack(key)).await.map(|_| ())
    }
}

#[async_trait]
impl LocalStore for PgStore {
    async fn commit(
        &self,
        doc: &str,
        expected: u64,
        records: &[Record],
        entry: Option<IndexEntry>,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        check_records(doc, expected, records)?;
        let Ok(at) = i64::try_from(expected) else {
            // No stream is that long: a conflict, with the length it has.
            let actual = self.length(doc).await?;
            return Err(StoreError::Conflict {
                doc: doc.to_owned(),
                expected,
                actual,
            });
        };
        let count = i32::try_from(records.len())
            .map_err(|_| StoreError::Backend(format!("{} records in one append", records.len())))?;
        let records = if records.is_empty() {
            String::new()
        } else {
            serde_json::to_string(records)
                .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))?
        };
        let op = Op::Commit {
            doc: doc.to_owned(),
            expected: at,
            count,
            records,
            entry: entry.as_ref().map(Row::of),
            items: json_texts(encode_notifications(notifications)?)?,
        };
        match self.write(op).await? {
            Done::Len(n) => Ok(n),
            Done::Unit => Err(StoreError::Backend(
                "the writer answered out of turn".into(),
            )),
        }
    }

    async fn documents(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|inner| async move {
            let conn = inner.conn().await?;
            let stmt = inner.prepare(&conn, &inner.sql.documents).await?;
            let rows = conn
                .query(&stmt, &[])
                .await
                .map_err(|e| inner.server.store_error(&e))?;
            rows.iter()
                .map(|r| {
                    let len: i64 = r.get(1);
                    Ok((inner.name(r.get(0))?, len as u64))
                })
                .collect()
        })
        .await
    }

    async fn put_workflow(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.write(Op::PutWorkflow {
            hash: hash.to_owned(),
            source: source.as_bytes().to_vec(),
        })
        .await
        .map(|_| ())
    }

    async fn workflow(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_owned();
        self.call(move |inner| async move {
            let conn = inner.conn().await?;
            let stmt = inner.prepare(&conn, &inner.sql.workflow).await?;
            let row = conn
                .query_opt(&stmt, &[&hash])
                .await
                .map_err(|e| inner.server.store_error(&e))?;
            row.map(|r| inner.name(r.get(0))).transpose()
        })
        .await
    }
}

impl PgStore {
    async fn docs(&self, sql: fn(&Sql) -> String, param: Param) -> Result<Vec<String>, StoreError> {
        self.call(move |inner| async move {
            let conn = inner.conn().await?;
            let stmt = inner.prepare(&conn, &sql(&inner.sql)).await?;
            let rows = conn
                .query(&stmt, &[param.as_sql()])
                .await
                .map_err(|e| inner.server.store_error(&e))?;
            rows.iter().map(|r| inner.name(r.get(0))).collect()
        })
        .await
    }

    /// The length of `doc`'s stream.
    async fn length(&self, doc: &str) -> Result<u64, StoreError> {
        let key = doc.as_bytes().to_vec();
        self.call(move |inner| async move {
            let conn = inner.conn().await?;
            let stmt = inner.prepare(&conn, &inner.sql.length).await?;
            let row = conn
                .query_opt(&stmt, &[&key])
                .await
                .map_err(|e| inner.server.store_error(&e))?;
            Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
        })
        .await
    }
}

/// The statements, with the schema's name filled in.
#[derive(Debug)]
struct Sql {
    commit: String,
    commit_batch: String,
    commit_set: String,
    /// A bare append (no index row, no notifications) as one plain statement, for an empty
    /// stream and for a longer one: no function call on the way.
    append_first: String,
    append_next: String,
    upsert: String,
    enqueue: String,
    ack: String,
    put_workflow: String,
    read: String,
    length: String,
    by_state: String,
    by_reviewer: String,
    due_before: String,
    pending: String,
    claim: String,
    ack_claimed: String,
    release: String,
    documents: String,
    workflow: String,
}

impl Sql {
    fn new(schema: &str) -> Sql {
        let s = |text: &str| text.replace("S.", &format!("\"{schema}\"."));
        Sql {
            commit: s("SELECT S.signoff_commit($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            commit_batch: s(
                "SELECT S.signoff_commit_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            ),
            commit_set: s(
                "SELECT S.signoff_commit_set($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            ),
            append_first: s("WITH head AS (INSERT INTO S.streams (doc, len) \
                 VALUES ($1::bytea, $3::integer) ON CONFLICT (doc) DO NOTHING RETURNING 1) \
                 INSERT INTO S.appends (doc, first, count, records) \
                 SELECT $1::bytea, $2::bigint, $3::integer, $4::text FROM head"),
            append_next: s(
                "WITH head AS (UPDATE S.streams SET len = $2::bigint + $3::integer \
                 WHERE doc = $1::bytea AND len = $2::bigint RETURNING 1) \
                 INSERT INTO S.appends (doc, first, count, records) \
                 SELECT $1::bytea, $2::bigint, $3::integer, $4::text FROM head",
            ),
            upsert: s("SELECT S.signoff_upsert($1, $2, $3, $4)"),
            enqueue: s("INSERT INTO S.outbox (item) \
                 SELECT item FROM unnest($1::text[]) WITH ORDINALITY AS t(item, n) ORDER BY n"),
            ack: s("DELETE FROM S.outbox WHERE id = $1"),
            put_workflow: s("INSERT INTO S.workflows (hash, source) VALUES ($1, $2) \
                 ON CONFLICT (hash) DO NOTHING"),
            read: s("SELECT first, records FROM S.appends \
                 WHERE doc = $1 AND first + count > $2 ORDER BY first"),
            length: s("SELECT len FROM S.streams WHERE doc = $1"),
            by_state: s("SELECT doc FROM S.index_rows WHERE state = $1 ORDER BY doc"),
            by_reviewer: s("SELECT doc FROM S.index_reviewers WHERE reviewer = $1 ORDER BY doc"),
            due_before: s("SELECT doc FROM S.index_rows WHERE due_at <= $1 ORDER BY doc"),
            pending: s("SELECT id, item FROM S.outbox ORDER BY id LIMIT $1"),
            ack_claimed: s(
                "DELETE FROM S.outbox WHERE id = $1 AND leased_until > clock_timestamp()",
            ),
            release: s("UPDATE S.outbox SET leased_until = NULL WHERE id = $1"),
            claim: s("UPDATE S.outbox \
                 SET leased_until = clock_timestamp() + $2::bigint * interval '1 millisecond' \
                 WHERE id IN (SELECT id FROM S.outbox \
                   WHERE leased_until IS NULL OR leased_until < clock_timestamp() \
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, item"),
            documents: s("SELECT doc, len FROM S.streams ORDER BY doc"),
            workflow: s("SELECT source FROM S.workflows WHERE hash = $1"),
        }
    }
}

/// Layout version 1, created in one transaction (with `meta.schema_version` last).
const SCHEMA_V1: &str = r#"
CREATE TABLE S.meta (key text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE S.streams (doc bytea PRIMARY KEY, len bigint NOT NULL CHECK (len > 0));
CREATE TABLE S.appends (
    doc bytea NOT NULL,
    first bigint NOT NULL CHECK (first >= 0),
    count integer NOT NULL CHECK (count > 0),
    records text NOT NULL,
    PRIMARY KEY (doc, first)
);
CREATE TABLE S.index_rows (
    doc bytea PRIMARY KEY,
    state bytea NOT NULL,
    reviewers bytea[] NOT NULL,
    due_at bigint
);
CREATE INDEX index_rows_by_state ON S.index_rows (state, doc);
CREATE INDEX index_rows_by_due ON S.index_rows (due_at, doc) WHERE due_at IS NOT NULL;
CREATE TABLE S.index_reviewers (
    reviewer bytea NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (reviewer, doc)
);
CREATE TABLE S.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item text NOT NULL,
    leased_until timestamptz
);
CREATE TABLE S.workflows (hash text PRIMARY KEY, source bytea NOT NULL);

-- An index row and its reviewer rows. The row is locked first (updated, or inserted), so
-- concurrent upserts of one document take turns; a first insert that loses to a
-- concurrent one goes round again and updates the row the other one committed. Reviewer
-- rows are written only for the reviewers that came or went.
CREATE FUNCTION S.signoff_upsert(p_doc bytea, p_state bytea, p_reviewers bytea[], p_due bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old bytea[];
BEGIN
    LOOP
        -- The old reviewers come from the row as it was (locked by the subquery).
        UPDATE S.index_rows AS n SET state = p_state, reviewers = p_reviewers, due_at = p_due
            FROM (SELECT reviewers FROM S.index_rows WHERE doc = p_doc FOR UPDATE) AS o
            WHERE n.doc = p_doc
            RETURNING o.reviewers INTO old;
        IF FOUND THEN
            EXIT;
        END IF;
        INSERT INTO S.index_rows (doc, state, reviewers, due_at)
            VALUES (p_doc, p_state, p_reviewers, p_due)
            ON CONFLICT (doc) DO NOTHING;
        IF FOUND THEN
            old := '{}';
            EXIT;
        END IF;
    END LOOP;
    IF NOT (old <@ p_reviewers) THEN
        DELETE FROM S.index_reviewers
            WHERE reviewer = ANY (old) AND doc = p_doc AND NOT (reviewer = ANY (p_reviewers));
    END IF;
    IF NOT (p_reviewers <@ old) THEN
        INSERT INTO S.index_reviewers (reviewer, doc)
            SELECT DISTINCT r, p_doc FROM unnest(p_reviewers) AS r WHERE NOT (r = ANY (old))
            ON CONFLICT DO NOTHING;
    END IF;
END $$;

-- One append with its index row and notifications. Returns the stream's new length, or
-- -1 - (its length) when it does not hold exactly p_expected records; then nothing is
-- written.
CREATE FUNCTION S.signoff_commit(
    p_doc bytea, p_expected bigint, p_count integer, p_records text,
    p_index boolean, p_state bytea, p_reviewers bytea[], p_due bigint, p_items text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    actual bigint;
BEGIN
    IF p_count > 0 THEN
        IF p_expected = 0 THEN
            INSERT INTO S.streams (doc, len) VALUES (p_doc, p_count)
                ON CONFLICT (doc) DO NOTHING;
        ELSE
            UPDATE S.streams SET len = p_expected + p_count
                WHERE doc = p_doc AND len = p_expected;
        END IF;
        IF NOT FOUND THEN
            SELECT len INTO actual FROM S.streams WHERE doc = p_doc;
            RETURN -1 - coalesce(actual, 0);
        END IF;
        INSERT INTO S.appends (doc, first, count, records)
            VALUES (p_doc, p_expected, p_count, p_records);
    ELSE
        SELECT len INTO actual FROM S.streams WHERE doc = p_doc FOR SHARE;
        IF coalesce(actual, 0) <> p_expected THEN
            RETURN -1 - coalesce(actual, 0);
        END IF;
    END IF;
    IF p_index THEN
        PERFORM S.signoff_upsert(p_doc, p_state, p_reviewers, p_due);
    END IF;
    IF cardinality(p_items) > 0 THEN
        INSERT INTO S.outbox (item)
            SELECT item FROM unnest(p_items) WITH ORDINALITY AS t(item, n) ORDER BY n;
    END IF;
    RETURN p_expected + p_count;
END $$;

-- A group commit's appends in one statement: signoff_commit for each, in order; the
-- reviewers and notifications of all of them come flattened, each operation's ending at
-- its index in p_reviewer_ends and p_item_ends.
CREATE FUNCTION S.signoff_commit_batch(
    p_docs bytea[], p_expected bigint[], p_counts integer[], p_records text[],
    p_index boolean[], p_states bytea[], p_due bigint[],
    p_reviewers bytea[], p_reviewer_ends integer[], p_items text[], p_item_ends integer[])
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    answers bigint[] := '{}';
    r0 integer := 1;
    i0 integer := 1;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_docs, 1), 0) LOOP
        answers := answers || S.signoff_commit(
            p_docs[i], p_expected[i], p_counts[i], p_records[i], p_index[i], p_states[i],
            coalesce(p_reviewers[r0 : p_reviewer_ends[i]], '{}'), p_due[i],
            coalesce(p_items[i0 : p_item_ends[i]], '{}'));
        r0 := p_reviewer_ends[i] + 1;
        i0 := p_item_ends[i] + 1;
    END LOOP;
    RETURN answers;
END $$;

INSERT INTO S.meta (key, value) VALUES ('schema_version', 1);
"#;

/// Layout version 2 over version 1: `signoff_commit_set`, a group commit of appends on
/// distinct documents as a few set-based statements instead of one `signoff_commit` per
/// operation. The tables are unchanged. Applied in the migration's transaction.
const SCHEMA_V2: &str = r#"
-- A group commit whose operations are on distinct documents, with the same parameters and
-- answers as signoff_commit_batch: each operation is written whole, or not at all when its
-- stream does not hold exactly the records it expects. Row locks are taken in document
-- order (streams, then index rows), as the caller sorts the batch.
CREATE FUNCTION S.signoff_commit_set(
    p_docs bytea[], p_expected bigint[], p_counts integer[], p_records text[],
    p_index boolean[], p_states bytea[], p_due bigint[],
    p_reviewers bytea[], p_reviewer_ends integer[], p_items text[], p_item_ends integer[])
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    lens bigint[];
    made bytea[];
    good integer[];
    old_docs bytea[];
    old_pair_docs bytea[];
    old_pair_reviewers bytea[];
    new_docs bytea[];
    answers bigint[];
BEGIN
    -- The batch's streams, locked, and the lengths they have now (0: none yet).
    SELECT array_agg(coalesce(s.len, 0) ORDER BY o.n) INTO lens
      FROM unnest(p_docs) WITH ORDINALITY AS o(doc, n)
      LEFT JOIN (SELECT doc, len FROM S.streams WHERE doc = ANY (p_docs) ORDER BY doc FOR UPDATE) AS s
        ON s.doc = o.doc;
    -- Streams that start here, unless another transaction started them first.
    WITH m AS (
        INSERT INTO S.streams (doc, len)
        SELECT p_docs[i], p_counts[i] FROM generate_subscripts(p_docs, 1) AS i
         WHERE p_expected[i] = 0 AND lens[i] = 0 AND p_counts[i] > 0
         ORDER BY p_docs[i]
        ON CONFLICT (doc) DO NOTHING
        RETURNING doc)
    SELECT coalesce(array_agg(doc), '{}') INTO made FROM m;
    -- The operations that hold.
    SELECT coalesce(array_agg(i ORDER BY i), '{}') INTO good FROM generate_subscripts(p_docs, 1) AS i
     WHERE lens[i] = p_expected[i] AND (p_expected[i] > 0 OR p_counts[i] = 0 OR p_docs[i] = ANY (made));
    UPDATE S.streams AS s SET len = p_expected[i] + p_counts[i]
      FROM unnest(good) AS i
     WHERE s.doc = p_docs[i] AND p_expected[i] > 0 AND p_counts[i] > 0;
    INSERT INTO S.appends (doc, first, count, records)
    SELECT p_docs[i], p_expected[i], p_counts[i], p_records[i] FROM unnest(good) AS i
     WHERE p_counts[i] > 0;
    -- Index rows (none for a batch of bare appends): those there are, locked, with their
    -- reviewers as they were.
    IF true = ANY (p_index) THEN
        WITH l AS (
            SELECT doc, reviewers FROM S.index_rows
             WHERE doc IN (SELECT p_docs[i] FROM unnest(good) AS i WHERE p_index[i])
             ORDER BY doc FOR UPDATE)
        SELECT (SELECT coalesce(array_agg(doc), '{}') FROM l),
               coalesce(array_agg(l.doc ORDER BY l.doc, r), '{}'),
               coalesce(array_agg(r ORDER BY l.doc, r), '{}')
          INTO old_docs, old_pair_docs, old_pair_reviewers
          FROM l, unnest(l.reviewers) AS r;
        UPDATE S.index_rows AS n
           SET state = p_states[i],
               reviewers = coalesce(p_reviewers[coalesce(p_reviewer_ends[i - 1], 0) + 1 : p_reviewer_ends[i]], '{}'),
               due_at = p_due[i]
          FROM unnest(good) AS i
         WHERE p_index[i] AND n.doc = p_docs[i] AND n.doc = ANY (old_docs);
        WITH ins AS (
            INSERT INTO S.index_rows (doc, state, reviewers, due_at)
            SELECT p_docs[i], p_states[i],
                   coalesce(p_reviewers[coalesce(p_reviewer_ends[i - 1], 0) + 1 : p_reviewer_ends[i]], '{}'),
                   p_due[i]
              FROM unnest(good) AS i
             WHERE p_index[i] AND NOT (p_docs[i] = ANY (old_docs))
             ORDER BY p_docs[i]
            ON CONFLICT (doc) DO NOTHING
            RETURNING doc)
        SELECT coalesce(array_agg(doc), '{}') INTO new_docs FROM ins;
        -- A row another transaction inserted meanwhile: the one-by-one upsert takes it from there.
        PERFORM S.signoff_upsert(p_docs[i], p_states[i],
                   coalesce(p_reviewers[coalesce(p_reviewer_ends[i - 1], 0) + 1 : p_reviewer_ends[i]], '{}'),
                   p_due[i])
           FROM unnest(good) AS i
          WHERE p_index[i] AND NOT (p_docs[i] = ANY (old_docs)) AND NOT (p_docs[i] = ANY (new_docs))
          ORDER BY p_docs[i];
        -- Reviewer rows: those that went, then those that came.
        DELETE FROM S.index_reviewers AS x
         USING unnest(old_pair_docs, old_pair_reviewers) AS o(doc, reviewer), unnest(good) AS i
         WHERE p_index[i] AND p_docs[i] = o.doc
           AND NOT (o.reviewer = ANY (coalesce(p_reviewers[coalesce(p_reviewer_ends[i - 1], 0) + 1 : p_reviewer_ends[i]], '{}')))
           AND x.reviewer = o.reviewer AND x.doc = o.doc;
        INSERT INTO S.index_reviewers (reviewer, doc)
        SELECT DISTINCT w.reviewer, w.doc
          FROM (SELECT p_docs[i] AS doc, r AS reviewer
                  FROM unnest(good) AS i,
                       unnest(coalesce(p_reviewers[coalesce(p_reviewer_ends[i - 1], 0) + 1 : p_reviewer_ends[i]], '{}')) AS r
                 WHERE p_index[i] AND (p_docs[i] = ANY (old_docs) OR p_docs[i] = ANY (new_docs))) AS w
          LEFT JOIN unnest(old_pair_docs, old_pair_reviewers) AS o(doc, reviewer)
            ON o.doc = w.doc AND o.reviewer = w.reviewer
         WHERE o.doc IS NULL
        ON CONFLICT DO NOTHING;
    END IF;
    -- Notifications, in the batch's order.
    IF cardinality(p_items) > 0 THEN
        INSERT INTO S.outbox (item)
        SELECT p_items[k]
          FROM generate_subscripts(p_item_ends, 1) AS i,
               generate_series(coalesce(p_item_ends[i - 1], 0) + 1, p_item_ends[i]) AS k
         WHERE i = ANY (good)
         ORDER BY k;
    END IF;
    SELECT array_agg(CASE WHEN i = ANY (good) THEN p_expected[i] + p_counts[i]
                          ELSE -1 - coalesce((SELECT len FROM S.streams WHERE doc = p_docs[i]), 0) END
                     ORDER BY i)
      INTO answers
      FROM generate_subscripts(p_docs, 1) AS i;
    RETURN coalesce(answers, '{}');
END $$;

UPDATE S.meta SET value = 2 WHERE key = 'schema_version';
"#;

/// The fewest operations a group commit writes with `signoff_commit_set` by default.
const SET_BATCH_MIN: usize = 32;

/// What the store shares with its tasks.
#[derive(Debug)]
struct Inner {
    sql: Sql,
    schema: String,
    pool: Pool,
    server: Server,
    connect_timeout: Duration,
    operation_timeout: Duration,
    commits: AtomicU64,
    operations: AtomicU64,
    set_batch_min: usize,
}

impl Inner {
    /// `op` if it ends within [`PgConfig::operation_timeout`]; otherwise it is dropped (its
    /// connection, a query or a transaction half done, goes back to the pool and is closed
    /// there with every other idle connection: the server rolls back what was not
    /// committed) and the error names the server.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Ok(done) => done,
            Err(_) => {
                // The abandoned connection is back in the pool by now (dropped with `op`).
                // On a multi-threaded runtime another waiter may have taken it first: that
                // operation times out in turn and clears the pool again.
                self.pool.retain(|_, _| false);
                Err(StoreError::Backend(format!(
                    "PostgreSQL at {} did not answer within {} ms (if this was a write, \
                     whether it committed is unknown: read the document again)",
                    self.server.name,
                    self.operation_timeout.as_millis()
                )))
            }
        }
    }

    /// A connection from the pool; the errors of a new one name the server.
    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Backend(self.server.open_error(e, self.connect_timeout).to_string())
        })
    }

    async fn prepare(&self, conn: &Object, sql: &str) -> Result<Statement, StoreError> {
        conn.prepare_cached(sql)
            .await
            .map_err(|e| self.server.store_error(&e))
    }

    /// A name read back from a `bytea` column.
    fn name(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        String::from_utf8(bytes).map_err(|e| {
            StoreError::Backend(format!(
                "PostgreSQL at {}: a stored name is not UTF-8: {e}",
                self.server.name
            ))
        })
    }

    /// Creates the schema, or checks and migrates it, in one transaction that holds an
    /// advisory lock on the schema's name, so that processes starting together take turns.
    /// A layout's DDL for this store's schema.
    fn ddl(&self, text: &str) -> String {
        text.replace("S.", &format!("\"{}\".", self.schema))
    }

    /// Creates or migrates the store, or checks that it is there, as `open` allows.
    async fn migrate(&self, open: PgOpen) -> Result<(), PgError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| self.server.open_error(e, self.connect_timeout))?;
        let fail = |e: tokio_postgres::Error| self.server.error(describe(&e));
        let encoding: String = conn
            .query_one("SHOW server_encoding", &[])
            .await
            .map_err(fail)?
            .get(0);
        if encoding != "UTF8" {
            return Err(self.server.error(format!(
                "the database's encoding is {encoding}; signoff needs UTF8"
            )));
        }
        let txn = conn.transaction().await.map_err(fail)?;
        txn.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&lock_key(&self.schema)],
        )
        .await
        .map_err(fail)?;
        if open == PgOpen::Create {
            txn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", self.schema))
                .await
                .map_err(fail)?;
        }
        let meta = format!("\"{}\".meta", self.schema);
        let exists: Option<String> = txn
            .query_one("SELECT to_regclass($1)::text", &[&meta])
            .await
            .map_err(fail)?
            .get(0);
        let found: Option<i64> = match exists {
            None => None,
            Some(_) => txn
                .query_opt(
                    &format!("SELECT value FROM {meta} WHERE key = 'schema_version'"),
                    &[],
                )
                .await
                .map_err(fail)?
                .map(|r| r.get(0)),
        };
        match found {
            Some(v) if v > PG_SCHEMA_VERSION => {
                return Err(PgError::NewerSchema {
                    server: self.server.name.clone(),
                    schema: self.schema.clone(),
                    found: v,
                    supported: PG_SCHEMA_VERSION,
                });
            }
            Some(PG_SCHEMA_VERSION) => {}
            Some(1) if open == PgOpen::ReadOnly => {}
            Some(1) => {
                txn.batch_execute(&self.ddl(SCHEMA_V2))
                    .await
                    .map_err(fail)?;
                tracing::info!(server = %self.server.name, schema = %self.schema, "migrated the signoff schema from layout version 1 to 2");
            }
            Some(v) => {
                return Err(self.server.error(format!(
                    "the schema {:?} has layout version {v}, which no signoff wrote",
                    self.schema
                )));
            }
            None if exists.is_some() => {
                return Err(self.server.error(format!(
                    "the schema {:?} has a meta table without a schema_version: not a \
                     signoff store",
                    self.schema
                )));
            }
            None if open != PgOpen::Create => {
                return Err(PgError::NoStore {
                    server: self.server.name.clone(),
                    schema: self.schema.clone(),
                });
            }
            None => {
                txn.batch_execute(&self.ddl(SCHEMA_V1))
                    .await
                    .map_err(fail)?;
                txn.batch_execute(&self.ddl(SCHEMA_V2))
                    .await
                    .map_err(fail)?;
                tracing::info!(server = %self.server.name, schema = %self.schema, "created the signoff schema");
            }
        }
        txn.commit().await.map_err(fail)
    }

    /// One operation in one statement (its own transaction).
    async fn single(&self, op: &Op) -> Result<Done, StoreError> {
        if let Op::Commit {
            doc,
            expected,
            count,
            records,
            entry: None,
            items,
        } = op
        {
            if *count > 0 && items.is_empty() {
                return self.append(doc, *expected, *count, records).await;
            }
        }
        let conn = self.conn().await?;
        let stmt = self.prepare(&conn, op.sql(&self.sql)).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op.run(&conn, &stmt).await {
                Ok(step) => return op.answer(step),
                Err(e) if retryable(&e) && attempt < 5 => {
                    tracing::debug!(error = %describe(&e), "retrying a write");
                }
                Err(e) => return Err(self.server.store_error(&e)),
            }
        }
    }

    /// A bare append: one plain statement that inserts the records only if the stream's
    /// row took the new length; when it did not (0 rows), the stream's length is read for
    /// the conflict.
    async fn append(
        &self,
        doc: &str,
        expected: i64,
        count: i32,
        records: &str,
    ) -> Result<Done, StoreError> {
        let conn = self.conn().await?;
        let sql = if expected == 0 {
            &self.sql.append_first
        } else {
            &self.sql.append_next
        };
        let stmt = self.prepare(&conn, sql).await?;
        let key = doc.as_bytes();
        let params: [&(dyn ToSql + Sync); 4] = [&key, &expected, &count, &records];
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            match conn.execute(&stmt, &params).await {
                Ok(n) => break n,
                Err(e) if retryable(&e) && attempt < 5 => {
                    tracing::debug!(error = %describe(&e), "retrying an append");
                }
                Err(e) => return Err(self.server.store_error(&e)),
            }
        };
        if written == 1 {
            return Ok(Done::Len(expected as u64 + count as u64));
        }
        let stmt = self.prepare(&conn, &self.sql.length).await?;
        let actual = conn
            .query_opt(&stmt, &[&key])
            .await
            .map_err(|e| self.server.store_error(&e))?
            .map_or(0, |r| r.get::<_, i64>(0) as u64);
        Err(StoreError::Conflict {
            doc: doc.to_owned(),
            expected: expected as u64,
            actual,
        })
    }

    /// A batch of commits (appends with or without index rows and notifications) in one
    /// statement, `signoff_commit_set` or `signoff_commit_batch`: one round trip, one
    /// transaction.
    async fn commit_batch(&self, ops: &[Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        let conn = self.conn().await?;
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by(|a, b| ops[*a].lock_order().cmp(&ops[*b].lock_order()));
        // Many operations on distinct documents (the usual batch of many callers): set-based
        // statements, whose fixed cost pays from a few dozen operations on
        // (`PgConfig::set_batch_min`). Several operations on one document: one after the
        // other, each seeing the last.
        let distinct = order
            .windows(2)
            .all(|w| ops[w[0]].lock_order() != ops[w[1]].lock_order());
        let sql = if distinct && ops.len() >= self.set_batch_min {
            &self.sql.commit_set
        } else {
            &self.sql.commit_batch
        };
        let stmt = self.prepare(&conn, sql).await?;
        let mut p = BatchParams::default();
        for i in &order {
            if let Op::Commit {
                doc,
                expected,
                count,
                records,
                entry,
                items,
            } = &ops[*i]
            {
                p.docs.push(doc.as_bytes());
                p.expected.push(*expected);
                p.counts.push(*count);
                p.records.push(records);
                p.index.push(entry.is_some());
                p.states.push(entry.as_ref().map_or(&[][..], |e| &e.state));
                p.due.push(entry.as_ref().and_then(|e| e.due));
                for r in entry.iter().flat_map(|e| &e.reviewers) {
                    p.reviewers.push(r);
                }
                p.reviewer_ends.push(count_i32(p.reviewers.len())?);
                p.items.extend(items.iter().map(String::as_str));
                p.item_ends.push(count_i32(p.items.len())?);
            }
        }
        let params: [&(dyn ToSql + Sync); 11] = [
            &p.docs,
            &p.expected,
            &p.counts,
            &p.records,
            &p.index,
            &p.states,
            &p.due,
            &p.reviewers,
            &p.reviewer_ends,
            &p.items,
            &p.item_ends,
        ];
        let mut attempt = 0;
        let lens: Vec<i64> = loop {
            attempt += 1;
            match conn.query_one(&stmt, &params).await {
                Ok(row) => break row.get(0),
                Err(e) if retryable(&e) && attempt < 5 => {
                    tracing::debug!(error = %describe(&e), "retrying a group commit");
                }
                Err(e) => return Err(self.server.store_error(&e)),
            }
        };
        if lens.len() != ops.len() {
            return Err(StoreError::Backend(format!(
                "PostgreSQL at {}: {} answers to a group commit of {}",
                self.server.name,
                lens.len(),
                ops.len()
            )));
        }
        let mut answers: Vec<Option<Result<Done, StoreError>>> = ops.iter().map(|_| None).collect();
        for (i, len) in order.iter().zip(lens) {
            answers[*i] = Some(ops[*i].answer(Step::Len(len)));
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// A batch in one transaction: `BEGIN`, its statements and `COMMIT` pipelined on one
    /// connection. Returns one answer per operation, in the batch's order, or an error for
    /// all of them when the transaction did not commit.
    async fn batch(&self, ops: &[Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        if ops.iter().all(|op| matches!(op, Op::Commit { .. })) {
            return self.commit_batch(ops).await;
        }
        let conn = self.conn().await?;
        let begin = self.prepare(&conn, "BEGIN").await?;
        let commit = self.prepare(&conn, "COMMIT").await?;
        // Row locks in one global order: see the module's documentation.
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by(|a, b| ops[*a].lock_order().cmp(&ops[*b].lock_order()));
        let mut stmts = Vec::with_capacity(ops.len());
        for i in &order {
            stmts.push(self.prepare(&conn, ops[*i].sql(&self.sql)).await?);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> =
                Vec::with_capacity(ops.len() + 2);
            futures.push(Box::pin(async {
                conn.execute(&begin, &[]).await.map(|_| Step::Rows(0))
            }));
            for (i, stmt) in order.iter().zip(&stmts) {
                let op = &ops[*i];
                let conn = &conn;
                futures.push(Box::pin(async move { op.run(conn, stmt).await }));
            }
            futures.push(Box::pin(async {
                conn.execute(&commit, &[]).await.map(|_| Step::Rows(0))
            }));
            let mut steps = join_in_order(futures).await;
            let committed = steps.pop();
            // The first failure is the cause; the statements after it only say that the
            // transaction was aborted, and `COMMIT` then rolls back.
            let failed = steps.iter().find_map(|s| s.as_ref().err());
            match (failed, committed) {
                (None, Some(Ok(_))) => {
                    let mut answers: Vec<Option<Result<Done, StoreError>>> =
                        ops.iter().map(|_| None).collect();
                    for (i, step) in order.iter().zip(steps.into_iter().skip(1)) {
                        answers[*i] = Some(
                            step.map_err(|e| self.server.store_error(&e))
                                .and_then(|s| ops[*i].answer(s)),
                        );
                    }
                    return Ok(answers.into_iter().flatten().collect());
                }
                (Some(e), _) if retryable(e) && attempt < 5 => {
                    tracing::debug!(error = %describe(e), "retrying a batch");
                    // The transaction was rolled back; end it before the next attempt.
                    continue;
                }
                (Some(e), _) => return Err(self.server.store_error(e)),
                (None, Some(Err(e))) => return Err(self.server.store_error(&e)),
                (None, None) => return Err(closed()),
            }
        }
    }
}

/// The server's name for messages (`HOST:PORT`), and its user and database.
#[derive(Debug, Clone)]
struct Server {
    name: String,
    user: String,
    database: String,
}

impl Server {
    fn of(pg: &tokio_postgres::Config) -> Server {
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let user = pg.get_user().unwrap_or("(none)").to_owned();
        Server {
            name: format!("{host}:{port}"),
            database: pg.get_dbname().unwrap_or(&user).to_owned(),
            user,
        }
    }

    fn error(&self, detail: String) -> PgError {
        PgError::Server {
            server: self.name.clone(),
            detail,
        }
    }

    /// Why a new connection failed.
    fn open_error(&self, e: PoolError, timeout: Duration) -> PgError {
        let timed_out = || PgError::Timeout {
            server: self.name.clone(),
            seconds: timeout.as_secs().max(1),
        };
        match e {
            PoolError::Timeout(_) => timed_out(),
            PoolError::Backend(e) => {
                if let Some(db) = e.as_db_error() {
                    let code = db.code();
                    let login = code.code().starts_with("28")
                        || *code == SqlState::INVALID_CATALOG_NAME
                        || *code == SqlState::INSUFFICIENT_PRIVILEGE;
                    if login {
                        return PgError::LoginRefused {
                            server: self.name.clone(),
                            user: self.user.clone(),
                            database: self.database.clone(),
                            detail: db.message().to_owned(),
                        };
                    }
                    return self.error(db.to_string());
                }
                let text = describe(&e);
                if text.contains("timed out") || text.contains("timeout") {
                    timed_out()
                } else if text.contains("TLS") || text.contains("certificate") {
                    // The handshake failed, or the server does not do TLS where it is
                    // required ("server does not support TLS").
                    PgError::Tls {
                        server: self.name.clone(),
                        detail: text,
                    }
                } else {
                    PgError::Unreachable {
                        server: self.name.clone(),
                        detail: text,
                    }
                }
            }
            e => self.error(e.to_string()),
        }
    }

    fn store_error(&self, e: &tokio_postgres::Error) -> StoreError {
        // The connection went away: the server may or may not have committed.
        let lost =
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        if lost {
            StoreError::Backend(format!(
                "PostgreSQL at {}: {} (if this was a write, whether it committed is unknown: \
                 read the document again)",
                self.name,
                describe(e)
            ))
        } else {
            StoreError::Backend(format!("PostgreSQL at {}: {}", self.name, describe(e)))
        }
    }
}

/// One write, with its parameters owned (it runs on the store's runtime).
#[derive(Debug)]
enum Op {
    Commit {
        doc: String,
        expected: i64,
        count: i32,
        records: String,
        entry: Option<Row>,
        items: Vec<String>,
    },
    Upsert(Row),
    Enqueue(Vec<String>),
    Ack(i64),
    PutWorkflow {
        hash: String,
        source: Vec<u8>,
    },
}

/// An index row as parameters.
#[derive(Debug, Clone)]
struct Row {
    doc: Vec<u8>,
    state: Vec<u8>,
    reviewers: Vec<Vec<u8>>,
    due: Option<i64>,
}

impl Row {
    fn of(e: &IndexEntry) -> Row {
        Row {
            doc: e.doc.as_bytes().to_vec(),
            state: e.state.as_bytes().to_vec(),
            reviewers: e
                .pending_reviewers
                .iter()
                .map(|r| r.as_bytes().to_vec())
                .collect(),
            due: e.due_at.map(|t| t.0),
        }
    }
}

/// What a statement returned.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `signoff_commit`'s answer.
    Len(i64),
    /// Rows affected.
    Rows(u64),
}

/// What a successful operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Len(u64),
    Unit,
}

impl Op {
    fn sql<'s>(&self, sql: &'s Sql) -> &'s str {
        match self {
            Op::Commit { .. } => &sql.commit,
            Op::Upsert(_) => &sql.upsert,
            Op::Enqueue(_) => &sql.enqueue,
            Op::Ack(_) => &sql.ack,
            Op::PutWorkflow { .. } => &sql.put_workflow,
        }
    }

    /// The order in which a batch runs its operations: by the rows they lock.
    fn lock_order(&self) -> (u8, &[u8]) {
        match self {
            Op::Commit { doc, .. } => (0, doc.as_bytes()),
            Op::Upsert(row) => (0, &row.doc),
            Op::PutWorkflow { hash, .. } => (1, hash.as_bytes()),
            Op::Ack(_) => (2, &[]),
            Op::Enqueue(_) => (3, &[]),
        }
    }

    async fn run(&self, conn: &Object, stmt: &Statement) -> Result<Step, tokio_postgres::Error> {
        match self {
            Op::Commit {
                doc,
                expected,
                count,
                records,
                entry,
                items,
            } => {
                let empty = Row {
                    doc: Vec::new(),
                    state: Vec::new(),
                    reviewers: Vec::new(),
                    due: None,
                };
                let row = entry.as_ref().unwrap_or(&empty);
                let has_entry = entry.is_some();
                let doc = doc.as_bytes();
                let params: [&(dyn ToSql + Sync); 9] = [
                    &doc,
                    expected,
                    count,
                    records,
                    &has_entry,
                    &row.state,
                    &row.reviewers,
                    &row.due,
                    items,
                ];
                let r = conn.query_one(stmt, &params).await?;
                Ok(Step::Len(r.get(0)))
            }
            Op::Upsert(row) => conn
                .execute(stmt, &[&row.doc, &row.state, &row.reviewers, &row.due])
                .await
                .map(Step::Rows),
            Op::Enqueue(items) => conn.execute(stmt, &[items]).await.map(Step::Rows),
            Op::Ack(id) => conn.execute(stmt, &[id]).await.map(Step::Rows),
            Op::PutWorkflow { hash, source } => {
                conn.execute(stmt, &[hash, source]).await.map(Step::Rows)
            }
        }
    }

    fn answer(&self, step: Step) -> Result<Done, StoreError> {
        match (self, step) {
            (Op::Commit { doc, expected, .. }, Step::Len(n)) if n < 0 => {
                Err(StoreError::Conflict {
                    doc: doc.clone(),
                    expected: *expected as u64,
                    actual: (-1 - n) as u64,
                })
            }
            (Op::Commit { .. }, Step::Len(n)) => Ok(Done::Len(n as u64)),
            (Op::Ack(id), Step::Rows(0)) => Err(StoreError::UnknownOutboxItem(*id as u64)),
            (_, Step::Rows(_)) => Ok(Done::Unit),
            (_, Step::Len(_)) => Err(StoreError::Backend(
                "PostgreSQL answered a write out of turn".into(),
            )),
        }
    }
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("op", &self.op).finish()
    }
}

/// The group-commit writer: takes up to `max` queued operations (never waiting for more),
/// commits them in one transaction, answers each caller.
async fn write_batches(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Request>, max: usize) {
    let mut batch: Vec<Request> = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.drain(..).map(|r| (r.op, r.reply)).unzip();
        inner.commits.fetch_add(1, Ordering::Relaxed);
        inner
            .operations
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let answers = if ops.len() == 1 {
            inner
                .bounded(async { Ok(inner.single(&ops[0]).await) })
                .await
                .map(|a| vec![a])
        } else {
            inner.bounded(inner.batch(&ops)).await
        };
        match answers {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ops = ops.len(), "a group commit failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Polls the futures in order (so that a pipeline's messages leave in that order: each of
/// them sends its request when first polled) until all are done.
async fn join_in_order<'a, T>(
    mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>,
) -> Vec<T> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// The arrays of `signoff_commit_batch`, borrowed from the batch's operations.
#[derive(Debug, Default)]
struct BatchParams<'a> {
    docs: Vec<&'a [u8]>,
    expected: Vec<i64>,
    counts: Vec<i32>,
    records: Vec<&'a str>,
    index: Vec<bool>,
    states: Vec<&'a [u8]>,
    due: Vec<Option<i64>>,
    reviewers: Vec<&'a [u8]>,
    reviewer_ends: Vec<i32>,
    items: Vec<&'a str>,
    item_ends: Vec<i32>,
}

fn count_i32(n: usize) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| StoreError::Backend(format!("{n} values in one group commit")))
}

/// A parameter of a query that returns document ids.
#[derive(Debug)]
enum Param {
    Bytes(Vec<u8>),
    Int(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Bytes(b) => b,
            Param::Int(i) => i,
        }
    }
}

fn decode_outbox(raw: Vec<(i64, String)>) -> Result<Vec<(u64, Notification)>, StoreError> {
    raw.into_iter()
        .map(|(id, json)| {
            let n = serde_json::from_str(&json).map_err(|e| {
                StoreError::Backend(format!("outbox item {id} does not decode: {e}"))
            })?;
            Ok((id as u64, n))
        })
        .collect()
}

fn json_texts(items: Vec<Vec<u8>>) -> Result<Vec<String>, StoreError> {
    items
        .into_iter()
        .map(|b| {
            String::from_utf8(b).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
        })
        .collect()
}

/// A `u64` as a PostgreSQL `bigint`, saturating.
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The advisory-lock key of a schema (FNV-1a of its name).
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"signoff:".iter().chain(schema.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Deadlocks and serialization failures: the server rolled the transaction back, so it can
/// run again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// An error with its causes (tokio-postgres's `Display` leaves them out).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn closed() -> StoreError {
    StoreError::Backend("the PostgreSQL store was closed".into())
}
