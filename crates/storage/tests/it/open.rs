//! Opening stores: missing, locked, corrupted, foreign and newer-layout files give typed
//! errors that name the file, never a panic.

use signoff_storage::{OpenError, RedbStore, SCHEMA_VERSION, SledStore, StoreConfig};

use crate::support::{TempDir, open_retrying, sled_open};

const CONFIG: StoreConfig = StoreConfig {
    durability: signoff_storage::Durability::Immediate,
    group_commit: signoff_storage::GroupCommit::Off,
};

#[test]
fn a_missing_store_is_named() {
    let dir = TempDir::new("open");
    let path = dir.path().join("nope.redb");
    let e = RedbStore::open(&path, CONFIG).unwrap_err();
    assert!(matches!(e, OpenError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.redb"), "{e}");
    assert!(!path.exists(), "open must not create the file");
    let e = SledStore::open(dir.path().join("nope.sled"), CONFIG).unwrap_err();
    assert!(matches!(e, OpenError::Missing { .. }), "{e:?}");
}

#[test]
fn a_store_in_use_is_locked() {
    let dir = TempDir::new("open");
    let path = dir.path().join("s.redb");
    let first = RedbStore::create(&path, CONFIG).unwrap();
    let e = RedbStore::open(&path, CONFIG).unwrap_err();
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("in use"), "{e}");
    drop(first);
    RedbStore::open(&path, CONFIG).unwrap();

    let path = dir.path().join("s.sled");
    let first = SledStore::create(&path, CONFIG).unwrap();
    let e = SledStore::open(&path, CONFIG).unwrap_err();
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    drop(first);
    // sled lets go of its lock once the dropped store's flusher has: a moment later.
    open_retrying(|| SledStore::open(&path, CONFIG)).expect("the store");
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = TempDir::new("open");
    let path = dir.path().join("notes.redb");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    for e in [
        RedbStore::open(&path, CONFIG).unwrap_err(),
        RedbStore::create(&path, CONFIG).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                OpenError::Corrupted { .. } | OpenError::NotAStore { .. } | OpenError::Io { .. }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("notes.redb"), "{e}");
    }
    // The file was left alone.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("these are my notes")
    );

    // A redb file of another program.
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let t: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("theirs");
        txn.open_table(t).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let e = RedbStore::open(&path, CONFIG).unwrap_err();
    assert!(matches!(e, OpenError::NotAStore { .. }), "{e:?}");
}

#[test]
fn a_damaged_store_gives_an_error_not_a_panic() {
    let dir = TempDir::new("open");
    let path = dir.path().join("s.redb");
    {
        let store = RedbStore::create(&path, CONFIG).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use signoff_storage::EventStore;
            let records = crate::support::recs("d", 0, 200);
            store.append("d", 0, &records).await.unwrap();
        });
    }
    let bytes = std::fs::read(&path).unwrap();
    // Cut the file, then overwrite its header: each must be refused or opened, never panic.
    for damaged in [
        bytes[..bytes.len() / 3].to_vec(),
        [vec![0xa5; 64], bytes[64..].to_vec()].concat(),
    ] {
        std::fs::write(&path, &damaged).unwrap();
        let result = std::panic::catch_unwind(|| RedbStore::open(&path, CONFIG).map(drop));
        let result = result.expect("opening a damaged store must not panic");
        if let Err(e) = result {
            assert!(e.to_string().contains("s.redb"), "{e}");
        }
    }
}

