//! Signed checkpoints ("anchors") of the audit trail, so that history cannot be rewritten
//! quietly.
//!
//! A hash chain ([`audit::verify`]) stops accidental damage, but someone who can edit the
//! store can edit a record and recompute every later hash. An anchor is the store owner's
//! Ed25519 signature over every document's record hashes at one moment: as long as the
//! signing key stays secret and a copy of the anchor is kept away from the store, nothing
//! recorded up to that moment can change or disappear without [`VerifiedAnchor::check`]
//! naming the first document and the first record that differ.
//!
//! Design: a sorted list, not a Merkle tree. The anchor lists each document (sorted by id)
//! with its record count, its head and the hash of every record. The hashes are what name
//! the first changed record of a consistently rehashed tail (the head alone only says that
//! something changed); a Merkle tree would make a proof for one document smaller, but the
//! verifier reads the whole store anyway. The signed digest is SHA-256 over this text, so the
//! signature covers every listed hash:
//!
//! ```text
//! signoff-anchor/1\n
//! at <unix seconds>\n
//! for each document, in id order:
//!   doc <the id as a JSON string> <record count> <head>\n
//!   <hash of record 0>\n ... <hash of the last record>\n
//! ```
//!
//! and the Ed25519 signature is over the bytes `signoff-anchor/1 digest\n` followed by the
//! 32 digest bytes (a fixed prefix, so that the key's signatures cannot be taken for
//! anything else). The file is JSON ([`Anchor::to_json`], [`Anchor::parse`]) and about 67
//! bytes per record. Key generation needs OS randomness and lives in the CLI; everything
//! here is pure and builds for `wasm32-wasip2`.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{self, ChainProblem, GENESIS};
use crate::event::Record;
use crate::time::Timestamp;

/// The format name, first line of the signed text and `format` field of the file.
pub const FORMAT: &str = "signoff-anchor/1";

/// An Ed25519 public key: what an auditor trusts. Kept as its 32 checked bytes (a
/// `VerifyingKey` is six times larger, and errors carry keys).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

/// An Ed25519 secret key (the 32-byte seed). Wiped from memory when dropped; its `Debug`
/// shows only the public key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// Why a key could not be read. Keys are written as 64 hexadecimal digits (32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a key is 64 hexadecimal digits (32 bytes); this has {found} characters")]
    WrongLength { found: usize },
    #[error("a key is 64 hexadecimal digits; this has other characters")]
    NotHex,
    #[error("these 32 bytes are not an Ed25519 public key")]
    NotAPublicKey,
}

/// One document as anchored: its record count, head and every record's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchoredDoc {
    pub doc: String,
    pub records: u64,
    /// The last record's hash ([`GENESIS`] for an empty stream).
    pub head: String,
    pub hashes: Vec<String>,
}

/// A signed checkpoint, read from a file or just signed. It is well formed (see
/// [`Anchor::parse`]) but not yet trusted: [`Anchor::verify`] checks the digest and the
/// signature and gives the [`VerifiedAnchor`] that [`VerifiedAnchor::check`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    at: Timestamp,
    documents: Vec<AnchoredDoc>,
    digest: String,
    public_key: PublicKey,
    signature: [u8; 64],
}

/// An anchor whose digest matches its contents and whose signature verifies with `key`.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedAnchor<'a> {
    anchor: &'a Anchor,
    key: PublicKey,
    trusted: bool,
}

/// Why an anchor file cannot be read (it is not one), or why it cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("not an anchor file: {0}")]
    NotAnAnchor(String),
    #[error("unknown anchor format {found:?} (this build reads {FORMAT:?})")]
    UnknownFormat { found: String },
    #[error("malformed anchor: {0}")]
    Malformed(String),
    #[error("its public key: {0}")]
    Key(KeyError),
    #[error(
        "the digest does not match the listed documents and hashes (the anchor file was edited)"
    )]
    DigestMismatch,
    #[error("the signature does not verify with key {key} (the anchor file was edited or forged)")]
    BadSignature { key: PublicKey },
    #[error(
        "the anchor was signed by key {found}, not by the trusted key {trusted} (forged, or signed with another key)"
    )]
    UntrustedKey {
        trusted: PublicKey,
        found: PublicKey,
    },
}

/// What [`VerifiedAnchor::check`] found, one entry per document (sorted by id): those of
/// the store and those of the anchor that the store no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub documents: Vec<DocReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocReport {
    pub doc: String,
    pub status: DocStatus,
}

/// One document against the anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocStatus {
    #[error("{anchored} anchored records unchanged, {since} recorded since, chain verifies")]
    Intact { anchored: u64, since: u64 },
    #[error("not covered by the anchor (added after it): {records} records, chain verifies")]
    NotCovered { records: u64 },
    #[error("the document is missing: the anchor covers {anchored} of its records")]
    Removed { anchored: u64 },
    #[error("{0}")]
    Differs(Difference),
}

