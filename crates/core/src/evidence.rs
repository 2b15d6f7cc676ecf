//! Re-authentication evidence for e-signatures, checked by a verifier that the caller supplies.
//!
//! A signature command may carry evidence that the signer authenticated again just now: a
//! method (`totp`, `webauthn`, ...), an optional reference (an identity provider's assertion
//! id) and an optional credential (a one-time code). The engine does no IO, so it cannot
//! look up a secret or ask an identity provider: it hands the claim to an
//! [`EvidenceVerifier`] given by the caller and acts on the [`Verdict`]. Evidence that is
//! not verified is refused (`evidence_rejected`, `evidence_unverifiable`); evidence that is
//! verified is recorded as its method, reference, the verifier's name and the time of the
//! check ([`crate::event::Verification`]), never the credential.
//!
//! [`NoVerifier`] is the default: it verifies nothing, so a caller that has no way to check
//! evidence cannot record a re-authenticated signature by accident.

use std::fmt;

use crate::time::Timestamp;

/// What a signer claims: checked by an [`EvidenceVerifier`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub doc: &'a str,
    pub version: u32,
    /// The person signing (the command's actor, never the principal of a delegation).
    pub signer: &'a str,
    pub method: &'a str,
    pub reference: Option<&'a str>,
    /// A one-time code or similar. Given to the verifier only; never recorded.
    pub credential: Option<&'a str>,
    /// The command's time.
    pub at: Timestamp,
}

/// A verifier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The evidence is genuine. `verifier` names who checked it and how, for the record
    /// (for example `totp (RFC 6238)`): no secret, no code.
    Verified { verifier: String },
    /// The evidence was checked and is wrong (a wrong or reused code): refused as
    /// `evidence_rejected`.
    Rejected { why: String },
    /// The evidence cannot be checked (an unknown method, no enrolment, a lockout): refused
    /// as `evidence_unverifiable`.
    Unverifiable { why: String },
}

/// Checks re-authentication evidence. Implementations do their IO (reading a secret, a
/// failed-attempt counter) before the engine runs and answer from memory.
pub trait EvidenceVerifier {
    fn verify(&self, claim: &Claim<'_>) -> Verdict;
}

/// Verifies nothing: every claim is unverifiable. The default of [`crate::Engine`] and of
/// [`crate::DocState::decide`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVerifier;

impl EvidenceVerifier for NoVerifier {
    fn verify(&self, claim: &Claim<'_>) -> Verdict {
        Verdict::Unverifiable {
            why: format!(
                "no verifier for re-authentication by {:?} is configured",
                claim.method
            ),
        }
    }
}

/// A verifier from a fixed table of (signer, method, credential): for tests and scenario
/// files, where the "secret" is part of the test. Checking is exact and in constant order;
/// it is not meant to protect real secrets.
#[derive(Debug, Clone, Default)]
pub struct TableVerifier {
    entries: Vec<(String, String, String)>,
}

impl TableVerifier {
    pub fn new() -> TableVerifier {
        TableVerifier::default()
    }

    /// Accepts `credential` from `signer` for `method`.
    pub fn accept(mut self, signer: &str, method: &str, credential: &str) -> TableVerifier {
        self.entries
            .push((signer.to_owned(), method.to_owned(), credential.to_owned()));
        self
    }
}

impl EvidenceVerifier for TableVerifier {
    fn verify(&self, claim: &Claim<'_>) -> Verdict {
        let known: Vec<&(String, String, String)> = self
            .entries
            .iter()
            .filter(|(s, m, _)| s == claim.signer && m == claim.method)
            .collect();
        if known.is_empty() {
            return Verdict::Unverifiable {
                why: format!(
                    "{} has no {:?} credential enrolled",
                    claim.signer, claim.method
                ),
            };
        }
        match claim.credential {
            Some(given) if known.iter().any(|(_, _, c)| c == given) => Verdict::Verified {
                verifier: format!("credential table ({})", claim.method),
            },
            Some(_) => Verdict::Rejected {
                why: "the credential does not match".into(),
            },
            None => Verdict::Rejected {
                why: "no credential was given".into(),
            },
        }
    }
}

impl fmt::Debug for Claim<'_> {
    // The credential is left out on purpose: a claim may end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("doc", &self.doc)
            .field("version", &self.version)
            .field("signer", &self.signer)
            .field("method", &self.method)
            .field("reference", &self.reference)
            .field("credential", &self.credential.map(|_| "[redacted]"))
            .field("at", &self.at)
            .finish()
    }
}
