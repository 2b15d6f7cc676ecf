//! Document snapshots: a call reads a document's state from one value instead of replaying
//! its stream.
//!
//! Every commit of the app leaves the document's state after it (`DocState` as JSON, with a
//! format number) in the stream's head, in the same transaction as the records
//! (`HostedStore::commit_with_snapshot`, through [`AppStore`](crate::store::AppStore)); the store keeps its SHA-256 beside it and the
//! hash of the last record. A call then loads a document with one `get` of the head. The
//! snapshot is only an optimisation, never the truth: it is used only when its checksum
//! holds, its format is this one, and it is the state at the head (same document, same
//! length, same last record hash); otherwise, and for the audit views (`status`,
//! `history`), the stream is read and replayed, as before. An append without a snapshot (an
//! older version of the app, or any other writer) writes a head without one, so a snapshot
//! never outlives the stream it describes.

use serde::{Deserialize, Serialize};
use signoff_core::DocState;
use signoff_storage::hosted::{Snapshot, StreamHead};

/// The snapshot format. Change it whenever `DocState`'s shape changes: snapshots of another
/// format are ignored (the stream is replayed).
pub const SNAPSHOT_FORMAT: u32 = 1;

/// A document's state as a snapshot's text.
pub fn encode(state: &DocState) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        format: u32,
        state: &'a DocState,
    }
    serde_json::to_string(&Out {
        format: SNAPSHOT_FORMAT,
        state,
    })
    .unwrap_or_default()
}

/// The state a head's snapshot holds for `doc`: `Ok(None)` when the head has none, an
/// error saying why when it cannot be used.
pub fn decode(doc: &str, head: &StreamHead) -> Result<Option<DocState>, &'static str> {
    #[derive(Deserialize)]
    struct In {
        format: u32,
        state: DocState,
    }
    let text = match &head.snapshot {
        Snapshot::Kept(text) => text,
        Snapshot::None => return Ok(None),
        Snapshot::Corrupt => return Err("its checksum does not hold"),
    };
    let snap: In = serde_json::from_str(text).map_err(|_| "it does not parse")?;
    let state = snap.state;
    if snap.format != SNAPSHOT_FORMAT {
        Err("another format")
    } else if state.doc != doc {
        Err("another document")
    } else if state.seq != head.len || head.last.as_deref() != Some(state.head.as_str()) {
        Err("it is not the state at the head")
    } else {
        Ok(Some(state))
    }
}
