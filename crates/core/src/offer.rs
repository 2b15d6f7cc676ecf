//! What a user may do to a document now, as the engine itself would decide it.
//!
//! A user interface shows only the actions the engine would accept, so the rules live in one
//! place. [`DocState::offers`] makes the commands a user could send (submit, decide on each
//! review they are pending for, sign, delegate, withdraw, mark up to date, archive) and runs
//! each one through [`DocState::decide_with`], the function that carries commands out, on a
//! copy of the state: nothing is recorded, and an action is offered exactly when that
//! command would be carried out at that moment.
//!
//! What a command carries that the user has not typed yet is filled in for the probe: an
//! e-signature with the meaning the group requires, re-authentication evidence that a probe
//! verifier accepts (the real evidence is checked when the command is sent), a delegate and
//! an end one day later. So an offer says "this action is open to you, with these inputs";
//! the command sent later can still be refused for its inputs (a wrong code, a delegation
//! that ends in the past) or because the document changed in between.

use crate::event::{Action, AuthInput, Command, SignatureInput};
use crate::evidence::{Claim, EvidenceVerifier, Verdict};
use crate::refusal::Refusal;
use crate::state::DocState;
use crate::time::{IsoDuration, Timestamp};
use crate::workflow::{Meaning, SignatureRequirement, Workflow};

/// One action a user may take now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub action: OfferedAction,
    /// For decisions and signatures under a delegation: the reviewer the user acts for.
    pub on_behalf_of: Option<String>,
    /// For decisions: the stage and group the decision counts in.
    pub stage: Option<String>,
    pub group: Option<String>,
    /// For an approval in a group that requires an e-signature: its meaning and whether it
    /// needs re-authentication. A `sign` offer needs re-authentication of its own choosing.
    pub signature: Option<SignatureRequirement>,
}

/// The actions [`DocState::offers`] considers: the commands a person sends (not `create`
/// and `edit`, which come from the page, nor the administrators' `assign`, `unassign` and
/// `override`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferedAction {
    Submit,
    Approve,
    Reject,
    RequestChanges,
    Sign,
    Delegate,
    Withdraw,
    MarkUpToDate,
    Archive,
}

/// What [`DocState::offers`] found: the actions open to the user, and the decisions they are
/// pending for that the engine would refuse now, with its reason (separation of duties,
/// say), so that an interface can say why a reviewer cannot decide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offers {
    pub allowed: Vec<Offer>,
    pub refused: Vec<(Offer, Refusal)>,
}

impl DocState {
    /// The actions `user` may take at `now`: each candidate command is decided on a copy of
    /// the state (see the module's documentation). Candidates:
    ///
    /// - `submit`, `withdraw`, `mark_up_to_date`, `archive`: always tried;
    /// - `approve`, `reject`, `request_changes`: for every review of the current stage the
    ///   user is pending for, as themselves or for a reviewer who delegated to them
    ///   ([`DocState::pending_for`]); the refused ones are reported with their refusal;
    /// - `sign`: as themselves, on the current version;
    /// - `delegate`: when the user is a pending reviewer of the current stage themselves,
    ///   which is when a delegation lets someone act for them. (The engine takes a
    ///   delegation from anyone, ahead of time too; it is not offered where it does
    ///   nothing now.)
    pub fn offers(&self, wf: &Workflow, user: &str, now: Timestamp) -> Offers {
        let mut out = Offers::default();
        let mut try_offer = |offer: Offer, cmd: Command, report: bool| match self.decide_with(
            wf,
            &cmd,
            now,
            &ProbeVerifier,
        ) {
            Ok(_) => out.allowed.push(offer),
            Err(refusal) if report => out.refused.push((offer, refusal)),
            Err(_) => {}
        };
        let simple = |action: OfferedAction| Offer {
            action,
            on_behalf_of: None,
            stage: None,
            group: None,
            signature: None,
        };
        let command = |action: Action, on_behalf_of: Option<String>| Command {
            by: user.to_owned(),
            on_behalf_of,
            comment: None,
            action,
        };
        try_offer(
            simple(OfferedAction::Submit),
            command(Action::Submit, None),
            false,
        );
        let pending = self.pending_for(wf, user, now);
        for p in &pending {
            let requirement = self.group_signature(wf, &p.review.group);
            let decisions = [
                (OfferedAction::Approve, requirement.clone()),
                (OfferedAction::Reject, None),
                (OfferedAction::RequestChanges, None),
            ];
            for (kind, signature) in decisions {
                let action = match kind {
                    OfferedAction::Approve => Action::Approve {
                        version: self.version,
                        signature: signature.as_ref().map(|req| probe_signature(user, req)),
                    },
                    OfferedAction::Reject => Action::Reject {
                        version: self.version,
                    },
                    _ => Action::RequestChanges {
                        version: self.version,
                    },
                };
                let offer = Offer {
                    action: kind,
                    on_behalf_of: p.on_behalf_of.clone(),
                    stage: Some(p.review.stage.clone()),
                    group: Some(p.review.group.clone()),
                    signature,
                };
                try_offer(offer, command(action, p.on_behalf_of.clone()), true);
            }
        }
        let sign = Action::Sign {
            version: self.version,
            signature: probe_signature(
                user,
                &SignatureRequirement {
                    meaning: Meaning::Authorship,
                    reauth: true,
                },
            ),
        };
        try_offer(simple(OfferedAction::Sign), command(sign, None), false);
        if pending.iter().any(|p| p.on_behalf_of.is_none()) {
            let delegate = Action::Delegate {
                to: PROBE_DELEGATE.to_owned(),
                until: now.plus(ONE_DAY),
                reason: "probe".to_owned(),
            };
            try_offer(
                simple(OfferedAction::Delegate),
                command(delegate, None),
                false,
            );
        }
        for (kind, action) in [
            (OfferedAction::Withdraw, Action::Withdraw),
            (OfferedAction::MarkUpToDate, Action::MarkUpToDate),
            (OfferedAction::Archive, Action::Archive),
        ] {
            try_offer(simple(kind), command(action, None), false);
        }
        out
    }