/// The first record of a document that differs from the anchor or breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index}{}: {problem}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct Difference {
    /// Position in the stream (which is the `seq` the record should have).
    pub index: u64,
    /// The `seq` the record found there claims; `None` when it is missing.
    pub seq: Option<u64>,
    pub problem: DiffProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffProblem {
    /// Its content is not the anchored record's. `chain` is what the chain alone shows
    /// there; `None` when the chain was rehashed to match.
    #[error("{}", not_anchored(chain))]
    NotAnchored { chain: Option<ChainProblem> },
    /// The stream ends before the anchored length.
    #[error(
        "missing: the anchor covers {anchored} records, the stream has {found} (records were removed from the end)"
    )]
    Missing { anchored: u64, found: u64 },
    /// The content matches the anchor (or the record is newer than it), but the chain breaks.
    #[error("{0}")]
    Chain(ChainProblem),
}

impl PublicKey {
    /// Reads 64 hexadecimal digits (surrounding whitespace is ignored).
    pub fn parse_hex(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = key_bytes(text)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPublicKey)?;
        Ok(PublicKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        audit::hex(&self.0)
    }
}

impl SecretKey {
    /// The key whose seed is these 32 bytes (from OS randomness, in the CLI).
    pub fn from_bytes(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// Reads 64 hexadecimal digits (surrounding whitespace is ignored).
    pub fn parse_hex(text: &str) -> Result<SecretKey, KeyError> {
        Ok(SecretKey::from_bytes(&key_bytes(text)?))
    }

    /// The seed as 64 hexadecimal digits, the key file's content.
    pub fn to_hex(&self) -> String {
        audit::hex(self.0.as_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
}

impl AnchoredDoc {
    /// A document's stream as it will be anchored. The chain must verify first: signing a
    /// damaged chain would vouch for the damage.
    pub fn of(doc: &str, records: &[Record]) -> Result<AnchoredDoc, audit::ChainError> {
        audit::verify(records)?;
        if let Some(r) = records.iter().find(|r| r.doc != doc) {
            return Err(audit::ChainError {
                index: usize::try_from(r.seq).unwrap_or(usize::MAX),
                seq: r.seq,
                problem: ChainProblem::WrongDocument {
                    expected: doc.to_owned(),
                    found: r.doc.clone(),
                },
            });
        }
        Ok(AnchoredDoc {
            doc: doc.to_owned(),
            records: records.len() as u64,
            head: records
                .last()
                .map_or_else(|| GENESIS.to_owned(), |r| r.hash.clone()),
            hashes: records.iter().map(|r| r.hash.clone()).collect(),
        })
    }
}

impl Anchor {
    /// Signs the documents' state at `at`. Documents are sorted by id; an id given twice is
    /// refused, as [`Anchor::parse`] would refuse it.
    pub fn sign(
        key: &SecretKey,
        at: Timestamp,
        mut documents: Vec<AnchoredDoc>,
    ) -> Result<Anchor, AnchorError> {
        documents.sort_by(|a, b| a.doc.cmp(&b.doc));
        check_documents(&documents)?;
        let digest = digest(at, &documents);
        let signature = key.0.sign(&signed_message(&digest)).to_bytes();
        Ok(Anchor {
            at,
            documents,
            digest: audit::hex(&digest),
            public_key: key.public_key(),
            signature,
        })
    }

    /// Reads an anchor file. Checks its shape (format, sorted unique documents, hashes that
    /// are SHA-256 hex, counts and heads that agree with the hashes, key and signature
    /// lengths), not its digest or signature: that is [`Anchor::verify`].
    pub fn parse(text: &str) -> Result<Anchor, AnchorError> {
        let wire: Wire = serde_json::from_str(text)
            .map_err(|e| AnchorError::NotAnAnchor(format!("{e} (expected {FORMAT} JSON)")))?;
        Anchor::from_wire(wire)
    }

    /// The anchor as a JSON object on one line (the file format, and what an export embeds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }

    /// Checks the digest against the listed documents, then the signature: with `trusted`
    /// when given (the key the auditor trusts), otherwise with the key the file names.
    pub fn verify(&self, trusted: Option<&PublicKey>) -> Result<VerifiedAnchor<'_>, AnchorError> {
        let digest_bytes = digest(self.at, &self.documents);
        if audit::hex(&digest_bytes) != self.digest {
            return Err(AnchorError::DigestMismatch);
        }
        let key = trusted.copied().unwrap_or(self.public_key);
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        // Strict verification refuses the malleable and small-order forms that plain
        // Ed25519 verification lets through.
        // The bytes were checked when the key was read, so this conversion succeeds.
        let verifies = VerifyingKey::from_bytes(&key.0)
            .and_then(|k| k.verify_strict(&signed_message(&digest_bytes), &signature))
            .is_ok();
        if !verifies {
            return Err(match trusted {
                Some(t) if *t != self.public_key => AnchorError::UntrustedKey {
                    trusted: *t,
                    found: self.public_key,
                },
                _ => AnchorError::BadSignature { key },
            });
        }
        Ok(VerifiedAnchor {
            anchor: self,
            key,
            trusted: trusted.is_some(),
        })
    }

    /// When the anchor was signed.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// The anchored documents, sorted by id.
    pub fn documents(&self) -> &[AnchoredDoc] {
        &self.documents
    }

    /// The number of anchored records.
    pub fn records(&self) -> u64 {
        self.documents.iter().map(|d| d.records).sum()
    }

    /// The key the file says signed it (not necessarily one to trust).
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The signed digest, as hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether these documents (id, record count, head) are exactly what was anchored: for
    /// `signoff audit anchor --if-changed`.
    pub fn same_heads<'d>(&self, heads: impl IntoIterator<Item = (&'d str, u64, &'d str)>) -> bool {
        let mut now: Vec<(&str, u64, &str)> = heads.into_iter().collect();
        now.sort_unstable();
        now.len() == self.documents.len()
            && now
                .iter()
                .zip(&self.documents)
                .all(|(n, d)| n.0 == d.doc && n.1 == d.records && n.2 == d.head)
    }

    /// The anchor as a JSON value, for embedding in an export.
    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire()).unwrap_or_default()
    }

    /// [`Anchor::parse`] of an embedded anchor.
    pub(crate) fn from_value(value: serde_json::Value) -> Result<Anchor, AnchorError> {
        let wire: Wire = serde_json::from_value(value)
            .map_err(|e| AnchorError::NotAnAnchor(format!("{e} (expected {FORMAT} JSON)")))?;
        Anchor::from_wire(wire)
    }

    fn from_wire(wire: Wire) -> Result<Anchor, AnchorError> {
        if wire.format != FORMAT {
            return Err(AnchorError::UnknownFormat { found: wire.format });
        }
        check_documents(&wire.documents)?;
        if !is_sha256_hex(&wire.digest) {
            return Err(AnchorError::Malformed(
                "the digest is not 64 lowercase hexadecimal digits".into(),
            ));
        }
        let public_key = PublicKey::parse_hex(&wire.public_key).map_err(AnchorError::Key)?;
        let sig = hex_bytes(&wire.signature)
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| {
                AnchorError::Malformed("the signature is not 128 hexadecimal digits".into())
            })?;
        Ok(Anchor {
            at: wire.at,
            documents: wire.documents,
            digest: wire.digest,
            public_key,
            signature: sig,
        })
    }

    fn to_wire(&self) -> Wire {
        Wire {
            format: FORMAT.to_owned(),
            at: self.at,
            public_key: self.public_key.to_hex(),
            digest: self.digest.clone(),
            signature: audit::hex(&self.signature),
            documents: self.documents.clone(),
        }
    }
}

