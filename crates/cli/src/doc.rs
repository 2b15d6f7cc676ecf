//! `signoff doc|pending|audit|tick`: approval workflows for local use, over the default
//! embedded store (a redb file, `./signoff.redb` unless `--store PATH` says otherwise).
//!
//! To be wired into the `signoff` binary as top-level subcommands: add
//! `#[command(flatten)] Local(doc::LocalCommand)` to the top-level `Command` enum and call
//! `doc::run(&cmd, out, err)`. Every write is one durable transaction: the records, the
//! document's index row and its notifications together.

use std::io::Write;
use std::path::{Path, PathBuf};

use signoff_core::anchor::{
    Anchor, AnchorError, AnchoredDoc, DocStatus, KeyError, PublicKey, SecretKey,
};
use signoff_core::audit::{AnchorOutcome, ExportError, ExportInfo};
use signoff_core::event::{Action, AuthInput, Event, SignatureInput};
use signoff_core::notify::notifications;

use crate::safe::safe;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::workflow::Meaning;
use signoff_core::{Command, DocState, Record, Timestamp, Workflow, audit};
use signoff_storage::{
    LocalStore, OpenError, PgConfig, PgError, PgOpen, PgStore, RedbStore, StoreConfig,
};

/// The local-store commands, each a top-level `signoff` subcommand.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LocalCommand {
    /// Documents in a local store: create, edit, submit, decide, sign, delegate, status,
    /// history.
    Doc {
        #[command(flatten)]
        store: StoreArg,
        #[command(subcommand)]
        cmd: DocCommand,
    },
    /// The documents waiting for a user's decision: as a reviewer, or as the delegate of one
    /// (those lines end with "on behalf of REVIEWER").
    Pending {
        /// The reviewer.
        #[arg(long)]
        user: String,
        /// Count delegations valid at this time (default: now, from the system clock).
        #[arg(long, value_name = "TIME")]
        at: Option<Timestamp>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Verify or export the audit trail.
    Audit {
        #[command(flatten)]
        store: StoreArg,
        #[command(subcommand)]
        cmd: AuditCommand,
    },
    /// Notifications waiting for delivery: list them, or deliver them through a program of
    /// yours (mail, chat, a ticket system).
    Outbox {
        #[command(flatten)]
        store: StoreArg,
        #[command(subcommand)]
        cmd: OutboxCommand,
    },
    /// Stores as a whole: copy one into another (a redb file into PostgreSQL, say).
    Store {
        #[command(subcommand)]
        cmd: StoreCommand,
    },
    /// Fire what is due at a time: deadlines, escalations, reminders, periodic reviews.
    Tick {
        /// The time, as 2026-01-05T09:00:00Z.
        #[arg(long)]
        now: Timestamp,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// `signoff outbox ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OutboxCommand {
    /// The notifications waiting for delivery, oldest first: id, kind, document, recipients
    /// and text (a line each), or their JSON with `--format jsonl`.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[arg(long, value_enum, default_value = "text")]
        format: OutboxFormat,
    },
    /// Deliver waiting notifications, oldest first, through PROGRAM: it runs once per
    /// notification with the notification's JSON on stdin (`doc`, `seq`, `at`, `kind`, `to`,
    /// `text`), without a shell; exit status 0 acknowledges it (it leaves the outbox),
    /// anything else, or running longer than --timeout (it is killed), leaves it waiting for
    /// the next run. Delivery is at least once: a program that did its work and then failed
    /// sees the notification again. On PostgreSQL several workers (processes, machines) may
    /// deliver from one outbox at once: each takes notifications no other holds, for
    /// --lease seconds (at least 5 s longer than --timeout); a notification whose lease ran
    /// out before its program finished is not acknowledged by this worker, and a failed one
    /// is given back at once. A redb file is held for the whole run:
    /// commands that write to it meanwhile wait (their --wait). Exit code 1 when a delivery
    /// failed.
    ///
    /// Example: signoff outbox deliver -- /usr/local/bin/send-approval-mail
    Deliver {
        /// At most this many notifications in this run.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// How long PROGRAM may run for one notification before it is killed (seconds).
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_run_time)]
        timeout: f64,
        /// On PostgreSQL, how long a notification is held for this worker (seconds): other
        /// workers skip it meanwhile. At least 5 s longer than --timeout.
        #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = parse_run_time)]
        lease: f64,
        /// The program and its arguments, after `--`.
        #[arg(required = true, last = true, value_name = "PROGRAM")]
        program: Vec<String>,
    },
}

/// `outbox list --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutboxFormat {
    /// One line per notification: id, kind, document, recipients, text (tab-separated).
    Text,
    /// One JSON object per line: `{"id":..,"notification":{..}}`.
    Jsonl,
}

/// How much longer than a delivery's timeout its lease must be (seconds): the time to
/// claim, start the program, end it and acknowledge.
const LEASE_MARGIN: f64 = 5.0;

/// A run time in seconds: more than 0, at most a day.
fn parse_run_time(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds above 0 and at most 86400"
        )),
    }
}

/// `signoff store ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy every document and the workflows they use from one store into another: a redb
    /// file into PostgreSQL when a service outgrows one machine, or back into a file.
    ///
    /// The source is only read (a redb file may be in use meanwhile). Each document's audit
    /// chain is verified first and its records are copied as they are, so its hashes, and
    /// the anchors signed over them, stay valid; its index row (state, pending reviewers,
    /// due date) is rebuilt from them, in the same transaction. A document the destination
    /// already holds with the same records is left alone, and one whose records there are a
    /// beginning of the source's gets the rest appended: run the copy again to catch up with
    /// a source still in use. A document whose chain does not verify, or that the
    /// destination holds with other records, is reported and not copied (exit code 1); the
    /// others are. A PostgreSQL store's schema is `SIGNOFF_PG_SCHEMA` (else `signoff`), or
    /// --from-schema and --to-schema.
    Copy {
        /// The store to copy from: a redb file or a `postgres://` URL.
        #[arg(value_name = "FROM")]
        from: PathBuf,
        /// The store to copy into: a redb file (created when it does not exist) or a
        /// `postgres://` URL.
        #[arg(value_name = "TO")]
        to: PathBuf,
        /// Also copy the notifications waiting for delivery in the source, oldest first
        /// (refused when the destination has some waiting: a second run would send them
        /// twice). Without it they stay in the source only, and the summary counts them.
        #[arg(long)]
        outbox: bool,
        /// The schema of a PostgreSQL FROM (default: `SIGNOFF_PG_SCHEMA`, else `signoff`).
        #[arg(long, value_name = "SCHEMA")]
        from_schema: Option<String>,
        /// The schema of a PostgreSQL TO (default: `SIGNOFF_PG_SCHEMA`, else `signoff`): with
        /// --from-schema, a store moves between two schemas of one database.
        #[arg(long, value_name = "SCHEMA")]
        to_schema: Option<String>,
        /// How long to wait for a destination file another process is writing to before
        /// giving up (seconds; 0 fails at once).
        #[arg(
            long = "wait",
            value_name = "SECONDS",
            default_value_t = 5.0,
            value_parser = parse_wait
        )]
        wait: f64,
    },
}

/// Where the store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// The store: a redb file (`doc create` creates it when it does not exist), or a
    /// PostgreSQL database, `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (tables in the
    /// schema `signoff`, or the one `SIGNOFF_PG_SCHEMA` names; created on first use).
    #[arg(
        long = "store",
        value_name = "PATH|URL",
        default_value = "./signoff.redb",
        global = true
    )]
    pub path: PathBuf,
    /// How long a command that writes waits for a store another process is writing to
    /// before it gives up (seconds; 0 fails at once). Reading never waits: it takes no lock.
    #[arg(
        long = "wait",
        value_name = "SECONDS",
        default_value_t = 5.0,
        global = true,
        value_parser = parse_wait
    )]
    pub wait: f64,
}

/// `--wait`: a number of seconds from 0 to one day.
fn parse_wait(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0 to 86400"
        )),
    }
}

/// Who acts, when, and why: the options every document command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Actor {
    /// The user who acts.
    #[arg(long)]
    pub by: String,
    /// Act for this user, under a delegation.
    #[arg(long, value_name = "USER")]
    pub on_behalf_of: Option<String>,
    #[arg(long)]
    pub comment: Option<String>,
    /// The time of the action (default: now, from the system clock).
    #[arg(long, value_name = "TIME")]
    pub at: Option<Timestamp>,
}

/// `signoff doc ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DocCommand {
    /// Create a document (version 1) under a workflow definition, stored with the document.
    Create {
        /// The document id.
        id: String,
        /// The workflow definition (YAML or JSON), e.g. crates/core/templates/basic.yaml.
        #[arg(long, value_name = "FILE")]
        workflow: PathBuf,
        /// The title (default: the id).
        #[arg(long)]
        title: Option<String>,
        /// The hash (or any identifier) of the content of version 1.
        #[arg(long, default_value = "v1")]
        content_hash: String,
        /// The page owner (default: the author).
        #[arg(long)]
        page_owner: Option<String>,
        /// Space administrators, comma-separated.
        #[arg(long, value_delimiter = ',')]
        space_admins: Vec<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// A new version of the document.
    Edit {
        id: String,
        #[arg(long)]
        content_hash: String,
        /// The parts that changed, comma-separated (default: anything may have changed).
        #[arg(long, value_delimiter = ',')]
        changed: Option<Vec<String>>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Submit the document for approval.
    Submit {
        id: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Approve the current version (or `--version N`).
    Approve {
        id: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        signature: SignatureArgs,
        #[command(flatten)]
        actor: Actor,
    },
    /// Reject the current version (or `--version N`).
    Reject {
        id: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Sign the current version without deciding (e.g. authorship).
    Sign {
        id: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        signature: SignatureArgs,
        #[command(flatten)]
        actor: Actor,
    },
    /// Let another user decide for you on this document until a time.
    Delegate {
        id: String,
        #[arg(long)]
        to: String,
        #[arg(long, value_name = "TIME")]
        until: Timestamp,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// The document's state, version, last approved version and pending reviewers.
    Status { id: String },
    /// The document's audit trail, one line per record.
    History { id: String },
}

/// An electronic signature on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct SignatureArgs {
    /// Sign, with this printed name.
    #[arg(long, value_name = "NAME")]
    pub sign_as: Option<String>,
    /// The meaning of the signature.
    #[arg(long, value_enum, default_value = "approval")]
    pub meaning: MeaningArg,
    /// How the signer re-authenticated (e.g. totp). The engine records it only when a
    /// verifier confirms it; the local CLI has none yet, so such signatures are refused
    /// (`evidence_unverifiable`): sign through the approval app, which verifies one-time codes.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// The one-time code (or other credential) for --auth-method; checked, never recorded.
    #[arg(long, value_name = "CODE", requires = "auth_method")]
    pub auth_code: Option<String>,
}

/// [`Meaning`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MeaningArg {
    Authorship,
    Review,
    Approval,
    Responsibility,
}

/// `signoff audit ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify every document's hash chain (or one document's), and that it replays; with
    /// `--anchor`, also that nothing recorded up to a signed checkpoint changed or
    /// disappeared; with `--export`, a self-verifying export, offline (no store needed).
    Verify {
        /// Only this document.
        #[arg(conflicts_with = "export")]
        id: Option<String>,
        /// A signed checkpoint written by `signoff audit anchor` (keep a copy away from the
        /// store: the store's own anchor folder is only as safe as the store).
        #[arg(long, value_name = "FILE", conflicts_with = "export")]
        anchor: Option<PathBuf>,
        /// A self-verifying export (`signoff audit export --format verifiable`).
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// The public key you trust (64 hex digits, or a file holding them); without it
        /// the key named inside the anchor is used, which proves only consistency.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
    },
    /// Export the audit trail of every document (or one) to stdout.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only this document.
        id: Option<String>,
        /// With `--format verifiable`: embed this anchor instead of the store's latest.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// With `--format verifiable`: the anchor folder to take the latest anchor from
        /// (default: STORE.anchors/ beside a store file; a PostgreSQL store needs it).
        #[arg(long, value_name = "DIR", conflicts_with = "anchor")]
        anchors: Option<PathBuf>,
    },
    /// Sign a checkpoint of every document's records (an anchor) into the store's anchor
    /// folder (STORE.anchors/, or --anchors DIR). Run it at chosen times, e.g. from cron.
    Anchor {
        /// The secret key file written by `signoff audit keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The anchor folder (default: STORE.anchors/ beside a store file). A PostgreSQL
        /// store has no file to put it beside: name a folder, ideally where the database's
        /// administrators cannot write.
        #[arg(long, value_name = "DIR")]
        anchors: Option<PathBuf>,
        /// Also write the anchor to this file (e.g. on storage the store's editors cannot
        /// reach).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write nothing when no document changed since the latest anchor (for timers that
        /// run often).
        #[arg(long)]
        if_changed: bool,
        /// The time recorded in the anchor (default: now, from the system clock).
        #[arg(long, value_name = "TIME")]
        at: Option<Timestamp>,
    },
    /// Generate an Ed25519 key pair for anchors: the secret key goes to FILE (mode 0600,
    /// never overwritten), the public key to FILE.pub and to stdout.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    /// JSON lines with a header (the latest anchor) and a trailer (each document's count and
    /// head), which `signoff audit verify --export FILE` checks offline.
    Verifiable,
}