    /// The signature a group of the current stage requires of an approval, if any.
    fn group_signature(&self, wf: &Workflow, group: &str) -> Option<SignatureRequirement> {
        let def = wf.state(self.state).approval.as_ref()?;
        let stage = def.stages.get(self.approval.as_ref()?.stage)?;
        stage
            .groups
            .iter()
            .find(|g| g.name == group)?
            .signature
            .clone()
    }
}

impl OfferedAction {
    /// The action's name, as [`Action::name`] has it (`request_changes`).
    pub fn name(self) -> &'static str {
        match self {
            OfferedAction::Submit => "submit",
            OfferedAction::Approve => "approve",
            OfferedAction::Reject => "reject",
            OfferedAction::RequestChanges => "request_changes",
            OfferedAction::Sign => "sign",
            OfferedAction::Delegate => "delegate",
            OfferedAction::Withdraw => "withdraw",
            OfferedAction::MarkUpToDate => "mark_up_to_date",
            OfferedAction::Archive => "archive",
        }
    }
}

/// The delegate of a probe `delegate`: not an id anyone has (it has spaces), so a probe never
/// meets a real delegation (`to == by` would be refused as a self-delegation).
const PROBE_DELEGATE: &str = " probe delegate ";

/// How long a probe delegation lasts.
const ONE_DAY: IsoDuration = IsoDuration {
    months: 0,
    seconds: 86_400,
};

/// The method name of probe evidence.
const PROBE_METHOD: &str = "probe";

/// A signature for a probe command: the requirement's meaning and, when it asks for it,
/// evidence that only [`ProbeVerifier`] accepts.
fn probe_signature(user: &str, req: &SignatureRequirement) -> SignatureInput {
    SignatureInput {
        name: user.to_owned(),
        meaning: req.meaning,
        auth: req.reauth.then(|| AuthInput {
            method: PROBE_METHOD.to_owned(),
            reference: None,
            credential: None,
        }),
    }
}

/// Accepts the evidence of probe commands and nothing else. Probes run on a copy whose
/// records are dropped; real evidence is checked by the caller's verifier when the real
/// command is sent.
struct ProbeVerifier;

impl EvidenceVerifier for ProbeVerifier {
    fn verify(&self, claim: &Claim<'_>) -> Verdict {
        if claim.method == PROBE_METHOD {
            Verdict::Verified {
                verifier: PROBE_METHOD.to_owned(),
            }
        } else {
            Verdict::Unverifiable {
                why: "probes carry probe evidence only".to_owned(),
            }
        }
    }
}
