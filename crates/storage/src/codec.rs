//! Byte encodings shared by the adapters: records and notifications as JSON, the index row,
//! and order-preserving keys for sled (redb has typed tuple keys).

use serde::{Deserialize, Serialize};
use signoff_core::Record;
use signoff_core::notify::Notification;
use signoff_core::store::{IndexEntry, StoreError};

/// Checks that `records` continue `doc`'s stream at `expected` and encodes them, one value
/// per record.
pub(crate) fn encode_records(
    doc: &str,
    expected: u64,
    records: &[Record],
) -> Result<Vec<Vec<u8>>, StoreError> {
    check_records(doc, expected, records)?;
    records.iter().map(to_json).collect()
}

/// Checks that `records` continue `doc`'s stream at `expected`.
pub(crate) fn check_records(
    doc: &str,
    expected: u64,
    records: &[Record],
) -> Result<(), StoreError> {
    let in_order = records
        .iter()
        .enumerate()
        .all(|(i, r)| r.doc == doc && expected.checked_add(i as u64) == Some(r.seq));
    if in_order {
        Ok(())
    } else {
        Err(StoreError::BadRecords {
            doc: doc.to_owned(),
            expected,
        })
    }
}

pub(crate) fn encode_notifications(items: &[Notification]) -> Result<Vec<Vec<u8>>, StoreError> {
    items.iter().map(to_json).collect()
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Decodes a stored value. A value that does not decode means the file was damaged or
/// written by something else: that is reported, never skipped.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Backend(format!("corrupted {what} in the store: {e}")))
}

/// [`IndexEntry`] as stored (core's type has no serde derive, and the stored form is ours).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredEntry {
    pub doc: String,
    pub state: String,
    pub pending_reviewers: Vec<String>,
    pub due_at: Option<i64>,
}

impl StoredEntry {
    pub fn of(e: &IndexEntry) -> StoredEntry {
        StoredEntry {
            doc: e.doc.clone(),
            state: e.state.clone(),
            pending_reviewers: e.pending_reviewers.clone(),
            due_at: e.due_at.map(|t| t.0),
        }
    }
}

/// Appends `s` with a length prefix, so that a key made of several strings sorts by the
/// first string, then the next, and no string is a prefix of another's encoding.
pub(crate) fn push_str(key: &mut Vec<u8>, s: &str) {
    key.extend_from_slice(&(s.len() as u32).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

/// A length-prefixed string read back from `key` at `at`; returns it and the next position.
pub(crate) fn read_str(key: &[u8], at: usize) -> Option<(&str, usize)> {
    let len = u32::from_be_bytes(key.get(at..at + 4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(key.get(at + 4..at + 4 + len)?).ok()?;
    Some((s, at + 4 + len))
}

/// An `i64` as bytes that sort like the numbers (sign bit flipped, big-endian).
pub(crate) fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}