/// Exit codes.
const OK: u8 = 0;
/// A command refused by the workflow, an unknown document, a chain that does not verify.
const FAILED: u8 = 1;
/// A store that is missing, locked or corrupted; an unreadable or invalid workflow file.
const UNUSABLE: u8 = 2;

/// Runs a local-store command. Returns the exit code: 0 done, 1 refused or failed check,
/// 2 the store or an input could not be used. Never panics on a bad store.
pub fn run(cmd: &LocalCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "signoff: cannot start the async runtime: {e}");
            return UNUSABLE;
        }
    };
    // Output errors (a closed pipe) leave nothing better to do than stop writing; the exit
    // code still tells the result.
    match rt.block_on(run_async(cmd, out, err)) {
        Ok(code) => code,
        Err(Failure { code, message }) => {
            let _ = writeln!(err, "signoff: {message}");
            code
        }
    }
}

/// Why a command stopped, with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: FAILED,
        message: message.into(),
    }
}

fn unusable(message: impl Into<String>) -> Failure {
    Failure {
        code: UNUSABLE,
        message: message.into(),
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Failure {
        unusable(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Conflict { doc, .. } => failed(format!(
                "{doc} was changed by someone else while this command ran; run it again"
            )),
            e => unusable(e.to_string()),
        }
    }
}

/// Reports a damaged document on `err` (store, document, what is wrong) for the commands that
/// go on with the others.
fn damaged(err: &mut dyn Write, store: &Path, id: &str, what: &str) {
    let _ = writeln!(
        err,
        "signoff: {}: document {}: damaged: {}",
        store.display(),
        safe(id),
        safe(what)
    );
}

/// The last line of a command that skipped damaged documents; its exit code is 1.
fn skipped(err: &mut dyn Write, n: usize) -> u8 {
    let _ = writeln!(
        err,
        "signoff: {n} damaged document{} (reported above); the others were done",
        if n == 1 { "" } else { "s" }
    );
    FAILED
}

async fn run_async(
    cmd: &LocalCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    match cmd {
        LocalCommand::Doc { store, cmd } => doc(store, cmd, out).await,
        LocalCommand::Pending { user, at, store } => {
            if user.trim().is_empty() {
                return Err(unusable("--user may not be empty or blank"));
            }
            let store = open(store, Access::Read).await?;
            let at = at.unwrap_or_else(system_now);
            // The index names delegates whose delegation may have ended since: the state
            // read back decides at `at`.
            let mut any = false;
            let mut bad = 0;
            for id in store.by_reviewer(user).await? {
                // One damaged document never hides the others' reviews.
                let (_, state, wf) = match load(&store, &id).await {
                    Ok(loaded) => loaded,
                    Err(f) => {
                        damaged(err, store.path(), &id, &f.message);
                        bad += 1;
                        continue;
                    }
                };
                let mut mine = state.pending_for(&wf, user, at);
                // Directly assigned first; one line per reviewer the user acts for.
                mine.sort_by(|a, b| a.on_behalf_of.cmp(&b.on_behalf_of));
                mine.dedup_by(|a, b| a.on_behalf_of == b.on_behalf_of);
                for p in mine {
                    any = true;
                    let _ = write!(
                        out,
                        "{}\t{}\tversion {}\t{}",
                        safe(&id),
                        safe(state.state_name(&wf)),
                        state.version,
                        safe(&state.title)
                    );
                    let _ = match &p.on_behalf_of {
                        Some(r) => writeln!(out, "\ton behalf of {}", safe(r)),
                        None => writeln!(out),
                    };
                }
            }
            if !any {
                let _ = writeln!(out, "nothing pending for {}", safe(user));
            }
            Ok(if bad > 0 { skipped(err, bad) } else { OK })
        }
        LocalCommand::Audit { store, cmd } => match cmd {
            // These two never open the store: an auditor has none, and a key is not data.
            AuditCommand::Keygen { out: path } => audit_keygen(path, out),
            AuditCommand::Verify {
                export: Some(file),
                public_key,
                ..
            } => audit_verify_export(file, public_key.as_deref(), out),
            AuditCommand::Verify {
                id,
                anchor: None,
                public_key: None,
                ..
            } => verify(&open(store, Access::Read).await?, id.as_deref(), out).await,
            AuditCommand::Verify { anchor: None, .. } => Err(unusable(
                "--public-key goes with --anchor FILE or --export FILE",
            )),
            AuditCommand::Verify {
                id,
                anchor: Some(file),
                public_key,
                ..
            } => {
                let db = open(store, Access::Read).await?;
                audit_verify_anchor(&db, id.as_deref(), file, public_key.as_deref(), out).await
            }
            AuditCommand::Export {
                format: ExportFormat::Verifiable,
                id,
                anchor,
                anchors,
            } => {
                // An anchor named on the command line needs no folder; a folder named on it
                // must hold one.
                let dir = match anchor {
                    Some(_) => None,
                    None => Some(anchor_folder(store, anchors.as_deref())?),
                };
                if let (Some(named), Some(dir)) = (anchors, &dir)
                    && latest_anchor(dir)?.is_none()
                {
                    return Err(unusable(format!(
                        "no anchor in {} (named by --anchors): write one with signoff audit \
                         anchor --anchors {}",
                        named.display(),
                        named.display()
                    )));
                }
                let db = open(store, Access::Read).await?;
                audit_export(&db, dir.as_deref(), id.as_deref(), anchor.as_deref(), out).await
            }
            AuditCommand::Export {
                anchor: Some(_), ..
            } => Err(unusable("--anchor goes with --format verifiable")),
            AuditCommand::Export {
                anchors: Some(_), ..
            } => Err(unusable("--anchors goes with --format verifiable")),
            AuditCommand::Export { format, id, .. } => {
                export(
                    &open(store, Access::Read).await?,
                    id.as_deref(),
                    *format,
                    out,
                    err,
                )
                .await
            }
            AuditCommand::Anchor {
                key,
                anchors,
                out: copy,
                if_changed,
                at,
            } => {
                let dir = anchor_folder(store, anchors.as_deref())?;
                let db = open(store, Access::Read).await?;
                let at = at.unwrap_or_else(system_now);
                audit_anchor(&db, &dir, key, copy.as_deref(), *if_changed, at, out).await
            }
        },
        LocalCommand::Outbox { store, cmd } => match cmd {
            OutboxCommand::List { limit, format } => {
                let db = open(store, Access::Read).await?;
                outbox_list(&db, *limit as usize, *format, out).await
            }
            OutboxCommand::Deliver {
                limit,
                timeout,
                lease,
                program,
            } => {
                if *lease < timeout + LEASE_MARGIN {
                    return Err(unusable(format!(
                        "--lease ({lease} s) must be at least {LEASE_MARGIN} s longer than \
                         --timeout ({timeout} s): otherwise another worker could take a \
                         notification while it is being delivered"
                    )));
                }
                let db = open(store, Access::Write).await?;
                outbox_deliver(&db, *limit as usize, *timeout, *lease, program, out, err).await
            }
        },
        LocalCommand::Store {
            cmd:
                StoreCommand::Copy {
                    from,
                    to,
                    outbox,
                    from_schema,
                    to_schema,
                    wait,
                },
        } => {
            let schemas = [
                from_schema.clone().unwrap_or_else(default_schema),
                to_schema.clone().unwrap_or_else(default_schema),
            ];
            store_copy([from, to], schemas, *outbox, *wait, out, err).await
        }
        LocalCommand::Tick { now, store } => {
            let store = open(store, Access::Write).await?;
            let mut fired = 0;
            let mut bad = 0;
            for (id, _) in store.documents().await? {
                // A damaged document is reported and the others still get their deadlines.
                let (_, state, wf) = match load(&store, &id).await {
                    Ok(loaded) => loaded,
                    Err(f) => {
                        damaged(err, store.path(), &id, &f.message);
                        bad += 1;
                        continue;
                    }
                };
                if let Some(decided) = state.tick(&wf, *now) {
                    let _ = writeln!(out, "{}: {}", safe(&id), actions(&decided.records));
                    fired += decided.records.len();
                    commit(&store, &id, state.seq, &wf, decided).await?;
                }
            }
            let _ = writeln!(out, "tick {now}: {fired} records");
            Ok(if bad > 0 { skipped(err, bad) } else { OK })
        }
    }
}

async fn doc(arg: &StoreArg, cmd: &DocCommand, out: &mut dyn Write) -> Result<u8, Failure> {
    let id = match cmd {
        DocCommand::Create { id, .. }
        | DocCommand::Edit { id, .. }
        | DocCommand::Submit { id, .. }
        | DocCommand::Approve { id, .. }
        | DocCommand::Reject { id, .. }
        | DocCommand::Sign { id, .. }
        | DocCommand::Delegate { id, .. }
        | DocCommand::Status { id }
        | DocCommand::History { id } => id,
    };
    if id.trim().is_empty() {
        return Err(unusable("a document id may not be empty or blank"));
    }
    if let DocCommand::Create {
        id,
        workflow,
        title,
        content_hash,
        page_owner,
        space_admins,
        actor,
    } = cmd
    {
        let source = signoff_yaml::input::read_text(workflow, signoff_yaml::input::TEXT_LIMIT)
            .map_err(|e| unusable(e.to_string()))?;
        let wf = Workflow::from_text(&source, &workflow.display().to_string()).map_err(|e| {
            unusable(format!(
                "{} is not a valid workflow (see `signoff workflow validate`):\n{e}",
                workflow.display()
            ))
        })?;
        let store = open(arg, Access::Create).await?;
        if !store.read(id, 0).await?.is_empty() {
            return Err(failed(format!(
                "document {id} already exists in {}",
                store.path().display()
            )));
        }
        store.put_workflow(wf.hash(), &source).await?;
        let command = command(
            actor,
            Action::Create {
                title: title.clone().unwrap_or_else(|| id.clone()),
                content_hash: content_hash.clone(),
                page_owner: page_owner.clone(),
                space_admins: space_admins.clone(),
            },
        );
        let decided =
            DocState::create(&wf, id, &command, now(actor)).map_err(|r| failed(r.to_string()))?;
        let state = decided.state.clone();
        // A new stream: a concurrent create of the same id fails with a conflict.
        commit(&store, id, 0, &wf, decided).await?;
        let _ = writeln!(
            out,
            "{}: created by {} under workflow {} ({}), state {}",
            safe(id),
            safe(&actor.by),
            safe(wf.name()),
            short(wf.hash()),
            safe(state.state_name(&wf))
        );
        return Ok(OK);
    }

    let access = match cmd {
        DocCommand::Status { .. } | DocCommand::History { .. } => Access::Read,
        _ => Access::Write,
    };
    let store = open(arg, access).await?;
    let id = match cmd {
        DocCommand::Create { id, .. }
        | DocCommand::Edit { id, .. }
        | DocCommand::Submit { id, .. }
        | DocCommand::Approve { id, .. }
        | DocCommand::Reject { id, .. }
        | DocCommand::Sign { id, .. }
        | DocCommand::Delegate { id, .. }
        | DocCommand::Status { id }
        | DocCommand::History { id } => id,
    };
    let (records, state, wf) = load(&store, id).await?;
    let (actor, action) = match cmd {
        DocCommand::Status { .. } => return status(&records, &state, &wf, out),
        DocCommand::History { .. } => {
            for r in &records {
                let _ = writeln!(out, "{}", history_line(r));
            }
            return Ok(OK);
        }
        DocCommand::Create { .. } => unreachable!("handled above"),
        DocCommand::Edit {
            content_hash,
            changed,
            actor,
            ..
        } => (
            actor,
            Action::Edit {
                content_hash: content_hash.clone(),
                changed: changed.clone(),
            },
        ),
        DocCommand::Submit { actor, .. } => (actor, Action::Submit),
        DocCommand::Approve {
            version,
            signature,
            actor,
            ..
        } => (
            actor,
            Action::Approve {
                version: version.unwrap_or(state.version),
                signature: signature.input(),
            },
        ),
        DocCommand::Reject { version, actor, .. } => (
            actor,
            Action::Reject {
                version: version.unwrap_or(state.version),
            },
        ),
        DocCommand::Sign {
            version,
            signature,
            actor,
            ..
        } => {
            let Some(signature) = signature.input() else {
                return Err(failed(
                    "sign needs --sign-as NAME (the signer's printed name)",
                ));
            };
            (
                actor,
                Action::Sign {
                    version: version.unwrap_or(state.version),
                    signature,
                },
            )
        }
        DocCommand::Delegate {
            to,
            until,
            reason,
            actor,
            ..
        } => (
            actor,
            Action::Delegate {
                to: to.clone(),
                until: *until,
                reason: reason.clone(),
            },
        ),
    };
    let name = action.name();
    let decided = state
        .decide(&wf, &command(actor, action), now(actor))
        .map_err(|r| failed(r.to_string()))?;
    let after = decided.state.clone();
    let n = decided.records.len();
    commit(&store, id, state.seq, &wf, decided).await?;
    let _ = writeln!(
        out,
        "{}: {name} by {}: {} records, state {}, version {}{}",
        safe(id),
        safe(&actor.by),
        n,
        safe(after.state_name(&wf)),
        after.version,
        waiting(&after, &wf)
    );
    Ok(OK)
}

/// Appends a decision's records with the document's new index row and its notifications,
/// in one durable commit.
async fn commit(
    store: &Db,
    id: &str,
    expected: u64,
    wf: &Workflow,
    decided: signoff_core::state::Decided,
) -> Result<u64, Failure> {
    let notes: Vec<_> = decided
        .records
        .iter()
        .flat_map(|r| notifications(&decided.state, r))
        .collect();
    let entry = IndexEntry::of(&decided.state, wf);
    Ok(store
        .commit(id, expected, &decided.records, Some(entry), &notes)
        .await?)
}

/// Whether a command only reads the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Opened read-only: the file is never written (it may lack write permission), even
    /// when redb would repair or migrate it (that happens in memory).
    Read,
    Write,
    /// Written, and a redb file is created when there is none.
    Create,
}

