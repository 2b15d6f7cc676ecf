//! The state of one document as a fold over its records, and the pure decision function.
//!
//! [`DocState::decide`] takes the current state, a command and "now", and returns the new
//! records (or a [`Refusal`]). It works on a copy: every record it emits is applied to that
//! copy at once with [`DocState::apply`], the same function that replays a stored stream, so
//! what a command decides and what a replay rebuilds cannot drift apart. A refusal drops
//! the copy, which is why a refused command changes nothing.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::audit;
use crate::event::{
    Action, AssignSource, AuthEvidence, Command, Decision, Event, GroupRef, Outcome, Record,
    RecordedVerdict, Signature, SignatureInput, Verification,
};
use crate::evidence::{Claim, EvidenceVerifier, NoVerifier, Verdict};
use crate::refusal::{Reason, Refusal};
use crate::time::Timestamp;
use crate::workflow::{
    GroupDef, RejectPolicy, ReviewerSource, Role, StalePolicy, Trigger, Workflow,
};

/// The actor of what `tick` fires.
pub const SYSTEM: &str = "system";

/// Everything the engine knows about one document, rebuilt from its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocState {
    pub doc: String,
    pub workflow_hash: String,
    pub title: String,
    pub author: String,
    pub page_owner: String,
    pub space_admins: Vec<String>,
    /// Index of the current state in the workflow.
    pub state: usize,
    pub entered_at: Timestamp,
    /// When the current state expires, if it has a due date.
    pub due_at: Option<Timestamp>,
    pub version: u32,
    pub content_hash: String,
    /// Who created the current version (the last editor).
    pub version_author: String,
    /// The last edit or "mark up to date", for periodic review by idle time.
    pub last_touch: Timestamp,
    /// The version readers see while a newer one is in review.
    pub last_approved: Option<ApprovedVersion>,
    pub approval: Option<Approval>,
    pub delegations: Vec<Delegation>,
    pub submissions: u32,
    /// How many records the stream holds (the expected version for the next append).
    pub seq: u64,
    /// The hash of the last record.
    pub head: String,
    pub last_at: Timestamp,
}

/// A version that completed an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedVersion {
    pub version: u32,
    pub content_hash: String,
    pub at: Timestamp,
}

/// A running approval: the current stage and the progress of every stage started so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub stage: usize,
    pub stages: Vec<StageProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageProgress {
    pub started_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub closed: bool,
    /// One entry per group of the stage, in workflow order.
    pub groups: Vec<GroupProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProgress {
    pub slots: Vec<Slot>,
    pub closed: Option<Outcome>,
    pub last_reminder: Option<Timestamp>,
    pub escalated: bool,
}

/// One reviewer of a group and their decision, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub reviewer: String,
    /// Added by escalation: decides like the others but does not raise the count the rule
    /// is computed on.
    pub backup: bool,
    pub decision: Option<DecisionRecord>,
}

/// A decision bound to the version and content hash it was taken on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision: Decision,
    /// Who acted (a delegate, or the reviewer).
    pub by: String,
    pub version: u32,
    pub content_hash: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    pub from: String,
    pub to: String,
    pub until: Timestamp,
    pub reason: String,
}

/// A reviewer who still has to decide in the current stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReview {
    pub stage: String,
    pub group: String,
    pub reviewer: String,
}

/// A pending review as one user sees it (see [`DocState::pending_for`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingFor {
    pub review: PendingReview,
    /// The reviewer the user would act for, when that is someone else.
    pub on_behalf_of: Option<String>,
}

/// Why a stream could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the stream is empty")]
    Empty,
    #[error("record {seq}: the first record of a stream must be `created`")]
    NotCreated { seq: u64 },
    #[error("record {seq}: belongs to document {found:?}, not {expected:?}")]
    WrongDocument {
        seq: u64,
        expected: String,
        found: String,
    },
    #[error("the stream pins workflow {pinned}, but workflow {given} was given")]
    WrongWorkflow { pinned: String, given: String },
}

/// The result of a command that was carried out: the new records and the state after them.
#[derive(Debug, Clone)]
pub struct Decided {
    pub records: Vec<Record>,
    pub state: DocState,
}

impl DocState {
    /// Creates a document: the first record of its stream.
    pub fn create(
        wf: &Workflow,
        doc: &str,
        cmd: &Command,
        now: Timestamp,
    ) -> Result<Decided, Refusal> {
        let Action::Create {
            title,
            content_hash,
            page_owner,
            space_admins,
        } = &cmd.action
        else {
            return Err(Refusal {
                action: cmd.action.name(),
                reason: Reason::UnknownDocument(doc.to_owned()),
            });
        };
        let refuse = |reason| Refusal {
            action: cmd.action.name(),
            reason,
        };
        check_actor(cmd).map_err(refuse)?;
        check_times(cmd, now).map_err(refuse)?;
        if let Some(p) = cmd.on_behalf_of.as_ref().filter(|p| **p != cmd.by) {
            // A delegation belongs to a document, so none exists before it does.
            return Err(refuse(Reason::NoDelegation {
                from: p.clone(),
                to: cmd.by.clone(),
                at: now,
            }));
        }
        if let Some(owner) = page_owner {
            not_blank(owner, "the page owner").map_err(refuse)?;
        }
        for admin in space_admins {
            not_blank(admin, "a space administrator's id").map_err(refuse)?;
        }
        let mut s = DocState::empty(doc);
        s.content_hash = content_hash.clone();
        let mut r = Record {
            doc: doc.to_owned(),
            seq: 0,
            at: now,
            actor: cmd.by.clone(),
            on_behalf_of: None,
            version: 1,
            content_hash: content_hash.clone(),
            from_state: String::new(),
            to_state: wf.state(wf.initial()).name.clone(),
            comment: cmd.comment.clone(),
            signature: None,
            event: Event::Created {
                title: title.clone(),
                workflow: wf.name().to_owned(),
                workflow_hash: wf.hash().to_owned(),
                author: cmd.by.clone(),
                page_owner: page_owner.clone().unwrap_or_else(|| cmd.by.clone()),
                space_admins: space_admins.clone(),
            },
            prev_hash: audit::GENESIS.to_owned(),
            hash: String::new(),
        };
        r.hash = audit::record_hash(&r);
        s.apply(wf, &r);
        Ok(Decided {
            records: vec![r],
            state: s,
        })
    }

    /// Rebuilds a state from a stream (no hash checks: see [`audit::verify`]).
    pub fn replay(wf: &Workflow, records: &[Record]) -> Result<DocState, ReplayError> {
        let first = records.first().ok_or(ReplayError::Empty)?;
        let Event::Created { workflow_hash, .. } = &first.event else {
            return Err(ReplayError::NotCreated { seq: first.seq });
        };
        if workflow_hash != wf.hash() {
            return Err(ReplayError::WrongWorkflow {
                pinned: workflow_hash.clone(),
                given: wf.hash().to_owned(),
            });
        }
        let mut s = DocState::empty(&first.doc);
        for r in records {
            if r.doc != s.doc {
                return Err(ReplayError::WrongDocument {
                    seq: r.seq,
                    expected: s.doc.clone(),
                    found: r.doc.clone(),
                });
            }
            s.apply(wf, r);
        }
        Ok(s)
    }