#[test]
fn a_store_from_a_newer_version_is_refused_with_both_versions() {
    let dir = TempDir::new("open");
    let path = dir.path().join("s.redb");
    drop(RedbStore::create(&path, CONFIG).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let e = RedbStore::open(&path, CONFIG).unwrap_err();
    match &e {
        OpenError::NewerSchema {
            found, supported, ..
        } => assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains(&format!("version {}", SCHEMA_VERSION + 1))
            && text.contains(&format!("version {SCHEMA_VERSION}")),
        "{text}"
    );
    assert!(text.contains("Migrating"), "{text}");

    let path = dir.path().join("s.sled");
    drop(SledStore::create(&path, CONFIG).unwrap());
    {
        let db = sled_open(&path);
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    // The raw handle's flusher may hold sled's lock a moment longer.
    let e = (0..250)
        .map(|_| SledStore::open(&path, CONFIG).unwrap_err())
        .find(|e| {
            let locked = matches!(e, OpenError::Locked { .. });
            if locked {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            !locked
        })
        .expect("the store stayed locked");
    assert!(
        matches!(
            e,
            OpenError::NewerSchema { found, supported, .. }
                if (found, supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
        ),
        "{e:?}"
    );
}

/// A sled store of three documents of 40 records, closed; returns its directory.
fn sled_store(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let store = SledStore::create(&path, CONFIG).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use signoff_storage::EventStore;
        for doc in ["a", "b", "c"] {
            for from in (0..40).step_by(10) {
                let records = crate::support::recs(doc, from, 10);
                store.append(doc, from, &records).await.unwrap();
            }
        }
    });
    drop(store);
    path
}

#[test]
fn a_sled_store_that_lost_its_data_is_refused_never_opened_empty() {
    let dir = TempDir::new("sled-loss");
    // A good one reopens with everything.
    let good = sled_store(&dir, "good.sled");
    drop(open_retrying(|| SledStore::open(&good, CONFIG)).expect("the store"));

    // Emptied: sled's files gone, or its log cut to nothing.
    let emptied = sled_store(&dir, "emptied.sled");
    for entry in std::fs::read_dir(&emptied).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "signoff-store" {
            let _ = std::fs::remove_dir_all(entry.path());
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for e in [
        SledStore::open(&emptied, CONFIG).unwrap_err(),
        SledStore::create(&emptied, CONFIG).unwrap_err(),
    ] {
        assert!(matches!(e, OpenError::Corrupted { .. }), "{e:?}");
        assert!(e.to_string().contains("emptied.sled"), "{e}");
    }
    let truncated = sled_store(&dir, "truncated.sled");
    let log = truncated.join("db");
    let len = std::fs::metadata(&log).unwrap().len();
    for keep in [0, len / 2, len - 100] {
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(keep).unwrap();
        drop(f);
        let result = std::panic::catch_unwind(|| SledStore::open(&truncated, CONFIG).map(drop))
            .expect("opening a damaged sled store must not panic");
        let e = result.expect_err("a truncated sled store must be refused");
        assert!(e.to_string().contains("truncated.sled"), "{e}");
    }

    // A redb file given as a sled store.
    let redb = dir.path().join("s.redb");
    drop(RedbStore::create(&redb, CONFIG).unwrap());
    for e in [
        SledStore::open(&redb, CONFIG).unwrap_err(),
        SledStore::create(&redb, CONFIG).unwrap_err(),
    ] {
        assert!(
            matches!(e, OpenError::NotAStore { .. } | OpenError::Missing { .. }),
            "{e:?}"
        );
    }
}

/// The journal of heads beside sled's files is compacted, after commits and at open, to a
/// line per document, and still catches a store that lost records.
#[test]
fn a_sled_stores_journal_stays_small_and_still_catches_loss() {
    use signoff_storage::SLED_JOURNAL_COMPACT_LINES;
    let dir = TempDir::new("sled-journal");
    let path = dir.path().join("s.sled");
    let journal = path.join("signoff-store");
    let lines = || std::fs::read_to_string(&journal).unwrap().lines().count() as u64 - 1;
    let fast = StoreConfig {
        durability: signoff_storage::Durability::None,
        group_commit: signoff_storage::GroupCommit::Off,
    };
    let appends = SLED_JOURNAL_COMPACT_LINES + 500;
    {
        let store = SledStore::create(&path, fast).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use signoff_storage::EventStore;
            for i in 0..appends {
                let doc = ["a", "b", "c"][i as usize % 3];
                let from = i / 3;
                let records = crate::support::recs(doc, from, 1);
                store.append(doc, from, &records).await.unwrap();
            }
        });
        // Compacted once past the threshold: three lines, then one per later append.
        let n = lines();
        assert!(
            n < SLED_JOURNAL_COMPACT_LINES,
            "{n} lines after {appends} appends"
        );
        assert!(n >= appends - SLED_JOURNAL_COMPACT_LINES - 1, "{n}");
    }
    // At open: a journal that grew (here by hand, with its own lines repeated) is compacted
    // to a line per document, with the same heads.
    let text = std::fs::read_to_string(&journal).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    std::fs::write(&journal, format!("{header}\n{}", body.repeat(20))).unwrap();
    assert!(lines() > SLED_JOURNAL_COMPACT_LINES);
    drop(open_retrying(|| SledStore::open(&path, CONFIG)).expect("the store"));
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut heads: Vec<&str> = text.lines().skip(1).collect();
    heads.sort();
    let len = |doc: u64| appends / 3 + u64::from(doc < appends % 3);
    assert_eq!(
        heads,
        [
            format!("{} \"a\"", len(0)),
            format!("{} \"b\"", len(1)),
            format!("{} \"c\"", len(2)),
        ]
    );
    assert!(!path.join("signoff-store.compacting").exists());
    // Still read as the check it is: a journal that says a document had more records than
    // sled holds (as after sled recovered an earlier state) refuses the store, naming it.
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, format!("{text}{} \"b\"\n", len(1) + 1)).unwrap();
    let e = SledStore::open(&path, CONFIG).expect_err("records were lost");
    assert!(matches!(e, OpenError::Corrupted { .. }), "{e:?}");
    assert!(e.to_string().contains("b (has "), "{e}");
}

