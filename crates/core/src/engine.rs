//! An in-memory engine over many documents, and the queries the UI needs.
//!
//! [`Engine`] keeps registered workflows (by hash) and, per document, the pinned workflow,
//! the folded state and the records. It is what the scenario runner, the benchmark and
//! tests use; a service with real storage does the same steps with a
//! [`crate::store::EventStore`]: `decide`, append with the expected version, then adopt the
//! new state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::event::{Command, Event, Record};
use crate::evidence::{EvidenceVerifier, NoVerifier};
use crate::refusal::{Reason, Refusal};
use crate::state::{ApprovedVersion, DocState};
use crate::time::{Clock, Timestamp};
use crate::workflow::Workflow;

/// Documents and workflows held in memory.
#[derive(Debug, Default)]
pub struct Engine {
    workflows: HashMap<String, Arc<Workflow>>,
    docs: BTreeMap<String, Doc>,
    verifier: Verifier,
}

/// The engine's evidence verifier ([`NoVerifier`] unless one is set).
#[derive(Clone, Default)]
struct Verifier(Option<Arc<dyn EvidenceVerifier + Send + Sync>>);

/// One document: its pinned workflow, its state and its records.
#[derive(Debug, Clone)]
pub struct Doc {
    pub workflow: Arc<Workflow>,
    pub state: DocState,
    pub records: Vec<Record>,
}

/// A review a user still has to give (or may give for someone under a delegation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    pub doc: String,
    pub version: u32,
    pub stage: String,
    pub group: String,
    /// The reviewer the user would act for, when that is someone else.
    pub on_behalf_of: Option<String>,
}

/// A document past its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub doc: String,
    pub state: String,
    pub due_at: Timestamp,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Checks the re-authentication evidence of e-signatures with `verifier` (by default
    /// nothing is verified, so such signatures are refused).
    pub fn with_verifier(mut self, verifier: Arc<dyn EvidenceVerifier + Send + Sync>) -> Engine {
        self.verifier = Verifier(Some(verifier));
        self
    }

    /// Registers a workflow and returns it shared; registering the same one twice is harmless.
    pub fn register(&mut self, wf: Workflow) -> Arc<Workflow> {
        self.workflows
            .entry(wf.hash().to_owned())
            .or_insert_with(|| Arc::new(wf))
            .clone()
    }

    /// Creates a document pinned to the workflow with hash `workflow_hash`.
    pub fn create(
        &mut self,
        doc: &str,
        workflow_hash: &str,
        cmd: &Command,
        clock: &dyn Clock,
    ) -> Result<&[Record], Refusal> {
        let refuse = |reason| Refusal {
            action: cmd.action.name(),
            reason,
        };
        if self.docs.contains_key(doc) {
            return Err(refuse(Reason::DocumentExists(doc.to_owned())));
        }
        let wf = self
            .workflows
            .get(workflow_hash)
            .cloned()
            .ok_or_else(|| refuse(Reason::UnknownWorkflow(workflow_hash.to_owned())))?;
        let decided = DocState::create(&wf, doc, cmd, clock.now())?;
        let entry = self.docs.entry(doc.to_owned()).or_insert(Doc {
            workflow: wf,
            state: decided.state,
            records: Vec::new(),
        });
        entry.records.extend(decided.records);
        Ok(&entry.records)
    }

    /// Carries out a command on an existing document. Returns the new records.
    pub fn execute(
        &mut self,
        doc: &str,
        cmd: &Command,
        clock: &dyn Clock,
    ) -> Result<&[Record], Refusal> {
        let Some(d) = self.docs.get_mut(doc) else {
            return Err(Refusal {
                action: cmd.action.name(),
                reason: Reason::UnknownDocument(doc.to_owned()),
            });
        };
        let verifier: &dyn EvidenceVerifier = match &self.verifier.0 {
            Some(v) => v.as_ref(),
            None => &NoVerifier,
        };
        let records = d
            .state
            .execute_with(&d.workflow, cmd, clock.now(), verifier)?;
        let from = d.records.len();
        d.records.extend(records);
        Ok(&d.records[from..])
    }

    /// Fires whatever is due at `now` on every document. Returns the new records.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Record> {
        let mut out = Vec::new();
        for d in self.docs.values_mut() {
            let records = d.state.tick_in_place(&d.workflow, now);
            out.extend_from_slice(&records);
            d.records.extend(records);
        }
        out
    }

    pub fn doc(&self, doc: &str) -> Option<&Doc> {
        self.docs.get(doc)
    }

    pub fn docs(&self) -> impl Iterator<Item = (&str, &Doc)> {
        self.docs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// What `user` has to review now, directly or under a delegation valid at `now`.
    pub fn pending_for(&self, user: &str, now: Timestamp) -> Vec<PendingItem> {
        let mut out = Vec::new();
        for (id, d) in &self.docs {
            for p in d.state.pending_for(&d.workflow, user, now) {
                out.push(PendingItem {
                    doc: id.clone(),
                    version: d.state.version,
                    stage: p.review.stage,
                    group: p.review.group,
                    on_behalf_of: p.on_behalf_of,
                });
            }
        }
        out
    }

    /// The documents in the state named `state`.
    pub fn by_state(&self, state: &str) -> Vec<&str> {
        self.docs
            .iter()
            .filter(|(_, d)| d.state.state_name(&d.workflow) == state)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The documents whose state or stage deadline is at or before `now`, earliest first.
    pub fn overdue(&self, now: Timestamp) -> Vec<Overdue> {
        let mut out: Vec<Overdue> = self
            .docs
            .iter()
            .filter_map(|(id, d)| {
                let due_at = d.state.deadline().filter(|&t| t <= now)?;
                Some(Overdue {
                    doc: id.clone(),
                    state: d.state.state_name(&d.workflow).to_owned(),
                    due_at,
                })
            })
            .collect();
        out.sort_by(|a, b| a.due_at.cmp(&b.due_at).then(a.doc.cmp(&b.doc)));
        out
    }

    /// The decisions and signatures on one version of a document, in order.
    pub fn history(&self, doc: &str, version: u32) -> Vec<&Record> {
        self.docs.get(doc).map_or_else(Vec::new, |d| {
            d.records
                .iter()
                .filter(|r| {
                    r.version == version
                        && (r.signature.is_some() || matches!(r.event, Event::Decided { .. }))
                })
                .collect()
        })
    }

    /// The version readers see: the last one that completed an approval.
    pub fn last_approved(&self, doc: &str) -> Option<&ApprovedVersion> {
        self.docs.get(doc)?.state.last_approved.as_ref()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Verifier(set)"
        } else {
            "NoVerifier"
        })
    }
}
