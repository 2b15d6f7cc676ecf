//! Layout migrations: a store of layout version 1 (written here table by table, exactly as
//! version 1 of `RedbStore` wrote it) is migrated in place on open, answers every query as
//! before, takes further appends, and is not migrated twice; a sled store of version 1 is
//! marked version 2 (its layout did not change).

use redb::{ReadableTableMetadata, TableDefinition};
use signoff_core::Record;
use signoff_core::audit;
use signoff_storage::{
    DocumentIndex, EventStore, LocalStore, OpenError, Outbox, RedbStore, SCHEMA_VERSION, SledStore,
    StoreConfig,
};

use crate::support::{TempDir, basic_life, note, rec, recs};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const EVENTS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("events");
const INDEX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("index");
const BY_STATE: TableDefinition<'_, (&str, &str), ()> = TableDefinition::new("index_by_state");
const BY_REVIEWER: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("index_by_reviewer");
const BY_DUE: TableDefinition<'_, (i64, &str), ()> = TableDefinition::new("index_by_due");
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");
const WORKFLOWS: TableDefinition<'_, &str, &str> = TableDefinition::new("workflows");

const ODD: &str = "doc/ü 1";

/// The streams of the version 1 store: a real hash-chained life in three appends, an
/// unusual id with appends of 1, 39 and 1 records, and a document whose id sorts between.
fn streams() -> Vec<(String, Vec<Vec<Record>>)> {
    let (_, life, _) = basic_life("travel-policy");
    vec![
        ("travel-policy".into(), life),
        (
            ODD.into(),
            vec![recs(ODD, 0, 1), recs(ODD, 1, 39), recs(ODD, 40, 1)],
        ),
        ("m".into(), vec![recs("m", 0, 2)]),
    ]
}

/// Writes a version 1 store: the tables and encodings of layout version 1.
fn write_v1(path: &std::path::Path) {
    let (wf, _, _) = basic_life("travel-policy");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("schema_version", 1).unwrap();
        meta.insert("outbox_next", 3).unwrap();
        let mut events = txn.open_table(EVENTS).unwrap();
        for (doc, appends) in streams() {
            let mut first = 0;
            for records in appends {
                // Version 1's value: the record count (4 bytes, big-endian), then the JSON
                // array of the records.
                let mut value = (records.len() as u32).to_be_bytes().to_vec();
                serde_json::to_writer(&mut value, &records).unwrap();
                events
                    .insert((doc.as_str(), first), value.as_slice())
                    .unwrap();
                first += records.len() as u64;
            }
        }
        let row = r#"{"doc":"travel-policy","state":"in_approval","pending_reviewers":["bob","carol"],"due_at":1767225600}"#;
        txn.open_table(INDEX)
            .unwrap()
            .insert("travel-policy", row.as_bytes())
            .unwrap();
        txn.open_table(BY_STATE)
            .unwrap()
            .insert(("in_approval", "travel-policy"), ())
            .unwrap();
        let mut by_reviewer = txn.open_table(BY_REVIEWER).unwrap();
        by_reviewer.insert(("bob", "travel-policy"), ()).unwrap();
        by_reviewer.insert(("carol", "travel-policy"), ()).unwrap();
        txn.open_table(BY_DUE)
            .unwrap()
            .insert((1_767_225_600, "travel-policy"), ())
            .unwrap();
        // Item 1 was acknowledged; item 2 is pending.
        let n = serde_json::to_vec(&note("travel-policy", 2)).unwrap();
        txn.open_table(OUTBOX)
            .unwrap()
            .insert(2, n.as_slice())
            .unwrap();
        txn.open_table(WORKFLOWS)
            .unwrap()
            .insert(wf.hash(), "the source")
            .unwrap();
    }
    txn.commit().unwrap();
}

fn version(path: &std::path::Path) -> (u64, bool) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let v = txn
        .open_table(META)
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap()
        .value();
    let events = txn.open_table(EVENTS).map(|t| t.len().unwrap()).is_ok();
    (v, events)
}

