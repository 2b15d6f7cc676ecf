//! The tamper-evident audit trail: hashing, verification, exports and signature manifestations.
//!
//! Each record's `hash` is the SHA-256 of its `prev_hash` and of the canonical JSON of all its
//! other fields (serde's field order is fixed, and no field is a map, so the JSON is
//! canonical). [`verify`] walks a stream and names the first record that was edited,
//! removed, inserted or moved. A chain can be rehashed from the point of an edit onwards,
//! which the chain alone cannot detect: compare the head with one kept elsewhere
//! ([`verify_head`]; the engine keeps it in `DocState::head`).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::event::{Event, Record, Signature};
use crate::time::Timestamp;

/// The `prev_hash` of the first record of a stream.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first bad record of a stream and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index} (seq {seq}): {problem}")]
pub struct ChainError {
    /// Position of the bad record in the given slice.
    pub index: usize,
    /// The `seq` the record claims.
    pub seq: u64,
    pub problem: ChainProblem,
}

/// What [`verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("its content does not match its hash (the record was edited)")]
    Altered,
    #[error("it does not follow the record before it (a record was removed, inserted or moved)")]
    BrokenLink,
    #[error(
        "it should be number {expected} of the stream (a record was removed, inserted or moved)"
    )]
    OutOfSequence { expected: u64 },
    #[error("it belongs to document {found:?}, not {expected:?}")]
    WrongDocument { expected: String, found: String },
    #[error(
        "the stream ends with {found}, but its head is {expected} (records were removed from the end or rewritten)"
    )]
    WrongHead { expected: String, found: String },
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The hash a record must carry: SHA-256 over its `prev_hash` and its other fields.
pub fn record_hash(r: &Record) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        doc: &'a str,
        seq: u64,
        at: Timestamp,
        actor: &'a str,
        on_behalf_of: &'a Option<String>,
        version: u32,
        content_hash: &'a str,
        from_state: &'a str,
        to_state: &'a str,
        comment: &'a Option<String>,
        signature: &'a Option<Signature>,
        event: &'a Event,
    }
    let body = Body {
        doc: &r.doc,
        seq: r.seq,
        at: r.at,
        actor: &r.actor,
        on_behalf_of: &r.on_behalf_of,
        version: r.version,
        content_hash: &r.content_hash,
        from_state: &r.from_state,
        to_state: &r.to_state,
        comment: &r.comment,
        signature: &r.signature,
        event: &r.event,
    };
    let mut h = HashWriter(Sha256::new());
    h.0.update(r.prev_hash.as_bytes());
    h.0.update(b"\n");
    // The JSON streams straight into the hash. Serializing these plain structs cannot fail,
    // and writing into a hash cannot either.
    let _ = serde_json::to_writer(&mut h, &body);
    hex(&h.0.finalize())
}

/// Checks a whole stream from its first record: sequence numbers, links and hashes.
pub fn verify(records: &[Record]) -> Result<(), ChainError> {
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let fail = |problem| ChainError {
            index: i,
            seq: r.seq,
            problem,
        };
        if r.doc != records[0].doc {
            return Err(fail(ChainProblem::WrongDocument {
                expected: records[0].doc.clone(),
                found: r.doc.clone(),
            }));
        }
        if record_hash(r) != r.hash {
            return Err(fail(ChainProblem::Altered));
        }
        if r.seq != i as u64 {
            return Err(fail(ChainProblem::OutOfSequence { expected: i as u64 }));
        }
        if r.prev_hash != prev {
            return Err(fail(ChainProblem::BrokenLink));
        }
        prev = &r.hash;
    }
    Ok(())
}

/// [`verify`], and also that the stream ends at `head`, a hash kept apart from the stream.
pub fn verify_head(records: &[Record], head: &str) -> Result<(), ChainError> {
    verify(records)?;
    let found = records.last().map_or(GENESIS, |r| r.hash.as_str());
    if found != head {
        return Err(ChainError {
            index: records.len().saturating_sub(1),
            seq: records.last().map_or(0, |r| r.seq),
            problem: ChainProblem::WrongHead {
                expected: head.to_owned(),
                found: found.to_owned(),
            },
        });
    }
    Ok(())
}

/// The records as JSON lines, one record per line, each with every field.
pub fn to_jsonl(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The records as CSV (RFC 4180 quoting), one row per record. The event's details are in
/// the `detail` column as JSON.
pub fn to_csv(records: &[Record]) -> String {
    let mut out = String::from(
        "seq,at,doc,actor,on_behalf_of,action,version,content_hash,from_state,to_state,comment,\
         signer,signer_name,meaning,auth_method,detail,prev_hash,hash\n",
    );
    for r in records {
        let detail = serde_json::to_value(&r.event)
            .ok()
            .and_then(|v| v.get("detail").map(ToString::to_string))
            .unwrap_or_default();
        let sig = r.signature.as_ref();
        let cells = [
            r.seq.to_string(),
            r.at.to_string(),
            r.doc.clone(),
            r.actor.clone(),
            r.on_behalf_of.clone().unwrap_or_default(),
            r.event.action().to_owned(),
            r.version.to_string(),
            r.content_hash.clone(),
            r.from_state.clone(),
            r.to_state.clone(),
            r.comment.clone().unwrap_or_default(),
            sig.map(|s| s.signer.clone()).unwrap_or_default(),
            sig.map(|s| s.name.clone()).unwrap_or_default(),
            sig.map(|s| s.meaning.to_string()).unwrap_or_default(),
            sig.and_then(|s| s.auth.as_ref())
                .map(|a| a.method.clone())
                .unwrap_or_default(),
            detail,
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A human-readable manifestation of the signatures on one version: printed name, UTC time
/// and meaning of each, bound to the content hash (21 CFR Part 11 §11.50 style).
pub fn manifestation(records: &[Record], version: u32) -> String {
    let signed: Vec<&Record> = records
        .iter()
        .filter(|r| r.version == version && r.signature.is_some())
        .collect();
    let doc = records.first().map_or("", |r| r.doc.as_str());
    let mut out = format!("Electronic signatures for document {doc}, version {version}\n");
    match signed.first() {
        None => {
            out.push_str("No signatures.\n");
            return out;
        }
        Some(r) => out.push_str(&format!("Content hash: {}\n", r.content_hash)),
    }
    for r in signed {
        let Some(s) = &r.signature else { continue };
        let auth = s.auth.as_ref().map_or("none recorded".to_owned(), |a| {
            let mut text = match &a.reference {
                Some(reference) => format!("re-authenticated by {} (ref {reference})", a.method),
                None => format!("re-authenticated by {}", a.method),
            };
            match &a.verification {
                Some(v) => text.push_str(&format!(", verified by {} at {}", v.verifier, v.at)),
                // Written before evidence was verified by the engine: say so.
                None => text.push_str(", not verified by signoff"),
            }
            text
        });
        let behalf = r
            .on_behalf_of
            .as_ref()
            .map(|p| format!(" on behalf of {p}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "- {} ({}){behalf}\n  Signed: {}\n  Meaning: {}\n  Authentication: {auth}\n  Record: seq {} hash {}\n",
            s.name, s.signer, r.at, s.meaning, r.seq, r.hash
        ));
    }
    out
}

/// Feeds what serde_json writes into the hash, without a buffer in between.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
