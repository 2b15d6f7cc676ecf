//! The tamper-evident audit trail: hashing, verification, exports and signature manifestations.
//!
//! Each record's `hash` is the SHA-256 of its `prev_hash` and of the canonical JSON of all its
//! other fields (serde's field order is fixed, and no field is a map, so the JSON is
//! canonical). [`verify`] walks a stream and names the first record that was edited,
//! removed, inserted or moved. A chain can be rehashed from the point of an edit onwards,
//! which the chain alone cannot detect: compare the head with one kept elsewhere
//! ([`verify_head`]; the engine keeps it in `DocState::head`), or with a signed checkpoint
//! ([`crate::anchor`]).
//!
//! Exports: [`to_jsonl`] and [`to_csv`] for reading; [`to_export`] for an auditor, a JSONL
//! file with a header line (the latest anchor, if any) and a trailer line (each document's
//! record count and head), which [`verify_export`] checks offline, without the store.
//! CSV cells that a spreadsheet would run as a formula are neutralised (see [`to_csv`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::anchor::{Anchor, AnchorError, DocStatus, PublicKey};
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
///
/// A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a
/// formula by a spreadsheet (CSV injection: a comment such as `=HYPERLINK(...)`), so it is
/// prefixed with a single quote, which spreadsheets show as text: `'=HYPERLINK(...)`. The
/// hashes are hexadecimal and never start with one of these, so `hash` and `prev_hash` are
/// kept as they are.
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

/// The format of a self-verifying export: the `signoff_export` field of its first line.
pub const EXPORT_FORMAT: &str = "signoff-export/1";

/// What a self-verifying export holds besides its records.
#[derive(Debug, Clone, Copy)]
pub struct ExportInfo<'a> {
    pub exported_at: Timestamp,
    /// Whether the export holds every document of the store. Only then does a document of
    /// the anchor that the export lacks count as removed.
    pub whole_store: bool,
    /// The latest anchor, if any.
    pub anchor: Option<&'a Anchor>,
}

/// Why an export file cannot be read at all (exit code 2 in the CLI). Damage that can be
/// read is a [`ExportFinding`] instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("line 1: not a signoff export ({EXPORT_FORMAT}): {0}")]
    NotAnExport(String),
    #[error("line {line}: neither a record nor the trailer: {message}")]
    BadLine { line: usize, message: String },
    #[error("line 1: the embedded anchor: {0}")]
    Anchor(AnchorError),
}

/// What [`verify_export`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub documents: usize,
    pub records: usize,
    pub whole_store: bool,
    pub exported_at: Timestamp,
    /// `None` when the export carries no anchor.
    pub anchor: Option<AnchorOutcome>,
    /// The first problem of each document (and of the file), first line first: the first
    /// one names the first bad record. Empty when the export verifies.
    pub findings: Vec<ExportFinding>,
}

/// The embedded anchor, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorOutcome {
    Verified {
        at: Timestamp,
        /// The key that verified it.
        key: PublicKey,
        /// Whether that key was the one the auditor gave, not the one in the file.
        trusted: bool,
        records: u64,
        /// Documents of the export that the anchor does not cover (added after it).
        not_covered: Vec<String>,
    },
    Failed(AnchorError),
}

/// One problem of an export, at its line when it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{problem}", line.map(|l| format!("line {l}: ")).unwrap_or_default(), doc.as_ref().map(|d| format!("{d}: ")).unwrap_or_default())]
pub struct ExportFinding {
    pub line: Option<usize>,
    pub doc: Option<String>,
    pub problem: String,
}

