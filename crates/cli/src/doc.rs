//! `signoff doc|pending|audit|tick`: approval workflows for local use, over the default
//! embedded store (a redb file, `./signoff.redb` unless `--store PATH` says otherwise).
//!
//! To be wired into the `signoff` binary as top-level subcommands: add
//! `#[command(flatten)] Local(doc::LocalCommand)` to the top-level `Command` enum and call
//! `doc::run(&cmd, out, err)`. Every write is one durable transaction: the records, the
//! document's index row and its notifications together.

use std::io::Write;
use std::path::{Path, PathBuf};

use signoff_core::event::{Action, AuthInput, Event, SignatureInput};
use signoff_core::notify::notifications;
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::workflow::Meaning;
use signoff_core::{Command, DocState, Record, Timestamp, Workflow, audit};
use signoff_storage::{DocumentIndex, EventStore, LocalStore, OpenError, RedbStore, StoreConfig};

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
    /// Fire what is due at a time: deadlines, escalations, reminders, periodic reviews.
    Tick {
        /// The time, as 2026-01-05T09:00:00Z.
        #[arg(long)]
        now: Timestamp,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// Where the store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// The store file (redb); `doc create` creates it when it does not exist.
    #[arg(
        long = "store",
        value_name = "PATH",
        default_value = "./signoff.redb",
        global = true
    )]
    pub path: PathBuf,
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
    /// Verify every document's hash chain (or one document's), and that it replays.
    Verify {
        /// Only this document.
        id: Option<String>,
    },
    /// Export the audit trail of every document (or one) to stdout.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only this document.
        id: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
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
    match rt.block_on(run_async(cmd, out)) {
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

async fn run_async(cmd: &LocalCommand, out: &mut dyn Write) -> Result<u8, Failure> {
    match cmd {
        LocalCommand::Doc { store, cmd } => doc(&store.path, cmd, out).await,
        LocalCommand::Pending { user, at, store } => {
            let store = open(&store.path, Access::Read)?;
            let at = at.unwrap_or_else(system_now);
            // The index names delegates whose delegation may have ended since: the state
            // read back decides at `at`.
            let mut any = false;
            for id in store.by_reviewer(user).await? {
                let (_, state, wf) = load(&store, &id).await?;
                let mut mine = state.pending_for(&wf, user, at);
                // Directly assigned first; one line per reviewer the user acts for.
                mine.sort_by(|a, b| a.on_behalf_of.cmp(&b.on_behalf_of));
                mine.dedup_by(|a, b| a.on_behalf_of == b.on_behalf_of);
                for p in mine {
                    any = true;
                    let _ = write!(
                        out,
                        "{id}\t{}\tversion {}\t{}",
                        state.state_name(&wf),
                        state.version,
                        state.title
                    );
                    let _ = match &p.on_behalf_of {
                        Some(r) => writeln!(out, "\ton behalf of {r}"),
                        None => writeln!(out),
                    };
                }
            }
            if !any {
                let _ = writeln!(out, "nothing pending for {user}");
            }
            Ok(OK)
        }
        LocalCommand::Audit { store, cmd } => {
            let store = open(&store.path, Access::Read)?;
            match cmd {
                AuditCommand::Verify { id } => verify(&store, id.as_deref(), out).await,
                AuditCommand::Export { format, id } => {
                    export(&store, id.as_deref(), *format, out).await
                }
            }
        }
        LocalCommand::Tick { now, store } => {
            let store = open(&store.path, Access::Write)?;
            let mut fired = 0;
            for (id, _) in store.documents().await? {
                let (_, state, wf) = load(&store, &id).await?;
                if let Some(decided) = state.tick(&wf, *now) {
                    let _ = writeln!(out, "{id}: {}", actions(&decided.records));
                    fired += decided.records.len();
                    commit(&store, &id, state.seq, &wf, decided).await?;
                }
            }
            let _ = writeln!(out, "tick {now}: {fired} records");
            Ok(OK)
        }
    }
}

async fn doc(path: &Path, cmd: &DocCommand, out: &mut dyn Write) -> Result<u8, Failure> {
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
        let source = std::fs::read_to_string(workflow)
            .map_err(|e| unusable(format!("cannot read {}: {e}", workflow.display())))?;
        let wf = Workflow::from_text(&source, &workflow.display().to_string()).map_err(|e| {
            unusable(format!(
                "{} is not a valid workflow (see `signoff workflow validate`):\n{e}",
                workflow.display()
            ))
        })?;
        let store = RedbStore::create(path, StoreConfig::durable())?;
        if !store.read(id, 0).await?.is_empty() {
            return Err(failed(format!(
                "document {id} already exists in {}",
                path.display()
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
            "{id}: created by {} under workflow {} ({}), state {}",
            actor.by,
            wf.name(),
            short(wf.hash()),
            state.state_name(&wf)
        );
        return Ok(OK);
    }

    let access = match cmd {
        DocCommand::Status { .. } | DocCommand::History { .. } => Access::Read,
        _ => Access::Write,
    };
    let store = open(path, access)?;
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
        "{id}: {name} by {}: {} records, state {}, version {}{}",
        actor.by,
        n,
        after.state_name(&wf),
        after.version,
        waiting(&after, &wf)
    );
    Ok(OK)
}

/// Appends a decision's records with the document's new index row and its notifications,
/// in one durable commit.
async fn commit(
    store: &RedbStore,
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
}

fn open(path: &Path, access: Access) -> Result<RedbStore, Failure> {
    Ok(match access {
        Access::Read => RedbStore::open_read_only(path)?,
        Access::Write => RedbStore::open(path, StoreConfig::durable())?,
    })
}

/// A document's records, its state and its workflow (from the store).
async fn load(store: &RedbStore, id: &str) -> Result<(Vec<Record>, DocState, Workflow), Failure> {
    let records = store.read(id, 0).await?;
    let Some(first) = records.first() else {
        return Err(failed(format!(
            "no document {id} in {}",
            store.path().display()
        )));
    };
    let Event::Created { workflow_hash, .. } = &first.event else {
        return Err(unusable(format!(
            "{id}: the stream does not start with `created`"
        )));
    };
    let source = store.workflow(workflow_hash).await?.ok_or_else(|| {
        unusable(format!(
            "{id}: workflow {} is not in the store",
            short(workflow_hash)
        ))
    })?;
    let wf = Workflow::from_text(&source, "stored workflow")
        .map_err(|e| unusable(format!("{id}: the stored workflow does not load: {e}")))?;
    let state = DocState::replay(&wf, &records).map_err(|e| unusable(format!("{id}: {e}")))?;
    Ok((records, state, wf))
}

fn status(
    records: &[Record],
    state: &DocState,
    wf: &Workflow,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let _ = writeln!(out, "document:      {} ({})", state.doc, state.title);
    let _ = writeln!(out, "workflow:      {} ({})", wf.name(), short(wf.hash()));
    let _ = writeln!(out, "state:         {}", state.state_name(wf));
    let _ = writeln!(
        out,
        "version:       {} (content {}, by {})",
        state.version, state.content_hash, state.version_author
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
            .map(|p| format!("{} ({}/{})", p.reviewer, p.stage, p.group))
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

async fn verify(store: &RedbStore, only: Option<&str>, out: &mut dyn Write) -> Result<u8, Failure> {
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
        let records = store.read(id, 0).await?;
        if records.is_empty() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        total += records.len();
        if let Err(e) = audit::verify(&records) {
            bad += 1;
            let _ = writeln!(out, "{id}: {e}");
            continue;
        }
        if let Err(f) = load(store, id).await {
            bad += 1;
            let _ = writeln!(out, "{id}: {}", f.message);
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
    store: &RedbStore,
    only: Option<&str>,
    format: ExportFormat,
    out: &mut dyn Write,
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
    for (i, id) in ids.iter().enumerate() {
        let records = store.read(id, 0).await?;
        if records.is_empty() {
            return Err(failed(format!(
                "no document {id} in {}",
                store.path().display()
            )));
        }
        let text = match format {
            ExportFormat::Jsonl => audit::to_jsonl(&records),
            ExportFormat::Csv => {
                let csv = audit::to_csv(&records);
                // One header for the whole export.
                match (i, csv.split_once('\n')) {
                    (0, _) | (_, None) => csv,
                    (_, Some((_, rows))) => rows.to_owned(),
                }
            }
        };
        let _ = out.write_all(text.as_bytes());
    }
    Ok(OK)
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
        format!(", waiting for {}", who.join(", "))
    }
}

fn actions(records: &[Record]) -> String {
    let names: Vec<&str> = records.iter().map(|r| r.event.action()).collect();
    names.join(", ")
}

fn history_line(r: &Record) -> String {
    let mut line = format!("#{} {} {}", r.seq, r.at, r.actor);
    if let Some(p) = &r.on_behalf_of {
        line.push_str(&format!(" for {p}"));
    }
    match &r.event {
        Event::Decided { decision, .. } => line.push_str(&format!(" {}", decision.name())),
        e => line.push_str(&format!(" {}", e.action())),
    }
    if r.from_state.is_empty() {
        line.push_str(&format!(" (in {})", r.to_state));
    } else if r.from_state != r.to_state {
        line.push_str(&format!(" ({} -> {})", r.from_state, r.to_state));
    }
    line.push_str(&format!(" v{}", r.version));
    if let Some(s) = &r.signature {
        line.push_str(&format!(", signed by {} ({})", s.name, s.meaning));
    }
    if let Some(c) = &r.comment {
        line.push_str(&format!(": {c}"));
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

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LocalCommand,
    }

    /// Runs `signoff ARGS` in `dir`; returns the exit code, stdout and stderr.
    fn sh(args: &str) -> (u8, String, String) {
        let cli = Cli::try_parse_from(std::iter::once("signoff").chain(args.split_whitespace()))
            .unwrap_or_else(|e| panic!("{args}: {e}"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&cli.cmd, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
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
        let (code, _, err) = sh(&format!("tick --now 2026-01-05T09:00:00Z --store {s}"));
        assert_eq!(code, 2);
        assert!(err.contains("in use"), "{err}");
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
        assert!(err.contains("cannot read /nonexistent.yaml"), "{err}");
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
}