impl VerifiedAnchor<'_> {
    /// Compares streams with the anchor. Each `(id, records)` is one document of the store
    /// (or of an export); anchored documents not given are reported as removed. In one pass
    /// per document, each record's hash is recomputed from its content and compared with
    /// the anchored hash at its position, and the chain is checked as [`audit::verify`]
    /// does (records after the anchor are protected by the chain only).
    pub fn check<'r>(&self, streams: impl IntoIterator<Item = (&'r str, &'r [Record])>) -> Report {
        let anchored: BTreeMap<&str, &AnchoredDoc> = self
            .anchor
            .documents
            .iter()
            .map(|d| (d.doc.as_str(), d))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut documents = Vec::new();
        for (doc, records) in streams {
            seen.insert(doc);
            let status = check_stream(anchored.get(doc).copied(), doc, records);
            documents.push(DocReport {
                doc: doc.to_owned(),
                status,
            });
        }
        for d in &self.anchor.documents {
            if !seen.contains(d.doc.as_str()) {
                documents.push(DocReport {
                    doc: d.doc.clone(),
                    status: DocStatus::Removed {
                        anchored: d.records,
                    },
                });
            }
        }
        documents.sort_by(|a, b| a.doc.cmp(&b.doc));
        Report { documents }
    }

    /// The key that verified the signature.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// Whether that key was the auditor's (`--public-key`), not the one inside the file.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    pub fn anchor(&self) -> &Anchor {
        self.anchor
    }
}

impl Report {
    /// Whether every anchored record is unchanged and every chain verifies.
    pub fn is_ok(&self) -> bool {
        self.documents.iter().all(|d| {
            matches!(
                d.status,
                DocStatus::Intact { .. } | DocStatus::NotCovered { .. }
            )
        })
    }

