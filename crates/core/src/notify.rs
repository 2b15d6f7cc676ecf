//! Notifications as data: what the outbox holds for someone else to deliver.

use serde::{Deserialize, Serialize};

use crate::event::{Event, Record};
use crate::state::DocState;
use crate::time::Timestamp;
use crate::workflow::Trigger;

/// One message to deliver, derived from one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub doc: String,
    /// The record it was derived from.
    pub seq: u64,
    pub at: Timestamp,
    pub kind: NotificationKind,
    pub to: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Assigned,
    Reminder,
    Escalated,
    Decided,
    StateChanged,
    Expired,
}

/// The notifications a record calls for. `state` is the document's state after the record
/// (for its author and page owner).
pub fn notifications(state: &DocState, r: &Record) -> Vec<Notification> {
    let owners = || {
        let mut v = vec![state.author.clone()];
        if state.page_owner != state.author {
            v.push(state.page_owner.clone());
        }
        v
    };
    let (kind, to, text) = match &r.event {
        Event::Assigned {
            reviewers, group, ..
        } => (
            NotificationKind::Assigned,
            reviewers.clone(),
            format!("please review version {} of {} ({group})", r.version, r.doc),
        ),
        // A stage that starts again after an edit reset its decisions: its reviewers are
        // asked again, like at an assignment.
        Event::StageStarted {
            restarted: true, ..
        } => {
            let mut to: Vec<String> = state.pending_reviewers();
            to.dedup();
            if to.is_empty() {
                return Vec::new();
            }
            (
                NotificationKind::Assigned,
                to,
                format!(
                    "please review version {} of {} (the review started again after an edit)",
                    r.version, r.doc
                ),
            )
        }
        Event::Reminded { reviewers, .. } => (
            NotificationKind::Reminder,
            reviewers.clone(),
            format!(
                "reminder: version {} of {} awaits your review",
                r.version, r.doc
            ),
        ),
        Event::Escalated { to, group, .. } => (
            NotificationKind::Escalated,
            to.clone(),
            format!("escalated to you: review of {} ({group}) is overdue", r.doc),
        ),
        Event::Decided {
            reviewer, decision, ..
        } => (
            NotificationKind::Decided,
            owners(),
            format!(
                "{reviewer}: {} on version {} of {}",
                decision.name(),
                r.version,
                r.doc
            ),
        ),
        Event::StateChanged { trigger, .. } => (
            if *trigger == Trigger::Expired {
                NotificationKind::Expired
            } else {
                NotificationKind::StateChanged
            },
            owners(),
            format!(
                "{} moved from {} to {} ({trigger})",
                r.doc, r.from_state, r.to_state
            ),
        ),
        _ => return Vec::new(),
    };
    vec![Notification {
        doc: r.doc.clone(),
        seq: r.seq,
        at: r.at,
        kind,
        to,
        text,
    }]
}
