//! Property tests: random command sequences never break the engine's invariants.
//!
//! For a two-stage workflow whose first group's rule and reject policy are drawn at random,
//! any sequence of commands and ticks keeps these true: an approval completes only when
//! every group's rule is met by approvals on the current version; no reviewer's decision
//! counts twice in one round; a refused command changes nothing; the chain verifies; and a
//! replay of the records gives the live state. Set PROPTEST_CASES for a longer run.

use std::collections::HashSet;

use proptest::prelude::*;
use signoff_core::event::{Action, AuthInput, Decision, Event, SignatureInput};
use signoff_core::evidence::TableVerifier;
use signoff_core::workflow::{Meaning, Trigger};
use signoff_core::{Command, DocState, Engine, FixedClock, Timestamp, Workflow, audit};

const USERS: [&str; 9] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "quinn", "quentin", "sam",
];

fn workflow(rule: &str, reject: &str) -> Workflow {
    let text = format!(
        "
name: prop
initial: draft
groups:
  peers: [bob, carol, dave, erin, frank]
  qa: [quinn, quentin]
states:
  - {{ name: draft, on: {{ submit: review }} }}
  - name: review
    due: P20D
    on: {{ approved: published, rejected: draft, changes_requested: draft, withdraw: draft, expired: draft }}
    approval:
      on_new_version: reset
      stages:
        - name: peer
          due: P10D
          groups:
            - {{ name: peers, reviewers: [{{ group: peers }}], rule: {rule}, reject: {reject}, remind_every: P2D }}
        - name: qa
          groups:
            - name: qa
              reviewers: [{{ round_robin: {{ group: qa }} }}]
              rule: any
              signature: {{ meaning: approval, reauth: true }}
              escalate: {{ after: P3D, to: [{{ user: sam }}] }}
  - name: published
    final: true
    review: {{ every: P30D }}
    on: {{ edit: draft, review_due: stale, archive: retired }}
  - {{ name: stale, on: {{ mark_up_to_date: published, edit: draft }} }}
  - {{ name: retired, final: true }}
"
    );
    Workflow::from_text(&text, "prop.yaml").unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Command(usize, Action),
    Tick,
}

fn action() -> impl Strategy<Value = Action> {
    let version = 0u32..4;
    let sig = prop_oneof![
        1 => Just(None),
        3 => Just(Some(SignatureInput {
            name: "N".into(),
            meaning: Meaning::Approval,
            auth: Some(AuthInput {
                method: "password".into(),
                reference: None,
                credential: Some("pw".into()),
            }),
        })),
        1 => Just(Some(SignatureInput {
            name: "N".into(),
            meaning: Meaning::Approval,
            auth: Some(AuthInput {
                method: "password".into(),
                reference: None,
                credential: Some("wrong".into()),
            }),
        })),
        1 => Just(Some(SignatureInput {
            name: "N".into(),
            meaning: Meaning::Review,
            auth: None,
        })),
    ];
    prop_oneof![
        12 => (version.clone(), sig).prop_map(|(version, signature)| Action::Approve { version, signature }),
        1 => version.clone().prop_map(|version| Action::Reject { version }),
        1 => version.prop_map(|version| Action::RequestChanges { version }),
        3 => Just(Action::Submit),
        1 => (0u8..3).prop_map(|h| Action::Edit { content_hash: format!("h{h}"), changed: None }),
        1 => Just(Action::Withdraw),
        1 => (0..USERS.len(), 1i64..6).prop_map(|(u, days)| Action::Delegate {
            to: USERS[u].into(),
            until: Timestamp(1_767_225_600 + days * 86_400 * 3),
            reason: "away".into(),
        }),
        1 => (0..USERS.len()).prop_map(|u| Action::Assign { group: "peers".into(), reviewer: USERS[u].into() }),
        1 => (0..USERS.len()).prop_map(|u| Action::Unassign { group: "peers".into(), reviewer: USERS[u].into() }),
        1 => prop_oneof![Just("draft"), Just("review"), Just("published")].prop_map(|s| Action::Override { to: s.into() }),
        1 => Just(Action::MarkUpToDate),
        1 => Just(Action::Archive),
    ]
}

fn steps() -> impl Strategy<Value = Vec<(u32, Step, Option<usize>)>> {
    let step = prop_oneof![
        6 => (0..USERS.len(), action()).prop_map(|(u, a)| Step::Command(u, a)),
        1 => Just(Step::Tick),
    ];
    // Each step: hours to wait, the step, and maybe someone to act for.
    prop::collection::vec(
        (0u32..12, step, prop::option::weighted(0.1, 0..USERS.len())),
        1..120,
    )
}

