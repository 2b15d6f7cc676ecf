//! The serde model of a workflow definition: what a YAML or JSON file says, before validation.
//!
//! Field names here are the file format; `crates/core/README.md` documents them with an
//! example. Unknown keys are errors, so a typo such as `on: { submitt: ... }` is reported
//! at its place instead of being silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::IsoDuration;

/// A whole workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// A short name, such as `basic-approval`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The state a new document starts in.
    pub initial: String,
    /// Fixed groups of reviewers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    pub states: Vec<StateDef>,
}

/// One state of the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    pub name: String,
    /// A final state ends the approval path (published, obsolete...). Decisions, submissions
    /// and withdrawals are refused there; the transitions listed under `on` still apply.
    #[serde(default, rename = "final", skip_serializing_if = "is_false")]
    pub is_final: bool,
    /// When set, entering this state starts an approval made of these stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDef>,
    /// How long a document may stay in this state before the `expired` transition fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<IsoDuration>,
    /// Periodic review: after this, the `review_due` transition fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewDef>,
    /// Where each trigger leads from this state.
    #[serde(default)]
    pub on: TransitionsDef,
}

/// The targets of the triggers that may leave a state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionsDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_requested: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_due: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_up_to_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
}

/// The approval that runs while a document is in a state: stages in sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDef {
    /// What a new version does to the decisions already taken.
    #[serde(default)]
    pub on_new_version: StalePolicy,
    pub stages: Vec<StageDef>,
}

/// One stage: its groups run in parallel, and all must approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    pub name: String,
    /// A deadline for this stage, counted from its start; on expiry the state's `expired`
    /// transition fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<IsoDuration>,
    pub groups: Vec<GroupDef>,
}

/// A group of reviewers within a stage, with its rule and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    pub name: String,
    pub reviewers: Vec<ReviewerSource>,
    #[serde(default)]
    pub rule: Rule,
    #[serde(default)]
    pub reject: RejectPolicy,
    /// When set, every approval in this group must carry a signature with this meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureRequirement>,
    /// Let the author or the last editor decide on their own version (off by default).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_self_approval: bool,
    /// Remind the reviewers who have not decided yet, this long after the stage started and
    /// after each reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every: Option<IsoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<EscalationDef>,
    /// The parts of the document this group cares about, for `on_new_version:
    /// keep_unchanged`. A group without concerns cares about every change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concerns: Vec<String>,
}

/// Where reviewers come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReviewerSource {
    User(String),
    Group(String),
    Role(Role),
    /// `count` members of a group, rotating per document and per submission.
    RoundRobin {
        group: String,
        #[serde(default = "one")]
        count: u32,
    },
}

/// Roles that resolve per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Author,
    PageOwner,
    SpaceAdmin,
}

/// How many approvals a group needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every reviewer.
    #[default]
    All,
    /// One reviewer; with the default `veto` policy the first response decides.
    Any,
    /// More than half of the reviewers.
    Majority,
    /// At least N reviewers.
    Min(u32),
    /// At least P percent of the reviewers, rounded up.
    Percent(u32),
}

/// What a rejection does to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectPolicy {
    /// The first rejection closes the group as rejected.
    #[default]
    Veto,
    /// The group is rejected only once the rule can no longer be met.
    Consensus,
}

/// What happens to decisions when a new version is created during or after an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StalePolicy {
    /// Every decision is discarded and the approval starts again at the first stage.
    #[default]
    Reset,
    /// Decisions of groups whose `concerns` the edit did not touch are kept (Gerrit-style).
    KeepUnchanged,
}

/// The meaning of an electronic signature (21 CFR Part 11 style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    Authorship,
    Review,
    Approval,
    Responsibility,
}

/// A signature that a group's approvals must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRequirement {
    pub meaning: Meaning,
    /// Require evidence that the signer authenticated again when signing.
    #[serde(default)]
    pub reauth: bool,
}

/// Escalation: after an SLA, backup reviewers join the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationDef {
    pub after: IsoDuration,
    pub to: Vec<ReviewerSource>,
}

/// Periodic review of a state: a fixed interval, or a time without updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDef {
    /// Counted from entering the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<IsoDuration>,
    /// Counted from the last edit or the last "mark up to date", whichever is later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IsoDuration>,
}

impl std::fmt::Display for Meaning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Meaning::Authorship => "authorship",
            Meaning::Review => "review",
            Meaning::Approval => "approval",
            Meaning::Responsibility => "responsibility",
        })
    }
}

impl Rule {
    /// Approvals needed out of `n` counted reviewers.
    pub fn needed(self, n: usize) -> usize {
        match self {
            Rule::All => n,
            Rule::Any => 1,
            Rule::Majority => n / 2 + 1,
            Rule::Min(k) => k as usize,
            Rule::Percent(p) => (n * p as usize).div_ceil(100).max(1),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> u32 {
    1
}
