//! The app logic: resolvers, product events, the scheduled trigger and the health check,
//! each turned into engine commands over core's storage traits.
//!
//! Documents are event-sourced by `signoff-core`: a call loads the page's stream, replays
//! it under the workflow the document is pinned to, decides the command, and commits the
//! new records with the expected stream length, the index row and the notifications in one
//! atomic commit ([`LocalStore::commit`]; a conflict decides again). Then it mirrors the document onto its page: the content state
//! lozenge and the `signoff-summary` content property. Analytics carry only counts and state
//! names; when analytics are blocked the app goes on.
//!
//! The app's own records live in the key-value store under `app:` (see the README):
//! `app:space:<key>` the workflow assigned to a space, `app:workflow:<hash>` a workflow's
//! source, `app:page:<id>` what the app knows of a page, `app:delegations:<account>` the
//! pages delegated to someone, `app:settings`, `app:totp:<account>` a signer's TOTP state
//! (the enrolment's secret itself is a platform secret; see `reauth`).

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use signoff_core::event::{Action, AuthInput, SignatureInput};
use signoff_core::evidence::{EvidenceVerifier, NoVerifier};
use signoff_core::notify::{Notification, notifications};
use signoff_core::offer::{Offer, Offers};
use signoff_core::state::{Decided, PendingReview, SYSTEM};
use signoff_core::store::{IndexEntry, StoreError};
use signoff_core::workflow::diagram::Diagram;
use signoff_core::workflow::{Rule, WorkflowDef};
use signoff_core::{Command, DocState, Event, Record, Refusal, Timestamp, Workflow, audit};
use signoff_storage::hosted::{KeyPolicy, Kvs, KvsError, MAX_PAGE, StreamHead};

use crate::block::block_on;
use crate::payload::{
    self, AssignWorkflow, ConfigureWebhook, Decide, Delegate, PageCommand, PageEvent, PageQuery,
    PageView, Reauth, Sign, SpaceQuery, ValidateWorkflow,
};
use crate::ports::{AppError, ContentState, Level, Page, Platform};
use crate::snapshot;
use crate::store::AppStore;
use crate::totp::TotpVerifier;

mod reauth;

/// The content property that holds a page's approval summary.
pub const SUMMARY_PROPERTY: &str = "signoff-summary";
/// The content property where notifications are delivered (the platform has no notify API).
pub const NOTIFICATIONS_PROPERTY: &str = "signoff-notifications";
/// The resolvers, in the order the README lists them.
pub const RESOLVERS: [&str; 23] = [
    "assign-workflow",
    "submit",
    "approve",
    "reject",
    "request-changes",
    "sign",
    "delegate",
    "withdraw",
    "mark-up-to-date",
    "archive",
    "status",
    "history",
    "pending",
    "configure-webhook",
    "templates",
    "totp-enrol",
    "totp-reset",
    "totp-status",
    "panel",
    "my-approvals",
    "space-workflow",
    "validate-workflow",
    "workflow-diagram",
];
/// The built-in workflow templates of `signoff-core`, by name.
pub const TEMPLATES: [(&str, &str); 4] = [
    (
        "basic",
        include_str!("../../../crates/core/templates/basic.yaml"),
    ),
    (
        "two-stage",
        include_str!("../../../crates/core/templates/two-stage.yaml"),
    ),
    (
        "regulated",
        include_str!("../../../crates/core/templates/regulated.yaml"),
    ),
    (
        "periodic-review",
        include_str!("../../../crates/core/templates/periodic-review.yaml"),
    ),
];
/// How many of a user's own decisions `app:decisions:<account>` keeps (for "My approvals").
const KEEP_DECISIONS: usize = 20;
/// How many delivered notifications a page's notification property keeps.
const KEEP_NOTIFICATIONS: usize = 20;
/// How often a command is decided again when another call appended first.
const MAX_ATTEMPTS: usize = 3;

/// The app over a store for the engine (in the component, `HostedStore` over the hosted
/// key-value store), a key-value store for its own records, and the platform. One `App`
/// serves one invocation (the platform gives each a fresh instance).
#[derive(Debug)]
pub struct App<'a, S, K, P> {
    pub store: &'a S,
    pub kvs: &'a K,
    pub platform: &'a P,
    /// The workflows loaded by this invocation: each is compiled at most once per call.
    workflows: RefCell<Vec<Rc<Workflow>>>,
}

/// The workflow assigned to a space: `app:space:<key>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpaceRecord {
    workflow: String,
    workflow_hash: String,
    space_admins: Vec<String>,
    #[serde(default)]
    page_owner: Option<String>,
    assigned_by: String,
    at: Timestamp,
}

/// A workflow's source, by hash: `app:workflow:<hash>`. Documents pin the hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkflowRecord {
    source: String,
    /// The compiled definition as JSON (`WorkflowDef`), which loads several times faster
    /// than the source; used only when it compiles to the hash of the key (else the source
    /// is compiled). Records from before it are completed on their first load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compiled: Option<String>,
}

/// What the app knows of a tracked page: `app:page:<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageRecord {
    doc: String,
    space: String,
    title_hash: String,
    body_hash: String,
    /// Document version -> the page version it was read from.
    versions: Vec<(u32, u32)>,
}

/// App-wide settings: `app:settings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    /// Where changed pages' content is posted (the webhook variant only).
    #[serde(default)]
    webhook: Option<String>,
}

/// One of a user's own decisions or signatures: `app:decisions:<account>` keeps the last
/// [`KEEP_DECISIONS`], oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecentDecision {
    page_id: String,
    title: String,
    /// The resolver's name: `approve`, `reject`, `request-changes`, `sign`.
    action: String,
    version: u32,
    on_behalf_of: Option<String>,
    at: Timestamp,
    /// The document's state after it.
    state: String,
}

/// A document loaded from its snapshot, or from its stream.
#[derive(Debug)]
struct Loaded {
    page: PageRecord,
    wf: Rc<Workflow>,
    state: DocState,
}

