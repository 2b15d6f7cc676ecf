//! Time-based one-time passwords (RFC 6238) as re-authentication evidence for e-signatures:
//! the verifier the app hands to `signoff-core`, and the per-user state it is built from.
//!
//! A signer enrols once (`totp-enrol`): the app makes a random 160-bit secret, keeps it in the
//! platform's secret storage (`kvs.set-secret`, never returned by queries) and shows it once.
//! Signing then takes the current 6-digit code of the signer's authenticator app. The engine
//! does no IO, so the app reads the secret and the signer's [`TotpState`] (`app:totp:<id>`:
//! the last accepted time step, failed attempts, a lockout, a security log) *before*
//! `DocState::decide_with` runs, and the [`TotpVerifier`] answers from memory; what the
//! check found ([`Outcome`]) is written back afterwards by the app.
//!
//! Parameters: SHA-1, 6 digits, 30-second steps, the current step and one on either side
//! (RFC 6238 §5.2's recommended network delay). A code is compared in constant time
//! (`totp-rs`'s `Token`), and a time step is accepted at most once per user: a code of a
//! step at or before the last accepted one is refused as reused, so an observed code cannot
//! be replayed. [`MAX_FAILURES`] wrong or reused codes in a row lock the user out for
//! [`LOCKOUT_SECS`]; while locked, evidence is unverifiable and nothing is counted.
//!
//! Nothing here prints a secret or a code: [`TotpVerifier`]'s `Debug` leaves the secret
//! out, and every message says what was wrong, never what was given.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize};
use signoff_core::Timestamp;
use signoff_core::evidence::{Claim, EvidenceVerifier, Verdict};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The re-authentication method this verifier checks.
pub const METHOD: &str = "totp";
/// How the verifier names itself in the audit trail.
pub const VERIFIER: &str = "totp (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step)";
pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
/// The secret's length: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
/// Wrong or reused codes in a row before a lockout.
pub const MAX_FAILURES: u32 = 5;
/// How long a lockout lasts, on the platform's (virtual) clock.
pub const LOCKOUT_SECS: i64 = 15 * 60;
/// The issuer an authenticator app shows beside the account.
pub const ISSUER: &str = "signoff";
/// How many security events a user's log keeps (the oldest go first).
const KEEP_LOG: usize = 50;

/// A user's TOTP state, not secret: `app:totp:<account id>`. The secret itself is the
/// platform secret `app:totp-secret:<account id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TotpState {
    /// When the current secret was made; `None` before enrolment and after a reset.
    #[serde(default)]
    pub enrolled_at: Option<Timestamp>,
    /// The time step of the last accepted code (steps since the epoch): no code of this
    /// step or an earlier one is accepted again.
    #[serde(default)]
    pub last_step: Option<u64>,
    /// Wrong or reused codes since the last accepted one or the last lockout.
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub locked_until: Option<Timestamp>,
    /// The user's security log, newest last.
    #[serde(default)]
    pub log: Vec<SecurityEvent>,
}

/// One entry of a user's security log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEvent {
    pub at: Timestamp,
    pub event: SecurityEventKind,
    /// Who did it, when not the user (an administrator's reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The end of a lockout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    Enrolled,
    Reset,
    WrongCode,
    ReusedCode,
    Locked,
}

/// What a check found, for the bookkeeping the app does after the engine decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The code of time step `step` was accepted: that step is used up.
    Accepted { step: u64 },
    /// A failed attempt: the code matches no step of the window.
    Wrong,
    /// A failed attempt: the code is of a step already used (or older).
    Reused,
    /// Nothing was checked (another method, no enrolment, a lockout): no attempt counts.
    NotChecked,
}

/// Verifies `totp` evidence of one signer against their secret and state, as read before
/// the engine runs. It remembers the [`Outcome`] of its last check.
pub struct TotpVerifier {
    account: String,
    /// `None` when the account is not enrolled.
    totp: Option<Totp>,
    last_step: Option<u64>,
    failures: u32,
    locked_until: Option<Timestamp>,
    outcome: Cell<Option<Outcome>>,
}

/// A stored secret that is not base32 of the right length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSecret;