    /// The first document (in id order) that differs or is missing.
    pub fn first_failure(&self) -> Option<&DocReport> {
        self.documents
            .iter()
            .find(|d| matches!(d.status, DocStatus::Removed { .. } | DocStatus::Differs(_)))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

impl fmt::Display for DocReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doc, self.status)
    }
}

/// The file's JSON. Field order puts the short fields first, for people reading the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    at: Timestamp,
    public_key: String,
    digest: String,
    signature: String,
    documents: Vec<AnchoredDoc>,
}

fn not_anchored(chain: &Option<ChainProblem>) -> String {
    match chain {
        None => "it is not the anchored record, and the chain was rehashed to hide it \
                 (only the anchor shows this)"
            .to_owned(),
        Some(p) => format!("it is not the anchored record: {p}"),
    }
}

/// One document against its anchored hashes (none when it is not covered).
fn check_stream(anchored: Option<&AnchoredDoc>, doc: &str, records: &[Record]) -> DocStatus {
    let hashes: &[String] = anchored.map_or(&[], |a| &a.hashes);
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let actual = audit::record_hash(r);
        // The same checks, in the same order, as `audit::verify`.
        let chain = if r.doc != doc {
            Some(ChainProblem::WrongDocument {
                expected: doc.to_owned(),
                found: r.doc.clone(),
            })
        } else if actual != r.hash {
            Some(ChainProblem::Altered)
        } else if r.seq != i as u64 {
            Some(ChainProblem::OutOfSequence { expected: i as u64 })
        } else if r.prev_hash != prev {
            Some(ChainProblem::BrokenLink)
        } else {
            None
        };
        let problem = match (hashes.get(i), chain) {
            (Some(h), chain) if *h != actual => Some(DiffProblem::NotAnchored { chain }),
            (_, Some(p)) => Some(DiffProblem::Chain(p)),
            _ => None,
        };
        if let Some(problem) = problem {
            return DocStatus::Differs(Difference {
                index: i as u64,
                seq: Some(r.seq),
                problem,
            });
        }
        prev = &r.hash;
    }
    let (len, anchored_len) = (records.len() as u64, hashes.len() as u64);
    match anchored {
        None => DocStatus::NotCovered { records: len },
        Some(_) if len < anchored_len => DocStatus::Differs(Difference {
            index: len,
            seq: None,
            problem: DiffProblem::Missing {
                anchored: anchored_len,
                found: len,
            },
        }),
        Some(_) => DocStatus::Intact {
            anchored: anchored_len,
            since: len - anchored_len,
        },
    }
}

/// SHA-256 over the canonical text described in the module docs, streamed into the hash.
fn digest(at: Timestamp, documents: &[AnchoredDoc]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(format!("\nat {}\n", at.0).as_bytes());
    for d in documents {
        // A JSON string cannot contain a raw newline or an unescaped quote, so the line
        // cannot be confused with another document's.
        let id = serde_json::to_string(&d.doc).unwrap_or_default();
        h.update(format!("doc {id} {} {}\n", d.records, d.head).as_bytes());
        for x in &d.hashes {
            h.update(x.as_bytes());
            h.update(b"\n");
        }
    }
    h.finalize().into()
}

fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = format!("{FORMAT} digest\n").into_bytes();
    m.extend_from_slice(digest);
    m
}

/// The shape checks shared by [`Anchor::sign`] and [`Anchor::parse`].
fn check_documents(documents: &[AnchoredDoc]) -> Result<(), AnchorError> {
    let bad = |doc: &str, what: String| AnchorError::Malformed(format!("document {doc:?}: {what}"));
    for pair in documents.windows(2) {
        if pair[0].doc >= pair[1].doc {
            return Err(bad(
                &pair[1].doc,
                "documents must be sorted by id, each listed once".into(),
            ));
        }
    }
    for d in documents {
        if d.records != d.hashes.len() as u64 {
            return Err(bad(
                &d.doc,
                format!(
                    "it says {} records but lists {} hashes",
                    d.records,
                    d.hashes.len()
                ),
            ));
        }
        if let Some((i, _)) = d.hashes.iter().enumerate().find(|(_, h)| !is_sha256_hex(h)) {
            return Err(bad(
                &d.doc,
                format!("hash {i} is not 64 lowercase hexadecimal digits"),
            ));
        }
        let last = d.hashes.last().map_or(GENESIS, String::as_str);
        if d.head != last {
            return Err(bad(&d.doc, "its head is not its last hash".into()));
        }
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn key_bytes(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(KeyError::WrongLength {
            found: text.chars().count(),
        });
    }
    let bytes = hex_bytes(text).ok_or(KeyError::NotHex)?;
    <[u8; 32]>::try_from(bytes).map_err(|_| KeyError::NotHex)
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    // `from_str_radix` would take a sign ("+f"): only hexadecimal digits are let through.
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
