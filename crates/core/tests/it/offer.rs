//! `DocState::offers`: the actions a user may take now, decided by the engine on a copy of
//! the state. Each case names the user and the offers, written `action[/stage/group][ for
//! principal][ signed meaning(+reauth)]`; refused decisions are `action: reason_code`.

use signoff_core::event::{Action, AuthInput, SignatureInput};
use signoff_core::evidence::TableVerifier;
use signoff_core::offer::{Offer, OfferedAction};
use signoff_core::{Command, DocState, Timestamp, Workflow};

use crate::template;

const T0: Timestamp = Timestamp(1_767_603_600); // 2026-01-05T09:00:00Z

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

/// A document of `wf` created by alice (olivia owns the page, admin administers the
/// space), then `steps` carried out a minute apart.
fn doc(wf: &Workflow, steps: &[Command]) -> (DocState, Timestamp) {
    let create = Action::Create {
        title: "Plan".into(),
        content_hash: "h1".into(),
        page_owner: Some("olivia".into()),
        space_admins: vec!["admin".into()],
    };
    let mut state = DocState::create(wf, "d", &cmd("alice", create), T0)
        .unwrap()
        .state;
    let mut now = T0;
    for step in steps {
        now = Timestamp(now.0 + 60);
        state = state
            .decide_with(wf, step, now, &verifier())
            .unwrap_or_else(|r| panic!("{step:?}: {r}"))
            .state;
    }
    (state, Timestamp(now.0 + 60))
}

fn verifier() -> TableVerifier {
    TableVerifier::new()
        .accept("quinn", "totp", "123456")
        .accept("quentin", "totp", "123456")
        .accept("alice", "totp", "123456")
        .accept("bob", "totp", "123456")
}

fn show(o: &Offer) -> String {
    let mut s = o.action.name().to_owned();
    if let (Some(stage), Some(group)) = (&o.stage, &o.group) {
        s += &format!("/{stage}/{group}");
    }
    if let Some(p) = &o.on_behalf_of {
        s += &format!(" for {p}");
    }
    if let Some(sig) = &o.signature {
        s += &format!(
            " signed {}{}",
            sig.meaning,
            if sig.reauth { "+reauth" } else { "" }
        );
    }
    s
}

/// Checks the offers of `user`, and that each one offered is carried out when sent as a
/// real command (with real evidence, a real delegate): the probe and the command agree.
#[track_caller]
fn check(wf: &Workflow, state: &DocState, now: Timestamp, user: &str, expect: &[&str]) {
    let offers = state.offers(wf, user, now);
    let mut got: Vec<String> = offers.allowed.iter().map(show).collect();
    got.extend(
        offers
            .refused
            .iter()
            .map(|(o, r)| format!("{}: {}", show(o), r.reason.code())),
    );
    assert_eq!(got, expect, "offers of {user}");
    for o in &offers.allowed {
        let c = real_command(state, user, o);
        let before = state.clone();
        state
            .decide_with(wf, &c, now, &verifier())
            .unwrap_or_else(|r| panic!("offered {} to {user}, but {r}", show(o)));
        assert_eq!(*state, before, "a probe changes nothing");
    }
}

fn real_command(state: &DocState, user: &str, o: &Offer) -> Command {
    let signature = |meaning, reauth: bool| SignatureInput {
        name: user.to_uppercase(),
        meaning,
        auth: reauth.then(|| AuthInput {
            method: "totp".into(),
            reference: None,
            credential: Some("123456".into()),
        }),
    };
    let v = state.version;
    let action = match o.action {
        OfferedAction::Submit => Action::Submit,
        OfferedAction::Approve => Action::Approve {
            version: v,
            signature: o.signature.as_ref().map(|s| signature(s.meaning, s.reauth)),
        },
        OfferedAction::Reject => Action::Reject { version: v },
        OfferedAction::RequestChanges => Action::RequestChanges { version: v },
        OfferedAction::Sign => Action::Sign {
            version: v,
            signature: signature(signoff_core::workflow::Meaning::Review, true),
        },
        OfferedAction::Delegate => Action::Delegate {
            to: "zed".into(),
            until: Timestamp(T0.0 + 7 * 86_400),
            reason: "holiday".into(),
        },
        OfferedAction::Withdraw => Action::Withdraw,
        OfferedAction::MarkUpToDate => Action::MarkUpToDate,
        OfferedAction::Archive => Action::Archive,
    };
    Command {
        by: user.into(),
        on_behalf_of: o.on_behalf_of.clone(),
        comment: None,
        action,
    }
}

#[test]
fn a_draft_offers_submitting_and_the_author_may_sign() {
    let wf = template("two-stage.yaml");
    let (s, now) = doc(&wf, &[]);
    check(&wf, &s, now, "alice", &["submit", "sign"]);
    // The engine lets anyone submit a draft (the workflow names no submitters); only
    // authors and reviewers sign.
    check(&wf, &s, now, "mallory", &["submit"]);
}