impl TotpVerifier {
    /// `secret` is the account's base32 secret, when enrolled.
    pub fn new(
        account: &str,
        secret: Option<&str>,
        state: &TotpState,
    ) -> Result<TotpVerifier, BadSecret> {
        Ok(TotpVerifier {
            account: account.to_owned(),
            totp: secret.map(totp_of).transpose()?,
            last_step: state.last_step,
            failures: state.failures,
            locked_until: state.locked_until,
            outcome: Cell::new(None),
        })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// What the last check found, once: a second call answers `None`, so that a command
    /// decided again after a storage conflict is counted once.
    pub fn take_outcome(&self) -> Option<Outcome> {
        self.outcome.take()
    }

    fn judge(&self, claim: &Claim<'_>) -> (Verdict, Outcome) {
        let unverifiable = |why: String| (Verdict::Unverifiable { why }, Outcome::NotChecked);
        if claim.signer != self.account {
            return unverifiable(format!("the code was checked for {}", self.account));
        }
        if claim.method != METHOD {
            return unverifiable(format!(
                "this app verifies only {METHOD} codes (enrol with the totp-enrol resolver)"
            ));
        }
        if let Some(until) = self.locked_until.filter(|u| u.0 > claim.at.0) {
            return unverifiable(format!(
                "{} is locked out after {MAX_FAILURES} failed codes until {until}",
                claim.signer
            ));
        }
        let Some(totp) = &self.totp else {
            return unverifiable(format!(
                "{} has no {METHOD} enrolment: enrol with the totp-enrol resolver",
                claim.signer
            ));
        };
        let Some(code) = claim.credential else {
            return (
                Verdict::Rejected {
                    why: "no code was given".into(),
                },
                Outcome::NotChecked,
            );
        };
        let at = u64::try_from(claim.at.0).unwrap_or(0);
        let outcome = check(totp, code, at, self.last_step);
        let failed = |what: &str| {
            let n = self.failures + 1;
            let why = if n >= MAX_FAILURES {
                format!(
                    "{what}; {MAX_FAILURES} failed codes in a row: locked out until {}",
                    Timestamp(claim.at.0 + LOCKOUT_SECS)
                )
            } else {
                format!("{what} ({n} of {MAX_FAILURES} failed codes before a lockout)")
            };
            Verdict::Rejected { why }
        };
        let verdict = match outcome {
            Outcome::Accepted { .. } => Verdict::Verified {
                verifier: VERIFIER.into(),
            },
            Outcome::Reused => failed("the code was already used: wait for the next one"),
            Outcome::Wrong | Outcome::NotChecked => failed("the code is wrong"),
        };
        (verdict, outcome)
    }
}

impl EvidenceVerifier for TotpVerifier {
    fn verify(&self, claim: &Claim<'_>) -> Verdict {
        let (verdict, outcome) = self.judge(claim);
        self.outcome.set(Some(outcome));
        verdict
    }
}

impl fmt::Debug for TotpVerifier {
    // The secret is left out on purpose: the verifier may end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpVerifier")
            .field("account", &self.account)
            .field("enrolled", &self.totp.is_some())
            .field("last_step", &self.last_step)
            .field("failures", &self.failures)
            .field("locked_until", &self.locked_until)
            .finish()
    }
}

impl TotpState {
    /// Adds an event to the log, dropping the oldest beyond [`KEEP_LOG`].
    pub fn record(&mut self, event: SecurityEvent) {
        self.log.push(event);
        if self.log.len() > KEEP_LOG {
            let extra = self.log.len() - KEEP_LOG;
            self.log.drain(..extra);
        }
    }

    /// The end of the lockout in force at `now`, if any.
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|u| u.0 > now.0)
    }
}

/// Which time step within one step of `at` the code belongs to, constant-time per step, and
/// whether that step is still unused (after `last_step`).
pub fn check(totp: &Totp, code: &str, at: u64, last_step: Option<u64>) -> Outcome {
    let origin = at / STEP_SECS;
    let (mut fresh, mut used) = (None, false);
    // Every step of the window is computed, matched or not, so the time taken does not
    // depend on which step (if any) matched.
    for step in origin.saturating_sub(1)..=origin + 1 {
        if totp.check(code, step * STEP_SECS).is_some() {
            if last_step.is_some_and(|last| step <= last) {
                used = true;
            } else if fresh.is_none() {
                fresh = Some(step);
            }
        }
    }
    match (fresh, used) {
        (Some(step), _) => Outcome::Accepted { step },
        (None, true) => Outcome::Reused,
        (None, false) => Outcome::Wrong,
    }
}

/// The code of `secret` (base32) at `at` (seconds since the epoch).
pub fn code_at(secret: &str, at: u64) -> Result<String, BadSecret> {
    Ok(totp_of(secret)?.generate(at).to_string())
}