impl<'a, S, K, P> App<'a, S, K, P> {
    pub fn new(store: &'a S, kvs: &'a K, platform: &'a P) -> App<'a, S, K, P> {
        App {
            store,
            kvs,
            platform,
            workflows: RefCell::default(),
        }
    }
}

impl<S, K, P> App<'_, S, K, P>
where
    S: AppStore,
    K: Kvs,
    P: Platform,
{
    /// A UI call: `payload` and the answer are JSON text.
    pub fn resolver(&self, name: &str, payload: &str) -> Result<String, AppError> {
        let answer = match name {
            "assign-workflow" => self.assign_workflow(payload::parse("payload", payload)?)?,
            "submit" | "withdraw" | "mark-up-to-date" | "archive" => {
                let p: PageCommand = payload::parse("payload", payload)?;
                let by = self.actor(p.account_id)?;
                let action = match name {
                    "submit" => Action::Submit,
                    "withdraw" => Action::Withdraw,
                    "mark-up-to-date" => Action::MarkUpToDate,
                    _ => Action::Archive,
                };
                self.act(&p.page_id, |_| {
                    Ok(Command {
                        by: by.clone(),
                        on_behalf_of: None,
                        comment: p.comment.clone(),
                        action: action.clone(),
                    })
                })?
            }
            "approve" | "reject" | "request-changes" => {
                let p: Decide = payload::parse("payload", payload)?;
                let by = self.actor(p.account_id.clone())?;
                let reauth = p.signature.as_ref().and_then(|s| s.reauth.as_ref());
                let totp = self.totp_verifier(&by, reauth)?;
                let signature = match &p.signature {
                    Some(s) => Some(SignatureInput {
                        name: s.name.clone(),
                        meaning: s.meaning,
                        auth: s.reauth.as_ref().map(auth_input).transpose()?,
                    }),
                    None => None,
                };
                self.act_verified(&p.page_id, totp.as_ref(), |state| {
                    let version = p.version.unwrap_or(state.version);
                    let action = match name {
                        "approve" => Action::Approve {
                            version,
                            signature: signature.clone(),
                        },
                        "reject" => Action::Reject { version },
                        _ => Action::RequestChanges { version },
                    };
                    Ok(Command {
                        by: by.clone(),
                        on_behalf_of: p.on_behalf_of.clone(),
                        comment: p.comment.clone(),
                        action,
                    })
                })?
            }
            "sign" => {
                let p: Sign = payload::parse("payload", payload)?;
                let by = self.actor(p.account_id.clone())?;
                let auth = auth_input(&p.reauth)?;
                let totp = self.totp_verifier(&by, Some(&p.reauth))?;
                self.act_verified(&p.page_id, totp.as_ref(), |state| {
                    Ok(Command {
                        by: by.clone(),
                        on_behalf_of: None,
                        comment: p.comment.clone(),
                        action: Action::Sign {
                            version: p.version.unwrap_or(state.version),
                            signature: SignatureInput {
                                name: p.name.clone(),
                                meaning: p.meaning,
                                auth: Some(auth.clone()),
                            },
                        },
                    })
                })?
            }
            "delegate" => {
                let p: Delegate = payload::parse("payload", payload)?;
                let by = self.actor(p.account_id.clone())?;
                check_id("to", &p.to)?;
                let answer = self.act(&p.page_id, |_| {
                    Ok(Command {
                        by: by.clone(),
                        on_behalf_of: None,
                        comment: None,
                        action: Action::Delegate {
                            to: p.to.clone(),
                            until: p.until,
                            reason: p.reason.clone(),
                        },
                    })
                })?;
                // So that the delegate's pending list finds the page.
                let key = delegations_key(&p.to);
                let mut pages: Vec<String> = self.get(&key)?.unwrap_or_default();
                if !pages.contains(&p.page_id) {
                    pages.push(p.page_id.clone());
                    self.put(&key, &pages)?;
                }
                answer
            }
            "status" => {
                let p: PageQuery = payload::parse("payload", payload)?;
                let (d, records) = self.load_replayed(&p.page_id)?;
                let mut s = summary(&p.page_id, &d.page, &d.wf, &d.state);
                s["verified"] = json!(audit::verify_head(&records, &d.state.head).is_ok());
                s
            }
            "history" => {
                let p: PageQuery = payload::parse("payload", payload)?;
                let (d, records) = self.load_replayed(&p.page_id)?;
                let problem = audit::verify_head(&records, &d.state.head)
                    .err()
                    .map(|e| e.to_string());
                json!({
                    "pageId": p.page_id,
                    "doc": d.page.doc,
                    "verified": problem.is_none(),
                    "problem": problem,
                    "signatures": audit::manifestation(&records, d.state.version),
                    "records": records,
                })
            }
            "pending" => {
                let p: payload::Actor = payload::parse("payload", payload)?;
                let user = self.actor(p.account_id)?;
                self.pending(&user)?
            }
            "configure-webhook" => self.configure_webhook(payload::parse("payload", payload)?)?,
            "templates" => templates(),
            "totp-enrol" => self.totp_enrol(payload::parse("payload", payload)?)?,
            "totp-reset" => self.totp_reset(payload::parse("payload", payload)?)?,
            "totp-status" => self.totp_status(payload::parse("payload", payload)?)?,
            "panel" => self.panel(payload::parse("payload", payload)?)?,
            "my-approvals" => {
                let p: payload::Actor = payload::parse("payload", payload)?;
                let user = self.actor(p.account_id)?;
                self.my_approvals(&user)?
            }
            "space-workflow" => self.space_workflow(payload::parse("payload", payload)?)?,
            "validate-workflow" => {
                let p: ValidateWorkflow = payload::parse("payload", payload)?;
                validate_workflow(&p.source)
            }
            "workflow-diagram" => {
                let p: PageQuery = payload::parse("payload", payload)?;
                let d = self.load(&p.page_id)?;
                workflow_diagram(&d.wf, &d.state)
            }
            other => {
                return Err(AppError::new(
                    "UNKNOWN_RESOLVER",
                    format!(
                        "no resolver named `{other}`; the app has {}",
                        RESOLVERS.join(", ")
                    ),
                ));
            }
        };
        self.deliver();
        Ok(answer.to_string())
    }

    /// A product event. Page events of spaces with a workflow start documents and record new
    /// versions; anything else is acknowledged and ignored. Events may come late, twice or
    /// out of order: the app reads the page as it is now and records a version only when
    /// its content changed.
    pub fn on_event(&self, text: &str) -> Result<(), AppError> {
        let ev: PageEvent = payload::parse("event", text)?;
        let kind = match ev.event_type.as_str() {
            "avi:confluence:created:page" => "created",
            "avi:confluence:updated:page" => "updated",
            _ => {
                self.ignored("event", "other_event");
                return Ok(());
            }
        };
        if ev.content.kind.as_deref().is_some_and(|k| k != "page") {
            self.ignored(kind, "not_a_page");
            return Ok(());
        }
        let page_id = ev.content.id.text();
        check_id("content.id", &page_id)?;
        let page = self
            .platform
            .get_page(&page_id)?
            .ok_or_else(|| unknown_page(&page_id))?;
        let editor = ev
            .atlassian_id
            .clone()
            .unwrap_or_else(|| page.author.clone());
        let outcome = self.page_changed(&page, &editor)?;
        self.track(
            "signoff.page-event",
            json!({ "kind": kind, "outcome": outcome }),
        );
        self.deliver();
        Ok(())
    }

    /// A scheduled trigger: fires what is due on every tracked document at the invocation's
    /// time (expiry, reminders, escalations, periodic reviews), then delivers notifications.
    pub fn on_schedule(&self, key: &str) -> Result<(), AppError> {
        let now = self.now();
        if self.kvs.get(WAKE_INDEX_KEY).map_err(kvs_error)?.is_none() {
            self.build_wake_index()?;
        }
        let (mut documents, mut fired, mut records, mut damaged) = (0, 0, 0, 0);
        // The documents due by now, earliest first: one query when none is.
        for (wake, page_id, at) in self.due_wakes(now)? {
            documents += 1;
            let d = match self.load(&page_id) {
                Ok(d) => d,
                Err(e) if e.code == "UNKNOWN_PAGE" => {
                    self.drop_wake(&wake);
                    continue;
                }
                // One damaged document never stops the schedule: it is named in the log
                // (page, code, what is wrong), counted, and the others are still ticked.
                Err(e) => {
                    damaged += 1;
                    self.log(
                        Level::Warn,
                        &format!(
                            "tick: page {page_id} is damaged and was skipped: {}: {}",
                            e.code, e.message
                        ),
                    );
                    continue;
                }
            };
            let next = d.state.next_tick(&d.wf);
            let Some(decided) = d.state.tick(&d.wf, now) else {
                // A spurious key (a change moved the document's time): drop it, and make
                // sure the right one exists.
                if next != Some(at) {
                    if let Some(t) = next {
                        let _ = self
                            .kvs
                            .set(&wake_key(t, &page_id), "1", KeyPolicy::Overwrite);
                    }
                    self.drop_wake(&wake);
                }
                continue;
            };
            match self.commit(&d.page.doc, d.state.seq, &d.wf, Some(&d.state), &decided) {
                Ok(()) => {
                    fired += 1;
                    records += decided.records.len();
                    if next != Some(at) {
                        self.drop_wake(&wake);
                    }
                    self.after(&page_id, &d.page, &d.wf, &decided.state);
                }
                // Someone acted on the document meanwhile; the next run fires what is due.
                Err(e) => self.log(
                    Level::Warn,
                    &format!("tick: not committed: {}", store_code(&e)),
                ),
            }
        }
        // A run that found nothing due sends nothing: a site with little activity would
        // otherwise send an empty event every five minutes.
        if documents > 0 {
            let mut props = json!({ "trigger": key, "documents": documents, "fired": fired, "records": records });
            // Counted only when there is something to count: the event stays as small as before.
            if damaged > 0 {
                props["damaged"] = json!(damaged);
            }
            self.track("signoff.schedule", props);
        }
        self.deliver();
        Ok(())
    }

    /// The wake keys at or before `now`, in time order: `(key, page id, time)`. Reads pages
    /// of the index until the first later key.
    fn due_wakes(&self, now: Timestamp) -> Result<Vec<(String, String, Timestamp)>, AppError> {
        let mut due = Vec::new();
        let mut cursor: Option<String> = None;
        // A small first page: most runs find nothing due.
        let mut limit = 8;
        loop {
            let page = self
                .kvs
                .query(WAKE_PREFIX, limit, cursor.as_deref())
                .map_err(kvs_error)?;
            for (key, _) in page.entries {
                let Some((at, page_id)) = parse_wake(&key) else {
                    self.drop_wake(&key);
                    continue;
                };
                if at > now {
                    return Ok(due);
                }
                due.push((key.clone(), page_id.to_owned(), at));
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(due),
            }
            limit = MAX_PAGE;
        }
    }

    fn drop_wake(&self, key: &str) {
        if let Err(e) = self.kvs.delete(key) {
            self.log(Level::Warn, &format!("wake key not deleted: {}", e.code));
        }
    }

    /// Installations from before the wake index: one pass over every tracked page writes
    /// its wake key, then the marker.
    fn build_wake_index(&self) -> Result<(), AppError> {
        for (key_name, _) in self.scan("app:page:")? {
            let page_id = &key_name["app:page:".len()..];
            if let Ok(d) = self.load(page_id)
                && let Some(t) = d.state.next_tick(&d.wf)
            {
                self.kvs
                    .set(&wake_key(t, page_id), "1", KeyPolicy::Overwrite)
                    .map_err(kvs_error)?;
            }
        }
        self.kvs
            .set(WAKE_INDEX_KEY, "1", KeyPolicy::Overwrite)
            .map_err(kvs_error)
    }

    /// The health check's answer: JSON, and whether the store answers.
    pub fn health(&self) -> (u16, String) {
        match self.kvs.get("app:settings") {
            Ok(_) => (
                200,
                json!({"status": "ok", "app": "signoff-approvals"}).to_string(),
            ),
            Err(e) => (
                503,
                json!({"status": "unavailable", "app": "signoff-approvals", "storage": e.code})
                    .to_string(),
            ),
        }
    }

    fn assign_workflow(&self, p: AssignWorkflow) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        check_id("space", &p.space)?;
        let (source, template) = match (p.template, p.source) {
            (Some(t), None) => match TEMPLATES.iter().find(|(n, _)| *n == t) {
                Some((_, s)) => ((*s).to_owned(), t),
                None => {
                    return Err(AppError::new(
                        "BAD_PAYLOAD",
                        format!(
                            "payload.template: no template `{t}`; there are {}",
                            TEMPLATES.map(|(n, _)| n).join(", ")
                        ),
                    ));
                }
            },
            (None, Some(s)) => (s, "custom".to_owned()),
            _ => {
                return Err(AppError::new(
                    "BAD_PAYLOAD",
                    "payload: give either `template` (a built-in name) or `source` (YAML or JSON)",
                ));
            }
        };
        let wf = Workflow::from_text(&source, &format!("workflow of space {}", p.space))
            .map_err(|e| AppError::new("BAD_WORKFLOW", e.to_string()))?;
        if let Some(current) = self.get::<SpaceRecord>(&space_key(&p.space))?
            && !current.space_admins.contains(&by)
        {
            return Err(AppError::new(
                "NOT_PERMITTED",
                format!(
                    "{by} is not an administrator of space {}; only they may change its workflow",
                    p.space
                ),
            ));
        }
        let mut space_admins = p.space_admins;
        space_admins.push(by.clone());
        space_admins.sort();
        space_admins.dedup();
        self.put(
            &format!("app:workflow:{}", wf.hash()),
            &WorkflowRecord {
                source,
                compiled: serde_json::to_string(wf.def()).ok(),
            },
        )?;
        self.put(
            &space_key(&p.space),
            &SpaceRecord {
                workflow: wf.name().to_owned(),
                workflow_hash: wf.hash().to_owned(),
                space_admins,
                page_owner: p.page_owner,
                assigned_by: by,
                at: self.now(),
            },
        )?;
        self.track(
            "signoff.workflow-assigned",
            json!({ "template": template, "states": wf.states().len() }),
        );
        Ok(json!({
            "space": p.space,
            "workflow": wf.name(),
            "workflowHash": wf.hash(),
            "states": wf.states().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        }))
    }

