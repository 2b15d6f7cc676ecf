//! Commands in, records out: the vocabulary of the engine and of its audit trail.
//!
//! A [`Command`] asks for something; the engine answers with [`Record`]s (or a refusal).
//! Records are the events of the event-sourced document *and* its audit trail: each carries
//! the actor, the time, the version and content hash, the old and new state, the comment,
//! the signature if any, and the hash of the previous record.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::workflow::{Meaning, Trigger};

/// A request from a person (or an adapter acting for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The user who acts.
    pub by: String,
    /// The user on whose behalf `by` acts, under a delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// What a command asks for. In scenario files this is the `do:` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Creates the document (version 1). The creator is its author.
    Create {
        title: String,
        content_hash: String,
        /// Defaults to the author.
        #[serde(default)]
        page_owner: Option<String>,
        #[serde(default)]
        space_admins: Vec<String>,
    },
    /// A new version with a new content hash. `changed` names the parts that changed,
    /// for `on_new_version: keep_unchanged`; `None` means "anything may have changed".
    Edit {
        content_hash: String,
        #[serde(default)]
        changed: Option<Vec<String>>,
    },
    Submit,
    /// Adds a reviewer to a group of the current stage.
    Assign {
        group: String,
        reviewer: String,
    },
    /// Removes a reviewer who has not decided yet from a group of the current stage.
    Unassign {
        group: String,
        reviewer: String,
    },
    Approve {
        version: u32,
        #[serde(default)]
        signature: Option<SignatureInput>,
    },
    Reject {
        version: u32,
    },
    RequestChanges {
        version: u32,
    },
    /// A signature on the current version that is not a decision (e.g. authorship).
    Sign {
        version: u32,
        signature: SignatureInput,
    },
    /// Lets `to` decide on behalf of the actor until `until`.
    Delegate {
        to: String,
        until: Timestamp,
        reason: String,
    },
    Withdraw,
    /// An administrator moves the document to any state; the comment is the reason.
    Override {
        to: String,
    },
    MarkUpToDate,
    Archive,
}

/// The signature part of a command. Re-authentication evidence in it is checked by the
/// caller's [`crate::evidence::EvidenceVerifier`] before anything is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureInput {
    /// The signer's printed name, for the manifestation. May not be blank.
    pub name: String,
    pub meaning: Meaning,
    #[serde(default)]
    pub auth: Option<AuthInput>,
}

/// Evidence that the signer authenticated again, as a command carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    /// For example `totp`, `webauthn`, `sso`. May not be blank.
    pub method: String,
    /// For example the id of the identity provider's assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A one-time code or similar, for the verifier only. It is never serialized (a command
    /// written to a log cannot leak it) and never recorded.
    #[serde(default, skip_serializing)]
    pub credential: Option<String>,
}

/// Evidence that the signer authenticated, as recorded: a method, a reference and the
/// verifier's verdict with its time; never a secret or a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEvidence {
    /// For example `totp`, `webauthn`, `sso`.
    pub method: String,
    /// For example the id of the identity provider's assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The check the evidence passed. Records written before evidence was verified
    /// (signoff 0.1 without a verifier) have none, and keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// How recorded evidence was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Always `verified`: evidence that fails is refused, never recorded.
    pub verdict: RecordedVerdict,
    /// Who checked it and how, as the verifier names itself (e.g. `totp (RFC 6238)`).
    pub verifier: String,
    /// When it was checked (the command's time).
    pub at: Timestamp,
}

/// The verdict a record can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedVerdict {
    Verified,
}

/// A signature as recorded: who, with what meaning, authenticated how. Its time is the
/// record's time and it is bound to the record's version and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub signer: String,
    pub name: String,
    pub meaning: Meaning,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthEvidence>,
}