/// A new secret from 160 random bits, as base32 (RFC 4648, no padding).
pub fn encode_secret(bytes: [u8; SECRET_BYTES]) -> String {
    Secret::from(bytes).to_base32()
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(account: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={secret}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(account)
    )
}

/// The verifier's settings over a base32 secret; the window is walked by [`check`], so
/// the skew here is 0.
fn totp_of(secret: &str) -> Result<Totp, BadSecret> {
    let secret = Secret::try_from_base32(secret).map_err(|_| BadSecret)?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(0)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .build()
        .map_err(|_| BadSecret)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (account ids may hold
/// `:`, which separates issuer and account in an otpauth label).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for BadSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stored TOTP secret is not a base32 secret of at least 128 bits")
    }
}

impl std::error::Error for BadSecret {}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_test_vectors() {
        // Appendix B's 8-digit SHA-1 values; a 6-digit code is the last six digits (the
        // truncation is modulo 10^digits).
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t).unwrap(), eight[2..], "T = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_only_once() {
        let totp = totp_of(RFC_SECRET).unwrap();
        let at = 1_234_567_890;
        let step = at / STEP_SECS;
        let code = |s: u64| code_at(RFC_SECRET, s * STEP_SECS).unwrap();
        for s in [step - 1, step, step + 1] {
            assert_eq!(
                check(&totp, &code(s), at, None),
                Outcome::Accepted { step: s }
            );
        }
        assert_eq!(check(&totp, &code(step - 2), at, None), Outcome::Wrong);
        assert_eq!(check(&totp, &code(step + 2), at, None), Outcome::Wrong);
        assert_eq!(check(&totp, &code(step), at, Some(step)), Outcome::Reused);
        assert_eq!(
            check(&totp, &code(step - 1), at, Some(step)),
            Outcome::Reused
        );
        assert_eq!(
            check(&totp, &code(step + 1), at, Some(step)),
            Outcome::Accepted { step: step + 1 }
        );
        for bad in ["", "12345", "1234567", "+12345", "abcdef", " 28708"] {
            assert_eq!(check(&totp, bad, at, None), Outcome::Wrong, "{bad:?}");
        }
    }

    #[test]
    fn the_verifier_refuses_what_it_cannot_check_and_never_shows_the_secret() {
        let state = TotpState::default();
        let v = TotpVerifier::new("quinn", Some(RFC_SECRET), &state).unwrap();
        assert!(!format!("{v:?}").contains(RFC_SECRET));
        let at = Timestamp(1_234_567_890);
        let good = code_at(RFC_SECRET, 1_234_567_890).unwrap();
        let claim = |method, credential| Claim {
            doc: "d",
            version: 1,
            signer: "quinn",
            method,
            reference: None,
            credential,
            at,
        };
        assert!(matches!(
            v.verify(&claim("totp", Some(&good))),
            Verdict::Verified { .. }
        ));
        assert_eq!(
            v.take_outcome(),
            Some(Outcome::Accepted {
                step: 1_234_567_890 / 30
            })
        );
        assert_eq!(v.take_outcome(), None);
        let Verdict::Rejected { why } = v.verify(&claim("totp", Some("000000"))) else {
            panic!("a wrong code is rejected")
        };
        assert!(why.contains("1 of 5"), "{why}");
        assert!(matches!(
            v.verify(&claim("sso", Some(&good))),
            Verdict::Unverifiable { .. }
        ));
        let unenrolled = TotpVerifier::new("quinn", None, &state).unwrap();
        assert!(matches!(
            unenrolled.verify(&claim("totp", Some(&good))),
            Verdict::Unverifiable { .. }
        ));
        let locked = TotpState {
            locked_until: Some(Timestamp(at.0 + 1)),
            ..TotpState::default()
        };
        let v = TotpVerifier::new("quinn", Some(RFC_SECRET), &locked).unwrap();
        let Verdict::Unverifiable { why } = v.verify(&claim("totp", Some(&good))) else {
            panic!("a locked-out user's code is not checked")
        };
        assert!(why.contains("locked out"), "{why}");
        assert_eq!(v.take_outcome(), Some(Outcome::NotChecked));
    }

    #[test]
    fn uris_escape_the_account() {
        assert_eq!(
            otpauth_uri("557058:f5", "ABC"),
            "otpauth://totp/signoff:557058%3Af5?secret=ABC&issuer=signoff&algorithm=SHA1&digits=6&period=30"
        );
    }
}