/// An opened store: a redb file or a PostgreSQL database, with the name messages give it
/// (the file's path, or `postgres://HOST:PORT/DATABASE (schema S)`: never the password).
struct Db {
    store: std::sync::Arc<dyn LocalStore>,
    /// The same store when it is PostgreSQL (for what only it does: `claim`).
    pg: Option<std::sync::Arc<PgStore>>,
    shown: PathBuf,
}

impl std::ops::Deref for Db {
    type Target = dyn LocalStore;

    fn deref(&self) -> &(dyn LocalStore + 'static) {
        self.store.as_ref()
    }
}

impl Db {
    fn path(&self) -> &Path {
        &self.shown
    }

    /// The oldest waiting notification no other worker holds, held for `lease` (on
    /// PostgreSQL); from a redb file, which this process holds alone while it writes, the
    /// oldest `limit` waiting.
    async fn claim(
        &self,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<(u64, signoff_core::notify::Notification)>, StoreError> {
        match &self.pg {
            Some(pg) => pg.claim(limit, lease).await,
            None => self.pending(limit).await,
        }
    }
}

/// Opens the store `--store` names: a redb file (read-only for `Access::Read`, waiting up
/// to `--wait` seconds for another writer otherwise), or a PostgreSQL database when it is
/// a `postgres://` or `postgresql://` URL (any number of processes share it: no waiting).
async fn open(arg: &StoreArg, access: Access) -> Result<Db, Failure> {
    open_in(arg, access, None).await
}

/// The schema of a PostgreSQL store: `SIGNOFF_PG_SCHEMA`, else `signoff`.
fn default_schema() -> String {
    std::env::var("SIGNOFF_PG_SCHEMA").unwrap_or_else(|_| "signoff".into())
}

/// As [`open`], with a PostgreSQL store in `schema` when given.
async fn open_in(arg: &StoreArg, access: Access, schema: Option<&str>) -> Result<Db, Failure> {
    if let Some(url) = postgres_url(&arg.path) {
        let schema = schema.map_or_else(default_schema, str::to_owned);
        let config = PgConfig {
            schema: schema.clone(),
            pool_size: 2,
            // As with a redb file: only `doc create` (and a copy's destination) makes a store.
            open: match access {
                Access::Read => PgOpen::ReadOnly,
                Access::Write => PgOpen::Existing,
                Access::Create => PgOpen::Create,
            },
            ..PgConfig::default()
        };
        let store = PgStore::connect(url, config).await.map_err(|e| match e {
            PgError::NoStore { .. } => unusable(format!(
                "{e} (create one first, e.g. with `signoff doc create`; SIGNOFF_PG_SCHEMA \
                 names the schema)"
            )),
            e => unusable(e.to_string()),
        })?;
        let shown = PathBuf::from(format!("postgres://{} (schema {schema})", store.server()));
        let store = std::sync::Arc::new(store);
        return Ok(Db {
            store: store.clone(),
            pg: Some(store),
            shown,
        });
    }
    let store = match access {
        Access::Read => RedbStore::open_read_only(&arg.path)?,
        Access::Write => open_waiting(arg, |p| RedbStore::open(p, StoreConfig::durable()))?,
        Access::Create => open_waiting(arg, |p| RedbStore::create(p, StoreConfig::durable()))?,
    };
    Ok(Db {
        store: std::sync::Arc::new(store),
        pg: None,
        shown: arg.path.clone(),
    })
}

/// `--store` as a PostgreSQL URL, if it is one.
fn postgres_url(store: &Path) -> Option<&str> {
    let text = store.to_str()?;
    (text.starts_with("postgres://") || text.starts_with("postgresql://")).then_some(text)
}

/// The anchor folder: `--anchors DIR`, else STORE.anchors beside a store file. A PostgreSQL
/// store has no file to put it beside, so it needs `--anchors`.
fn anchor_folder(arg: &StoreArg, anchors: Option<&Path>) -> Result<PathBuf, Failure> {
    match (anchors, postgres_url(&arg.path)) {
        (Some(dir), _) => Ok(dir.to_owned()),
        (None, Some(_)) => Err(unusable(
            "a PostgreSQL store has no file to keep its anchors beside: name their folder \
             with --anchors DIR (somewhere the database's administrators cannot write)",
        )),
        (None, None) => Ok(anchors_dir(&arg.path)),
    }
}

/// Opens a store to write, waiting up to `--wait` seconds while another process holds it:
/// two CLI writers at once take turns instead of the second failing at once.
fn open_waiting(
    arg: &StoreArg,
    open: impl Fn(&Path) -> Result<RedbStore, OpenError>,
) -> Result<RedbStore, Failure> {
    let limit = std::time::Duration::from_secs_f64(arg.wait);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match open(&arg.path) {
            Err(OpenError::Locked { .. }) if started.elapsed() < limit => {
                std::thread::sleep(pause.min(limit.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(std::time::Duration::from_millis(250));
            }
            Err(OpenError::Locked { path }) => {
                return Err(unusable(format!(
                    "the store {} is in use by another process; waited {:.1} s (--wait SECONDS waits longer)",
                    path.display(),
                    started.elapsed().as_secs_f64()
                )));
            }
            other => return Ok(other?),
        }
    }
}

/// `signoff outbox list`.
async fn outbox_list(
    db: &Db,
    limit: usize,
    format: OutboxFormat,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let items = db.pending(limit).await?;
    if items.is_empty() && format == OutboxFormat::Text {
        let _ = writeln!(out, "no notifications waiting in {}", db.path().display());
    }
    for (id, n) in items {
        let _ = match format {
            OutboxFormat::Text => writeln!(
                out,
                "{id}\t{}\t{}\t{}\t{}",
                kind_name(n.kind),
                safe(&n.doc),
                safe(&n.to.join(",")),
                safe(&n.text)
            ),
            OutboxFormat::Jsonl => writeln!(
                out,
                "{}",
                serde_json::json!({ "id": id, "notification": n })
            ),
        };
    }
    Ok(OK)
}

/// A notification kind as its JSON names it.
fn kind_name(kind: signoff_core::notify::NotificationKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// How one delivery went.
enum Delivery {
    Done,
    Failed(String),
    /// PROGRAM could not be started at all: the run stops.
    Unrunnable(String),
}

/// `signoff outbox deliver -- PROGRAM ARGS...`: one notification at a time, each acked
/// when PROGRAM exits 0.
async fn outbox_deliver(
    db: &Db,
    limit: usize,
    timeout: f64,
    lease: f64,
    program: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    let timeout = std::time::Duration::from_secs_f64(timeout);
    let lease = std::time::Duration::from_secs_f64(lease);
    let (mut delivered, mut failed) = (0usize, 0usize);
    // From PostgreSQL one at a time, so that each is held from just before its delivery
    // (a lease longer than the timeout covers it); a redb file is this process's alone.
    let mut batch = std::collections::VecDeque::new();
    if db.pg.is_none() {
        batch.extend(db.claim(limit, lease).await?);
    }
    while delivered + failed < limit {
        if db.pg.is_some() {
            batch.extend(db.claim(1, lease).await?);
        }
        let Some((id, n)) = batch.pop_front() else {
            break;
        };
        let json =
            serde_json::to_vec(&n).map_err(|e| unusable(format!("notification {id}: {e}")))?;
        match run_delivery(program, &json, timeout) {
            Delivery::Done => {
                delivered += 1;
                match &db.pg {
                    Some(pg) => {
                        if !pg.ack_claimed(id).await? {
                            let _ = writeln!(
                                err,
                                "signoff: notification {id} ({}, document {}): delivered, but \
                                 its lease had run out: another worker may deliver it again",
                                kind_name(n.kind),
                                safe(&n.doc)
                            );
                        }
                    }
                    None => db.ack(id).await?,
                }
            }
            Delivery::Failed(why) => {
                failed += 1;
                if let Some(pg) = &db.pg {
                    // Given back now, so that the next run or another worker retries it.
                    pg.release(id).await?;
                }
                let _ = writeln!(
                    err,
                    "signoff: notification {id} ({}, document {}): {}: {}; it stays waiting",
                    kind_name(n.kind),
                    safe(&n.doc),
                    safe(&program[0]),
                    safe(&why)
                );
            }
            Delivery::Unrunnable(why) => {
                if let Some(pg) = &db.pg {
                    pg.release(id).await?;
                }
                return Err(unusable(format!(
                    "cannot run {}: {}; the run stopped after delivering {delivered} \
                     notification{}",
                    safe(&program[0]),
                    safe(&why),
                    if delivered == 1 { "" } else { "s" }
                )));
            }
        }
    }
    let waiting = db.pending(usize::MAX).await?.len();
    let _ = writeln!(
        out,
        "{delivered} delivered, {failed} failed; {waiting} waiting in {}",
        db.path().display()
    );
    Ok(if failed > 0 { FAILED } else { OK })
}

/// Runs PROGRAM with `input` on stdin, for at most `timeout`.
fn run_delivery(program: &[String], input: &[u8], timeout: std::time::Duration) -> Delivery {
    use std::process::{Command as Process, Stdio};
    let mut command = Process::new(&program[0]);
    // A group of its own, so that a timeout ends what it started too (`sh -c 'curl ...'`).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command
        .args(&program[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Delivery::Unrunnable(e.to_string()),
    };
    // Written on a thread of its own, so a program that never reads its input cannot block
    // this one; one that exits without reading it is judged by its exit status alone.
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    // The error output is read to its end on a thread of its own (so a chatty program never
    // blocks on a full pipe), keeping its first 4 KiB.
    let (said_tx, said_rx) = std::sync::mpsc::channel::<String>();
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut e, &mut chunk) {
                if n == 0 {
                    break;
                }
                let room = 4096usize.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            let _ = said_tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    }
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Delivery::Failed(format!("cannot wait for it: {e}")),
        }
    };
    // A process the program left behind may hold its error output open: wait for it a
    // moment at most.
    let said = said_rx
        .recv_timeout(std::time::Duration::from_millis(500))
        .map(|t| t.trim().chars().take(300).collect::<String>())
        .unwrap_or_default();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    };
    match status {
        Some(s) if s.success() => Delivery::Done,
        Some(s) => Delivery::Failed(match s.code() {
            Some(code) => format!("exited with {code}{said}"),
            None => format!("ended by a signal{said}"),
        }),
        None => Delivery::Failed(format!(
            "still running after {:.1} s, killed{said}",
            timeout.as_secs_f64()
        )),
    }
}