#[test]
fn pending_reviewers_are_offered_their_decisions_and_a_delegation() {
    let wf = template("two-stage.yaml");
    let (s, now) = doc(&wf, &[cmd("alice", Action::Submit)]);
    let peer = [
        "approve/peer_review/peers",
        "reject/peer_review/peers",
        "request_changes/peer_review/peers",
        "sign",
        "delegate",
    ];
    check(&wf, &s, now, "bob", &peer);
    // The author manages the document: she may withdraw it, and sign her version.
    check(&wf, &s, now, "alice", &["sign", "withdraw"]);
    // Someone with no part in it may do nothing at all.
    check(&wf, &s, now, "mallory", &[]);
    // A space administrator may withdraw (a manager), not decide.
    check(&wf, &s, now, "admin", &["withdraw"]);
}

#[test]
fn a_group_that_requires_a_signature_says_so_in_its_offer() {
    let wf = template("two-stage.yaml");
    let v = |by: &str| {
        cmd(
            by,
            Action::Approve {
                version: 1,
                signature: None,
            },
        )
    };
    let (s, now) = doc(&wf, &[cmd("alice", Action::Submit), v("bob"), v("carol")]);
    let pending = s.pending(&wf);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let qa = pending[0].reviewer.clone();
    check(
        &wf,
        &s,
        now,
        &qa,
        &[
            "approve/qa_signoff/qa signed approval+reauth",
            "reject/qa_signoff/qa",
            "request_changes/qa_signoff/qa",
            "sign",
            "delegate",
        ],
    );
    // bob decided in the first stage: still a reviewer of the approval, so he may sign.
    check(&wf, &s, now, "bob", &["sign"]);
}

#[test]
fn a_delegate_is_offered_the_decisions_of_whom_they_act_for() {
    let wf = template("two-stage.yaml");
    let delegate = cmd(
        "bob",
        Action::Delegate {
            to: "zed".into(),
            until: Timestamp(T0.0 + 86_400),
            reason: "holiday".into(),
        },
    );
    let (s, now) = doc(&wf, &[cmd("alice", Action::Submit), delegate]);
    check(
        &wf,
        &s,
        now,
        "zed",
        &[
            "approve/peer_review/peers for bob",
            "reject/peer_review/peers for bob",
            "request_changes/peer_review/peers for bob",
        ],
    );
    // Once the delegation has ended, nothing is left for zed.
    check(&wf, &s, Timestamp(T0.0 + 2 * 86_400), "zed", &[]);
}

#[test]
fn a_reviewer_the_engine_would_refuse_learns_why() {
    let wf = template("two-stage.yaml");
    // bob edits the document under review: he is the author of version 2, and may not
    // decide on it (separation of duties); he is still one of its reviewers.
    let edit = cmd(
        "bob",
        Action::Edit {
            content_hash: "h2".into(),
            changed: Some(vec!["title".into()]),
        },
    );
    let (s, now) = doc(&wf, &[cmd("alice", Action::Submit), edit]);
    check(
        &wf,
        &s,
        now,
        "bob",
        &[
            "sign",
            "delegate",
            "approve/peer_review/peers: separation_of_duties",
            "reject/peer_review/peers: separation_of_duties",
            "request_changes/peer_review/peers: separation_of_duties",
        ],
    );
}

#[test]
fn a_document_due_for_review_offers_its_managers_to_confirm_or_retire_it() {
    let wf = template("periodic-review.yaml");
    let approve = cmd(
        "olivia",
        Action::Approve {
            version: 1,
            signature: None,
        },
    );
    let (s, now) = doc(&wf, &[cmd("alice", Action::Submit), approve]);
    assert_eq!(s.state_name(&wf), "up_to_date");
    // An approved, final state: only the author may still sign her version.
    check(&wf, &s, now, "alice", &["sign"]);
    check(&wf, &s, now, "olivia", &[]);
    let later = Timestamp(now.0 + 366 * 86_400);
    let s = s.tick(&wf, later).expect("the review is due").state;
    assert_eq!(s.state_name(&wf), "review_required");
    check(
        &wf,
        &s,
        later,
        "alice",
        &["sign", "mark_up_to_date", "archive"],
    );
    // The page owner manages the document without having written it.
    check(&wf, &s, later, "olivia", &["mark_up_to_date", "archive"]);
    check(&wf, &s, later, "mallory", &[]);
}

#[test]
fn nothing_is_offered_when_the_clock_went_backwards() {
    let wf = template("two-stage.yaml");
    let (s, _) = doc(&wf, &[cmd("alice", Action::Submit)]);
    let offers = s.offers(&wf, "bob", Timestamp(T0.0 - 1));
    assert!(offers.allowed.is_empty(), "{offers:?}");
}