    /// Carries out a command, or refuses it. `self` is not changed either way: the command
    /// runs on a copy, returned with the records. Re-authentication evidence is refused as
    /// unverifiable: use [`DocState::decide_with`] and a verifier to accept it.
    pub fn decide(&self, wf: &Workflow, cmd: &Command, now: Timestamp) -> Result<Decided, Refusal> {
        self.decide_with(wf, cmd, now, &NoVerifier)
    }

    /// [`DocState::decide`] with a verifier for the re-authentication evidence of
    /// e-signatures.
    pub fn decide_with(
        &self,
        wf: &Workflow,
        cmd: &Command,
        now: Timestamp,
        verifier: &dyn EvidenceVerifier,
    ) -> Result<Decided, Refusal> {
        let mut state = self.clone();
        let records = state.execute_with(wf, cmd, now, verifier)?;
        Ok(Decided { records, state })
    }

    /// Carries out a command in place and returns its records. A refusal leaves `self`
    /// untouched: every check is made before the first record is emitted (the property
    /// tests hold the engine to that). When the records then fail to reach storage, rebuild
    /// the state from the stream.
    pub fn execute(
        &mut self,
        wf: &Workflow,
        cmd: &Command,
        now: Timestamp,
    ) -> Result<Vec<Record>, Refusal> {
        self.execute_with(wf, cmd, now, &NoVerifier)
    }

    /// [`DocState::execute`] with a verifier for re-authentication evidence.
    pub fn execute_with(
        &mut self,
        wf: &Workflow,
        cmd: &Command,
        now: Timestamp,
        verifier: &dyn EvidenceVerifier,
    ) -> Result<Vec<Record>, Refusal> {
        let refuse = |reason| Refusal {
            action: cmd.action.name(),
            reason,
        };
        if now < self.last_at {
            return Err(refuse(Reason::ClockWentBackwards {
                now,
                last: self.last_at,
            }));
        }
        check_actor(cmd).map_err(refuse)?;
        check_times(cmd, now).map_err(refuse)?;
        // Acting as oneself needs no delegation; acting for someone else needs one that is
        // active now and covers the action. Checked here, once, for every action.
        let on_behalf_of = cmd.on_behalf_of.clone().filter(|p| *p != cmd.by);
        if let Some(principal) = &on_behalf_of {
            let active = self.delegated(principal, &cmd.by, now);
            if !active {
                return Err(refuse(Reason::NoDelegation {
                    from: principal.clone(),
                    to: cmd.by.clone(),
                    at: now,
                }));
            }
            if !delegable(&cmd.action) {
                return Err(refuse(Reason::NotDelegable {
                    from: principal.clone(),
                    to: cmd.by.clone(),
                    action: cmd.action.name(),
                }));
            }
        }
        let mut t = Txn {
            wf,
            s: self,
            out: Vec::new(),
            now,
            actor: cmd.by.clone(),
            on_behalf_of,
            comment: cmd.comment.clone(),
            verifier,
        };
        t.run(&cmd.action).map_err(refuse)?;
        Ok(t.out)
    }

    /// Fires what is due at `now`: expiry, escalation, reminders, periodic review. Returns
    /// `None` when nothing is due (a `now` before the last record is never due).
    pub fn tick(&self, wf: &Workflow, now: Timestamp) -> Option<Decided> {
        let mut state = self.clone();
        let records = state.tick_in_place(wf, now);
        (!records.is_empty()).then_some(Decided { records, state })
    }

    /// [`DocState::tick`] in place; returns the records (none when nothing is due).
    pub fn tick_in_place(&mut self, wf: &Workflow, now: Timestamp) -> Vec<Record> {
        if now < self.last_at {
            return Vec::new();
        }
        let mut t = Txn {
            wf,
            s: self,
            out: Vec::new(),
            now,
            actor: SYSTEM.to_owned(),
            on_behalf_of: None,
            comment: None,
            verifier: &NoVerifier,
        };
        t.tick();
        t.out
    }

    /// Folds one record into the state.
    pub fn apply(&mut self, wf: &Workflow, r: &Record) {
        match &r.event {
            Event::Created {
                title,
                workflow_hash,
                author,
                page_owner,
                space_admins,
                ..
            } => {
                self.workflow_hash = workflow_hash.clone();
                self.title = title.clone();
                self.author = author.clone();
                self.version_author = author.clone();
                self.page_owner = page_owner.clone();
                self.space_admins = space_admins.clone();
                self.state = wf.state_index(&r.to_state).unwrap_or(wf.initial());
                self.entered_at = r.at;
                self.due_at = wf.state(self.state).due.map(|d| r.at.plus(d));
                self.version = r.version;
                self.content_hash = r.content_hash.clone();
                self.last_touch = r.at;
            }
            Event::Edited { reset, .. } => {
                self.version = r.version;
                self.content_hash = r.content_hash.clone();
                self.version_author = r.actor.clone();
                self.last_touch = r.at;
                if let Some((def, ap)) = self.approval_mut(wf) {
                    for g in reset {
                        let Some((k, gi)) = find_group(def, &g.stage, &g.group) else {
                            continue;
                        };
                        let Some(stage) = ap.stages.get_mut(k) else {
                            continue;
                        };
                        stage.closed = false;
                        if let Some(group) = stage.groups.get_mut(gi) {
                            group.closed = None;
                            for slot in &mut group.slots {
                                slot.decision = None;
                            }
                        }
                    }
                    ap.stage = ap.stages.iter().position(|s| !s.closed).unwrap_or(ap.stage);
                }
            }
            Event::StateChanged { trigger, due_at } => {
                self.state = wf.state_index(&r.to_state).unwrap_or(self.state);
                self.entered_at = r.at;
                self.due_at = *due_at;
                self.approval = wf.state(self.state).approval.as_ref().map(|a| Approval {
                    stage: 0,
                    stages: a
                        .stages
                        .iter()
                        .map(|st| StageProgress {
                            started_at: None,
                            due_at: None,
                            closed: false,
                            groups: st
                                .groups
                                .iter()
                                .map(|_| GroupProgress {
                                    slots: Vec::new(),
                                    closed: None,
                                    last_reminder: None,
                                    escalated: false,
                                })
                                .collect(),
                        })
                        .collect(),
                });
                match trigger {
                    Trigger::Approved => {
                        self.last_approved = Some(ApprovedVersion {
                            version: r.version,
                            content_hash: r.content_hash.clone(),
                            at: r.at,
                        });
                    }
                    Trigger::MarkUpToDate => self.last_touch = r.at,
                    Trigger::Submit => self.submissions += 1,
                    _ => {}
                }
            }
            Event::StageStarted {
                stage,
                due_at,
                restarted,
            } => {
                if let Some((def, ap)) = self.approval_mut(wf) {
                    if let Some(k) = def.stages.iter().position(|s| &s.name == stage) {
                        ap.stage = k;
                        ap.stages[k].started_at = Some(r.at);
                        ap.stages[k].due_at = *due_at;
                        if *restarted {
                            // Reminders count from the restart, like the deadline.
                            for g in &mut ap.stages[k].groups {
                                g.last_reminder = None;
                            }
                        }
                    }
                }
            }
            Event::Assigned {
                stage,
                group,
                reviewers,
                source,
            } => {
                if let Some(g) = self.group_mut(wf, stage, group) {
                    for who in reviewers {
                        g.slots.push(Slot {
                            reviewer: who.clone(),
                            backup: *source == AssignSource::Escalation,
                            decision: None,
                        });
                    }
                }
            }
            Event::Unassigned {
                stage,
                group,
                reviewer,
            } => {
                if let Some(g) = self.group_mut(wf, stage, group) {
                    g.slots.retain(|s| &s.reviewer != reviewer);
                }
            }
            Event::Decided {
                stage,
                group,
                reviewer,
                decision,
            } => {
                let record = DecisionRecord {
                    decision: *decision,
                    by: r.actor.clone(),
                    version: r.version,
                    content_hash: r.content_hash.clone(),
                    at: r.at,
                };
                if let Some(g) = self.group_mut(wf, stage, group) {
                    if let Some(slot) = g.slots.iter_mut().find(|s| &s.reviewer == reviewer) {
                        slot.decision = Some(record);
                    }
                }
            }
            Event::Signed => {}
            Event::GroupClosed {
                stage,
                group,
                outcome,
            } => {
                if let Some(g) = self.group_mut(wf, stage, group) {
                    g.closed = Some(*outcome);
                }
            }
            Event::StageClosed { stage, .. } => {
                if let Some((def, ap)) = self.approval_mut(wf) {
                    if let Some(k) = def.stages.iter().position(|s| &s.name == stage) {
                        ap.stages[k].closed = true;
                    }
                }
            }
            Event::Delegated {
                from,
                to,
                until,
                reason,
            } => self.delegations.push(Delegation {
                from: from.clone(),
                to: to.clone(),
                until: *until,
                reason: reason.clone(),
            }),
            Event::Reminded { stage, group, .. } => {
                if let Some(g) = self.group_mut(wf, stage, group) {
                    g.last_reminder = Some(r.at);
                }
            }
            Event::Escalated {
                stage, group, to, ..
            } => {
                if let Some(g) = self.group_mut(wf, stage, group) {
                    g.escalated = true;
                    for who in to {
                        g.slots.push(Slot {
                            reviewer: who.clone(),
                            backup: true,
                            decision: None,
                        });
                    }
                }
            }
        }
        self.seq = r.seq + 1;
        self.head = r.hash.clone();
        self.last_at = r.at;
    }