/// Kills a delivery program and every process of its group.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // The group's id is the program's pid (`process_group(0)`).
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

/// What `store copy` did with one document.
enum Copied {
    /// Copied whole: this many records.
    New(usize),
    /// The destination had a beginning of it: this many records appended.
    Grown(usize),
    /// The destination had it all.
    Same,
}

/// Why `store copy` left a document out: the source's copy is damaged, or the destination
/// holds it differently (or could not take it).
enum Left {
    Source(String),
    Destination(String),
    /// The destination failed as a whole (unreachable, full, damaged): the copy stops.
    Stop(StoreError),
    /// The source could not give the document: it is damaged, or the source failed as a
    /// whole (then the copy stops).
    SourceStore(StoreError),
}

/// `signoff store copy FROM TO`.
async fn store_copy(
    [from, to]: [&Path; 2],
    [from_schema, to_schema]: [String; 2],
    with_outbox: bool,
    wait: f64,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    let both_pg = postgres_url(from).is_some() && postgres_url(to).is_some();
    if same_store(from, to) && (!both_pg || from_schema == to_schema) {
        return Err(unusable(match postgres_url(from) {
            // Never the URL: it may hold a password.
            Some(_) => "FROM and TO are the same PostgreSQL store: copy into another one".into(),
            None => format!(
                "{} and {} are the same store: copy into another one",
                from.display(),
                to.display()
            ),
        }));
    }
    let source = open_in(
        &StoreArg {
            path: from.to_owned(),
            wait,
        },
        Access::Read,
        Some(&from_schema),
    )
    .await?;
    let dest = open_in(
        &StoreArg {
            path: to.to_owned(),
            wait,
        },
        Access::Create,
        Some(&to_schema),
    )
    .await?;
    if with_outbox && !dest.pending(1).await?.is_empty() {
        return Err(unusable(format!(
            "{} has notifications waiting for delivery: copying the source's (--outbox) \
             could send some twice; nothing was copied",
            dest.path().display()
        )));
    }
    let docs = source.documents().await?;
    let total = docs.len();
    let started = std::time::Instant::now();
    let mut shown = started;
    let (mut new, mut grown, mut same, mut records) = (0, 0, 0, 0);
    let (mut damaged_n, mut differ) = (0, 0);
    let mut workflows = std::collections::HashSet::new();
    for (i, (id, _)) in docs.iter().enumerate() {
        match copy_document(&source, &dest, id, &mut workflows).await {
            Ok(Copied::New(n)) => {
                new += 1;
                records += n;
            }
            Ok(Copied::Grown(n)) => {
                grown += 1;
                records += n;
            }
            Ok(Copied::Same) => same += 1,
            Err(Left::Source(what)) => {
                damaged(err, source.path(), id, &what);
                damaged_n += 1;
            }
            Err(Left::SourceStore(e)) => {
                // One damaged document, or a source that stopped answering? A cheap read
                // of the store tells.
                if let Err(down) = source.workflow("-").await {
                    return Err(unusable(format!(
                        "the copy stopped at document {} ({} of {total}): {down}; the \
                         documents before it were copied: run the copy again to go on",
                        safe(id),
                        i + 1
                    )));
                }
                damaged(err, source.path(), id, &e.to_string());
                damaged_n += 1;
            }
            Err(Left::Stop(e)) => {
                return Err(unusable(format!(
                    "the copy stopped at document {} ({} of {total}): {e}; the documents \
                     before it were copied: run the copy again to go on",
                    safe(id),
                    i + 1
                )));
            }
            Err(Left::Destination(what)) => {
                let _ = writeln!(
                    err,
                    "signoff: {}: document {}: {}; not copied",
                    dest.path().display(),
                    safe(id),
                    safe(&what)
                );
                differ += 1;
            }
        }
        // Progress on stderr about once a second for a long copy.
        if shown.elapsed() >= std::time::Duration::from_secs(1) && i + 1 < total {
            shown = std::time::Instant::now();
            let _ = writeln!(err, "signoff: {} of {total} documents", i + 1);
        }
    }
    // The source's outbox is only read: its items stay there (and with --outbox are copied).
    let items = source.pending(usize::MAX).await?;
    let waiting = items.len();
    if with_outbox {
        let items: Vec<_> = items.into_iter().map(|(_, n)| n).collect();
        for chunk in items.chunks(1_000) {
            dest.enqueue(chunk).await?;
        }
    }
    let _ = writeln!(
        out,
        "{total} document{} in {}: {new} copied, {grown} caught up, {same} already there{}; \
         {records} records and {} workflow{} into {} in {:.1} s",
        if total == 1 { "" } else { "s" },
        source.path().display(),
        if damaged_n + differ > 0 {
            format!(", {} left out", damaged_n + differ)
        } else {
            String::new()
        },
        workflows.len(),
        if workflows.len() == 1 { "" } else { "s" },
        dest.path().display(),
        started.elapsed().as_secs_f64()
    );
    if with_outbox {
        let _ = writeln!(out, "{waiting} notifications waiting for delivery copied");
    } else if waiting > 0 {
        let _ = writeln!(
            out,
            "{waiting} notifications waiting for delivery stay in the source only (--outbox copies them)"
        );
    }
    if damaged_n + differ == 0 {
        return Ok(OK);
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let _ = writeln!(
        err,
        "signoff: left out (reported above): {damaged_n} damaged document{} in the source, \
         {differ} document{} the destination holds otherwise; the others were copied",
        plural(damaged_n),
        plural(differ)
    );
    Ok(FAILED)
}

/// Whether two `--store` values name one store: the same URL, or one file.
fn same_store(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies one document (verified) and its workflow into `dest`, or appends what `dest`
/// lacks of it.
async fn copy_document(
    source: &Db,
    dest: &Db,
    id: &str,
    workflows: &mut std::collections::HashSet<String>,
) -> Result<Copied, Left> {
    let Loaded {
        records,
        state,
        wf,
        workflow_hash,
        workflow_text: text,
    } = load_document(source, id).await.map_err(|e| match e {
        LoadError::Store(e) => Left::SourceStore(e),
        LoadError::Missing => Left::Source(format!("{id}: no records")),
        LoadError::Damaged(what) => Left::Source(what),
    })?;
    audit::verify(&records)
        .map_err(|e| Left::Source(format!("the audit chain does not verify: {e}")))?;
    let there = dest.read(id, 0).await.map_err(Left::Stop)?;
    if there.len() > records.len() || there[..] != records[..there.len()] {
        return Err(Left::Destination(format!(
            "holds other records than {} ({} there, {} in the source)",
            source.path().display(),
            there.len(),
            records.len()
        )));
    }
    if there.len() == records.len() {
        return Ok(Copied::Same);
    }
    if !workflows.contains(&workflow_hash) {
        if dest
            .workflow(&workflow_hash)
            .await
            .map_err(Left::Stop)?
            .is_none()
        {
            dest.put_workflow(&workflow_hash, &text)
                .await
                .map_err(Left::Stop)?;
        }
        workflows.insert(workflow_hash);
    }
    let rest = &records[there.len()..];
    dest.commit(
        id,
        there.len() as u64,
        rest,
        Some(IndexEntry::of(&state, &wf)),
        &[],
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict { .. } => {
            Left::Destination("was written by another process during the copy".into())
        }
        e => Left::Stop(e),
    })?;
    Ok(if there.is_empty() {
        Copied::New(rest.len())
    } else {
        Copied::Grown(rest.len())
    })
}

/// A document's records, its state and its workflow (from the store).
async fn load(store: &Db, id: &str) -> Result<(Vec<Record>, DocState, Workflow), Failure> {
    match load_document(store, id).await {
        Ok(d) => Ok((d.records, d.state, d.wf)),
        Err(LoadError::Store(e)) => Err(e.into()),
        Err(LoadError::Missing) => Err(failed(format!(
            "no document {id} in {}",
            store.path().display()
        ))),
        Err(LoadError::Damaged(what)) => Err(unusable(what)),
    }
}

/// A document read back: its records, state, workflow and the workflow's stored text.
struct Loaded {
    records: Vec<Record>,
    state: DocState,
    wf: Workflow,
    workflow_hash: String,
    workflow_text: String,
}

/// Why a document could not be read back.
enum LoadError {
    /// The store failed (or could not decode what it holds).
    Store(StoreError),
    /// No records.
    Missing,
    /// The records or the workflow do not make a document (what is wrong, naming it).
    Damaged(String),
}

async fn load_document(store: &Db, id: &str) -> Result<Loaded, LoadError> {
    let records = store.read(id, 0).await.map_err(LoadError::Store)?;
    let Some(first) = records.first() else {
        return Err(LoadError::Missing);
    };
    let Event::Created { workflow_hash, .. } = &first.event else {
        return Err(LoadError::Damaged(format!(
            "{id}: the stream does not start with `created`"
        )));
    };
    let workflow_hash = workflow_hash.clone();
    let workflow_text = store
        .workflow(&workflow_hash)
        .await
        .map_err(LoadError::Store)?
        .ok_or_else(|| {
            LoadError::Damaged(format!(
                "{id}: workflow {} is not in the store",
                short(&workflow_hash)
            ))
        })?;
    let wf = Workflow::from_text(&workflow_text, "stored workflow")
        .map_err(|e| LoadError::Damaged(format!("{id}: the stored workflow does not load: {e}")))?;
    let state =
        DocState::replay(&wf, &records).map_err(|e| LoadError::Damaged(format!("{id}: {e}")))?;
    Ok(Loaded {
        records,
        state,
        wf,
        workflow_hash,
        workflow_text,
    })
}

fn status(
    records: &[Record],
    state: &DocState,
    wf: &Workflow,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let _ = writeln!(
        out,
        "document:      {} ({})",
        safe(&state.doc),
        safe(&state.title)
    );
    let _ = writeln!(
        out,
        "workflow:      {} ({})",
        safe(wf.name()),
        short(wf.hash())
    );
    let _ = writeln!(out, "state:         {}", safe(state.state_name(wf)));
    let _ = writeln!(
        out,
        "version:       {} (content {}, by {})",
        state.version,
        safe(&state.content_hash),
        safe(&state.version_author)
    );
    let approved = match &state.last_approved {
        Some(a) => format!("version {} at {}", a.version, a.at),
        None => "none".into(),
    };
    let _ = writeln!(out, "last approved: {approved}");
    let pending = state.pending(wf);
    if !pending.is_empty() {
        let who: Vec<String> = pending
            .iter()
            .map(|p| {
                format!(
                    "{} ({}/{})",
                    safe(&p.reviewer),
                    safe(&p.stage),
                    safe(&p.group)
                )
            })
            .collect();
        let _ = writeln!(out, "waiting for:   {}", who.join(", "));
    }
    if let Some(due) = state.deadline() {
        let _ = writeln!(out, "due:           {due}");
    }
    let chain = match audit::verify_head(records, &state.head) {
        Ok(()) => "verified".to_owned(),
        Err(e) => format!("BROKEN: {e}"),
    };
    let _ = writeln!(out, "records:       {} (chain {chain})", records.len());
    Ok(OK)
}

async fn verify(store: &Db, only: Option<&str>, out: &mut dyn Write) -> Result<u8, Failure> {
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => store
            .documents()
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    };
    let mut bad = 0;
    let mut total = 0;
    for id in &ids {
        let records = match store.read(id, 0).await {
            Ok(records) => records,
            // Every document is checked: one that cannot be read is reported with the rest.
            Err(e) => {
                bad += 1;
                let _ = writeln!(
                    out,
                    "{}: cannot be read from {}: {}",
                    safe(id),
                    store.path().display(),
                    safe(&e.to_string())
                );
                continue;
            }
        };
        if records.is_empty() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        total += records.len();
        if let Err(e) = audit::verify(&records) {
            bad += 1;
            let _ = writeln!(out, "{}: {e}", safe(id));
            continue;
        }
        if let Err(f) = load(store, id).await {
            bad += 1;
            let _ = writeln!(out, "{}: {}", safe(id), safe(&f.message));
        }
    }
    if bad > 0 {
        let _ = writeln!(
            out,
            "FAILED: {bad} of {} documents do not verify",
            ids.len()
        );
        return Ok(FAILED);
    }
    let _ = writeln!(
        out,
        "ok: {} documents, {total} records, every hash chain verifies",
        ids.len()
    );
    Ok(OK)
}