#[test]
fn flipped_bytes_and_zeroed_pages_in_sled_never_lose_documents_silently() {
    let dir = TempDir::new("sled-flip");
    let template = sled_store(&dir, "template.sled");
    let log = std::fs::read(template.join("db")).unwrap();
    let mut silent = Vec::new();
    // A spread of places in sled's log: flip a byte, or zero the 4 KiB page around it.
    for (i, at) in (0..log.len()).step_by(log.len() / 10 + 1).enumerate() {
        for zero in [false, true] {
            let path = dir.path().join(format!("case-{i}-{zero}.sled"));
            std::fs::create_dir_all(&path).unwrap();
            for entry in std::fs::read_dir(&template).unwrap() {
                let entry = entry.unwrap();
                if entry.path().is_file() {
                    std::fs::copy(entry.path(), path.join(entry.file_name())).unwrap();
                }
            }
            let mut bytes = log.clone();
            if zero {
                let page = at / 4096 * 4096;
                bytes[page..(page + 4096).min(log.len())].fill(0);
            } else {
                bytes[at] ^= 0x10;
            }
            std::fs::write(path.join("db"), &bytes).unwrap();
            let opened = std::panic::catch_unwind(|| {
                let store = SledStore::open(&path, CONFIG)?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                Ok::<_, OpenError>(rt.block_on(async {
                    use signoff_storage::{EventStore, LocalStore};
                    let docs = store.documents().await.map_err(|e| e.to_string())?;
                    let mut n = 0;
                    for (doc, _) in &docs {
                        n += store.read(doc, 0).await.map_err(|e| e.to_string())?.len();
                    }
                    Ok::<_, String>((docs.len(), n))
                }))
            })
            .expect("a damaged sled store must not panic out of the store");
            // Refused at open, an error while reading, or everything there: never less.
            if let Ok(Ok(counts)) = opened
                && counts != (3, 120)
            {
                silent.push(format!("at {at} (zero page: {zero}): {counts:?}"));
            }
        }
    }
    assert!(silent.is_empty(), "silent loss: {silent:?}");
}
