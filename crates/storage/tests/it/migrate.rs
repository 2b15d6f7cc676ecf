//! Layout migrations: stores of layout versions 1 and 2 (written here table by table,
//! exactly as those versions of `RedbStore` wrote them) are migrated in place on open,
//! answer every query as before, take further appends, and are not migrated twice; a sled
//! store of version 1 is marked with the current version (its layout did not change).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use signoff_core::Record;
use signoff_core::audit;
use signoff_storage::{
    DocumentIndex, EventStore, LocalStore, OpenError, Outbox, RedbStore, SCHEMA_VERSION, SledStore,
    StoreConfig,
};

use crate::support::{TempDir, basic_life, note, open_retrying, rec, recs, sled_open};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const EVENTS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("events");
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const HEADS: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("heads");
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

/// Writes a store of layout `version`: its streams with `streams` (the one thing that
/// changed between versions 1 and 2), and the rest as every version wrote it: `meta`,
/// an index row with its secondary keys, an outbox with item 1 acknowledged and item 2
/// pending, and a workflow.
fn write_store(path: &std::path::Path, version: u64, streams: impl FnOnce(&WriteTransaction)) {
    let (wf, _, _) = basic_life("travel-policy");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("schema_version", version).unwrap();
        meta.insert("outbox_next", 3).unwrap();
        streams(&txn);
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

/// Writes a version 1 store: appends in `events`, keyed by (document, first seq).
fn write_v1(path: &std::path::Path) {
    write_store(path, 1, |txn| {
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
    });
}

/// Writes a version 2 store: appends in `log`, the documents' appends interleaved as
/// commits would have left them, and every head in `heads`.
fn write_v2(path: &std::path::Path) {
    write_store(path, 2, |txn| {
        let mut log = txn.open_table(LOG).unwrap();
        let mut heads = txn.open_table(HEADS).unwrap();
        let mut streams: Vec<(String, std::collections::VecDeque<Vec<Record>>)> = streams()
            .into_iter()
            .map(|(doc, appends)| (doc, appends.into()))
            .collect();
        let mut pos = 0u64;
        // Round robin over the documents: one append of each in turn.
        while streams.iter().any(|(_, a)| !a.is_empty()) {
            for (doc, appends) in &mut streams {
                let Some(records) = appends.pop_front() else {
                    continue;
                };
                let (len, prev) = heads
                    .get(doc.as_str())
                    .unwrap()
                    .map_or((0, u64::MAX), |v| v.value());
                // Version 2's entry: previous position, first seq, count, the document id's
                // length and bytes, then the records' JSON array; big-endian.
                let mut value = prev.to_be_bytes().to_vec();
                value.extend_from_slice(&len.to_be_bytes());
                value.extend_from_slice(&(records.len() as u32).to_be_bytes());
                value.extend_from_slice(&(doc.len() as u32).to_be_bytes());
                value.extend_from_slice(doc.as_bytes());
                serde_json::to_writer(&mut value, &records).unwrap();
                log.insert(pos, value.as_slice()).unwrap();
                heads
                    .insert(doc.as_str(), (len + records.len() as u64, pos))
                    .unwrap();
                pos += 1;
            }
        }
    });
}

/// The layout version, whether `events` is there, and where the log's tail starts.
fn version(path: &std::path::Path) -> (u64, bool, Option<u64>) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let v = meta.get("schema_version").unwrap().unwrap().value();
    let tail_start = meta.get("tail_start").unwrap().map(|v| v.value());
    let events = txn.open_table(EVENTS).map(|t| t.len().unwrap()).is_ok();
    (v, events, tail_start)
}

/// Opens the store at `path` (migrating it) and checks that it answers as the store that
/// `write_store` wrote, then that it goes on: appends and conflicts at the right lengths,
/// outbox ids still increasing.
async fn check_migrated(path: &std::path::Path) {
    let store = RedbStore::open(path, StoreConfig::durable()).unwrap();
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
}

/// After `check_migrated`: migrated once, to this version, the 7 appends of `streams()` in
/// `heads` and the 2 made after the migration in the log's tail; reopening does not
/// migrate again and finds those 2 appends.
async fn check_reopened(path: &std::path::Path) {
    assert_eq!(version(path), (SCHEMA_VERSION, false, Some(7)));
    let store = RedbStore::open(path, StoreConfig::durable()).unwrap();
    assert_eq!(store.read(ODD, 40).await.unwrap(), recs(ODD, 40, 2));
    assert_eq!(store.read("m", 0).await.unwrap(), recs("m", 0, 3));
    let conflict = store.append("m", 2, &[rec("m", 2)]).await.unwrap_err();
    assert!(matches!(
        conflict,
        signoff_storage::StoreError::Conflict { actual: 3, .. }
    ));
    drop(store);
    assert_eq!(version(path), (SCHEMA_VERSION, false, Some(7)));
}

#[tokio::test]
async fn a_version_1_redb_store_is_migrated_in_place_on_open() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("v1.redb");
    write_v1(&path);
    assert_eq!(version(&path), (1, true, None));
    check_migrated(&path).await;
    check_reopened(&path).await;
}

#[tokio::test]
async fn a_version_2_redb_store_is_migrated_in_place_on_open() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("v2.redb");
    write_v2(&path);
    assert_eq!(version(&path), (2, false, None));
    check_migrated(&path).await;
    check_reopened(&path).await;
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
    assert_eq!(version(&path), (1, true, None));
}

#[test]
fn a_version_1_sled_store_is_marked_with_the_current_version() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("v1.sled");
    drop(SledStore::create(&path, StoreConfig::durable()).unwrap());
    let set = |v: u64| {
        let db = sled_open(&path);
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &v.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    };
    set(1);
    drop(open_retrying(|| SledStore::open(&path, StoreConfig::durable())).unwrap());
    let db = sled_open(&path);
    let v = db
        .open_tree("meta")
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_ref(), SCHEMA_VERSION.to_be_bytes());
}
