//! `DocState::next_tick`: the earliest time `tick` fires something. Walking documents of
//! the templates through their deadlines, `tick` just before that time fires nothing and
//! `tick` at it fires something, until nothing is scheduled.

use signoff_core::{Action, Command, DocState, Timestamp, Workflow};

use crate::template;

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

/// Submits a new document of `wf` and walks it through every tick `next_tick` announces.
fn walk(wf: &Workflow, approve_with: Option<&str>) -> usize {
    let t0 = Timestamp(1_767_225_600);
    let created = DocState::create(
        wf,
        "doc",
        &cmd(
            "alice",
            Action::Create {
                title: "Policy".into(),
                content_hash: "h1".into(),
                page_owner: Some("olga".into()),
                space_admins: vec![],
            },
        ),
        t0,
    )
    .unwrap();
    let mut s = created.state;
    assert_eq!(s.next_tick(wf), None, "a draft waits for nothing");
    s = s
        .decide(wf, &cmd("alice", Action::Submit), Timestamp(t0.0 + 60))
        .unwrap()
        .state;
    if let Some(owner) = approve_with {
        let approve = Action::Approve {
            version: 1,
            signature: None,
        };
        s = s
            .decide(wf, &cmd(owner, approve), Timestamp(t0.0 + 120))
            .unwrap()
            .state;
    }
    let mut fired = 0;
    while let Some(t) = s.next_tick(wf) {
        assert!(
            s.tick(wf, Timestamp(t.0 - 1)).is_none(),
            "tick fired before next_tick ({t:?}) in state {}",
            s.state_name(wf)
        );
        let decided = s
            .tick(wf, t)
            .unwrap_or_else(|| panic!("nothing fired at next_tick {t:?} in {}", s.state_name(wf)));
        s = decided.state;
        fired += 1;
        if fired > 50 {
            break;
        }
    }
    fired
}

#[test]
fn tick_fires_exactly_at_next_tick() {
    // Reminders, escalation, stage and state deadlines, expiry back to draft.
    assert!(walk(&template("regulated.yaml"), None) >= 3);
    // Approved by the owner, then periodic review and expiry to archivable.
    assert!(walk(&template("periodic-review.yaml"), Some("olga")) >= 2);
    // No deadlines at all.
    assert_eq!(walk(&template("basic.yaml"), None), 0);
}