async fn export(
    store: &Db,
    only: Option<&str>,
    format: ExportFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Failure> {
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => store
            .documents()
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    };
    let mut bad = 0;
    let mut first = true;
    for id in &ids {
        // A document that cannot be read is left out and reported; one that reads but whose
        // chain does not verify is exported as it is (the auditor sees it) and reported.
        let records = match store.read(id, 0).await {
            Ok(records) => records,
            Err(e) => {
                damaged(err, store.path(), id, &e.to_string());
                bad += 1;
                continue;
            }
        };
        if records.is_empty() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        if let Err(e) = audit::verify(&records) {
            damaged(err, store.path(), id, &format!("exported, but {e}"));
            bad += 1;
        }
        let text = match format {
            // Handled by `audit_export`, which needs every document before it writes.
            ExportFormat::Jsonl | ExportFormat::Verifiable => audit::to_jsonl(&records),
            ExportFormat::Csv => {
                let csv = audit::to_csv(&records);
                // One header for the whole export.
                match (first, csv.split_once('\n')) {
                    (true, _) | (_, None) => csv,
                    (false, Some((_, rows))) => rows.to_owned(),
                }
            }
        };
        first = false;
        let _ = out.write_all(text.as_bytes());
    }
    Ok(if bad > 0 { skipped(err, bad) } else { OK })
}

/// The largest anchor or export file `signoff audit` reads (an anchor holds about 67 bytes
/// per record, so this is some 16 million records): a bigger one is refused before it is
/// read, rather than filling memory.
const MAX_AUDIT_FILE: u64 = 1 << 30;
/// The largest key file: a key is 64 hex digits and a newline.
const MAX_KEY_FILE: u64 = 4096;

/// Why a file that `signoff audit` reads cannot be used (exit code 2). Each names the file.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is more than {what} may have ({limit} bytes)")]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("{path}: {source}")]
    Anchor { path: String, source: AnchorError },
    #[error("{path}: {source}")]
    Export { path: String, source: ExportError },
    #[error("{path}: not a key file: {source}")]
    Key { path: String, source: KeyError },
    #[error("--public-key {arg}: {source}, and there is no such file")]
    PublicKeyArg { arg: String, source: KeyError },
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Failure {
        unusable(e.to_string())
    }
}

/// `signoff audit keygen --out FILE`.
fn audit_keygen(path: &Path, out: &mut dyn Write) -> Result<u8, Failure> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| unusable(format!("no randomness from the operating system: {e}")))?;
    let key = SecretKey::from_bytes(&seed);
    seed.fill(0);
    let mut options = std::fs::OpenOptions::new();
    // Never overwrite a key: anchors signed with it could no longer be re-signed, and a
    // typo should not destroy a secret.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(path)
        .and_then(|mut f| writeln!(f, "{}", key.to_hex()).and_then(|()| f.sync_all()));
    written.map_err(|e| unusable(format!("cannot write the key to {}: {e}", path.display())))?;
    let public = key.public_key();
    let pub_path = with_suffix(path, ".pub");
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| unusable(format!("cannot write {}: {e}", pub_path.display())))?;
    let _ = writeln!(
        out,
        "secret key written to {} (mode 0600): keep it away from the store and its editors",
        path.display()
    );
    let _ = writeln!(
        out,
        "public key (also in {}), for auditors: {public}",
        pub_path.display()
    );
    Ok(OK)
}

/// `signoff audit anchor --key FILE`: signs every document's record hashes into the store's
/// anchor folder, and into `copy` when given.
async fn audit_anchor(
    store: &Db,
    dir: &Path,
    key_path: &Path,
    copy: Option<&Path>,
    if_changed: bool,
    at: Timestamp,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let key_text = read_limited(key_path, MAX_KEY_FILE, "a key file")?;
    let key = SecretKey::parse_hex(&key_text).map_err(|source| InputError::Key {
        path: key_path.display().to_string(),
        source,
    })?;
    let mut documents = Vec::new();
    for (id, _) in store.documents().await? {
        let records = store.read(&id, 0).await?;
        let doc = AnchoredDoc::of(&id, &records).map_err(|e| {
            failed(format!(
                "cannot anchor: {id}: {e}; a damaged chain must be looked into, not signed"
            ))
        })?;
        documents.push(doc);
    }
    let latest = latest_anchor(dir)?;
    if let (true, Some((path, _))) = (if_changed, &latest) {
        let previous = read_anchor(path)?;
        let heads = documents
            .iter()
            .map(|d| (d.doc.as_str(), d.records, d.head.as_str()));
        if previous.same_heads(heads) {
            let _ = writeln!(out, "unchanged since {}: no anchor written", path.display());
            return Ok(OK);
        }
    }
    let anchor = Anchor::sign(&key, at, documents).map_err(|e| unusable(e.to_string()))?;
    let number = latest.map_or(1, |(_, n)| n + 1);
    let compact: String = at
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| unusable(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{number:06}-{compact}.json"));
    let text = format!("{}\n", anchor.to_json());
    write_new(&path, &text)?;
    let _ = writeln!(
        out,
        "anchor {}: {} documents, {} records at {at}, digest {}, signed by key {}",
        path.display(),
        anchor.documents().len(),
        anchor.records(),
        short(anchor.digest()),
        anchor.public_key()
    );
    if let Some(copy) = copy {
        std::fs::write(copy, &text)
            .map_err(|e| unusable(format!("cannot write {}: {e}", copy.display())))?;
        let _ = writeln!(out, "copy: {}", copy.display());
    }
    Ok(OK)
}

/// `signoff audit verify --anchor FILE`.
async fn audit_verify_anchor(
    store: &Db,
    only: Option<&str>,
    file: &Path,
    public_key: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let anchor = read_anchor(file)?;
    let trusted = public_key.map(read_public_key).transpose()?;
    let verified = match anchor.verify(trusted.as_ref()) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "FAILED: anchor {}: {e}", file.display());
            return Ok(FAILED);
        }
    };
    let _ = writeln!(
        out,
        "anchor {} of {}: signature verified with {}",
        file.display(),
        anchor.at(),
        key_words(verified.key(), verified.trusted())
    );
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => store
            .documents()
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    };
    let mut streams = Vec::with_capacity(ids.len());
    for id in ids {
        let records = store.read(&id, 0).await?;
        if records.is_empty() && only.is_some() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        streams.push((id, records));
    }
    let mut report = verified.check(streams.iter().map(|(d, r)| (d.as_str(), r.as_slice())));
    if let Some(id) = only {
        report.documents.retain(|d| d.doc == id);
    }
    let (mut covered, mut added, mut total) = (0, 0, 0);
    for d in &report.documents {
        match &d.status {
            DocStatus::Intact { anchored, since } => {
                covered += 1;
                total += anchored + since;
            }
            DocStatus::NotCovered { records } => {
                added += 1;
                total += records;
                let _ = writeln!(out, "{d}");
            }
            DocStatus::Removed { .. } | DocStatus::Differs(_) => {
                let _ = writeln!(out, "{d}");
            }
        }
    }
    if let Some(first) = report.first_failure() {
        let bad = report.documents.len() - covered - added;
        let _ = writeln!(
            out,
            "FAILED: {bad} of {} documents differ from the anchor; the first: {first}",
            report.documents.len()
        );
        return Ok(FAILED);
    }
    // The records match; the states must still replay (a chain can verify and yet not fold).
    for (id, _) in &streams {
        if let Err(f) = load(store, id).await {
            let _ = writeln!(out, "FAILED: {id}: {}", f.message);
            return Ok(FAILED);
        }
    }
    let _ = writeln!(
        out,
        "ok: {} documents, {total} records; the {} anchored records are unchanged{}",
        report.documents.len(),
        report
            .documents
            .iter()
            .map(|d| match d.status {
                DocStatus::Intact { anchored, .. } => anchored,
                _ => 0,
            })
            .sum::<u64>(),
        if added > 0 {
            format!(", {added} documents added since")
        } else {
            String::new()
        }
    );
    Ok(OK)
}