#[tokio::test]
async fn a_version_1_redb_store_is_migrated_in_place_on_open() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("v1.redb");
    write_v1(&path);
    assert_eq!(version(&path), (1, true));

    let store = RedbStore::open(&path, StoreConfig::durable()).unwrap();
    let expected: Vec<(String, Vec<Record>)> = streams()
        .into_iter()
        .map(|(doc, appends)| (doc, appends.concat()))
        .collect();
    let mut listed: Vec<(String, u64)> = expected
        .iter()
        .map(|(d, r)| (d.clone(), r.len() as u64))
        .collect();
    listed.sort();
    assert_eq!(store.documents().await.unwrap(), listed);
    for (doc, records) in &expected {
        assert_eq!(&store.read(doc, 0).await.unwrap(), records, "{doc}");
        for from in 0..=records.len() as u64 + 1 {
            let tail = store.read(doc, from).await.unwrap();
            assert_eq!(
                tail.as_slice(),
                &records[(from as usize).min(records.len())..]
            );
        }
    }
    audit::verify(&store.read("travel-policy", 0).await.unwrap()).unwrap();
    assert_eq!(
        store.by_state("in_approval").await.unwrap(),
        ["travel-policy"]
    );
    assert_eq!(store.by_reviewer("carol").await.unwrap(), ["travel-policy"]);
    let due = signoff_core::Timestamp(1_767_225_600);
    assert_eq!(store.due_before(due).await.unwrap(), ["travel-policy"]);
    assert_eq!(
        store.pending(10).await.unwrap(),
        [(2, note("travel-policy", 2))]
    );
    let (wf, _, _) = basic_life("travel-policy");
    assert_eq!(
        store.workflow(wf.hash()).await.unwrap().as_deref(),
        Some("the source")
    );

    // The streams go on where they ended, conflicts still see the right length, and outbox
    // ids keep increasing.
    assert_eq!(store.append(ODD, 41, &[rec(ODD, 41)]).await.unwrap(), 42);
    let conflict = store.append("m", 1, &[rec("m", 1)]).await.unwrap_err();
    assert!(matches!(
        conflict,
        signoff_storage::StoreError::Conflict { actual: 2, .. }
    ));
    store
        .commit("m", 2, &[rec("m", 2)], None, &[note("m", 2)])
        .await
        .unwrap();
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.last().unwrap().0, 3);
    drop(store);

    // Migrated once: version 2, no `events` table; reopening does not migrate again.
    assert_eq!(version(&path), (SCHEMA_VERSION, false));
    let store = RedbStore::open(&path, StoreConfig::durable()).unwrap();
    assert_eq!(store.read(ODD, 40).await.unwrap(), recs(ODD, 40, 2));
    assert_eq!(store.read("m", 0).await.unwrap(), recs("m", 0, 3));
}

#[test]
fn a_version_1_store_with_a_gap_is_refused_and_left_as_it_was() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("gap.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
        let mut events = txn.open_table(EVENTS).unwrap();
        for first in [0u64, 5] {
            let mut value = 1u32.to_be_bytes().to_vec();
            serde_json::to_writer(&mut value, &recs("d", first, 1)).unwrap();
            events.insert(("d", first), value.as_slice()).unwrap();
        }
        drop(events);
        txn.commit().unwrap();
    }
    let e = RedbStore::open(&path, StoreConfig::durable()).unwrap_err();
    assert!(matches!(e, OpenError::Corrupted { .. }), "{e:?}");
    assert!(e.to_string().contains("gap"), "{e}");
    assert_eq!(version(&path), (1, true));
}

#[test]
fn a_version_1_sled_store_is_marked_version_2() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("v1.sled");
    drop(SledStore::create(&path, StoreConfig::durable()).unwrap());
    let set = |v: u64| {
        let db = sled::open(&path).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &v.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    };
    set(1);
    drop(SledStore::open(&path, StoreConfig::durable()).unwrap());
    let db = sled::open(&path).unwrap();
    let v = db
        .open_tree("meta")
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_ref(), SCHEMA_VERSION.to_be_bytes());
}
