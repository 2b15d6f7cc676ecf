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
    /// The principal delegated to the actor, but a delegation does not cover this action
    /// (it covers deciding and signing only).
    #[error("a delegation from {from} to {to} covers deciding and signing, not `{action}`")]
    NotDelegable {
        from: String,
        to: String,
        action: &'static str,
    },
    /// One person, one vote: `user` already decided in this group and round, for
    /// themselves or for someone else.
    #[error(
        "{user} already decided in group {group:?} ({earlier}); one person has one vote per group"
    )]
    AlreadyVoted {
        user: String,
        group: String,
        /// Reads like "as themselves" or "for bob".
        earlier: String,
    },
    /// An id, a name or a reason that is empty or only white space.
    #[error("{field} may not be empty or blank")]
    Blank { field: &'static str },
    /// The verifier checked the evidence and it is wrong (a wrong or reused code).
    #[error("re-authentication by {method} was not accepted: {why}")]
    EvidenceRejected { method: String, why: String },
    /// The evidence cannot be checked (no verifier for the method, no enrolment, a lockout).
    #[error("re-authentication by {method} cannot be verified: {why}")]
    EvidenceUnverifiable { method: String, why: String },
    /// A command's time, or a time it names, outside 0001-01-01T00:00:00Z..=9999-12-31T23:59:59Z.
    #[error(
        "{at} is outside the range of time signoff keeps (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
    )]
    TimeOutOfRange { at: Timestamp },
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
            Reason::NoDelegation { .. } | Reason::NotDelegable { .. } => "no_delegation",
            Reason::AlreadyVoted { .. } => "already_voted",
            Reason::Blank { .. } => "blank",
            Reason::TimeOutOfRange { .. } => "time_out_of_range",
            Reason::EvidenceRejected { .. } => "evidence_rejected",
            Reason::EvidenceUnverifiable { .. } => "evidence_unverifiable",
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