/// `signoff audit export --format verifiable`: every document (or one), with the given
/// anchor or the store's latest.
async fn audit_export(
    store: &Db,
    dir: Option<&Path>,
    only: Option<&str>,
    anchor: Option<&Path>,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let anchor_path = match anchor {
        Some(p) => Some(p.to_owned()),
        None => match dir {
            Some(dir) => latest_anchor(dir)?.map(|(p, _)| p),
            None => None,
        },
    };
    let anchor = anchor_path.as_deref().map(read_anchor).transpose()?;
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => store
            .documents()
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect(),
    };
    let mut streams = Vec::with_capacity(ids.len());
    for id in &ids {
        let records = store.read(id, 0).await?;
        if records.is_empty() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        streams.push(records);
    }
    let text = audit::to_export(
        streams.iter().map(Vec::as_slice),
        ExportInfo {
            exported_at: system_now(),
            whole_store: only.is_none(),
            anchor: anchor.as_ref(),
        },
    );
    let _ = out.write_all(text.as_bytes());
    Ok(OK)
}

/// `signoff audit verify --export FILE`: offline, without a store.
fn audit_verify_export(
    file: &Path,
    public_key: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let trusted = public_key.map(read_public_key).transpose()?;
    let text = read_limited(file, MAX_AUDIT_FILE, "an export")?;
    let report =
        audit::verify_export(&text, trusted.as_ref()).map_err(|source| InputError::Export {
            path: file.display().to_string(),
            source,
        })?;
    let scope = if report.whole_store {
        "the whole store"
    } else {
        "some documents only"
    };
    let _ = writeln!(
        out,
        "export {} of {} ({scope}): {} documents, {} records",
        file.display(),
        report.exported_at,
        report.documents,
        report.records
    );
    let anchor = match &report.anchor {
        None => "no anchor: chains and the trailer only (they do not stop a rewrite)".to_owned(),
        Some(AnchorOutcome::Failed(e)) => format!("the anchor does not verify: {e}"),
        Some(AnchorOutcome::Verified {
            at,
            key,
            trusted,
            records,
            not_covered,
        }) => {
            let mut s = format!(
                "anchor of {at} ({records} records) verified with {}",
                key_words(*key, *trusted)
            );
            if !not_covered.is_empty() {
                s.push_str(&format!(
                    "; not covered (added after it): {}",
                    not_covered.join(", ")
                ));
            }
            s
        }
    };
    let _ = writeln!(out, "{anchor}");
    for f in &report.findings {
        let _ = writeln!(out, "{f}");
    }
    match report.findings.first() {
        Some(first) => {
            let _ = writeln!(out, "FAILED: the first bad record: {first}");
            Ok(FAILED)
        }
        None => {
            let _ = writeln!(out, "ok: every record verifies");
            Ok(OK)
        }
    }
}

/// How the output names the key that verified an anchor.
fn key_words(key: PublicKey, trusted: bool) -> String {
    if trusted {
        format!("the trusted key {key} (--public-key)")
    } else {
        format!(
            "the key inside the file, {key} (pass --public-key to check it is the key you trust)"
        )
    }
}

/// `--public-key`: 64 hex digits, or a file that holds them.
fn read_public_key(arg: &str) -> Result<PublicKey, Failure> {
    let path = Path::new(arg);
    if !path.exists() {
        return PublicKey::parse_hex(arg).map_err(|source| {
            InputError::PublicKeyArg {
                arg: arg.to_owned(),
                source,
            }
            .into()
        });
    }
    let text = read_limited(path, MAX_KEY_FILE, "a key file")?;
    Ok(
        PublicKey::parse_hex(&text).map_err(|source| InputError::Key {
            path: arg.to_owned(),
            source,
        })?,
    )
}

fn read_anchor(path: &Path) -> Result<Anchor, Failure> {
    let text = read_limited(path, MAX_AUDIT_FILE, "an anchor file")?;
    Ok(Anchor::parse(&text).map_err(|source| InputError::Anchor {
        path: path.display().to_string(),
        source,
    })?)
}

/// Reads a text file of at most `limit` bytes; a larger one is refused unread.
fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<String, InputError> {
    use std::io::Read;
    let name = || path.display().to_string();
    let io = |source| InputError::Io {
        path: name(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err(InputError::TooLarge {
            path: name(),
            size,
            limit,
            what,
        });
    }
    let mut text = String::new();
    // `take` too: the file may grow between the size check and the read.
    file.take(limit).read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

/// Where a store's anchors live: the folder STORE.anchors beside the store file.
fn anchors_dir(store: &Path) -> PathBuf {
    with_suffix(store, ".anchors")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The latest anchor of a store's anchor folder and its number: anchors are numbered
/// `000001-TIME.json`, `000002-...` as they are written, so "latest" is the highest number
/// (not the file time, which copying changes, nor the signed time, which `--at` sets).
fn latest_anchor(dir: &Path) -> Result<Option<(PathBuf, u64)>, Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unusable(format!("cannot list {}: {e}", dir.display()))),
    };
    let mut latest: Option<(PathBuf, u64)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_suffix(".json")
            .and_then(|n| n.split_once('-'))
            .and_then(|(n, _)| n.parse::<u64>().ok())
        else {
            continue;
        };
        if latest.as_ref().is_none_or(|(_, n)| number > *n) {
            latest = Some((entry.path(), number));
        }
    }
    Ok(latest)
}

/// Writes a new file completely, or fails without leaving a partial one under its name.
fn write_new(path: &Path, text: &str) -> Result<(), Failure> {
    let tmp = with_suffix(path, ".tmp");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| {
            if path.exists() {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists",
                ))
            } else {
                std::fs::rename(&tmp, path)
            }
        });
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        unusable(format!("cannot write {}: {e}", path.display()))
    })
}

impl SignatureArgs {
    fn input(&self) -> Option<SignatureInput> {
        let name = self.sign_as.clone()?;
        Some(SignatureInput {
            name,
            meaning: match self.meaning {
                MeaningArg::Authorship => Meaning::Authorship,
                MeaningArg::Review => Meaning::Review,
                MeaningArg::Approval => Meaning::Approval,
                MeaningArg::Responsibility => Meaning::Responsibility,
            },
            auth: self.auth_method.clone().map(|method| AuthInput {
                method,
                reference: None,
                credential: self.auth_code.clone(),
            }),
        })
    }
}

fn command(actor: &Actor, action: Action) -> Command {
    Command {
        by: actor.by.clone(),
        on_behalf_of: actor.on_behalf_of.clone(),
        comment: actor.comment.clone(),
        action,
    }
}

/// The time of an action: `--at`, or the system clock (the CLI is the edge where the
/// system time may be read; core never does).
fn now(actor: &Actor) -> Timestamp {
    actor.at.unwrap_or_else(system_now)
}

fn system_now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn waiting(state: &DocState, wf: &Workflow) -> String {
    let mut who: Vec<String> = state.pending(wf).into_iter().map(|p| p.reviewer).collect();
    who.sort();
    who.dedup();
    if who.is_empty() {
        String::new()
    } else {
        format!(", waiting for {}", safe(&who.join(", ")))
    }
}

fn actions(records: &[Record]) -> String {
    let names: Vec<&str> = records.iter().map(|r| r.event.action()).collect();
    names.join(", ")
}