proptest! {
    #[test]
    fn random_commands_keep_the_invariants(
        rule in prop_oneof![Just("all"), Just("any"), Just("majority"), Just("{ min: 2 }"), Just("{ percent: 60 }")],
        reject in prop_oneof![Just("veto"), Just("consensus")],
        steps in steps(),
    ) {
        let wf = workflow(rule, reject);
        let mut verifier = TableVerifier::new();
        for user in USERS {
            verifier = verifier.accept(user, "password", "pw");
        }
        let mut engine = Engine::new().with_verifier(std::sync::Arc::new(verifier));
        let hash = engine.register(wf.clone()).hash().to_owned();
        let mut now = Timestamp(1_767_225_600); // 2026-01-01
        let create = Command {
            by: "alice".into(),
            on_behalf_of: None,
            comment: None,
            action: Action::Create {
                title: "T".into(),
                content_hash: "h0".into(),
                page_owner: None,
                space_admins: vec!["sam".into()],
            },
        };
        engine.create("d", &hash, &create, &FixedClock(now)).unwrap();
        for (hours, step, behalf) in steps {
            now = Timestamp(now.0 + i64::from(hours) * 3600);
            match step {
                Step::Tick => {
                    engine.tick(now);
                }
                Step::Command(u, mut action) => {
                    let version = engine.doc("d").unwrap().state.version;
                    // Aim most decisions at the current version, some at stale ones.
                    if let Action::Approve { version: v, .. } | Action::Reject { version: v } | Action::RequestChanges { version: v } = &mut action {
                        if *v == 0 { *v = version; }
                    }
                    let cmd = Command {
                        by: USERS[u].into(),
                        on_behalf_of: behalf.map(|b| USERS[b].to_owned()),
                        comment: Some("why".into()),
                        action,
                    };
                    let before = engine.doc("d").unwrap().clone();
                    if engine.execute("d", &cmd, &FixedClock(now)).is_err() {
                        let after = engine.doc("d").unwrap();
                        prop_assert_eq!(&after.state, &before.state);
                        prop_assert_eq!(&after.records, &before.records);
                    }
                }
            }
        }
        let doc = engine.doc("d").unwrap();
        prop_assert!(audit::verify_head(&doc.records, &doc.state.head).is_ok());
        prop_assert_eq!(&DocState::replay(&wf, &doc.records).unwrap(), &doc.state);
        // A state kept as JSON (the approval app's snapshot) comes back the same.
        let json = serde_json::to_string(&doc.state).unwrap();
        prop_assert_eq!(&serde_json::from_str::<DocState>(&json).unwrap(), &doc.state);
        check_approvals(&wf, &doc.records)?;
        check_single_decisions(&doc.records)?;
        check_one_vote(&doc.records)?;
        check_acting_for_others(&wf, &doc.records)?;
    }
}

/// Just before every `approved` transition, every group of every stage is closed as
/// approved and has enough approvals on the current version.
fn check_approvals(wf: &Workflow, records: &[signoff_core::Record]) -> Result<(), TestCaseError> {
    for (i, r) in records.iter().enumerate() {
        let Event::StateChanged {
            trigger: Trigger::Approved,
            ..
        } = r.event
        else {
            continue;
        };
        let before = DocState::replay(wf, &records[..i]).unwrap();
        let def = wf.state(before.state).approval.as_ref().unwrap();
        let ap = before.approval.as_ref().unwrap();
        for (sdef, stage) in def.stages.iter().zip(&ap.stages) {
            prop_assert!(stage.closed);
            for (gdef, g) in sdef.groups.iter().zip(&stage.groups) {
                let counted = g.slots.iter().filter(|s| !s.backup).count();
                let approvals: HashSet<&str> = g
                    .slots
                    .iter()
                    .filter(|s| {
                        s.decision.as_ref().is_some_and(|d| {
                            d.decision == Decision::Approve && d.version == before.version
                        })
                    })
                    .map(|s| s.reviewer.as_str())
                    .collect();
                prop_assert!(
                    approvals.len() >= gdef.rule.needed(counted).max(1),
                    "group {} approved with {} approvals of {counted}",
                    gdef.name,
                    approvals.len()
                );
                prop_assert!(!approvals.contains(before.author.as_str()));
                prop_assert!(!approvals.contains(before.version_author.as_str()));
            }
        }
    }
    Ok(())
}

/// Within one round (between state changes and new versions), each reviewer decides once
/// per stage. (Someone may review in one stage and approve in the next: two decisions.)
fn check_single_decisions(records: &[signoff_core::Record]) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    for r in records {
        match &r.event {
            Event::StateChanged { .. } | Event::Edited { .. } => seen.clear(),
            Event::Decided {
                stage, reviewer, ..
            } => {
                prop_assert!(
                    seen.insert((stage.clone(), reviewer.clone())),
                    "{} decided twice in stage {} (seq {})",
                    reviewer,
                    stage,
                    r.seq
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// One person, one vote: within a round of a group (until a state change, or a new version
/// that resets the group), each person decides at most once, for themselves or for another.
fn check_one_vote(records: &[signoff_core::Record]) -> Result<(), TestCaseError> {
    let mut voted: HashSet<(String, String, String)> = HashSet::new();
    for r in records {
        match &r.event {
            Event::StateChanged { .. } => voted.clear(),
            Event::Edited { reset, .. } => {
                voted.retain(|(s, g, _)| !reset.iter().any(|x| &x.stage == s && &x.group == g))
            }
            Event::Decided { stage, group, .. } => {
                prop_assert!(
                    voted.insert((stage.clone(), group.clone(), r.actor.clone())),
                    "{} voted twice in group {} of stage {} (seq {})",
                    r.actor,
                    group,
                    stage,
                    r.seq
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// A record that names `on_behalf_of` was written under a delegation from that principal
/// to the actor, active at the record's time.
fn check_acting_for_others(
    wf: &Workflow,
    records: &[signoff_core::Record],
) -> Result<(), TestCaseError> {
    for (i, r) in records.iter().enumerate() {
        let Some(principal) = &r.on_behalf_of else {
            continue;
        };
        prop_assert_ne!(principal, &r.actor);
        let before = DocState::replay(wf, &records[..i]).unwrap();
        prop_assert!(
            before
                .delegations
                .iter()
                .any(|d| &d.from == principal && d.to == r.actor && r.at < d.until),
            "seq {}: {} acted for {} without a delegation",
            r.seq,
            r.actor,
            principal
        );
    }
    Ok(())
}