/// A self-verifying export: a header line, the records (one per line, as [`to_jsonl`],
/// each document's records together and in order) and a trailer line with each document's
/// record count and head.
pub fn to_export<'r>(
    streams: impl IntoIterator<Item = &'r [Record]>,
    info: ExportInfo<'_>,
) -> String {
    let header = Header {
        signoff_export: EXPORT_FORMAT.to_owned(),
        exported_at: info.exported_at,
        whole_store: info.whole_store,
        anchor: info.anchor.map(Anchor::to_value),
    };
    let mut out = serde_json::to_string(&header).unwrap_or_default();
    out.push('\n');
    let mut documents = Vec::new();
    for records in streams {
        let Some(last) = records.last() else { continue };
        out.push_str(&to_jsonl(records));
        documents.push(TrailerDoc {
            doc: last.doc.clone(),
            records: records.len() as u64,
            head: last.hash.clone(),
        });
    }
    let trailer = Trailer {
        signoff_export_end: TrailerBody { documents },
    };
    out.push_str(&serde_json::to_string(&trailer).unwrap_or_default());
    out.push('\n');
    out
}

/// Checks a self-verifying export offline. With an anchor, its signature (by `trusted`
/// when given, else by the key it names) and every anchored record; without one, each
/// chain. Then the trailer's counts and heads, which catch a cut-off file or a deleted last
/// record (the trailer is not signed: only an anchor stops someone who also edits it).
pub fn verify_export(text: &str, trusted: Option<&PublicKey>) -> Result<ExportReport, ExportError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header: Header = match lines.next() {
        Some((_, l)) => {
            serde_json::from_str(l).map_err(|e| ExportError::NotAnExport(e.to_string()))?
        }
        None => return Err(ExportError::NotAnExport("the file is empty".into())),
    };
    if header.signoff_export != EXPORT_FORMAT {
        return Err(ExportError::NotAnExport(format!(
            "unknown format {:?}",
            header.signoff_export
        )));
    }
    let anchor = match header.anchor {
        Some(v) => Some(Anchor::from_value(v).map_err(ExportError::Anchor)?),
        None => None,
    };
    // Each document's records and their line numbers, in file order.
    let mut docs: BTreeMap<String, (Vec<Record>, Vec<usize>)> = BTreeMap::new();
    let mut trailer: Option<(usize, TrailerBody)> = None;
    let mut findings = Vec::new();
    let mut records = 0;
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => {
                records += 1;
                if let Some((t, _)) = &trailer {
                    findings.push(ExportFinding {
                        line: Some(n),
                        doc: Some(r.doc.clone()),
                        problem: format!("a record after the trailer (line {t}): inserted"),
                    });
                }
                let entry = docs.entry(r.doc.clone()).or_default();
                entry.0.push(r);
                entry.1.push(n);
            }
            Err(record_error) => match serde_json::from_str::<Trailer>(line) {
                Ok(t) if trailer.is_none() => trailer = Some((n, t.signoff_export_end)),
                _ => {
                    return Err(ExportError::BadLine {
                        line: n,
                        message: record_error.to_string(),
                    });
                }
            },
        }
    }
    let line_of = |doc: &str, index: u64| {
        docs.get(doc)
            .and_then(|(_, ls)| usize::try_from(index).ok().and_then(|i| ls.get(i)))
            .copied()
    };

    let mut chains_checked = false;
    let outcome = match (&anchor, trusted) {
        (None, None) => None,
        (None, Some(key)) => {
            findings.push(ExportFinding {
                line: Some(1),
                doc: None,
                problem: format!("the export carries no anchor to check against key {key}"),
            });
            None
        }
        (Some(a), _) => Some(match a.verify(trusted) {
            Err(e) => {
                findings.push(ExportFinding {
                    line: Some(1),
                    doc: None,
                    problem: format!("the anchor does not verify: {e}"),
                });
                AnchorOutcome::Failed(e)
            }
            Ok(v) => {
                chains_checked = true;
                let report = v.check(docs.iter().map(|(d, (rs, _))| (d.as_str(), rs.as_slice())));
                let mut not_covered = Vec::new();
                for d in report.documents {
                    match d.status {
                        DocStatus::Intact { .. } => {}
                        DocStatus::NotCovered { .. } => not_covered.push(d.doc),
                        // A partial export leaves the other documents out on purpose.
                        DocStatus::Removed { .. } if !header.whole_store => {}
                        DocStatus::Removed { .. } => findings.push(ExportFinding {
                            line: None,
                            problem: d.status.to_string(),
                            doc: Some(d.doc),
                        }),
                        DocStatus::Differs(diff) => findings.push(ExportFinding {
                            line: line_of(&d.doc, diff.index),
                            problem: diff.to_string(),
                            doc: Some(d.doc),
                        }),
                    }
                }
                AnchorOutcome::Verified {
                    at: a.at(),
                    key: v.key(),
                    trusted: v.trusted(),
                    records: a.records(),
                    not_covered,
                }
            }
        }),
    };
    if !chains_checked {
        for (doc, (rs, _)) in &docs {
            if let Err(e) = verify(rs) {
                findings.push(ExportFinding {
                    line: line_of(doc, e.index as u64),
                    doc: Some(doc.clone()),
                    problem: e.to_string(),
                });
            }
        }
    }
    match &trailer {
        None => findings.push(ExportFinding {
            line: None,
            doc: None,
            problem: "the export has no trailer line: it was cut short".into(),
        }),
        Some((t, body)) => {
            findings.extend(trailer_findings(*t, body, &docs));
        }
    }
    // One finding per document (its first), the file's own problems kept; first line first.
    findings.sort_by_key(|f| (f.line.is_none(), f.line, f.doc.clone()));
    let mut seen = std::collections::BTreeSet::new();
    findings.retain(|f| f.doc.as_ref().is_none_or(|d| seen.insert(d.clone())));
    Ok(ExportReport {
        documents: docs.len(),
        records,
        whole_store: header.whole_store,
        exported_at: header.exported_at,
        anchor: outcome,
        findings,
    })
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