fn history_line(r: &Record) -> String {
    let mut line = format!("#{} {} {}", r.seq, r.at, safe(&r.actor));
    if let Some(p) = &r.on_behalf_of {
        line.push_str(&format!(" for {}", safe(p)));
    }
    match &r.event {
        Event::Decided { decision, .. } => line.push_str(&format!(" {}", decision.name())),
        e => line.push_str(&format!(" {}", e.action())),
    }
    if r.from_state.is_empty() {
        line.push_str(&format!(" (in {})", safe(&r.to_state)));
    } else if r.from_state != r.to_state {
        line.push_str(&format!(
            " ({} -> {})",
            safe(&r.from_state),
            safe(&r.to_state)
        ));
    }
    line.push_str(&format!(" v{}", r.version));
    if let Some(s) = &r.signature {
        line.push_str(&format!(", signed by {} ({})", safe(&s.name), s.meaning));
    }
    if let Some(c) = &r.comment {
        line.push_str(&format!(": {}", safe(c)));
    }
    line
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use signoff_storage::EventStore;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LocalCommand,
    }

    /// Runs `signoff ARGS` in `dir`; returns the exit code, stdout and stderr.
    fn sh(args: &str) -> (u8, String, String) {
        sh_args(&args.split_whitespace().collect::<Vec<_>>())
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("signoff-cli-doc-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn store(&self) -> String {
            self.0.join("signoff.redb").display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn template(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/templates")
            .join(name)
            .display()
            .to_string()
    }

    /// Like [`sh`], with arguments that may hold spaces and control characters.
    fn sh_args(args: &[&str]) -> (u8, String, String) {
        let cli = Cli::try_parse_from(std::iter::once("signoff").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&cli.cmd, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// `outbox list` shows what waits; `outbox deliver` hands each notification's JSON to the
    /// program on stdin and removes it when the program exits 0; a program that fails, runs
    /// too long or cannot be started leaves them waiting; --lease must exceed --timeout.
    #[test]
    fn the_outbox_is_listed_and_delivered_through_a_program() {
        let dir = Dir::new("outbox");
        let s = dir.store();
        let basic = template("basic.yaml");
        let at = "--at 2026-01-05T09:00:00Z";
        for args in [
            format!("doc create d --workflow {basic} --by alice {at} --store {s}"),
            format!("doc submit d --by alice {at} --store {s}"),
        ] {
            let (code, _, err) = sh(&args);
            assert_eq!(code, 0, "{err}");
        }
        let (code, out, _) = sh(&format!("outbox list --store {s}"));
        assert_eq!(code, 0);
        let waiting: Vec<&str> = out.lines().collect();
        assert_eq!(waiting.len(), 2, "{out}");
        assert!(
            waiting[1]
                .ends_with("\tassigned\td\tbob,carol\tplease review version 1 of d (approvers)"),
            "{out}"
        );
        let (_, jsonl, _) = sh(&format!("outbox list --format jsonl --limit 1 --store {s}"));
        let first: serde_json::Value = serde_json::from_str(jsonl.trim()).unwrap();
        assert_eq!(first["notification"]["kind"], "state_changed");

        // Failing, too slow, not there: nothing leaves the outbox.
        let (code, out, err) = sh_args(&[
            "outbox",
            "deliver",
            "--store",
            &s,
            "--",
            "sh",
            "-c",
            "echo no way >&2; exit 3",
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(
            out.starts_with("0 delivered, 2 failed; 2 waiting in "),
            "{out}"
        );
        assert!(
            err.contains("(assigned, document d): sh: exited with 3 (no way); it stays waiting"),
            "{err}"
        );
        let started = std::time::Instant::now();
        // What the program started goes too: the marker is never written.
        let marker = dir.0.join("marker");
        let late = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let (code, _, err) = sh_args(&[
            "outbox",
            "deliver",
            "--timeout",
            "0.3",
            "--lease",
            "6",
            "--limit",
            "1",
            "--store",
            &s,
            "--",
            "sh",
            "-c",
            &late,
        ]);
        assert_eq!(code, 1, "{err}");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(
            !marker.exists(),
            "the program's own child outlived the timeout"
        );
        assert!(err.contains("still running after 0.3 s, killed"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let (code, _, err) = sh_args(&[
            "outbox",
            "deliver",
            "--store",
            &s,
            "--",
            "/nonexistent/deliver",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("cannot run /nonexistent/deliver: "), "{err}");
        let (code, _, err) = sh_args(&[
            "outbox",
            "deliver",
            "--timeout",
            "200",
            "--store",
            &s,
            "--",
            "true",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("--lease (120 s) must be at least 5 s longer than --timeout (200 s)"),
            "{err}"
        );
        assert_eq!(sh(&format!("outbox list --store {s}")).1, out_of(&waiting));

        // Delivered: each JSON reaches the program once, in order, and leaves the outbox.
        let got = dir.0.join("got.jsonl");
        let append = format!("cat >> {}; echo >> {}", got.display(), got.display());
        let (code, out, err) = sh_args(&[
            "outbox", "deliver", "--store", &s, "--", "sh", "-c", &append,
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("2 delivered, 0 failed; 0 waiting in "),
            "{out}"
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&got)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["kind"], "state_changed");
        assert_eq!(lines[1]["to"], serde_json::json!(["bob", "carol"]));
        let (_, out, _) = sh(&format!("outbox list --store {s}"));
        assert!(out.starts_with("no notifications waiting in "), "{out}");
    }

    fn out_of(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Ids, titles, names and comments that would draw fake lines or flip text on a terminal
    /// are printed escaped; blank ids and actors are refused.
    #[test]
    fn hostile_text_is_escaped_and_blank_ids_refused() {
        let dir = Dir::new("hostile");
        let s = dir.store();
        let basic = template("basic.yaml");
        let (code, _, err) = sh_args(&[
            "doc",
            "create",
            "d",
            "--workflow",
            &basic,
            "--by",
            "alice",
            "--title",
            "Policy\r#9 fake",
            "--store",
            &s,
        ]);
        assert_eq!(code, 0, "{err}");
        let title = "Policy\r\n#9 2026 mallory approve";
        let (code, _, err) = sh_args(&[
            "doc",
            "create",
            "e",
            "--workflow",
            &basic,
            "--by",
            "alice",
            "--title",
            &title.replace("\\r", "\r").replace("\\n", "\n"),
            "--store",
            &s,
        ]);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = sh_args(&["doc", "submit", "e", "--by", "alice", "--store", &s]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("waiting for bob, carol"), "{out}");
        let (code, _, err) = sh_args(&[
            "doc",
            "reject",
            "e",
            "--by",
            "bob",
            "--comment",
            "no\u{202e}evorppa\r#7 ok",
            "--store",
            &s,
        ]);
        assert_eq!(code, 0, "{err}");
        let (code, out, _) = sh_args(&["doc", "history", "e", "--store", &s]);
        assert_eq!(code, 0);
        assert!(!out.contains('\r') && !out.contains('\u{202e}'), "{out:?}");
        assert!(out.contains(": no\\u{202e}evorppa\\r#7 ok"), "{out}");
        assert_eq!(out.lines().count(), 8, "{out}");
        let (_, out, _) = sh_args(&["doc", "status", "e", "--store", &s]);
        assert!(
            out.contains("(Policy\\r\\n#9 2026 mallory approve)"),
            "{out}"
        );
        assert!(!out.contains('\r'), "{out:?}");
        // Blank ids and actors change nothing.
        let (code, _, err) = sh_args(&["doc", "status", " ", "--store", &s]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("document id may not be empty"), "{err}");
        let (code, _, err) = sh_args(&["doc", "approve", "d", "--by", "", "--store", &s]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("may not be empty or blank"), "{err}");
        let (code, _, err) = sh_args(&["pending", "--user", "", "--store", &s]);
        assert_eq!(code, 2, "{err}");
    }

    #[test]
    fn the_five_line_session() {
        let dir = Dir::new("session");
        let s = dir.store();
        let basic = template("basic.yaml");
        let (code, out, err) = sh(&format!(
            "doc create travel-policy --workflow {basic} --by alice --store {s}"
        ));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("travel-policy: created by alice under workflow basic-approval"),
            "{out}"
        );
        let (code, out, err) = sh(&format!("doc submit travel-policy --by alice --store {s}"));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("state in_approval") && out.contains("waiting for bob, carol"),
            "{out}"
        );
        let (code, out, _) = sh(&format!("pending --user bob --store {s}"));
        assert_eq!(code, 0);
        assert!(
            out.starts_with("travel-policy\tin_approval\tversion 1"),
            "{out}"
        );
        let (code, out, err) = sh(&format!(
            "doc approve travel-policy --by bob --comment Fine --store {s}"
        ));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("state approved"), "{out}");
        let (code, out, _) = sh(&format!("doc status travel-policy --store {s}"));
        assert_eq!(code, 0);
        assert!(out.contains("state:         approved"), "{out}");
        assert!(out.contains("last approved: version 1"), "{out}");
        assert!(out.contains("chain verified"), "{out}");
        let (code, out, _) = sh(&format!("audit verify --store {s}"));
        assert_eq!(code, 0);
        assert!(out.starts_with("ok: 1 documents, "), "{out}");
        let (code, out, _) = sh(&format!("doc history travel-policy --store {s}"));
        assert_eq!(code, 0);
        assert!(out.contains("bob approve"), "{out}");
        assert!(out.contains(": Fine"), "{out}");
        let (_, out, _) = sh(&format!("pending --user bob --store {s}"));
        assert_eq!(out, "nothing pending for bob\n");
    }

    #[test]
    fn refusals_and_unknown_documents_exit_1_with_the_reason() {
        let dir = Dir::new("refusals");
        let s = dir.store();
        let basic = template("basic.yaml");
        sh(&format!(
            "doc create d --workflow {basic} --by alice --store {s}"
        ));
        sh(&format!("doc submit d --by alice --store {s}"));
        let (code, _, err) = sh(&format!("doc approve d --by alice --store {s}"));
        assert_eq!(code, 1);
        assert!(err.starts_with("signoff: approve refused:"), "{err}");
        let (code, _, err) = sh(&format!("doc status nope --store {s}"));
        assert_eq!(code, 1);
        assert!(err.contains("no document nope"), "{err}");
        let (code, _, err) = sh(&format!(
            "doc create d --workflow {basic} --by alice --store {s}"
        ));
        assert_eq!(code, 1);
        assert!(err.contains("already exists"), "{err}");
        // A rejection goes back to draft; a delegate then decides for bob.
        let (code, out, _) = sh(&format!("doc reject d --by carol --store {s}"));
        assert_eq!(code, 0);
        assert!(out.contains("state draft"), "{out}");
    }

    /// Two writers at once take turns: the second waits for the first to let go.
    #[test]
    fn a_writer_waits_for_a_store_another_writer_holds() {
        let dir = Dir::new("wait");
        let s = dir.store();
        let basic = template("basic.yaml");
        let (code, _, err) = sh(&format!(
            "doc create d --workflow {basic} --by alice --store {s}"
        ));
        assert_eq!(code, 0, "{err}");
        let held = RedbStore::open(&s, StoreConfig::durable()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let started = std::time::Instant::now();
        let (code, out, err) = sh(&format!("doc submit d --by alice --wait 10 --store {s}"));
        release.join().unwrap();
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("submit by alice"), "{out}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        // A negative or absurd wait is a usage error.
        for bad in ["--wait=-1", "--wait=1e9", "--wait=soon"] {
            assert!(Cli::try_parse_from(["signoff", "doc", "status", "d", bad]).is_err());
        }
    }

    #[test]
    fn a_missing_locked_or_corrupted_store_exits_2_with_a_message() {
        let dir = Dir::new("stores");
        let s = dir.store();
        let (code, _, err) = sh(&format!("doc status d --store {s}"));
        assert_eq!(code, 2);
        assert!(
            err.contains("no store at") && err.contains("signoff doc create"),
            "{err}"
        );
        assert!(!Path::new(&s).exists());

        let basic = template("basic.yaml");
        sh(&format!(
            "doc create d --workflow {basic} --by alice --store {s}"
        ));
        let held = RedbStore::open(&s, StoreConfig::durable()).unwrap();
        let (code, _, err) = sh(&format!(
            "tick --now 2026-01-05T09:00:00Z --wait 0.2 --store {s}"
        ));
        assert_eq!(code, 2);
        assert!(
            err.contains("in use by another process; waited 0."),
            "{err}"
        );
        assert!(err.contains("--wait SECONDS"), "{err}");
        // Reading takes no lock (it opens the file read-only and never writes it).
        let (code, _, err) = sh(&format!("doc status d --store {s}"));
        assert_eq!(code, 0, "{err}");
        drop(held);

        std::fs::write(&s, b"not a database at all, just text ".repeat(100)).unwrap();
        let (code, _, err) = sh(&format!("audit verify --store {s}"));
        assert_eq!(code, 2);
        assert!(err.contains(&s), "{err}");

        let (code, _, err) = sh(&format!(
            "doc create d --workflow /nonexistent.yaml --by alice --store {s}"
        ));
        assert_eq!(code, 2);
        assert!(
            err.contains("/nonexistent.yaml: cannot read the file"),
            "{err}"
        );
    }

    #[test]
    fn signatures_delegation_tick_and_exports() {
        let dir = Dir::new("more");
        let s = dir.store();
        let wf = template("two-stage.yaml");
        let at = |t: &str| format!("--at 2026-01-0{t}T09:00:00Z --store {s}");
        let (code, _, err) = sh(&format!(
            "doc create spec --workflow {wf} --by alice {}",
            at("5")
        ));
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = sh(&format!(
            "doc sign spec --by alice --sign-as Alice_A --meaning authorship {}",
            at("5")
        ));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("sign by alice"), "{out}");
        let (code, _, err) = sh(&format!("doc submit spec --by alice {}", at("5")));
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = sh(&format!(
            "doc delegate spec --by bob --to frank --until 2026-02-01T00:00:00Z --reason holiday {}",
            at("6")
        ));
        assert_eq!(code, 0, "{err}");
        // frank sees bob's review while the delegation lasts, and not after it.
        let (code, out, _) = sh(&format!(
            "pending --user frank --at 2026-01-07T00:00:00Z --store {s}"
        ));
        assert_eq!(code, 0);
        assert!(
            out.starts_with("spec\t") && out.ends_with("\ton behalf of bob\n"),
            "{out}"
        );
        let (_, out, _) = sh(&format!(
            "pending --user frank --at 2026-02-02T00:00:00Z --store {s}"
        ));
        assert_eq!(out, "nothing pending for frank\n");
        let (_, out, _) = sh(&format!(
            "pending --user bob --at 2026-01-07T00:00:00Z --store {s}"
        ));
        assert!(
            out.starts_with("spec\t") && !out.contains("behalf"),
            "{out}"
        );
        // Much later, tick fires what is due (reminders, escalation or expiry).
        let (code, out, err) = sh(&format!("tick --now 2026-03-01T00:00:00Z --store {s}"));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("spec: "), "{out}");
        let (code, out, _) = sh(&format!("audit export --format csv --store {s}"));
        assert_eq!(code, 0);
        assert!(out.starts_with("seq,at,doc,actor"), "{out}");
        assert!(out.contains("Alice_A"), "{out}");
        let (code, out, _) = sh(&format!("audit export --format jsonl spec --store {s}"));
        assert_eq!(code, 0);
        for line in out.lines() {
            let r: Record = serde_json::from_str(line).unwrap();
            assert_eq!(r.doc, "spec");
        }
        let (code, out, _) = sh(&format!("audit verify spec --store {s}"));
        assert_eq!(code, 0, "{out}");
    }

    /// A store with two documents, a key pair and an anchor; returns the anchor's path.
    fn anchored_store(dir: &Dir) -> (String, String, String) {
        let s = dir.store();
        let basic = template("basic.yaml");
        for id in ["a", "d"] {
            let (code, _, err) = sh(&format!(
                "doc create {id} --workflow {basic} --by alice --at 2026-01-05T09:00:00Z --store {s}"
            ));
            assert_eq!(code, 0, "{err}");
        }
        let (code, _, err) = sh(&format!(
            "doc submit d --by alice --at 2026-01-05T10:00:00Z --store {s}"
        ));
        assert_eq!(code, 0, "{err}");
        let key = dir.0.join("anchor.key").display().to_string();
        let (code, out, err) = sh(&format!("audit keygen --out {key}"));
        assert_eq!(code, 0, "{err}");
        let public = out.trim().rsplit(' ').next().unwrap().to_owned();
        assert_eq!(public.len(), 64, "{out}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (code, out, err) = sh(&format!(
            "audit anchor --key {key} --at 2026-01-06T00:00:00Z --store {s}"
        ));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("2 documents, 5 records"), "{out}");
        let anchor = format!("{s}.anchors/000001-20260106T000000Z.json");
        assert!(Path::new(&anchor).exists(), "{out}");
        (key, public, anchor)
    }

    #[test]
    fn anchors_keygen_verify_and_tampering() {
        let dir = Dir::new("anchor");
        let s = dir.store();
        let (key, public, anchor) = anchored_store(&dir);
        // Nothing changed: a timer running `--if-changed` writes nothing.
        let (code, out, _) = sh(&format!(
            "audit anchor --key {key} --if-changed --store {s}"
        ));
        assert_eq!(code, 0);
        assert!(out.starts_with("unchanged since"), "{out}");
        // Verified with the key inside the file, then with the trusted one (hex or file).
        let (code, out, err) = sh(&format!("audit verify --anchor {anchor} --store {s}"));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("with the key inside the file"), "{out}");
        assert!(out.contains("ok: 2 documents, 5 records"), "{out}");
        for k in [public.clone(), format!("{key}.pub")] {
            let (code, out, err) = sh(&format!(
                "audit verify --anchor {anchor} --public-key {k} --store {s}"
            ));
            assert_eq!(code, 0, "{err}");
            assert!(
                out.contains(&format!("with the trusted key {public}")),
                "{out}"
            );
        }
        // A wrong key: exit 1, both keys named.
        let other = dir.0.join("other.key").display().to_string();
        let (_, other_out, _) = sh(&format!("audit keygen --out {other}"));
        let other_public = other_out.trim().rsplit(' ').next().unwrap();
        let (code, out, _) = sh(&format!(
            "audit verify --anchor {anchor} --public-key {other_public} --store {s}"
        ));
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("not by the trusted key") && out.contains(other_public),
            "{out}"
        );
        // keygen never overwrites a key.
        let (code, _, err) = sh(&format!("audit keygen --out {key}"));
        assert_eq!(code, 2);
        assert!(err.contains(&key), "{err}");
        // A document added after the anchor is fine, and reported.
        let basic = template("basic.yaml");
        sh(&format!(
            "doc create late --workflow {basic} --by alice --at 2026-01-07T00:00:00Z --store {s}"
        ));
        let (code, out, _) = sh(&format!(
            "audit verify --anchor {anchor} --public-key {public} --store {s}"
        ));
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("late: not covered by the anchor"), "{out}");
        // An edited anchor file: exit 1.
        let text = std::fs::read_to_string(&anchor).unwrap();
        let edited = dir.0.join("edited.json");
        std::fs::write(
            &edited,
            text.replace("2026-01-06T00:00:00Z", "2027-01-06T00:00:00Z"),
        )
        .unwrap();
        let (code, out, _) = sh(&format!(
            "audit verify --anchor {} --public-key {public} --store {s}",
            edited.display()
        ));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("the anchor file was edited"), "{out}");
    }

    #[test]
    fn a_rehashed_store_is_named_at_the_first_changed_record() {
        let dir = Dir::new("rehash");
        let s = dir.store();
        let (_, public, anchor) = anchored_store(&dir);
        // An editor of the store rewrites d's record 1 and rehashes the rest of its chain,
        // then puts the stream back in place of the original (here: under a new store).
        let store = RedbStore::open(&s, StoreConfig::durable()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (a, mut d, source) = rt.block_on(async {
            let a = store.read("a", 0).await.unwrap();
            let d = store.read("d", 0).await.unwrap();
            let Event::Created { workflow_hash, .. } = &d[0].event else {
                panic!("created first")
            };
            let workflow_hash = workflow_hash.clone();
            let source = store.workflow(&workflow_hash).await.unwrap().unwrap();
            (a, d, (workflow_hash, source))
        });
        drop(store);
        d[1].comment = Some("forged".into());
        for i in 1..d.len() {
            d[i].prev_hash = d[i - 1].hash.clone();
            d[i].hash = audit::record_hash(&d[i]);
        }
        std::fs::remove_file(&s).unwrap();
        let store = RedbStore::create(&s, StoreConfig::durable()).unwrap();
        rt.block_on(async {
            store.put_workflow(&source.0, &source.1).await.unwrap();
            store.commit("a", 0, &a, None, &[]).await.unwrap();
            store.commit("d", 0, &d, None, &[]).await.unwrap();
        });
        drop(store);
        // The chain alone says all is well.
        let (code, out, _) = sh(&format!("audit verify --store {s}"));
        assert_eq!(code, 0, "{out}");
        let (code, out, _) = sh(&format!(
            "audit verify --anchor {anchor} --public-key {public} --store {s}"
        ));
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(
                "FAILED: 1 of 2 documents differ from the anchor; the first: d: record 1 (seq 1): it is not the anchored record, and the chain was rehashed"
            ),
            "{out}"
        );
        // The export carries the latest anchor and names the same record offline.
        let (code, text, _) = sh(&format!("audit export --format verifiable --store {s}"));
        assert_eq!(code, 0);
        let file = dir.0.join("export.jsonl");
        std::fs::write(&file, text).unwrap();
        let (code, out, _) = sh(&format!(
            "audit verify --export {} --public-key {public}",
            file.display()
        ));
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("FAILED: the first bad record: line 4: d: record 1 (seq 1)"),
            "{out}"
        );
        // Removing a document is named too.
        std::fs::remove_file(&s).unwrap();
        let store = RedbStore::create(&s, StoreConfig::durable()).unwrap();
        rt.block_on(async {
            store.put_workflow(&source.0, &source.1).await.unwrap();
            store.commit("a", 0, &a, None, &[]).await.unwrap();
        });
        drop(store);
        let (code, out, _) = sh(&format!("audit verify --anchor {anchor} --store {s}"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("d: the document is missing"), "{out}");
    }

    #[test]
    fn verifiable_exports_offline() {
        let dir = Dir::new("export");
        let s = dir.store();
        let (_, public, _) = anchored_store(&dir);
        let (code, text, _) = sh(&format!("audit export --format verifiable --store {s}"));
        assert_eq!(code, 0);
        assert!(
            text.starts_with("{\"signoff_export\":\"signoff-export/1\""),
            "{text}"
        );
        let file = dir.0.join("export.jsonl");
        let f = file.display().to_string();
        std::fs::write(&file, &text).unwrap();
        // Offline: the store is gone.
        std::fs::remove_file(&s).unwrap();
        let (code, out, err) = sh(&format!("audit verify --export {f} --public-key {public}"));
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("(the whole store): 2 documents, 5 records"),
            "{out}"
        );
        assert!(
            out.contains(&format!("verified with the trusted key {public}")),
            "{out}"
        );
        // Edit, delete, reorder a record line: exit 1, the line named.
        let lines: Vec<&str> = text.lines().collect();
        let cases: [(Vec<String>, &str); 3] = [
            (
                {
                    let mut l: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
                    l[4] = l[4].replace("alice", "mallory");
                    l
                },
                "line 5: d: record 2 (seq 2)",
            ),
            (
                {
                    let mut l: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
                    l.remove(3);
                    l
                },
                "line 4: d: record 1 (seq 2)",
            ),
            (
                {
                    let mut l: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
                    l.swap(3, 4);
                    l
                },
                "line 4: d: record 1 (seq 2)",
            ),
        ];
        for (tampered, expect) in cases {
            std::fs::write(&file, tampered.join("\n")).unwrap();
            let (code, out, _) = sh(&format!("audit verify --export {f} --public-key {public}"));
            assert_eq!(code, 1, "{out}");
            assert!(
                out.contains(&format!("FAILED: the first bad record: {expect}")),
                "{expect}: {out}"
            );
        }
        // Not an export, a huge file, a bad key: exit 2, the file named.
        std::fs::write(&file, "hello\n").unwrap();
        let (code, _, err) = sh(&format!("audit verify --export {f}"));
        assert_eq!(code, 2);
        assert!(
            err.contains(&f) && err.contains("not a signoff export"),
            "{err}"
        );
        let huge = std::fs::File::create(&file).unwrap();
        huge.set_len(MAX_AUDIT_FILE + 1).unwrap();
        let (code, _, err) = sh(&format!("audit verify --export {f}"));
        assert_eq!(code, 2);
        assert!(err.contains(&f) && err.contains("more than"), "{err}");
        let (code, _, err) = sh(&format!("audit verify --export {f} --public-key abc123"));
        assert_eq!(code, 2);
        assert!(
            err.contains("--public-key abc123") && err.contains("6 characters"),
            "{err}"
        );
    }

    #[test]
    fn bad_anchor_and_key_files_exit_2_naming_the_file() {
        let dir = Dir::new("badfiles");
        let s = dir.store();
        anchored_store(&dir);
        let junk = dir.0.join("junk.json");
        let j = junk.display().to_string();
        std::fs::write(&junk, "{\"not\": \"an anchor\"}").unwrap();
        let (code, _, err) = sh(&format!("audit verify --anchor {j} --store {s}"));
        assert_eq!(code, 2);
        assert!(
            err.contains(&j) && err.contains("not an anchor file"),
            "{err}"
        );
        let huge = std::fs::File::create(&junk).unwrap();
        huge.set_len(MAX_AUDIT_FILE + 1).unwrap();
        let (code, _, err) = sh(&format!("audit verify --anchor {j} --store {s}"));
        assert_eq!(code, 2);
        assert!(
            err.contains(&j) && err.contains("more than an anchor file may have"),
            "{err}"
        );
        std::fs::write(&junk, "0123").unwrap();
        let (code, _, err) = sh(&format!("audit anchor --key {j} --store {s}"));
        assert_eq!(code, 2);
        assert!(err.contains(&j) && err.contains("4 characters"), "{err}");
        let (code, _, err) = sh(&format!("audit anchor --key /nonexistent.key --store {s}"));
        assert_eq!(code, 2);
        assert!(err.contains("cannot read /nonexistent.key"), "{err}");
    }
}