    pub fn state_name<'w>(&self, wf: &'w Workflow) -> &'w str {
        &wf.state(self.state).name
    }

    /// The reviewers who still have to decide in the current stage.
    pub fn pending(&self, wf: &Workflow) -> Vec<PendingReview> {
        let mut out = Vec::new();
        let (Some(ap), Some(def)) = (&self.approval, &wf.state(self.state).approval) else {
            return out;
        };
        let (Some(stage), Some(sdef)) = (ap.stages.get(ap.stage), def.stages.get(ap.stage)) else {
            return out;
        };
        for (g, gdef) in stage.groups.iter().zip(&sdef.groups) {
            if g.closed.is_some() {
                continue;
            }
            for slot in g.slots.iter().filter(|s| s.decision.is_none()) {
                out.push(PendingReview {
                    stage: sdef.name.clone(),
                    group: gdef.name.clone(),
                    reviewer: slot.reviewer.clone(),
                });
            }
        }
        out
    }

    /// The pending reviewers of the current stage, without the workflow at hand: every
    /// undecided slot of an open group. (Same as [`DocState::pending`], reviewer ids only.)
    pub fn pending_reviewers(&self) -> Vec<String> {
        let Some(ap) = &self.approval else {
            return Vec::new();
        };
        let Some(stage) = ap.stages.get(ap.stage) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for g in stage.groups.iter().filter(|g| g.closed.is_none()) {
            for slot in g.slots.iter().filter(|s| s.decision.is_none()) {
                if !out.contains(&slot.reviewer) {
                    out.push(slot.reviewer.clone());
                }
            }
        }
        out
    }

    /// What `user` has to review now: the pending reviews that are theirs, and those of
    /// reviewers who delegated to them under a delegation valid at `now` (with the reviewer
    /// they would act for). Direct delegation only, as [`Command`]s accept it.
    pub fn pending_for(&self, wf: &Workflow, user: &str, now: Timestamp) -> Vec<PendingFor> {
        self.pending(wf)
            .into_iter()
            .filter_map(|review| {
                let on_behalf_of = if review.reviewer == user {
                    None
                } else if self.delegated(&review.reviewer, user, now) {
                    Some(review.reviewer.clone())
                } else {
                    return None;
                };
                Some(PendingFor {
                    review,
                    on_behalf_of,
                })
            })
            .collect()
    }

    /// The users who may act on the current stage at `now`: its pending reviewers and the
    /// users they delegated to under a delegation still valid then, sorted, without repeats.
    pub fn actors(&self, wf: &Workflow, now: Timestamp) -> Vec<String> {
        let pending = self.pending(wf);
        let mut out: Vec<String> = pending.iter().map(|p| p.reviewer.clone()).collect();
        out.extend(
            self.delegations
                .iter()
                .filter(|d| now < d.until && pending.iter().any(|p| p.reviewer == d.from))
                .map(|d| d.to.clone()),
        );
        out.sort();
        out.dedup();
        out
    }

    /// The earliest deadline of the current state and stage, if any.
    pub fn deadline(&self) -> Option<Timestamp> {
        let stage_due = self
            .approval
            .as_ref()
            .and_then(|a| a.stages.get(a.stage))
            .and_then(|s| s.due_at);
        match (self.due_at, stage_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest time at which [`DocState::tick`] would fire something (expiry,
    /// escalation, a reminder, a periodic review) if nothing else happens to the document
    /// first; `None` when nothing is scheduled. A scheduler can keep documents in an index by
    /// this time and tick only those due, instead of loading every document on every run:
    /// `tick(t)` for any `t` before it returns nothing (a test checks this).
    pub fn next_tick(&self, wf: &Workflow) -> Option<Timestamp> {
        let here = wf.state(self.state);
        let expiry = self.deadline();
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| {
            // At and after the deadline, tick only ever looks at expiry.
            if expiry.is_none_or(|d| t < d) {
                next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
            }
        };
        if let (Some(def), Some(ap)) = (&here.approval, &self.approval) {
            let k = ap.stage;
            let stage = def.stages.get(k).zip(ap.stages.get(k));
            if let Some((sdef, stage, started)) =
                stage.and_then(|(d, s)| s.started_at.map(|t| (d, s, t)))
            {
                for (gdef, g) in sdef.groups.iter().zip(&stage.groups) {
                    if g.closed.is_some() {
                        continue;
                    }
                    if let Some(e) = gdef.escalate.as_ref().filter(|_| !g.escalated) {
                        consider(started.plus(e.after));
                    }
                    if let Some(every) = gdef.remind_every {
                        if g.slots.iter().any(|s| s.decision.is_none()) {
                            consider(g.last_reminder.unwrap_or(started).plus(every));
                        }
                    }
                }
            }
        } else if let Some(r) = here
            .review
            .as_ref()
            .filter(|_| wf.next(self.state, Trigger::ReviewDue).is_some())
        {
            match (r.every, r.idle) {
                (Some(every), _) => consider(self.entered_at.plus(every)),
                (None, Some(idle)) => consider(self.last_touch.plus(idle)),
                (None, None) => {}
            }
        }
        let expires = expiry.filter(|_| wf.next(self.state, Trigger::Expired).is_some());
        match (next, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        // Never before the last record: tick ignores times before it.
        .map(|t| t.max(self.last_at))
    }

    fn empty(doc: &str) -> DocState {
        DocState {
            doc: doc.to_owned(),
            workflow_hash: String::new(),
            title: String::new(),
            author: String::new(),
            page_owner: String::new(),
            space_admins: Vec::new(),
            state: 0,
            entered_at: Timestamp::default(),
            due_at: None,
            version: 0,
            content_hash: String::new(),
            version_author: String::new(),
            last_touch: Timestamp::default(),
            last_approved: None,
            approval: None,
            delegations: Vec::new(),
            submissions: 0,
            seq: 0,
            head: audit::GENESIS.to_owned(),
            last_at: Timestamp(i64::MIN),
        }
    }

    fn approval_mut<'w>(
        &mut self,
        wf: &'w Workflow,
    ) -> Option<(&'w crate::workflow::ApprovalDef, &mut Approval)> {
        let def = wf.state(self.state).approval.as_ref()?;
        Some((def, self.approval.as_mut()?))
    }

    fn group_mut(&mut self, wf: &Workflow, stage: &str, group: &str) -> Option<&mut GroupProgress> {
        let (def, ap) = self.approval_mut(wf)?;
        let (k, gi) = find_group(def, stage, group)?;
        ap.stages.get_mut(k)?.groups.get_mut(gi)
    }

    /// Whether `user` holds a delegation from `from` at `now`.
    fn delegated(&self, from: &str, user: &str, now: Timestamp) -> bool {
        self.delegations
            .iter()
            .any(|d| d.from == from && d.to == user && now < d.until)
    }

    fn manages(&self, user: &str) -> bool {
        user == self.author
            || user == self.page_owner
            || self.space_admins.iter().any(|a| a == user)
    }
}

/// A command being carried out on a state. Checks come before the first `emit`.
struct Txn<'w> {
    wf: &'w Workflow,
    s: &'w mut DocState,
    out: Vec<Record>,
    now: Timestamp,
    actor: String,
    on_behalf_of: Option<String>,
    comment: Option<String>,
    verifier: &'w dyn EvidenceVerifier,
}

impl Txn<'_> {
    fn run(&mut self, action: &Action) -> Result<(), Reason> {
        match action {
            Action::Create { .. } => Err(Reason::DocumentExists(self.s.doc.clone())),
            Action::Edit {
                content_hash,
                changed,
            } => self.edit(content_hash, changed.as_ref()),
            Action::Submit => {
                let to = self.target(Trigger::Submit)?;
                if self.wf.state(to).approval.is_some() {
                    // Staff every stage on a probe first, so that a refusal changes nothing.
                    let mut probe = self.s.clone();
                    probe.state = to;
                    probe.submissions += 1;
                    probe.check_resolvable(self.wf)?;
                }
                self.transition(Trigger::Submit, to);
                Ok(())
            }
            Action::Assign { group, reviewer } => self.assign(group, reviewer),
            Action::Unassign { group, reviewer } => self.unassign(group, reviewer),
            Action::Approve { version, signature } => {
                self.decide(Decision::Approve, *version, signature.as_ref())
            }
            Action::Reject { version } => self.decide(Decision::Reject, *version, None),
            Action::RequestChanges { version } => {
                self.decide(Decision::RequestChanges, *version, None)
            }
            Action::Sign { version, signature } => self.sign(*version, signature),
            Action::Delegate { to, until, reason } => self.delegate(to, *until, reason),
            Action::Withdraw => {
                self.require_manager("withdraw the document")?;
                let to = self.target(Trigger::Withdraw)?;
                self.transition(Trigger::Withdraw, to);
                Ok(())
            }
            Action::Override { to } => {
                if !self.s.space_admins.contains(&self.actor) {
                    return Err(Reason::NotPermitted {
                        user: self.actor.clone(),
                        why: "override the state (space administrators only)".into(),
                    });
                }
                if self.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    return Err(Reason::ReasonRequired);
                }
                let to = self
                    .wf
                    .state_index(to)
                    .ok_or_else(|| Reason::UnknownState(to.clone()))?;
                self.transition(Trigger::Override, to);
                Ok(())
            }
            Action::MarkUpToDate => {
                self.require_manager("mark the document up to date")?;
                let to = self.target(Trigger::MarkUpToDate)?;
                self.transition(Trigger::MarkUpToDate, to);
                Ok(())
            }
            Action::Archive => {
                self.require_manager("archive the document")?;
                let to = self.target(Trigger::Archive)?;
                self.transition(Trigger::Archive, to);
                Ok(())
            }
        }
    }

    fn edit(&mut self, content_hash: &str, changed: Option<&Vec<String>>) -> Result<(), Reason> {
        let wf = self.wf;
        let here = wf.state(self.s.state);
        let leave = wf.next(self.s.state, Trigger::Edit);
        if here.is_final && leave.is_none() {
            return Err(self.final_state());
        }
        let mut reset = Vec::new();
        if let (None, Some(def), Some(ap)) = (leave, &here.approval, &self.s.approval) {
            for (k, (sdef, stage)) in def.stages.iter().zip(&ap.stages).enumerate() {
                if stage.started_at.is_none() && k != ap.stage {
                    continue;
                }
                for (gdef, g) in sdef.groups.iter().zip(&stage.groups) {
                    let decided = g.slots.iter().any(|s| s.decision.is_some());
                    if !decided {
                        continue;
                    }
                    let editor_decided = g.slots.iter().any(|s| {
                        s.decision.is_some()
                            && (s.reviewer == self.actor
                                || s.decision.as_ref().is_some_and(|d| d.by == self.actor))
                    });
                    let concerned = match (def.on_new_version, changed) {
                        (StalePolicy::Reset, _) | (_, None) => true,
                        (StalePolicy::KeepUnchanged, Some(parts)) => {
                            gdef.concerns.is_empty()
                                || gdef.concerns.iter().any(|c| parts.contains(c))
                        }
                    };
                    if concerned || editor_decided {
                        reset.push(GroupRef {
                            stage: sdef.name.clone(),
                            group: gdef.name.clone(),
                        });
                    }
                }
            }
        }
        let version = self.s.version + 1;
        self.emit_version(
            Event::Edited {
                changed: changed.cloned(),
                reset: reset.clone(),
            },
            version,
            content_hash,
        );
        if let Some(to) = leave {
            self.transition(Trigger::Edit, to);
            return Ok(());
        }
        // The approval resumes at the first stage with an open group. When the edit reset
        // decisions in that stage, the stage starts again: a deadline counted from now, and
        // its reviewers are told (see `notify`).
        if let (Some(def), Some(ap)) = (&here.approval, &self.s.approval) {
            let k = ap.stage;
            let sdef = &def.stages[k];
            if reset.iter().any(|g| g.stage == sdef.name) {
                self.emit(Event::StageStarted {
                    stage: sdef.name.clone(),
                    due_at: sdef.due.map(|d| self.now.plus(d)),
                    restarted: true,
                });
            }
        }
        Ok(())
    }

    fn decide(
        &mut self,
        decision: Decision,
        version: u32,
        signature: Option<&SignatureInput>,
    ) -> Result<(), Reason> {
        let wf = self.wf;
        let here = wf.state(self.s.state);
        let (Some(def), Some(ap)) = (&here.approval, &self.s.approval) else {
            return Err(if here.is_final {
                self.final_state()
            } else {
                Reason::NotInApproval {
                    state: here.name.clone(),
                }
            });
        };
        if version != self.s.version {
            return Err(Reason::StaleVersion {
                given: version,
                current: self.s.version,
            });
        }
        let principal = self
            .on_behalf_of
            .clone()
            .unwrap_or_else(|| self.actor.clone());
        if principal != self.actor && !self.s.delegated(&principal, &self.actor, self.now) {
            return Err(Reason::NoDelegation {
                from: principal,
                to: self.actor.clone(),
                at: self.now,
            });
        }
        let k = ap.stage;
        let sdef = &def.stages[k];
        let stage = &ap.stages[k];
        let found = stage
            .groups
            .iter()
            .enumerate()
            .find(|(_, g)| g.slots.iter().any(|s| s.reviewer == principal));
        let Some((gi, g)) = found else {
            return Err(Reason::NotAReviewer { user: principal });
        };
        let gdef = &sdef.groups[gi];
        if g.closed.is_some() {
            return Err(Reason::GroupClosed {
                stage: sdef.name.clone(),
                group: gdef.name.clone(),
            });
        }
        if g.slots
            .iter()
            .any(|s| s.reviewer == principal && s.decision.is_some())
        {
            return Err(Reason::AlreadyDecided {
                user: principal,
                version,
            });
        }
        // One person, one vote: whoever acts has not decided in this group yet, neither for
        // themselves nor for someone else (a reset by a new version starts a new round).
        let earlier = g.slots.iter().find_map(|s| {
            let d = s.decision.as_ref().filter(|d| d.by == self.actor)?;
            Some(if s.reviewer == d.by {
                "as themselves".to_owned()
            } else {
                format!("for {}", s.reviewer)
            })
        });
        if let Some(earlier) = earlier {
            return Err(Reason::AlreadyVoted {
                user: self.actor.clone(),
                group: gdef.name.clone(),
                earlier,
            });
        }
        if !gdef.allow_self_approval {
            for user in [&self.actor, &principal] {
                self.check_duties(user)?;
            }
        }
        let signature = self.signature(gdef, decision, signature)?;
        let (stage_name, group_name) = (sdef.name.clone(), gdef.name.clone());
        self.emit_signed(
            Event::Decided {
                stage: stage_name,
                group: group_name,
                reviewer: principal,
                decision,
            },
            signature,
        );
        let rejection = if decision == Decision::RequestChanges {
            Outcome::ChangesRequested
        } else {
            Outcome::Rejected
        };
        self.settle(k, gi, rejection);
        Ok(())
    }

    fn signature(
        &self,
        gdef: &GroupDef,
        decision: Decision,
        given: Option<&SignatureInput>,
    ) -> Result<Option<Signature>, Reason> {
        if let (Some(req), Decision::Approve) = (&gdef.signature, decision) {
            let Some(sig) = given else {
                return Err(Reason::SignatureRequired {
                    group: gdef.name.clone(),
                    meaning: req.meaning,
                });
            };
            if sig.meaning != req.meaning {
                return Err(Reason::WrongMeaning {
                    group: gdef.name.clone(),
                    expected: req.meaning,
                    given: sig.meaning,
                });
            }
            if req.reauth && sig.auth.is_none() {
                return Err(Reason::ReauthRequired {
                    group: gdef.name.clone(),
                });
            }
        }
        given.map(|sig| self.signed(sig)).transpose()
    }

    /// A signature as recorded, its evidence checked by the verifier. The signer is the
    /// person who acts; under a delegation the record's `on_behalf_of` names the principal.
    fn signed(&self, sig: &SignatureInput) -> Result<Signature, Reason> {
        not_blank(&sig.name, "the signer's printed name")?;
        let auth = match &sig.auth {
            None => None,
            Some(a) => {
                not_blank(&a.method, "the re-authentication method")?;
                let claim = Claim {
                    doc: &self.s.doc,
                    version: self.s.version,
                    signer: &self.actor,
                    method: &a.method,
                    reference: a.reference.as_deref(),
                    credential: a.credential.as_deref(),
                    at: self.now,
                };
                match self.verifier.verify(&claim) {
                    Verdict::Verified { verifier } => Some(AuthEvidence {
                        method: a.method.clone(),
                        reference: a.reference.clone(),
                        verification: Some(Verification {
                            verdict: RecordedVerdict::Verified,
                            verifier,
                            at: self.now,
                        }),
                    }),
                    Verdict::Rejected { why } => {
                        return Err(Reason::EvidenceRejected {
                            method: a.method.clone(),
                            why,
                        });
                    }
                    Verdict::Unverifiable { why } => {
                        return Err(Reason::EvidenceUnverifiable {
                            method: a.method.clone(),
                            why,
                        });
                    }
                }
            }
        };
        Ok(Signature {
            signer: self.actor.clone(),
            name: sig.name.clone(),
            meaning: sig.meaning,
            auth,
        })
    }

    /// Closes group `gi` of stage `k` if its rule is met or can no longer be met, and moves
    /// the approval on.
    fn settle(&mut self, k: usize, gi: usize, rejection: Outcome) {
        let wf = self.wf;
        let Some(def) = &wf.state(self.s.state).approval else {
            return;
        };
        let Some(ap) = &self.s.approval else { return };
        let (sdef, gdef) = (&def.stages[k], &def.stages[k].groups[gi]);
        let Some(outcome) = evaluate(gdef, &ap.stages[k].groups[gi]) else {
            return;
        };
        let outcome = if outcome == Outcome::Approved {
            outcome
        } else {
            rejection
        };
        self.emit(Event::GroupClosed {
            stage: sdef.name.clone(),
            group: gdef.name.clone(),
            outcome,
        });
        if outcome == Outcome::Approved {
            self.advance();
            return;
        }
        self.emit(Event::StageClosed {
            stage: sdef.name.clone(),
            outcome,
        });
        let trigger = match wf.next(self.s.state, Trigger::ChangesRequested) {
            Some(_) if outcome == Outcome::ChangesRequested => Trigger::ChangesRequested,
            _ => Trigger::Rejected,
        };
        if let Some(to) = wf.next(self.s.state, trigger) {
            self.transition(trigger, to);
        }
    }

    /// Closes stages whose groups have all approved, starting the next, until one is open
    /// or the approval is complete.
    fn advance(&mut self) {
        let wf = self.wf;
        loop {
            let Some(def) = &wf.state(self.s.state).approval else {
                return;
            };
            let Some(ap) = &self.s.approval else { return };
            let k = ap.stage;
            if ap.stages[k].closed
                || !ap.stages[k]
                    .groups
                    .iter()
                    .all(|g| g.closed == Some(Outcome::Approved))
            {
                return;
            }
            self.emit(Event::StageClosed {
                stage: def.stages[k].name.clone(),
                outcome: Outcome::Approved,
            });
            if k + 1 < def.stages.len() {
                self.start_stage(k + 1);
            } else {
                if let Some(to) = wf.next(self.s.state, Trigger::Approved) {
                    self.transition(Trigger::Approved, to);
                }
                return;
            }
        }
    }

    fn start_stage(&mut self, k: usize) {
        let wf = self.wf;
        let Some(def) = &wf.state(self.s.state).approval else {
            return;
        };
        let sdef = &def.stages[k];
        self.emit(Event::StageStarted {
            stage: sdef.name.clone(),
            due_at: sdef.due.map(|d| self.now.plus(d)),
            restarted: false,
        });
        let mut taken = HashSet::new();
        for (gi, gdef) in sdef.groups.iter().enumerate() {
            let assigned = self
                .s
                .approval
                .as_ref()
                .is_some_and(|ap| !ap.stages[k].groups[gi].slots.is_empty());
            let reviewers = self.s.resolve(wf, gdef, &gdef.reviewers, &mut taken);
            if assigned || reviewers.is_empty() {
                continue;
            }
            self.emit(Event::Assigned {
                stage: sdef.name.clone(),
                group: gdef.name.clone(),
                reviewers,
                source: AssignSource::Workflow,
            });
        }
        // Groups whose decisions were kept across a new version may already be complete.
        for gi in 0..sdef.groups.len() {
            let open = self.s.approval.as_ref().is_some_and(|ap| {
                let g = &ap.stages[k].groups[gi];
                g.closed.is_none() && g.slots.iter().any(|s| s.decision.is_some())
            });
            if open {
                self.settle(k, gi, Outcome::Rejected);
            }
        }
    }

    fn transition(&mut self, trigger: Trigger, to: usize) {
        let due_at = self.wf.state(to).due.map(|d| self.now.plus(d));
        self.emit_to(Event::StateChanged { trigger, due_at }, to);
        if self.wf.state(to).approval.is_some() {
            self.start_stage(0);
        }
    }

    fn target(&self, trigger: Trigger) -> Result<usize, Reason> {
        match self.wf.next(self.s.state, trigger) {
            Some(to) => Ok(to),
            None if self.wf.state(self.s.state).is_final => Err(self.final_state()),
            None => Err(Reason::NoTransition {
                state: self.s.state_name(self.wf).to_owned(),
                trigger,
            }),
        }
    }

    fn assign(&mut self, group: &str, reviewer: &str) -> Result<(), Reason> {
        not_blank(reviewer, "the reviewer's id")?;
        self.require_manager("assign reviewers")?;
        let (k, gi, gdef) = self.current_group(group)?;
        let ap = self
            .s
            .approval
            .as_ref()
            .ok_or_else(|| self.not_in_approval())?;
        if ap.stages[k].groups[gi].closed.is_some() {
            return Err(Reason::GroupClosed {
                stage: self.stage_name(k),
                group: group.to_owned(),
            });
        }
        if let Some(other) = ap.stages[k]
            .groups
            .iter()
            .position(|g| g.slots.iter().any(|s| s.reviewer == reviewer))
        {
            let name = self
                .wf
                .state(self.s.state)
                .approval
                .as_ref()
                .map_or(String::new(), |d| d.stages[k].groups[other].name.clone());
            return Err(Reason::AlreadyAssigned {
                user: reviewer.to_owned(),
                group: name,
            });
        }
        if !gdef.allow_self_approval {
            self.check_duties(reviewer)?;
        }
        self.emit(Event::Assigned {
            stage: self.stage_name(k),
            group: group.to_owned(),
            reviewers: vec![reviewer.to_owned()],
            source: AssignSource::Manual,
        });
        Ok(())
    }

    fn unassign(&mut self, group: &str, reviewer: &str) -> Result<(), Reason> {
        self.require_manager("unassign reviewers")?;
        let (k, gi, gdef) = self.current_group(group)?;
        let ap = self
            .s
            .approval
            .as_ref()
            .ok_or_else(|| self.not_in_approval())?;
        let g = &ap.stages[k].groups[gi];
        if g.closed.is_some() {
            return Err(Reason::GroupClosed {
                stage: self.stage_name(k),
                group: group.to_owned(),
            });
        }
        let Some(slot) = g.slots.iter().find(|s| s.reviewer == reviewer) else {
            return Err(Reason::NotAssigned {
                user: reviewer.to_owned(),
                group: group.to_owned(),
            });
        };
        if let Some(d) = &slot.decision {
            return Err(Reason::AlreadyDecided {
                user: reviewer.to_owned(),
                version: d.version,
            });
        }
        let left = g
            .slots
            .iter()
            .filter(|s| !s.backup && s.reviewer != reviewer)
            .count();
        let needed = gdef.rule.needed(left).max(1);
        if !slot.backup && left < needed {
            return Err(Reason::NotEnoughReviewers {
                group: group.to_owned(),
                needed,
                available: left,
            });
        }
        self.emit(Event::Unassigned {
            stage: self.stage_name(k),
            group: group.to_owned(),
            reviewer: reviewer.to_owned(),
        });
        // Fewer reviewers may complete the group (under `all`, say).
        self.settle(k, gi, Outcome::Rejected);
        Ok(())
    }

    fn sign(&mut self, version: u32, sig: &SignatureInput) -> Result<(), Reason> {
        if version != self.s.version {
            return Err(Reason::StaleVersion {
                given: version,
                current: self.s.version,
            });
        }
        // Under a delegation the principal's standing counts; the signer is still the actor.
        let user = self
            .on_behalf_of
            .clone()
            .unwrap_or_else(|| self.actor.clone());
        let reviewer = self.s.approval.as_ref().is_some_and(|ap| {
            ap.stages
                .iter()
                .flat_map(|s| &s.groups)
                .flat_map(|g| &g.slots)
                .any(|s| s.reviewer == user)
        });
        if !(reviewer || user == self.s.author || user == self.s.version_author) {
            return Err(Reason::NotPermitted {
                user,
                why: "sign this version (authors and assigned reviewers only)".into(),
            });
        }
        let signature = self.signed(sig)?;
        self.emit_signed(Event::Signed, Some(signature));
        Ok(())
    }

    fn delegate(&mut self, to: &str, until: Timestamp, reason: &str) -> Result<(), Reason> {
        let from = self.actor.clone();
        not_blank(to, "the delegate's id")?;
        not_blank(reason, "the delegation's reason")?;
        if to == from {
            return Err(Reason::SelfDelegation { user: from });
        }
        if until <= self.now {
            return Err(Reason::DelegationInPast { now: self.now });
        }
        if let Some(path) = self.s.delegation_path(to, &from, self.now) {
            let mut chain = vec![from.clone()];
            chain.extend(path);
            return Err(Reason::DelegationCycle {
                from,
                to: to.to_owned(),
                chain,
            });
        }
        self.emit(Event::Delegated {
            from,
            to: to.to_owned(),
            until,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    fn tick(&mut self) {
        let wf = self.wf;
        let now = self.now;
        let here = wf.state(self.s.state);
        if self.s.deadline().is_some_and(|d| d <= now) {
            if let Some(to) = wf.next(self.s.state, Trigger::Expired) {
                self.transition(Trigger::Expired, to);
            }
            return;
        }
        if let (Some(def), Some(ap)) = (&here.approval, &self.s.approval) {
            let k = ap.stage;
            let sdef = &def.stages[k];
            let stage = &ap.stages[k];
            let Some(started) = stage.started_at else {
                return;
            };
            let mut fire = Vec::new();
            for (gdef, g) in sdef.groups.iter().zip(&stage.groups) {
                if g.closed.is_some() {
                    continue;
                }
                if let Some(e) = gdef.escalate.as_ref().filter(|_| !g.escalated) {
                    if started.plus(e.after) <= now {
                        // Never someone already assigned anywhere in the stage: their
                        // second slot could never be used (one person, one vote).
                        let mut taken: HashSet<String> = stage
                            .groups
                            .iter()
                            .flat_map(|g| &g.slots)
                            .map(|s| s.reviewer.clone())
                            .collect();
                        let (to, skipped) = self.s.resolve_all(wf, gdef, &e.to, &mut taken);
                        fire.push(Event::Escalated {
                            stage: sdef.name.clone(),
                            group: gdef.name.clone(),
                            to,
                            skipped,
                        });
                    }
                }
                if let Some(every) = gdef.remind_every {
                    let pending: Vec<String> = g
                        .slots
                        .iter()
                        .filter(|s| s.decision.is_none())
                        .map(|s| s.reviewer.clone())
                        .collect();
                    if !pending.is_empty() && g.last_reminder.unwrap_or(started).plus(every) <= now
                    {
                        fire.push(Event::Reminded {
                            stage: sdef.name.clone(),
                            group: gdef.name.clone(),
                            reviewers: pending,
                        });
                    }
                }
            }
            for e in fire {
                self.emit(e);
            }
            return;
        }
        if let Some(r) = &here.review {
            let due = match (r.every, r.idle) {
                (Some(every), _) => self.s.entered_at.plus(every) <= now,
                (None, Some(idle)) => self.s.last_touch.plus(idle) <= now,
                (None, None) => false,
            };
            if due {
                if let Some(to) = wf.next(self.s.state, Trigger::ReviewDue) {
                    self.transition(Trigger::ReviewDue, to);
                }
            }
        }
    }

    fn current_group(&self, group: &str) -> Result<(usize, usize, &GroupDef), Reason> {
        let wf = self.wf;
        let (Some(def), Some(ap)) = (&wf.state(self.s.state).approval, &self.s.approval) else {
            return Err(self.not_in_approval());
        };
        let k = ap.stage;
        let gi = def.stages[k]
            .groups
            .iter()
            .position(|g| g.name == group)
            .ok_or_else(|| Reason::UnknownGroup(group.to_owned()))?;
        Ok((k, gi, &def.stages[k].groups[gi]))
    }

    fn stage_name(&self, k: usize) -> String {
        self.wf
            .state(self.s.state)
            .approval
            .as_ref()
            .map_or(String::new(), |d| d.stages[k].name.clone())
    }

    /// Separation of duties: the author of the document and the author of the current
    /// version may not decide on it.
    fn check_duties(&self, user: &str) -> Result<(), Reason> {
        let role = if user == self.s.version_author {
            format!("author of version {}", self.s.version)
        } else if user == self.s.author {
            format!("author of the document (version {})", self.s.version)
        } else {
            return Ok(());
        };
        Err(Reason::SeparationOfDuties {
            user: user.to_owned(),
            role,
        })
    }

    fn require_manager(&self, what: &str) -> Result<(), Reason> {
        if self.s.manages(&self.actor) {
            Ok(())
        } else {
            Err(Reason::NotPermitted {
                user: self.actor.clone(),
                why: format!("{what} (author, page owner or space administrator only)"),
            })
        }
    }

    fn final_state(&self) -> Reason {
        Reason::FinalState {
            state: self.s.state_name(self.wf).to_owned(),
        }
    }

    fn not_in_approval(&self) -> Reason {
        let here = self.wf.state(self.s.state);
        if here.is_final {
            self.final_state()
        } else {
            Reason::NotInApproval {
                state: here.name.clone(),
            }
        }
    }

    fn emit(&mut self, event: Event) {
        self.push(event, None, None, None);
    }

    fn emit_to(&mut self, event: Event, to: usize) {
        self.push(event, Some(to), None, None);
    }

    fn emit_signed(&mut self, event: Event, signature: Option<Signature>) {
        self.push(event, None, signature, None);
    }

    fn emit_version(&mut self, event: Event, version: u32, content_hash: &str) {
        self.push(event, None, None, Some((version, content_hash)));
    }

    fn push(
        &mut self,
        event: Event,
        to: Option<usize>,
        signature: Option<Signature>,
        version: Option<(u32, &str)>,
    ) {
        let from = &self.wf.state(self.s.state).name;
        let (version, content_hash) = match version {
            Some((v, h)) => (v, h.to_owned()),
            None => (self.s.version, self.s.content_hash.clone()),
        };
        let mut r = Record {
            doc: self.s.doc.clone(),
            seq: self.s.seq,
            at: self.now,
            actor: self.actor.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            version,
            content_hash,
            from_state: from.clone(),
            to_state: to.map_or_else(|| from.clone(), |t| self.wf.state(t).name.clone()),
            // The comment belongs to the command: it goes on its first record only.
            comment: self.comment.take(),
            signature,
            event,
            prev_hash: self.s.head.clone(),
            hash: String::new(),
        };
        r.hash = audit::record_hash(&r);
        self.s.apply(self.wf, &r);
        self.out.push(r);
    }
}

impl DocState {
    /// Refuses a submission when some group of some stage cannot be staffed.
    fn check_resolvable(&self, wf: &Workflow) -> Result<(), Reason> {
        let Some(def) = &wf.state(self.state).approval else {
            return Ok(());
        };
        for sdef in &def.stages {
            let mut taken = HashSet::new();
            for gdef in &sdef.groups {
                let n = self.resolve(wf, gdef, &gdef.reviewers, &mut taken).len();
                let needed = gdef.rule.needed(n).max(1);
                if n < needed {
                    return Err(Reason::NotEnoughReviewers {
                        group: gdef.name.clone(),
                        needed,
                        available: n,
                    });
                }
            }
        }
        Ok(())
    }

    /// The reviewers that `sources` name for this document, without duplicates, without
    /// those already `taken` in the stage, and without the authors unless the group allows
    /// self-approval.
    fn resolve(
        &self,
        wf: &Workflow,
        gdef: &GroupDef,
        sources: &[ReviewerSource],
        taken: &mut HashSet<String>,
    ) -> Vec<String> {
        self.resolve_all(wf, gdef, sources, taken).0
    }

    /// [`DocState::resolve`], and the users the sources named who were left out (already
    /// taken, or an author), each once. A round robin skips members who may not decide and
    /// takes the next ones in its rotation instead, so it never comes up short while the
    /// group has eligible members; those it passed over are not reported as skipped.
    fn resolve_all(
        &self,
        wf: &Workflow,
        gdef: &GroupDef,
        sources: &[ReviewerSource],
        taken: &mut HashSet<String>,
    ) -> (Vec<String>, Vec<String>) {
        let mut out = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        let eligible = |u: &str, taken: &HashSet<String>| {
            let own = u == self.author || u == self.version_author;
            (gdef.allow_self_approval || !own) && !taken.contains(u)
        };
        let add = |u: &str,
                   out: &mut Vec<String>,
                   skipped: &mut Vec<String>,
                   taken: &mut HashSet<String>| {
            if eligible(u, taken) {
                taken.insert(u.to_owned());
                out.push(u.to_owned());
            } else if !out.iter().any(|o| o == u) && !skipped.iter().any(|s| s == u) {
                skipped.push(u.to_owned());
            }
        };
        for source in sources {
            match source {
                ReviewerSource::User(u) => add(u, &mut out, &mut skipped, taken),
                ReviewerSource::Group(g) => {
                    for m in wf.group_members(g).unwrap_or_default() {
                        add(m, &mut out, &mut skipped, taken);
                    }
                }
                ReviewerSource::Role(Role::Author) => {
                    add(&self.author.clone(), &mut out, &mut skipped, taken)
                }
                ReviewerSource::Role(Role::PageOwner) => {
                    add(&self.page_owner.clone(), &mut out, &mut skipped, taken)
                }
                ReviewerSource::Role(Role::SpaceAdmin) => {
                    for a in &self.space_admins {
                        add(a, &mut out, &mut skipped, taken);
                    }
                }
                ReviewerSource::RoundRobin { group, count } => {
                    let members = wf.group_members(group).unwrap_or_default();
                    if members.is_empty() {
                        continue;
                    }
                    // Rotate per document and per submission over the members who may
                    // decide (not the authors, not someone already in the stage), so that
                    // successive submissions and different documents spread over them
                    // evenly and a turn never lands on someone who cannot take it. When
                    // nobody is excluded this is the plain rotation over the group.
                    let eligible_members: Vec<&String> =
                        members.iter().filter(|m| eligible(m, taken)).collect();
                    if eligible_members.is_empty() {
                        continue;
                    }
                    let n = eligible_members.len();
                    let seed = fnv1a(self.doc.as_bytes()) as usize;
                    let start = (seed + self.submissions as usize * *count as usize) % n;
                    for i in 0..(*count as usize).min(n) {
                        add(
                            eligible_members[(start + i) % n],
                            &mut out,
                            &mut skipped,
                            taken,
                        );
                    }
                }
            }
        }
        (out, skipped)
    }

    /// A path of delegations active at `now` from `start` to `goal` (both included), if
    /// there is one: a search over every active delegation, not only the first of each
    /// delegator.
    fn delegation_path(&self, start: &str, goal: &str, now: Timestamp) -> Option<Vec<String>> {
        let active: Vec<&Delegation> = self.delegations.iter().filter(|d| now < d.until).collect();
        // Breadth first, remembering where each user was reached from.
        let mut came_from: Vec<(String, Option<usize>)> = vec![(start.to_owned(), None)];
        let mut next = 0;
        while next < came_from.len() {
            let cur = came_from[next].0.clone();
            if cur == goal {
                let mut path = Vec::new();
                let mut at = Some(next);
                while let Some(i) = at {
                    path.push(came_from[i].0.clone());
                    at = came_from[i].1;
                }
                path.reverse();
                return Some(path);
            }
            for d in active.iter().filter(|d| d.from == cur) {
                if !came_from.iter().any(|(u, _)| *u == d.to) {
                    came_from.push((d.to.clone(), Some(next)));
                }
            }
            next += 1;
        }
        None
    }
}

/// Actions a delegation covers: deciding and signing in the principal's place.
fn delegable(action: &Action) -> bool {
    matches!(
        action,
        Action::Approve { .. }
            | Action::Reject { .. }
            | Action::RequestChanges { .. }
            | Action::Sign { .. }
    )
}

/// The actor and the principal of a command are real ids.
fn check_actor(cmd: &Command) -> Result<(), Reason> {
    not_blank(&cmd.by, "the actor's id")?;
    if let Some(p) = &cmd.on_behalf_of {
        not_blank(p, "the id in on_behalf_of")?;
    }
    Ok(())
}

/// Time has a range, enforced at the door: a clock or a delegation's end outside it would
/// write a timestamp that cannot be read back.
fn check_times(cmd: &Command, now: Timestamp) -> Result<(), Reason> {
    if !now.in_range() {
        return Err(Reason::TimeOutOfRange { at: now });
    }
    if let Action::Delegate { until, .. } = &cmd.action {
        if !until.in_range() {
            return Err(Reason::TimeOutOfRange { at: *until });
        }
    }
    Ok(())
}

fn not_blank(value: &str, field: &'static str) -> Result<(), Reason> {
    if value.trim().is_empty() {
        Err(Reason::Blank { field })
    } else {
        Ok(())
    }
}

/// Whether a group's rule is met (approved) or can no longer be met (rejected).
fn evaluate(gdef: &GroupDef, g: &GroupProgress) -> Option<Outcome> {
    let counted = g.slots.iter().filter(|s| !s.backup).count();
    let needed = gdef.rule.needed(counted).max(1);
    let (mut approvals, mut rejections, mut pending) = (0, 0, 0);
    for s in &g.slots {
        match s.decision.as_ref().map(|d| d.decision) {
            Some(Decision::Approve) => approvals += 1,
            Some(_) => rejections += 1,
            None => pending += 1,
        }
    }
    if approvals >= needed {
        return Some(Outcome::Approved);
    }
    let blocked = match gdef.reject {
        RejectPolicy::Veto => rejections > 0,
        RejectPolicy::Consensus => approvals + pending < needed,
    };
    blocked.then_some(Outcome::Rejected)
}

fn find_group(
    def: &crate::workflow::ApprovalDef,
    stage: &str,
    group: &str,
) -> Option<(usize, usize)> {
    let k = def.stages.iter().position(|s| s.name == stage)?;
    let gi = def.stages[k].groups.iter().position(|g| g.name == group)?;
    Some((k, gi))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