    fn configure_webhook(&self, p: ConfigureWebhook) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        let admin = self
            .scan("app:space:")?
            .iter()
            .filter_map(|(_, v)| serde_json::from_str::<SpaceRecord>(v).ok())
            .any(|s| s.space_admins.contains(&by));
        if !admin {
            return Err(AppError::new(
                "NOT_PERMITTED",
                format!(
                    "{by} administers no space with a workflow; only space administrators configure the webhook"
                ),
            ));
        }
        if let Some(url) = &p.url
            && !url.starts_with("https://")
        {
            return Err(AppError::new(
                "BAD_PAYLOAD",
                format!("payload.url: {url:?} is not an https:// URL"),
            ));
        }
        self.put(
            "app:settings",
            &Settings {
                webhook: p.url.clone(),
            },
        )?;
        Ok(json!({ "webhook": p.url }))
    }

    /// What `user` has to review: as a reviewer (from the index), and for others under a
    /// delegation valid now (from the pages delegated to them).
    fn pending(&self, user: &str) -> Result<Value, AppError> {
        let now = self.now();
        let mut items = Vec::new();
        for page_id in &self.review_pages(user)? {
            let d = self.load(page_id)?;
            for p in d.state.pending_for(&d.wf, user, now) {
                items.push(json!({
                    "pageId": page_id,
                    "title": d.state.title,
                    "state": d.state.state_name(&d.wf),
                    "version": d.state.version,
                    "stage": p.review.stage,
                    "group": p.review.group,
                    "onBehalfOf": p.on_behalf_of,
                    "dueAt": d.state.deadline(),
                }));
            }
        }
        Ok(json!({ "accountId": user, "items": items }))
    }

    /// The pages on which `user` may have something to review: those the index lists them
    /// as a pending reviewer of, then those on which someone made them a delegate.
    fn review_pages(&self, user: &str) -> Result<Vec<String>, AppError> {
        let mut pages: Vec<String> = block_on(self.store.by_reviewer(user))
            .map_err(storage)?
            .into_iter()
            .filter_map(|doc| doc.strip_prefix("page-").map(str::to_owned))
            .collect();
        if check_id("accountId", user).is_ok() {
            let delegated: Vec<String> = self.get(&delegations_key(user))?.unwrap_or_default();
            for page in delegated {
                if !pages.contains(&page) {
                    pages.push(page);
                }
            }
        }
        Ok(pages)
    }

    /// "My approvals": what `user` has to review now, directly or for someone who delegated
    /// to them (each with its lozenge, whether its deadline has passed, and, when the engine
    /// would refuse the user's decision, why), and the user's own latest decisions and
    /// signatures (`app:decisions:<account>`, newest first).
    fn my_approvals(&self, user: &str) -> Result<Value, AppError> {
        let now = self.now();
        let mut pending = Vec::new();
        for page_id in &self.review_pages(user)? {
            let d = self.load(page_id)?;
            let due = d.state.deadline();
            let badge = lozenge(&d.wf, &d.state);
            let offers = d.state.offers(&d.wf, user, now);
            for p in d.state.pending_for(&d.wf, user, now) {
                // Pending, but the engine would refuse every decision (separation of
                // duties, one vote per person): the reason is shown with the item.
                let same = |o: &Offer| {
                    o.group.as_deref() == Some(p.review.group.as_str())
                        && o.on_behalf_of == p.on_behalf_of
                };
                let refusal = match offers.allowed.iter().any(same) {
                    true => None,
                    false => offers.refused.iter().find(|(o, _)| same(o)).map(|(_, r)| {
                        json!({"code": r.reason.code().to_ascii_uppercase(), "message": r.to_string()})
                    }),
                };
                pending.push(json!({
                    "pageId": page_id,
                    "title": d.state.title,
                    "state": d.state.state_name(&d.wf),
                    "lozenge": badge.name,
                    "appearance": appearance(&badge.color),
                    "version": d.state.version,
                    "stage": p.review.stage,
                    "group": p.review.group,
                    "onBehalfOf": p.on_behalf_of,
                    "dueAt": due,
                    "overdue": due.is_some_and(|t| t <= now),
                    "refusal": refusal,
                }));
            }
        }
        // Overdue first, then by deadline (none last), then by page.
        pending.sort_by_key(|v| {
            (
                !v["overdue"].as_bool().unwrap_or(false),
                v["dueAt"]
                    .as_str()
                    .map_or((1, String::new()), |t| (0, t.to_owned())),
                v["pageId"].as_str().unwrap_or("").to_owned(),
            )
        });
        let mut recent: Vec<RecentDecision> = match check_id("accountId", user) {
            Ok(()) => self.get(&decisions_key(user))?.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        recent.reverse();
        Ok(json!({
            "accountId": user,
            "now": now,
            "pending": pending,
            "recent": recent,
        }))
    }

    /// The byline panel of a page for its viewer: the summary and the audit chain's check,
    /// the stages of the running approval with each reviewer's decision, the decisions and
    /// signatures on the current version, the delegations in force, and the actions the
    /// engine would carry out for the viewer now (`DocState::offers`), with the decisions
    /// the viewer is pending for that it would refuse, and why. A view without a caller (an
    /// anonymous reader) gets no actions.
    fn panel(&self, p: PageView) -> Result<Value, AppError> {
        let user = match (self.platform.caller(), &p.account_id) {
            (None, None) => None,
            _ => Some(self.actor(p.account_id)?),
        };
        let (d, records) = self.load_replayed(&p.page_id)?;
        let now = self.now();
        let (wf, state) = (&d.wf, &d.state);
        let mut s = summary(&p.page_id, &d.page, wf, state);
        let badge = lozenge(wf, state);
        s["title"] = json!(state.title);
        s["appearance"] = json!(appearance(&badge.color));
        s["verified"] = json!(audit::verify_head(&records, &state.head).is_ok());
        s["viewer"] = json!(user);
        s["now"] = json!(now);
        s["author"] = json!(state.author);
        s["stages"] = stages(wf, state);
        s["decisions"] = records
            .iter()
            .filter(|r| r.version == state.version)
            .filter_map(decision_view)
            .collect();
        s["delegations"] = state
            .delegations
            .iter()
            .filter(|x| now < x.until)
            .map(|x| json!({"from": x.from, "to": x.to, "until": x.until, "reason": x.reason}))
            .collect();
        let offers = match &user {
            Some(u) => state.offers(wf, u, now),
            None => Offers::default(),
        };
        s["actions"] = offers.allowed.iter().map(offer_view).collect();
        s["refused"] = offers
            .refused
            .iter()
            .map(|(o, r)| {
                let mut v = offer_view(o);
                v["code"] = json!(r.reason.code().to_ascii_uppercase());
                v["message"] = json!(r.to_string());
                v
            })
            .collect();
        Ok(s)
    }

    /// The workflow of a space as its settings page shows it: none yet (and the caller may
    /// assign one), or the assigned one with its source, and whether the caller is one of
    /// the space's administrators (who alone may change it).
    fn space_workflow(&self, p: SpaceQuery) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        check_id("space", &p.space)?;
        let Some(rec) = self.get::<SpaceRecord>(&space_key(&p.space))? else {
            return Ok(json!({"space": p.space, "assigned": false, "canAssign": true}));
        };
        let source = self
            .get::<WorkflowRecord>(&format!("app:workflow:{}", rec.workflow_hash))?
            .map(|w| w.source);
        let template = source
            .as_deref()
            .and_then(|src| TEMPLATES.iter().find(|(_, t)| *t == src).map(|(n, _)| *n));
        let states = self
            .workflow(&rec.workflow_hash)
            .map(|wf| {
                wf.states()
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Ok(json!({
            "space": p.space,
            "assigned": true,
            "canAssign": rec.space_admins.contains(&by),
            "workflow": rec.workflow,
            "workflowHash": rec.workflow_hash,
            "template": template,
            "source": source,
            "states": states,
            "spaceAdmins": rec.space_admins,
            "assignedBy": rec.assigned_by,
            "at": rec.at,
        }))
    }

    /// Decides a command on a page's document, appends it, and mirrors the result.
    /// `build` makes the command from the current state (for the default version).
    fn act(
        &self,
        page_id: &str,
        build: impl Fn(&DocState) -> Result<Command, AppError>,
    ) -> Result<Value, AppError> {
        self.act_verified(page_id, None, build)
    }

    /// [`App::act`] with a signer's TOTP verifier for the command's re-authentication
    /// evidence (without one, evidence is unverifiable). What the check found is stored
    /// before the commit: an accepted code's time step is used up (even if the engine then
    /// refuses the command for another reason), a wrong one counts towards a lockout.
    fn act_verified(
        &self,
        page_id: &str,
        totp: Option<&TotpVerifier>,
        build: impl Fn(&DocState) -> Result<Command, AppError>,
    ) -> Result<Value, AppError> {
        let now = self.now();
        let verifier: &dyn EvidenceVerifier = match totp {
            Some(v) => v,
            None => &NoVerifier,
        };
        for attempt in 1.. {
            let d = self.load(page_id)?;
            let cmd = build(&d.state)?;
            let decided = d.state.decide_with(&d.wf, &cmd, now, verifier);
            if let Some(v) = totp {
                self.settle_totp(v)?;
            }
            let decided = decided.map_err(refused)?;
            match self.commit(&d.page.doc, d.state.seq, &d.wf, Some(&d.state), &decided) {
                Ok(()) => {
                    self.after(page_id, &d.page, &d.wf, &decided.state);
                    self.remember_decision(page_id, &cmd, &d.wf, &decided.state);
                    self.track(
                        "signoff.command",
                        json!({
                            "action": cmd.action.name(),
                            "state": decided.state.state_name(&d.wf),
                            "records": decided.records.len(),
                        }),
                    );
                    return Ok(summary(page_id, &d.page, &d.wf, &decided.state));
                }
                Err(StoreError::Conflict { .. }) if attempt < MAX_ATTEMPTS => continue,
                Err(e) => return Err(storage(e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// Keeps a decision or signature in its actor's list of recent ones (for "My
    /// approvals"). Best effort, after the commit: the audit trail is the record, this list
    /// only an index of it, and a failure to update it is logged.
    fn remember_decision(&self, page_id: &str, cmd: &Command, wf: &Workflow, after: &DocState) {
        let (action, version) = match &cmd.action {
            Action::Approve { version, .. }
            | Action::Reject { version }
            | Action::RequestChanges { version }
            | Action::Sign { version, .. } => (cmd.action.name().replace('_', "-"), *version),
            _ => return,
        };
        let key = decisions_key(&cmd.by);
        let entry = RecentDecision {
            page_id: page_id.to_owned(),
            title: after.title.clone(),
            action,
            version,
            on_behalf_of: cmd.on_behalf_of.clone().filter(|p| *p != cmd.by),
            at: self.now(),
            state: after.state_name(wf).to_owned(),
        };
        let result = self.get::<Vec<RecentDecision>>(&key).and_then(|list| {
            let mut list = list.unwrap_or_default();
            list.push(entry);
            let from = list.len().saturating_sub(KEEP_DECISIONS);
            self.put(&key, &list[from..].to_vec())
        });
        if let Err(e) = result {
            self.log(
                Level::Warn,
                &format!("recent decision not kept: {}", e.code),
            );
        }
    }

    /// A page was created or changed: start its document, or record a new version. Returns
    /// what happened, for analytics.
    fn page_changed(&self, page: &Page, editor: &str) -> Result<&'static str, AppError> {
        let (title_hash, body_hash) = (
            audit::sha256_hex(page.title.as_bytes()),
            audit::sha256_hex(page.body.as_bytes()),
        );
        let content_hash = audit::sha256_hex(format!("{title_hash}\n{body_hash}").as_bytes());
        let doc = doc_id(&page.id);
        let now = self.now();
        for attempt in 1.. {
            let head = self.store.stream_head(&doc).map_err(storage)?;
            if head.len == 0 {
                let Some(space) = self.get::<SpaceRecord>(&space_key(&page.space))? else {
                    return Ok("untracked_space");
                };
                let wf = self.workflow(&space.workflow_hash)?;
                let cmd = Command {
                    by: editor.to_owned(),
                    on_behalf_of: None,
                    comment: None,
                    action: Action::Create {
                        title: page.title.clone(),
                        content_hash: content_hash.clone(),
                        page_owner: space.page_owner.clone(),
                        space_admins: space.space_admins.clone(),
                    },
                };
                let decided = DocState::create(&wf, &doc, &cmd, now).map_err(refused)?;
                match self.commit(&doc, 0, &wf, None, &decided) {
                    Ok(()) => {}
                    Err(StoreError::Conflict { .. }) if attempt < MAX_ATTEMPTS => continue,
                    Err(e) => return Err(storage(e)),
                }
                let rec = PageRecord {
                    doc: doc.clone(),
                    space: page.space.clone(),
                    title_hash,
                    body_hash,
                    versions: vec![(1, page.version)],
                };
                self.put(&page_key(&page.id), &rec)?;
                self.after(&page.id, &rec, &wf, &decided.state);
                return Ok("started");
            }
            let d = self.loaded(&page.id, &head)?;
            if d.state.content_hash == content_hash {
                // A retried event, or a page version the app made itself (the lozenge).
                return Ok("unchanged");
            }
            let mut changed = Vec::new();
            if d.page.title_hash != title_hash {
                changed.push("title".to_owned());
            }
            if d.page.body_hash != body_hash {
                changed.push("body".to_owned());
            }
            let cmd = Command {
                by: editor.to_owned(),
                on_behalf_of: None,
                comment: None,
                action: Action::Edit {
                    content_hash: content_hash.clone(),
                    changed: (!changed.is_empty()).then_some(changed),
                },
            };
            let decided = match d.state.decide(&d.wf, &cmd, now) {
                Ok(decided) => decided,
                Err(r) => {
                    self.log(
                        Level::Info,
                        &format!("edit not recorded: {}", r.reason.code()),
                    );
                    return Ok("refused");
                }
            };
            match self.commit(&d.page.doc, d.state.seq, &d.wf, Some(&d.state), &decided) {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) if attempt < MAX_ATTEMPTS => continue,
                Err(e) => return Err(storage(e)),
            }
            let mut rec = d.page;
            rec.title_hash = title_hash;
            rec.body_hash = body_hash;
            rec.versions.push((decided.state.version, page.version));
            self.put(&page_key(&page.id), &rec)?;
            self.after(&page.id, &rec, &d.wf, &decided.state);
            return Ok("edited");
        }
        unreachable!("the loop returns")
    }

    /// Appends the records, updates the index row and queues the notifications, in one
    /// atomic commit.
    ///
    /// The document's wake key (`app:wake:<time>:<page id>`, the time of
    /// [`DocState::next_tick`]) is written *before* the commit, so a committed change is never
    /// missing from the schedule's index: if that write fails, nothing is committed; if the
    /// commit fails after it, the key is spurious, and the schedule drops it when it finds
    /// nothing due. The key of the state before (`before`) is deleted after the commit (a
    /// failure there leaves a spurious key, dropped the same way).
    fn commit(
        &self,
        doc: &str,
        expected: u64,
        wf: &Workflow,
        before: Option<&DocState>,
        decided: &Decided,
    ) -> Result<(), StoreError> {
        let page_id = doc.strip_prefix("page-").unwrap_or(doc);
        let old = before.and_then(|s| s.next_tick(wf));
        let new = decided.state.next_tick(wf);
        if let Some(t) = new.filter(|t| Some(*t) != old) {
            self.kvs
                .set(&wake_key(t, page_id), "1", KeyPolicy::Overwrite)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        let notes: Vec<Notification> = decided
            .records
            .iter()
            .flat_map(|r| notifications(&decided.state, r))
            .collect();
        let entry = IndexEntry::of(&decided.state, wf);
        self.store.commit_with_snapshot(
            doc,
            expected,
            &decided.records,
            Some(entry),
            &notes,
            &snapshot::encode(&decided.state),
        )?;
        if let Some(t) = old.filter(|t| Some(*t) != new)
            && let Err(e) = self.kvs.delete(&wake_key(t, page_id))
        {
            self.log(Level::Warn, &format!("wake key not deleted: {}", e.code));
        }
        Ok(())
    }

    /// What follows a committed change: the page mirrors the document, and the webhook (when
    /// configured) receives the page. Failures are logged: the change itself is stored, and
    /// the next change or tick mirrors again.
    fn after(&self, page_id: &str, page: &PageRecord, wf: &Workflow, state: &DocState) {
        if let Err(e) = self.mirror(page_id, page, wf, state) {
            self.log(
                Level::Warn,
                &format!("not mirrored onto the page: {}", e.code),
            );
        }
        match self.get::<Settings>("app:settings") {
            Ok(Some(Settings { webhook: Some(url) })) => self.webhook(&url, page_id, wf, state),
            Ok(_) => {}
            Err(e) => self.log(Level::Warn, &format!("settings unreadable: {}", e.code)),
        }
    }

    /// Sets the content state lozenge and the summary property when they differ.
    fn mirror(
        &self,
        page_id: &str,
        page: &PageRecord,
        wf: &Workflow,
        state: &DocState,
    ) -> Result<(), AppError> {
        let want = lozenge(wf, state);
        if self.platform.get_content_state(page_id)?.as_ref() != Some(&want) {
            self.platform.set_content_state(page_id, &want)?;
        }
        let value = summary(page_id, page, wf, state).to_string();
        let current = self.platform.get_property(page_id, SUMMARY_PROPERTY)?;
        if current.as_ref().map(|p| p.value.as_str()) != Some(value.as_str()) {
            let version = current.map_or(1, |p| p.version + 1);
            self.platform
                .set_property(page_id, SUMMARY_PROPERTY, &value, version)?;
        }
        Ok(())
    }

    /// Posts the page's content to the configured webhook: egress of in-scope data, which
    /// only the webhook variant of the manifest allows. A refused post changes nothing.
    fn webhook(&self, url: &str, page_id: &str, wf: &Workflow, state: &DocState) {
        let page = match self.platform.get_page(page_id) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                return self.log(
                    Level::Warn,
                    &format!("webhook: page unreadable: {}", e.code),
                );
            }
        };
        let body = json!({
            "pageId": page_id,
            "title": page.title,
            "body": page.body,
            "state": state.state_name(wf),
            "version": state.version,
        });
        match self.platform.post(url, &body.to_string()) {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => self.log(Level::Warn, &format!("webhook answered {status}")),
            Err(e) => self.log(Level::Warn, &format!("webhook not delivered: {}", e.code)),
        }
    }

    /// Delivers queued notifications to their pages' notification property (the platform
    /// offers no notification API), keeping the last few; acknowledges what was delivered.
    fn deliver(&self) {
        let items = match block_on(self.store.pending(MAX_PAGE as usize)) {
            Ok(items) => items,
            Err(e) => {
                return self.log(
                    Level::Warn,
                    &format!("outbox unreadable: {}", store_code(&e)),
                );
            }
        };
        let mut by_doc: Vec<(String, Vec<(u64, Notification)>)> = Vec::new();
        for (id, n) in items {
            match by_doc.iter_mut().find(|(d, _)| *d == n.doc) {
                Some((_, v)) => v.push((id, n)),
                None => by_doc.push((n.doc.clone(), vec![(id, n)])),
            }
        }
        let mut delivered = 0;
        for (doc, items) in by_doc {
            let Some(page_id) = doc.strip_prefix("page-") else {
                continue;
            };
            match self.deliver_to(page_id, &items) {
                Ok(()) => {
                    let ids: Vec<u64> = items.iter().map(|(id, _)| *id).collect();
                    if let Err(e) = self.store.ack_all(&ids) {
                        self.log(
                            Level::Warn,
                            &format!("outbox ack failed: {}", store_code(&e)),
                        );
                    }
                    delivered += items.len();
                }
                Err(e) => self.log(
                    Level::Warn,
                    &format!("notifications not delivered: {}", e.code),
                ),
            }
        }
        if delivered > 0 {
            self.log(Level::Info, &format!("delivered {delivered} notifications"));
        }
    }

    fn deliver_to(&self, page_id: &str, items: &[(u64, Notification)]) -> Result<(), AppError> {
        let current = self
            .platform
            .get_property(page_id, NOTIFICATIONS_PROPERTY)?;
        let mut list: Vec<Value> = current
            .as_ref()
            .and_then(|p| serde_json::from_str::<Value>(&p.value).ok())
            .and_then(|v| v.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        list.extend(items.iter().map(|(_, n)| json!(n)));
        let from = list.len().saturating_sub(KEEP_NOTIFICATIONS);
        let value = json!({ "items": &list[from..] }).to_string();
        let version = current.map_or(1, |p| p.version + 1);
        self.platform
            .set_property(page_id, NOTIFICATIONS_PROPERTY, &value, version)
    }

    /// Loads a page's document: its record, workflow and state (from the snapshot in the
    /// stream's head when it is the state at the head, else by replaying the stream).
    fn load(&self, page_id: &str) -> Result<Loaded, AppError> {
        check_id("pageId", page_id)?;
        let head = self.store.stream_head(&doc_id(page_id)).map_err(storage)?;
        if head.len == 0 {
            return Err(unknown_page(page_id));
        }
        self.loaded(page_id, &head)
    }

    /// Loads a page's document from its whole stream, for the audit views: the records and
    /// the state they replay to.
    fn load_replayed(&self, page_id: &str) -> Result<(Loaded, Vec<Record>), AppError> {
        check_id("pageId", page_id)?;
        let records = block_on(self.store.read(&doc_id(page_id), 0)).map_err(storage)?;
        if records.is_empty() {
            return Err(unknown_page(page_id));
        }
        let (wf, state) = self.replay(page_id, &records)?;
        let page = self.page_record(page_id)?;
        Ok((Loaded { page, wf, state }, records))
    }

    /// A document whose stream's head is `head`.
    fn loaded(&self, page_id: &str, head: &StreamHead) -> Result<Loaded, AppError> {
        let doc = doc_id(page_id);
        let snapshot = match snapshot::decode(&doc, head) {
            Ok(Some(state)) => match self.workflow(&state.workflow_hash) {
                Ok(wf) if state.state < wf.states().len() => Some((wf, state)),
                _ => None,
            },
            Ok(None) => None,
            Err(why) => {
                self.log(Level::Debug, &format!("snapshot not used: {why}"));
                None
            }
        };
        let (wf, state) = match snapshot {
            Some(loaded) => loaded,
            None => {
                let records = block_on(self.store.read(&doc, 0)).map_err(storage)?;
                if records.is_empty() {
                    return Err(unknown_page(page_id));
                }
                self.replay(page_id, &records)?
            }
        };
        let page = self.page_record(page_id)?;
        Ok(Loaded { page, wf, state })
    }

    fn replay(
        &self,
        page_id: &str,
        records: &[Record],
    ) -> Result<(Rc<Workflow>, DocState), AppError> {
        let Some(Event::Created { workflow_hash, .. }) = records.first().map(|r| &r.event) else {
            return Err(AppError::new(
                "CORRUPT_STREAM",
                format!("page {page_id}: the stream does not start with `created`"),
            ));
        };
        let wf = self.workflow(workflow_hash)?;
        let state = DocState::replay(&wf, records)
            .map_err(|e| AppError::new("CORRUPT_STREAM", format!("page {page_id}: {e}")))?;
        Ok((wf, state))
    }

    /// A page record lost between the append and its write is rebuilt without hashes: the
    /// next edit then counts as changing everything.
    fn page_record(&self, page_id: &str) -> Result<PageRecord, AppError> {
        Ok(self.get(&page_key(page_id))?.unwrap_or_else(|| PageRecord {
            doc: doc_id(page_id),
            space: String::new(),
            title_hash: String::new(),
            body_hash: String::new(),
            versions: Vec::new(),
        }))
    }

    /// The workflow stored under `hash`, compiled once per invocation: from its compiled
    /// form when that compiles to `hash`, else from its source (and then the compiled form
    /// is stored for the next call).
    fn workflow(&self, hash: &str) -> Result<Rc<Workflow>, AppError> {
        if let Some(wf) = self.workflows.borrow().iter().find(|w| w.hash() == hash) {
            return Ok(Rc::clone(wf));
        }
        let key = format!("app:workflow:{hash}");
        let rec: WorkflowRecord = self.get(&key)?.ok_or_else(|| {
            AppError::new("UNKNOWN_WORKFLOW", format!("workflow {hash} is not stored"))
        })?;
        let compiled = rec
            .compiled
            .as_deref()
            .and_then(|text| serde_json::from_str::<WorkflowDef>(text).ok())
            .and_then(|def| Workflow::from_def(def).ok())
            .filter(|wf| wf.hash() == hash);
        let wf = match compiled {
            Some(wf) => wf,
            None => {
                let wf = Workflow::from_text(&rec.source, "stored workflow")
                    .map_err(|e| AppError::new("BAD_WORKFLOW", e.to_string()))?;
                if rec.compiled.is_some() {
                    self.log(
                        Level::Debug,
                        "compiled workflow not used: it does not match",
                    );
                } else if wf.hash() == hash {
                    // Best effort: the next call compiles it the fast way.
                    let rec = WorkflowRecord {
                        compiled: serde_json::to_string(wf.def()).ok(),
                        ..rec
                    };
                    if let Err(e) = self.put(&key, &rec) {
                        self.log(
                            Level::Debug,
                            &format!("compiled workflow not stored: {}", e.code),
                        );
                    }
                }
                wf
            }
        };
        let wf = Rc::new(wf);
        self.workflows.borrow_mut().push(Rc::clone(&wf));
        Ok(wf)
    }

    /// The acting user: the invocation context's caller when the platform carries it, else
    /// the payload's `accountId`. When both are given they must agree.
    fn actor(&self, given: Option<String>) -> Result<String, AppError> {
        match (self.platform.caller(), given) {
            (Some(caller), Some(given)) if caller != given => Err(AppError::new(
                "ACCOUNT_MISMATCH",
                format!("payload.accountId {given:?} is not the caller {caller:?}"),
            )),
            (_, Some(given)) if given == SYSTEM => Err(AppError::new(
                "BAD_PAYLOAD",
                format!("payload.accountId: {SYSTEM:?} is reserved for what the schedule fires"),
            )),
            (Some(caller), _) => Ok(caller),
            (None, Some(given)) if !given.trim().is_empty() => Ok(given),
            _ => Err(AppError::new(
                "BAD_PAYLOAD",
                "payload.accountId: missing (the acting user's account id)",
            )),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp(i64::try_from(self.platform.now_ms() / 1000).unwrap_or(i64::MAX))
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, AppError> {
        match self.kvs.get(key).map_err(kvs_error)? {
            Some(v) => serde_json::from_str(&v)
                .map(Some)
                .map_err(|e| AppError::new("CORRUPT_RECORD", format!("{key}: {e}"))),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), AppError> {
        let text = serde_json::to_string(value)
            .map_err(|e| AppError::new("INTERNAL", format!("{key}: {e}")))?;
        self.kvs
            .set(key, &text, KeyPolicy::Overwrite)
            .map_err(kvs_error)
    }

    /// Every key and value under `prefix`.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, String)>, AppError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .kvs
                .query(prefix, MAX_PAGE, cursor.as_deref())
                .map_err(kvs_error)?;
            out.extend(page.entries);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    fn track(&self, event: &str, properties: Value) {
        // Analytics are optional: a site admin may block them, and the app goes on.
        if let Err(e) = self.platform.track(event, &properties.to_string()) {
            self.log(Level::Debug, &format!("analytics unavailable: {}", e.code));
        }
    }

    fn ignored(&self, kind: &str, why: &str) {
        self.track(
            "signoff.page-event",
            json!({ "kind": kind, "outcome": why }),
        );
    }

    fn log(&self, level: Level, message: &str) {
        self.platform.log(level, message);
    }
}

/// The summary a page's `signoff-summary` property holds and `status` answers. Readers
/// are pointed at `readerPageVersion`: the page version of the last approved document
/// version, while a newer one is in review.
fn summary(page_id: &str, page: &PageRecord, wf: &Workflow, state: &DocState) -> Value {
    let page_version = |v: u32| page.versions.iter().find(|(d, _)| *d == v).map(|(_, p)| *p);
    let last_approved = state.last_approved.as_ref().map(|a| {
        json!({
            "version": a.version,
            "pageVersion": page_version(a.version),
            "contentHash": a.content_hash,
            "at": a.at,
        })
    });
    let waiting = state.pending(wf);
    let pending: Vec<Value> = waiting
        .iter()
        .map(|p| json!({ "stage": p.stage, "group": p.group, "reviewer": p.reviewer }))
        .collect();
    let lozenge = lozenge(wf, state);
    json!({
        // What the page's byline item shows: the manifest names this property as the
        // module's `contentPropertyKey`, so Confluence reads the title and tooltip from
        // here when it draws the page, without calling the app.
        "title": format!("Approval: {}", lozenge.name),
        "tooltip": byline_tooltip(state, &waiting),
        "pageId": page_id,
        "doc": page.doc,
        "workflow": wf.name(),
        "workflowHash": wf.hash(),
        "state": state.state_name(wf),
        "lozenge": lozenge.name,
        "version": state.version,
        "pageVersion": page_version(state.version),
        "lastApproved": last_approved,
        "readerPageVersion": state.last_approved.as_ref().and_then(|a| page_version(a.version)),
        "pending": pending,
        "dueAt": state.deadline(),
        "records": state.seq,
        "head": state.head,
    })
}

/// The byline item's tooltip: the version, its open stages and how many of their reviewers
/// have not decided, or what readers see. (Reviewers are account ids on the platform, which a tooltip
/// cannot turn into names, so it counts them; the panel names them.)
fn byline_tooltip(state: &DocState, pending: &[PendingReview]) -> String {
    let approved = state.last_approved.as_ref().map(|a| a.version);
    if pending.is_empty() {
        return match approved {
            Some(a) if a == state.version => format!("Version {a} is approved"),
            Some(a) => format!(
                "Version {}; readers see approved version {a}",
                state.version
            ),
            None => format!("Version {}", state.version),
        };
    }
    let mut stages: Vec<&str> = Vec::new();
    let mut reviewers: Vec<&str> = Vec::new();
    for p in pending {
        if !stages.contains(&p.stage.as_str()) {
            stages.push(&p.stage);
        }
        if !reviewers.contains(&p.reviewer.as_str()) {
            reviewers.push(&p.reviewer);
        }
    }
    // Who has not decided yet; the stage's rule may need fewer of them.
    let n = reviewers.len();
    format!(
        "Version {} in {}: {n} reviewer{} yet to decide",
        state.version,
        stages.join(", "),
        if n == 1 { "" } else { "s" }
    )
}

/// The content state lozenge for a document's state: the state's name made readable and
/// cut to the platform's 20 characters, in a colour by kind of state.
pub fn lozenge(wf: &Workflow, state: &DocState) -> ContentState {
    let def = wf.state(state.state);
    let mut name: String = def.name.replace(['_', '-'], " ");
    if let Some(first) = name.get(..1) {
        name = first.to_ascii_uppercase() + &name[1..];
    }
    let name: String = name.chars().take(20).collect();
    let lower = def.name.to_ascii_lowercase();
    let color = if ["reject", "obsolete", "archiv"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "#ff5630"
    } else if def.approval.is_some() {
        "#ffc400"
    } else if def.is_final
        && state
            .last_approved
            .as_ref()
            .is_some_and(|a| a.version == state.version)
    {
        "#36b37e"
    } else {
        "#97a0af"
    };
    ContentState {
        name,
        color: color.to_owned(),
    }
}

/// The lozenge's look, by its colour, as Atlassian's design system names lozenge
/// appearances: `success` (green), `moved` (yellow), `removed` (red), `default` (grey).
fn appearance(color: &str) -> &'static str {
    match color {
        "#36b37e" => "success",
        "#ffc400" => "moved",
        "#ff5630" => "removed",
        _ => "default",
    }
}

/// The drawing of a document's workflow with its current state (and, in an approval, its
/// current stage) highlighted: `{workflow, state, stage, svg, mermaid}`.
fn workflow_diagram(wf: &Workflow, state: &DocState) -> Value {
    let current = wf.state(state.state);
    let stage = match (&current.approval, &state.approval) {
        (Some(def), Some(ap)) => def.stages.get(ap.stage).map(|s| s.name.as_str()),
        _ => None,
    };
    // The state and stage come from the workflow itself, so highlighting cannot fail; if it
    // ever did, the plain drawing is still the document's workflow.
    let drawing = Diagram::new(wf)
        .highlight(&current.name, stage)
        .unwrap_or_else(|_| Diagram::new(wf));
    json!({
        "workflow": wf.name(),
        "state": current.name,
        "stage": stage,
        "svg": drawing.svg(),
        "mermaid": drawing.mermaid(),
    })
}

/// The stages of the document's running approval, as the panel shows them: each group's
/// rule and signature requirement, and each reviewer's decision. Empty outside an approval.
fn stages(wf: &Workflow, state: &DocState) -> Value {
    let (Some(def), Some(ap)) = (&wf.state(state.state).approval, &state.approval) else {
        return json!([]);
    };
    let stages: Vec<Value> = def
        .stages
        .iter()
        .enumerate()
        .map(|(k, sdef)| {
            let progress = ap.stages.get(k);
            let groups: Vec<Value> = sdef
                .groups
                .iter()
                .enumerate()
                .map(|(gi, gdef)| {
                    let g = progress.and_then(|p| p.groups.get(gi));
                    let reviewers: Vec<Value> = g
                        .map(|g| {
                            g.slots
                                .iter()
                                .map(|slot| {
                                    json!({
                                        "reviewer": slot.reviewer,
                                        "backup": slot.backup,
                                        "decision": slot.decision.as_ref().map(|d| json!({
                                            "decision": d.decision,
                                            "by": d.by,
                                            "version": d.version,
                                            "at": d.at,
                                        })),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "name": gdef.name,
                        "rule": rule_text(gdef.rule),
                        "signature": gdef.signature,
                        "outcome": g.and_then(|g| g.closed),
                        "reviewers": reviewers,
                    })
                })
                .collect();
            json!({
                "name": sdef.name,
                "current": k == ap.stage,
                "closed": progress.is_some_and(|p| p.closed),
                "startedAt": progress.and_then(|p| p.started_at),
                "dueAt": progress.and_then(|p| p.due_at),
                "groups": groups,
            })
        })
        .collect();
    json!(stages)
}

/// A group's rule in words, as the panel shows it under the group's name.
fn rule_text(rule: Rule) -> String {
    match rule {
        Rule::All => "all must approve".to_owned(),
        Rule::Any => "any one approves".to_owned(),
        Rule::Majority => "a majority approves".to_owned(),
        Rule::Min(n) => format!("at least {n} approve"),
        Rule::Percent(p) => format!("at least {p}% approve"),
    }
}

/// A decision or a signature of the audit trail, as the panel lists them.
fn decision_view(r: &Record) -> Option<Value> {
    let (action, stage, group) = match &r.event {
        Event::Decided {
            stage,
            group,
            decision,
            ..
        } => (decision.name(), Some(stage), Some(group)),
        Event::Signed => ("sign", None, None),
        _ => return None,
    };
    let signature = r.signature.as_ref().map(|s| {
        json!({
            "name": s.name,
            "signer": s.signer,
            "meaning": s.meaning,
            "method": s.auth.as_ref().map(|a| a.method.as_str()),
            "verified": s.auth.as_ref().is_some_and(|a| a.verification.is_some()),
        })
    });
    Some(json!({
        "seq": r.seq,
        "at": r.at,
        "actor": r.actor,
        "onBehalfOf": r.on_behalf_of,
        "action": action.replace('_', "-"),
        "stage": stage,
        "group": group,
        "comment": r.comment,
        "signature": signature,
    }))
}

/// An offer of the engine as the panel lists it: `action` is the resolver that carries it
/// out (`request-changes`, `mark-up-to-date`).
fn offer_view(o: &Offer) -> Value {
    json!({
        "action": o.action.name().replace('_', "-"),
        "onBehalfOf": o.on_behalf_of,
        "stage": o.stage,
        "group": o.group,
        "signature": o.signature,
    })
}

/// `templates`: the names (as before), and each template's description and source, which
/// the space settings page shows and starts an own definition from.
fn templates() -> Value {
    let items: Vec<Value> = TEMPLATES
        .iter()
        .map(|(name, source)| {
            let description = Workflow::from_text(source, name)
                .ok()
                .and_then(|wf| wf.def().description.clone());
            json!({"name": name, "description": description, "source": source})
        })
        .collect();
    json!({
        "templates": TEMPLATES.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "items": items,
    })
}

/// `validate-workflow`: whether a definition (YAML or JSON) validates, and if not, every
/// problem the engine found with its line and column (1-based; none for a problem of the
/// whole definition). Nothing is stored.
fn validate_workflow(source: &str) -> Value {
    match Workflow::from_text(source, "workflow") {
        Ok(wf) => json!({
            "valid": true,
            "workflow": wf.name(),
            "workflowHash": wf.hash(),
            "states": wf.states().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "diagnostics": [],
        }),
        Err(e) => json!({
            "valid": false,
            "diagnostics": e.diagnostics.iter().map(|d| json!({
                "line": d.pos.map(|p| p.line),
                "column": d.pos.map(|p| p.column),
                "code": d.code,
                "message": d.message,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// A user's recent decisions: `app:decisions:<account id>`.
fn decisions_key(user: &str) -> String {
    format!("app:decisions:{user}")
}

fn doc_id(page_id: &str) -> String {
    format!("page-{page_id}")
}

fn page_key(page_id: &str) -> String {
    format!("app:page:{page_id}")
}

/// The schedule's index: `app:wake:<16 hex digits of the time in seconds>:<page id>`, so
/// keys sort by time; a page's key is at [`DocState::next_tick`] of its document.
const WAKE_PREFIX: &str = "app:wake:";
/// Set once the wake index covers every tracked page.
const WAKE_INDEX_KEY: &str = "app:wake-index";

fn wake_key(at: Timestamp, page_id: &str) -> String {
    format!("{WAKE_PREFIX}{:016x}:{page_id}", at.0.max(0))
}

fn parse_wake(key: &str) -> Option<(Timestamp, &str)> {
    let rest = key.strip_prefix(WAKE_PREFIX)?;
    let (hex, page_id) = rest.split_once(':')?;
    let at = i64::from_str_radix(hex, 16).ok()?;
    (hex.len() == 16 && !page_id.is_empty()).then_some((Timestamp(at), page_id))
}

/// The pages on which someone was made a delegate: `app:delegations:<account id>`.
fn delegations_key(user: &str) -> String {
    format!("app:delegations:{user}")
}

fn space_key(space: &str) -> String {
    format!("app:space:{space}")
}

/// Page ids, space keys and delegates' account ids become parts of storage keys: letters,
/// digits, `_`, `-`, `.` and (for account ids like `557058:f58131cb-...`) `:`.
fn check_id(field: &str, id: &str) -> Result<(), AppError> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(AppError::new(
            "BAD_PAYLOAD",
            format!("payload.{field}: {id:?} is not an id (letters, digits, _ - . only)"),
        ))
    }
}

/// Re-authentication evidence as the engine takes it. A code is taken only under `totp`
/// (the one method the app verifies) and `totp` needs one; the engine refuses a blank
/// method (`BLANK`) and asks the verifier about the rest.
fn auth_input(r: &Reauth) -> Result<AuthInput, AppError> {
    match (r.method == crate::totp::METHOD, &r.code) {
        (true, None) => Err(AppError::new(
            "BAD_PAYLOAD",
            "payload.reauth.code: missing (the 6-digit code of the signer's authenticator app)",
        )),
        (false, Some(_)) => Err(AppError::new(
            "BAD_PAYLOAD",
            format!(
                "payload.reauth.code: a code is taken only with method {:?}, not {:?}",
                crate::totp::METHOD,
                r.method
            ),
        )),
        _ => Ok(AuthInput {
            method: r.method.clone(),
            reference: r.reference.clone(),
            credential: r.code.as_ref().map(|c| c.as_str().to_owned()),
        }),
    }
}

fn unknown_page(page_id: &str) -> AppError {
    AppError::new(
        "UNKNOWN_PAGE",
        format!(
            "page {page_id} is not under approval (its space has no workflow, or it was never seen)"
        ),
    )
}

/// A refusal from the engine: its reason's code in capitals, and the engine's words.
fn refused(r: Refusal) -> AppError {
    AppError::new(&r.reason.code().to_ascii_uppercase(), r.to_string())
}

fn storage(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict { doc, .. } => AppError::new(
            "CONFLICT",
            format!("{doc} was changed by another call while this one ran; try again"),
        ),
        e => AppError::new("STORAGE_ERROR", e.to_string()),
    }
}

/// A store error's kind, for logs (which may be shared with the vendor: no ids, no names).
fn store_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::Conflict { .. } => "CONFLICT",
        StoreError::BadRecords { .. } => "BAD_RECORDS",
        StoreError::UnknownOutboxItem(_) => "UNKNOWN_OUTBOX_ITEM",
        StoreError::Backend(_) => "STORAGE_ERROR",
    }
}

fn kvs_error(e: KvsError) -> AppError {
    AppError::new(&e.code, e.message)
}
