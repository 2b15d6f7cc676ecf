//! Typed refusals: why a command was not carried out. A refused command changes nothing.

use crate::time::Timestamp;
use crate::workflow::{Meaning, Trigger};

/// A refused command: which action, and why. Displays as
/// `approve refused: bob is the author of version 3 (separation of duties)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} refused: {reason}")]
pub struct Refusal {
    pub action: &'static str,
    pub reason: Reason,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("document {0:?} does not exist")]
    UnknownDocument(String),
    #[error("document {0:?} already exists")]
    DocumentExists(String),
    #[error("workflow {0} is not registered")]
    UnknownWorkflow(String),
    #[error("{user} is not a pending reviewer of the current stage")]
    NotAReviewer { user: String },
    /// `role` reads like "author of version 3".
    #[error("{user} is the {role} (separation of duties)")]
    SeparationOfDuties { user: String, role: String },
    #[error("version {given} is stale: the current version is {current}")]
    StaleVersion { given: u32, current: u32 },
    #[error("{user} already decided on version {version}")]
    AlreadyDecided { user: String, version: u32 },
    #[error("the document is in the final state {state:?}")]
    FinalState { state: String },
    #[error("state {state:?} has no `{trigger}` transition")]
    NoTransition { state: String, trigger: Trigger },
    #[error("state {state:?} runs no approval")]
    NotInApproval { state: String },
    #[error("{user} is not allowed to: {why}")]
    NotPermitted { user: String, why: String },
    #[error("group {group:?} of stage {stage:?} has already been decided")]
    GroupClosed { stage: String, group: String },
    #[error("{user} cannot delegate to themselves")]
    SelfDelegation { user: String },
    #[error("delegating from {from} to {to} would make a cycle: {}", .chain.join(" -> "))]
    DelegationCycle {
        from: String,
        to: String,
        chain: Vec<String>,
    },
    #[error("{to} holds no delegation from {from} that is valid at {at}")]
    NoDelegation {
        from: String,
        to: String,
        at: Timestamp,
    },
    #[error("a delegation must end after now ({now})")]
    DelegationInPast { now: Timestamp },
    #[error("group {group:?} requires a signature with meaning {meaning}")]
    SignatureRequired { group: String, meaning: Meaning },
    #[error("group {group:?} requires the signature meaning {expected}, not {given}")]
    WrongMeaning {
        group: String,
        expected: Meaning,
        given: Meaning,
    },
    #[error("group {group:?} requires re-authentication evidence with the signature")]
    ReauthRequired { group: String },
    #[error("group {group:?} needs {needed} eligible reviewers but has {available}")]
    NotEnoughReviewers {
        group: String,
        needed: usize,
        available: usize,
    },
    #[error("state {0:?} is not defined by the workflow")]
    UnknownState(String),
    #[error("{user} is already a reviewer in group {group:?}")]
    AlreadyAssigned { user: String, group: String },
    #[error("{user} is not assigned in group {group:?}")]
    NotAssigned { user: String, group: String },
    #[error("the current stage has no group {0:?}")]
    UnknownGroup(String),
    #[error("a reason is required (give a comment)")]
    ReasonRequired,
    #[error("the clock went backwards: {now} is before the last record at {last}")]
    ClockWentBackwards { now: Timestamp, last: Timestamp },
}

impl Reason {
    /// A stable snake_case name, used by scenario files (`refused: separation_of_duties`).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::UnknownDocument(_) => "unknown_document",
            Reason::DocumentExists(_) => "document_exists",
            Reason::UnknownWorkflow(_) => "unknown_workflow",
            Reason::NotAReviewer { .. } => "not_a_reviewer",
            Reason::SeparationOfDuties { .. } => "separation_of_duties",
            Reason::StaleVersion { .. } => "stale_version",
            Reason::AlreadyDecided { .. } => "already_decided",
            Reason::FinalState { .. } => "final_state",
            Reason::NoTransition { .. } => "no_transition",
            Reason::NotInApproval { .. } => "not_in_approval",
            Reason::NotPermitted { .. } => "not_permitted",
            Reason::GroupClosed { .. } => "group_closed",
            Reason::SelfDelegation { .. } => "self_delegation",
            Reason::DelegationCycle { .. } => "delegation_cycle",
            Reason::NoDelegation { .. } => "no_delegation",
            Reason::DelegationInPast { .. } => "delegation_in_past",
            Reason::SignatureRequired { .. } => "signature_required",
            Reason::WrongMeaning { .. } => "wrong_meaning",
            Reason::ReauthRequired { .. } => "reauth_required",
            Reason::NotEnoughReviewers { .. } => "not_enough_reviewers",
            Reason::UnknownState(_) => "unknown_state",
            Reason::AlreadyAssigned { .. } => "already_assigned",
            Reason::NotAssigned { .. } => "not_assigned",
            Reason::UnknownGroup(_) => "unknown_group",
            Reason::ReasonRequired => "reason_required",
            Reason::ClockWentBackwards { .. } => "clock_went_backwards",
        }
    }
}
