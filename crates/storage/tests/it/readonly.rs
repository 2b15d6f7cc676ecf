//! Reading never writes: `RedbStore::open_read_only` reads a store (also one without write
//! permission, or one that was not closed cleanly) and leaves its bytes and mtime as they
//! were; damage met while reading is an error naming the store, never a panic.

use std::path::Path;

use signoff_storage::{EventStore, LocalStore, OpenError, RedbStore, StoreConfig};

use crate::support::{TempDir, recs};

/// A store with `docs` documents of 30 records each, closed.
fn build(path: &Path, docs: usize) {
    let store = RedbStore::create(path, StoreConfig::durable()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for d in 0..docs {
            let doc = format!("doc-{d}");
            for from in (0..30).step_by(10) {
                store
                    .append(&doc, from, &recs(&doc, from, 10))
                    .await
                    .unwrap();
            }
        }
    });
}

/// Everything a reader can ask, as text; an error is part of the answer.
fn read_all(store: &RedbStore) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = String::new();
        let docs = store.documents().await.map_err(|e| e.to_string())?;
        for (doc, len) in docs {
            let records = store.read(&doc, 0).await.map_err(|e| e.to_string())?;
            out.push_str(&format!("{doc} {len} {}\n", records.len()));
        }
        Ok(out)
    })
}

fn stamp(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    (std::fs::read(path).unwrap(), meta.modified().unwrap())
}

#[test]
fn a_read_only_store_reads_everything_and_writes_nothing() {
    let dir = TempDir::new("readonly");
    let path = dir.path().join("s.redb");
    build(&path, 3);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let before = stamp(&path);
    let store = RedbStore::open_read_only(&path).unwrap();
    assert!(store.is_read_only());
    let text = read_all(&store).unwrap();
    assert_eq!(text, "doc-0 30 30\ndoc-1 30 30\ndoc-2 30 30\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = rt
        .block_on(store.append("doc-0", 30, &recs("doc-0", 30, 1)))
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    drop(store);
    assert!(stamp(&path) == before, "a read-only open changed the file");
}

#[test]
fn a_store_that_was_not_closed_cleanly_is_read_without_repairing_the_file() {
    let dir = TempDir::new("readonly");
    let path = dir.path().join("s.redb");
    build(&path, 2);
    // A copy taken while a writer has it open: redb marks it as needing repair.
    let open = RedbStore::open(&path, StoreConfig::durable()).unwrap();
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    drop(open);
    let before = stamp(&copy);
    let store = RedbStore::open_read_only(&copy).unwrap();
    assert_eq!(read_all(&store).unwrap(), "doc-0 30 30\ndoc-1 30 30\n");
    drop(store);
    assert!(
        stamp(&copy) == before,
        "a read-only open repaired the file in place"
    );
}

#[test]
fn a_missing_empty_or_foreign_file_is_refused_read_only() {
    let dir = TempDir::new("readonly");
    let missing = dir.path().join("nope.redb");
    let e = RedbStore::open_read_only(&missing).unwrap_err();
    assert!(matches!(e, OpenError::Missing { .. }), "{e:?}");
    assert!(!missing.exists());
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let e = RedbStore::open_read_only(&empty).unwrap_err();
    assert!(matches!(e, OpenError::NotAStore { .. }), "{e:?}");
    assert!(e.to_string().contains("empty.redb"), "{e}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // A redb file without signoff's layout: a plain redb database.
    let foreign = dir.path().join("foreign.redb");
    drop(redb::Database::create(&foreign).unwrap());
    let before = stamp(&foreign);
    let e = RedbStore::open_read_only(&foreign).unwrap_err();
    assert!(matches!(e, OpenError::NotAStore { .. }), "{e:?}");
    assert!(stamp(&foreign) == before);
}

#[test]
fn damage_met_while_reading_is_an_error_naming_the_store_never_a_panic() {
    let dir = TempDir::new("readonly");
    let path = dir.path().join("s.redb");
    build(&path, 6);
    let good = std::fs::read(&path).unwrap();
    // The pages that hold something (redb preallocates), a dozen of them spread over the
    // file: each damage costs a full open, and the CLI's sweep (tests/e2e) goes further.
    let used: Vec<usize> = (0..good.len() / 4096)
        .filter(|p| good[p * 4096..(p + 1) * 4096].iter().any(|b| *b != 0))
        .collect();
    let pages: Vec<usize> = used
        .iter()
        .step_by(used.len().div_ceil(12).max(1))
        .copied()
        .collect();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    // Zero the page, or flip a byte in it: read-only opening and reading must answer in
    // full, or fail with an error naming the file; never panic or write.
    for &page in &pages {
        for zero in [true, false] {
            let mut bytes = good.clone();
            let at = page * 4096;
            if zero {
                bytes[at..at + 4096].fill(0);
            } else {
                bytes[at + 1234] ^= 0x40;
            }
            std::fs::write(&path, &bytes).unwrap();
            let before = stamp(&path);
            let answer = std::panic::catch_unwind(|| match RedbStore::open_read_only(&path) {
                Ok(store) => read_all(&store),
                Err(e) => Err(e.to_string()),
            })
            .expect("a damaged store must not panic out of the store");
            match answer {
                Ok(_) => *outcomes.entry("read").or_default() += 1,
                Err(e) => {
                    assert!(e.contains("s.redb"), "page {page}: {e}");
                    *outcomes.entry("refused").or_default() += 1;
                }
            }
            assert!(stamp(&path) == before, "page {page}: the file changed");
        }
    }
    assert!(
        outcomes.values().sum::<usize>() == 2 * pages.len(),
        "{outcomes:?}"
    );
}
