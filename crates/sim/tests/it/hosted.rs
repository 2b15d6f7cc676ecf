//! `hosted::InstallationKvs`: `signoff_storage::hosted::HostedStore` over one installation of
//! the simulator's store round-trips appends, the index and workflows; it stays inside the
//! installation's scope and realm, and reading many keys never meets the rate limit.

use signoff_core::{Action, Command, DocState, Timestamp, Workflow, audit};
use signoff_sim::hosted::{InstallationKvs, block_on};
use signoff_sim::kvs::{Kvs, KvsLimits, Scope, SetOptions};
use signoff_sim::{Millis, Realm};
use signoff_storage::hosted::{self, HostedStore};
use signoff_storage::{DocumentIndex, EventStore, LocalStore};

fn scope(installation: &str) -> Scope {
    Scope {
        app: "approvals".into(),
        environment: "production".into(),
        installation: installation.into(),
    }
}

fn cmd(by: &str, action: Action) -> Command {
    Command {
        by: by.into(),
        on_behalf_of: None,
        comment: None,
        action,
    }
}

/// A real, hash-chained stream: created, then submitted.
fn stream(wf: &Workflow, doc: &str) -> (Vec<signoff_core::Record>, DocState) {
    let now = Timestamp(1_767_225_600);
    let created = DocState::create(
        wf,
        doc,
        &cmd(
            "alice",
            Action::Create {
                title: "Travel policy".into(),
                content_hash: "h1".into(),
                page_owner: None,
                space_admins: vec![],
            },
        ),
        now,
    )
    .unwrap();
    let submitted = created
        .state
        .decide(wf, &cmd("alice", Action::Submit), Timestamp(now.0 + 60))
        .unwrap();
    let mut records = created.records;
    records.extend(submitted.records);
    (records, submitted.state)
}

#[test]
fn hosted_store_round_trips_through_an_installation() {
    let wf = Workflow::from_text(
        include_str!("../../../core/templates/basic.yaml"),
        "basic.yaml",
    )
    .unwrap();
    let mut kvs = Kvs::new(KvsLimits::forge());
    kvs.install(scope("acme"), Realm::Eu);
    kvs.install(scope("other"), Realm::Eu);
    let docs = ["page-1", "page-2", "page-3"];
    let len = stream(&wf, "page-1").0.len() as u64;
    assert!(len >= 2);
    {
        let store = HostedStore::new(InstallationKvs::new(
            &mut kvs,
            scope("acme"),
            Realm::Eu,
            Millis(0),
        ));
        for doc in docs {
            let (records, state) = stream(&wf, doc);
            let entry = signoff_core::store::IndexEntry::of(&state, &wf);
            block_on(store.commit(doc, 0, &records, Some(entry), &[])).unwrap();
        }
        block_on(store.put_workflow(wf.hash(), "source")).unwrap();
        // A second append at a stale position is a conflict, as on the platform.
        let (records, _) = stream(&wf, "page-1");
        assert!(block_on(store.append("page-1", 0, &records)).is_err());
    }
    // A new adapter (as after the run) reads everything back, chains intact.
    let store = HostedStore::new(InstallationKvs::new(
        &mut kvs,
        scope("acme"),
        Realm::Eu,
        Millis(1_000),
    ));
    let listed = block_on(store.documents()).unwrap();
    assert_eq!(
        listed,
        docs.iter()
            .map(|d| (d.to_string(), len))
            .collect::<Vec<_>>()
    );
    for doc in docs {
        let records = block_on(store.read(doc, 0)).unwrap();
        assert_eq!(records.len() as u64, len);
        audit::verify(&records).unwrap();
    }
    let mut in_approval = block_on(store.by_state("in_approval")).unwrap();
    in_approval.sort();
    assert_eq!(in_approval, docs);
    assert_eq!(
        block_on(store.workflow(wf.hash())).unwrap().as_deref(),
        Some("source")
    );
    drop(store);
    // The other installation sees none of it.
    let other = HostedStore::new(InstallationKvs::new(
        &mut kvs,
        scope("other"),
        Realm::Eu,
        Millis(2_000),
    ));
    assert!(block_on(other.documents()).unwrap().is_empty());
}

#[test]
fn another_realm_is_refused_and_recorded() {
    let mut kvs = Kvs::new(KvsLimits::forge());
    kvs.install(scope("acme"), Realm::Eu);
    let reader = InstallationKvs::new(&mut kvs, scope("acme"), Realm::Us, Millis(0));
    let e = hosted::Kvs::get(&reader, "anything").unwrap_err();
    assert_eq!(e.code, "CROSS_REALM_ACCESS");
    drop(reader);
    assert_eq!(kvs.violations().len(), 1);
}

#[test]
fn reading_many_keys_stays_under_the_rate_limit() {
    let mut kvs = Kvs::new(KvsLimits::forge());
    kvs.install(scope("acme"), Realm::Eu);
    for i in 0..3_000 {
        kvs.set(
            &scope("acme"),
            Realm::Eu,
            Millis(u64::from(i as u32) * 1_000),
            &format!("k{i:05}"),
            serde_json::json!(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    let reader = InstallationKvs::new(&mut kvs, scope("acme"), Realm::Eu, Millis(3_000_000));
    for i in 0..3_000 {
        let v = hosted::Kvs::get(&reader, &format!("k{i:05}")).unwrap();
        assert_eq!(v.as_deref(), Some(i.to_string().as_str()));
    }
    assert_eq!(reader.now(), Millis(3_000_000 + 3_000));
    assert_eq!(
        hosted::Kvs::set(&reader, "bad", "not json", hosted::KeyPolicy::Overwrite)
            .unwrap_err()
            .code,
        "INVALID_VALUE"
    );
}