/// One audit record, which is also one event of the document's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub doc: String,
    /// Position in the document's stream, from 0.
    pub seq: u64,
    pub at: Timestamp,
    /// Who acted: a user id, or `system` for what `tick` fires.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub version: u32,
    pub content_hash: String,
    pub from_state: String,
    pub to_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    pub event: Event,
    /// The hash of the previous record of this document (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical JSON of every other field.
    pub hash: String,
}

/// What happened. Serialized as `{"action": ..., "detail": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail", rename_all = "snake_case")]
pub enum Event {
    Created {
        title: String,
        workflow: String,
        workflow_hash: String,
        author: String,
        page_owner: String,
        space_admins: Vec<String>,
    },
    /// A new version. The groups whose decisions became stale are listed.
    Edited {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changed: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reset: Vec<GroupRef>,
    },
    StateChanged {
        trigger: Trigger,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<Timestamp>,
    },
    StageStarted {
        stage: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<Timestamp>,
        /// The stage started again because an edit reset decisions in it: its deadline
        /// counts from now and its pending reviewers are told again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restarted: bool,
    },
    Assigned {
        stage: String,
        group: String,
        reviewers: Vec<String>,
        source: AssignSource,
    },
    Unassigned {
        stage: String,
        group: String,
        reviewer: String,
    },
    Decided {
        stage: String,
        group: String,
        /// The reviewer whose decision this is (the actor, or whom the actor acts for).
        reviewer: String,
        decision: Decision,
    },
    Signed,
    GroupClosed {
        stage: String,
        group: String,
        outcome: Outcome,
    },
    StageClosed {
        stage: String,
        outcome: Outcome,
    },
    Delegated {
        from: String,
        to: String,
        until: Timestamp,
        reason: String,
    },
    Reminded {
        stage: String,
        group: String,
        reviewers: Vec<String>,
    },
    Escalated {
        stage: String,
        group: String,
        to: Vec<String>,
        /// Backups the workflow names who were left out: already reviewers in the stage, or
        /// the document's or the version's author.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<String>,
    },
}

/// Names one group of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub stage: String,
    pub group: String,
}

/// Why reviewers were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignSource {
    /// From the workflow's reviewer sources when the stage started.
    Workflow,
    /// By an `assign` command.
    Manual,
    /// As backups after the group's SLA passed.
    Escalation,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    RequestChanges,
}

/// How a group, a stage or an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Rejected,
    ChangesRequested,
}

impl Event {
    /// The snake_case name of the event, as in the `action` field.
    pub fn action(&self) -> &'static str {
        match self {
            Event::Created { .. } => "created",
            Event::Edited { .. } => "edited",
            Event::StateChanged { .. } => "state_changed",
            Event::StageStarted { .. } => "stage_started",
            Event::Assigned { .. } => "assigned",
            Event::Unassigned { .. } => "unassigned",
            Event::Decided { .. } => "decided",
            Event::Signed => "signed",
            Event::GroupClosed { .. } => "group_closed",
            Event::StageClosed { .. } => "stage_closed",
            Event::Delegated { .. } => "delegated",
            Event::Reminded { .. } => "reminded",
            Event::Escalated { .. } => "escalated",
        }
    }
}

impl Action {
    /// The snake_case name of the command, used in refusals: `approve refused: ...`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Edit { .. } => "edit",
            Action::Submit => "submit",
            Action::Assign { .. } => "assign",
            Action::Unassign { .. } => "unassign",
            Action::Approve { .. } => "approve",
            Action::Reject { .. } => "reject",
            Action::RequestChanges { .. } => "request_changes",
            Action::Sign { .. } => "sign",
            Action::Delegate { .. } => "delegate",
            Action::Withdraw => "withdraw",
            Action::Override { .. } => "override",
            Action::MarkUpToDate => "mark_up_to_date",
            Action::Archive => "archive",
        }
    }
}

impl std::fmt::Debug for AuthInput {
    // The credential is left out on purpose: a command may end up in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInput")
            .field("method", &self.method)
            .field("reference", &self.reference)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::RequestChanges => "request_changes",
        }
    }
}