/// The first line of a self-verifying export.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    signoff_export: String,
    exported_at: Timestamp,
    whole_store: bool,
    anchor: Option<serde_json::Value>,
}

/// The last line of a self-verifying export.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    signoff_export_end: TrailerBody,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerBody {
    documents: Vec<TrailerDoc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerDoc {
    doc: String,
    records: u64,
    head: String,
}

/// The documents whose records do not end as the trailer says.
fn trailer_findings(
    trailer_line: usize,
    body: &TrailerBody,
    docs: &BTreeMap<String, (Vec<Record>, Vec<usize>)>,
) -> Vec<ExportFinding> {
    let mut findings = Vec::new();
    let listed: BTreeMap<&str, &TrailerDoc> =
        body.documents.iter().map(|d| (d.doc.as_str(), d)).collect();
    for (doc, (rs, lines)) in docs {
        let finding = |line, problem| ExportFinding {
            line,
            doc: Some(doc.clone()),
            problem,
        };
        let Some(t) = listed.get(doc.as_str()) else {
            findings.push(finding(
                lines.first().copied(),
                format!("not listed in the trailer (line {trailer_line}): inserted"),
            ));
            continue;
        };
        let found = rs.len() as u64;
        let head = rs.last().map_or(GENESIS, |r| r.hash.as_str());
        if found < t.records {
            findings.push(finding(
                None,
                format!(
                    "record {found} is missing: the trailer lists {} records (records were removed from the end)",
                    t.records
                ),
            ));
        } else if found > t.records {
            findings.push(finding(
                usize::try_from(t.records)
                    .ok()
                    .and_then(|i| lines.get(i))
                    .copied(),
                format!(
                    "record {} was added: the trailer lists {} records",
                    t.records, t.records
                ),
            ));
        } else if head != t.head {
            findings.push(finding(
                lines.last().copied(),
                format!("the last record is not the trailer's head {}", t.head),
            ));
        }
    }
    for t in &body.documents {
        if !docs.contains_key(&t.doc) {
            findings.push(ExportFinding {
                line: None,
                doc: Some(t.doc.clone()),
                problem: format!(
                    "the document is missing: the trailer lists {} records",
                    t.records
                ),
            });
        }
    }
    findings
}

fn csv_cell(s: &str) -> String {
    let neutral;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutral = format!("'{s}");
        neutral.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
