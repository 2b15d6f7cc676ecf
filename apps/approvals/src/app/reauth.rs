//! Re-authentication for e-signatures: TOTP enrolment, reset and status (the resolvers
//! `totp-enrol`, `totp-reset`, `totp-status`), and the verifier and its bookkeeping around
//! the engine's decisions.
//!
//! Per account: the secret is the platform secret `app:totp-secret:<account>` (JSON: the
//! base32 text, or `null` after a reset, since the platform cannot delete a secret), and the
//! state, not secret, is `app:totp:<account>` ([`TotpState`]: enrolment time, last accepted
//! time step, failed attempts, lockout, security log).
//!
//! Who may reset: the user themselves with a current code (rotating a secret they still
//! hold), or a space administrator of any space for someone else (a lost device). An
//! administrator resetting their own enrolment needs a code like anyone else, so a stolen
//! session alone cannot swap a signer's secret. Every reset is in the user's security log,
//! with who did it.

use serde_json::{Value, json};
use signoff_core::Timestamp;
use signoff_core::evidence::{Claim, EvidenceVerifier, Verdict};
use signoff_storage::hosted::Kvs;

use super::{App, SpaceRecord, check_id};
use crate::payload::{Reauth, TotpAccount, TotpEnrol};
use crate::ports::{AppError, Level, Platform};
use crate::store::AppStore;
use crate::totp::{
    self, LOCKOUT_SECS, MAX_FAILURES, Outcome, SECRET_BYTES, SecurityEvent, SecurityEventKind,
    TotpState, TotpVerifier,
};

impl<S, K, P> App<'_, S, K, P>
where
    S: AppStore,
    K: Kvs,
    P: Platform,
{
    /// `totp-enrol`: a new secret for the caller, answered once (with the `otpauth://` URI
    /// for a QR code); refused while an enrolment exists.
    pub(super) fn totp_enrol(&self, p: TotpEnrol) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        check_id("accountId", &by)?;
        let now = self.now();
        let mut state = self.totp_state(&by)?;
        if let Some(at) = state.enrolled_at {
            return Err(AppError::new(
                "TOTP_ENROLLED",
                format!("{by} has been enrolled since {at}; reset with totp-reset first"),
            ));
        }
        let mut bytes = [0u8; SECRET_BYTES];
        self.platform.random_bytes(&mut bytes)?;
        let secret = totp::encode_secret(bytes);
        self.platform
            .set_secret(&secret_key(&by), &json!(secret).to_string())?;
        state.enrolled_at = Some(now);
        state.last_step = None;
        state.failures = 0;
        state.locked_until = None;
        state.record(SecurityEvent {
            at: now,
            event: SecurityEventKind::Enrolled,
            by: None,
            until: None,
        });
        self.put(&state_key(&by), &state)?;
        self.track("signoff.totp", json!({ "event": "enrolled" }));
        Ok(json!({
            "accountId": by,
            "uri": totp::otpauth_uri(&by, &secret),
            "secret": secret,
            "algorithm": "SHA1",
            "digits": totp::DIGITS,
            "period": totp::STEP_SECS,
            "enrolledAt": now,
        }))
    }

    /// `totp-reset`: ends an enrolment (the secret is overwritten) and any lockout; the user
    /// enrols again. See the module docs for who may.
    pub(super) fn totp_reset(&self, p: TotpAccount) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        let account = p.account.unwrap_or_else(|| by.clone());
        check_id("account", &account)?;
        let now = self.now();
        // Permission first, so that nobody learns whether someone else is enrolled.
        if account != by {
            if p.code.is_some() {
                return Err(AppError::new(
                    "BAD_PAYLOAD",
                    "payload.code: an administrator's reset of someone else takes no code",
                ));
            }
            self.space_admin(&by, "reset another user's TOTP enrolment")?;
        }
        let state = self.totp_state(&account)?;
        if state.enrolled_at.is_none() {
            return Err(AppError::new(
                "TOTP_NOT_ENROLLED",
                format!("{account} has no TOTP enrolment to reset"),
            ));
        }
        if account == by {
            let Some(code) = &p.code else {
                return Err(AppError::new(
                    "BAD_PAYLOAD",
                    "payload.code: missing (your current code; if you lost your authenticator, ask a space administrator to reset)",
                ));
            };
            let reauth = Reauth {
                method: totp::METHOD.into(),
                code: Some(code.clone()),
                reference: None,
            };
            let v = self
                .totp_verifier(&account, Some(&reauth))?
                .expect("a verifier for totp");
            let verdict = v.verify(&Claim {
                doc: "",
                version: 0,
                signer: &account,
                method: totp::METHOD,
                reference: None,
                credential: Some(code.as_str()),
                at: now,
            });
            self.settle_totp(&v)?;
            match verdict {
                Verdict::Verified { .. } => {}
                Verdict::Rejected { why } => {
                    return Err(AppError::new(
                        "EVIDENCE_REJECTED",
                        format!("totp-reset refused: {why}"),
                    ));
                }
                Verdict::Unverifiable { why } => {
                    return Err(AppError::new(
                        "EVIDENCE_UNVERIFIABLE",
                        format!("totp-reset refused: {why}"),
                    ));
                }
            }
        }
        // Re-read: the code check above may have updated the state.
        let mut state = self.totp_state(&account)?;
        self.platform.set_secret(&secret_key(&account), "null")?;
        state.enrolled_at = None;
        state.last_step = None;
        state.failures = 0;
        state.locked_until = None;
        state.record(SecurityEvent {
            at: now,
            event: SecurityEventKind::Reset,
            by: (by != account).then(|| by.clone()),
            until: None,
        });
        self.put(&state_key(&account), &state)?;
        self.track("signoff.totp", json!({ "event": "reset" }));
        Ok(self.status_of(&account, &state, now))
    }

    /// `totp-status`: enrolled or not, a lockout in force, failed attempts, the security
    /// log; never the secret. Someone else's: space administrators only.
    pub(super) fn totp_status(&self, p: TotpAccount) -> Result<Value, AppError> {
        let by = self.actor(p.account_id)?;
        if p.code.is_some() {
            return Err(AppError::new(
                "BAD_PAYLOAD",
                "payload.code: totp-status takes no code",
            ));
        }
        let account = p.account.unwrap_or_else(|| by.clone());
        check_id("account", &account)?;
        if account != by {
            self.space_admin(&by, "read another user's TOTP status")?;
        }
        let state = self.totp_state(&account)?;
        Ok(self.status_of(&account, &state, self.now()))
    }

    /// The verifier for a signer's evidence, read from storage, when the evidence is `totp`
    /// (other methods need none: without a verifier, they are unverifiable).
    pub(super) fn totp_verifier(
        &self,
        by: &str,
        reauth: Option<&Reauth>,
    ) -> Result<Option<TotpVerifier>, AppError> {
        if reauth.is_none_or(|r| r.method != totp::METHOD) {
            return Ok(None);
        }
        check_id("accountId", by)?;
        let state = self.totp_state(by)?;
        let secret = match state.enrolled_at {
            Some(_) => self.secret(by)?,
            None => None,
        };
        TotpVerifier::new(by, secret.as_deref(), &state)
            .map(Some)
            .map_err(|e| AppError::new("CORRUPT_RECORD", e.to_string()))
    }

    /// Stores what the verifier's check found: an accepted step is used up and clears the
    /// failed attempts; a wrong or reused code is counted, and the last one allowed starts a
    /// lockout, logged for the user and counted (without ids) in analytics.
    pub(super) fn settle_totp(&self, v: &TotpVerifier) -> Result<(), AppError> {
        let Some(outcome) = v.take_outcome() else {
            return Ok(());
        };
        let account = v.account();
        let now = self.now();
        // Read again rather than trust the verifier's copy: a narrower window for another
        // call's update to be lost.
        let mut state = self.totp_state(account)?;
        let kind = match outcome {
            Outcome::NotChecked => return Ok(()),
            Outcome::Accepted { step } => {
                state.last_step = Some(state.last_step.map_or(step, |s| s.max(step)));
                state.failures = 0;
                return self.put(&state_key(account), &state);
            }
            Outcome::Wrong => SecurityEventKind::WrongCode,
            Outcome::Reused => SecurityEventKind::ReusedCode,
        };
        state.failures += 1;
        state.record(SecurityEvent {
            at: now,
            event: kind,
            by: None,
            until: None,
        });
        let locked = state.failures >= MAX_FAILURES;
        if locked {
            let until = Timestamp(now.0 + LOCKOUT_SECS);
            state.failures = 0;
            state.locked_until = Some(until);
            state.record(SecurityEvent {
                at: now,
                event: SecurityEventKind::Locked,
                by: None,
                until: Some(until),
            });
        }
        self.put(&state_key(account), &state)?;
        if locked {
            self.log(
                Level::Warn,
                &format!("totp lockout after {MAX_FAILURES} failed codes"),
            );
            self.track("signoff.totp", json!({ "event": "lockout" }));
        }
        Ok(())
    }

    fn status_of(&self, account: &str, state: &TotpState, now: Timestamp) -> Value {
        json!({
            "accountId": account,
            "enrolled": state.enrolled_at.is_some(),
            "enrolledAt": state.enrolled_at,
            "lockedUntil": state.locked_at(now),
            "failures": state.failures,
            "maxFailures": MAX_FAILURES,
            "lockoutMinutes": LOCKOUT_SECS / 60,
            "log": state.log,
        })
    }

    fn totp_state(&self, account: &str) -> Result<TotpState, AppError> {
        Ok(self.get(&state_key(account))?.unwrap_or_default())
    }

    fn secret(&self, account: &str) -> Result<Option<String>, AppError> {
        let Some(text) = self.platform.get_secret(&secret_key(account))? else {
            return Ok(None);
        };
        // Not `{e}` of the parse error: it could quote the text.
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::String(s)) => Ok(Some(s)),
            Ok(Value::Null) => Ok(None),
            _ => Err(AppError::new(
                "CORRUPT_RECORD",
                "a stored TOTP secret is not a JSON string",
            )),
        }
    }

    /// Refuses unless `by` administers some space (the platform has no permission API: a
    /// space administrator is whoever assigned a space's workflow or was named in its
    /// `spaceAdmins`).
    fn space_admin(&self, by: &str, what: &str) -> Result<(), AppError> {
        for (_, value) in self.scan("app:space:")? {
            let admins = serde_json::from_str::<SpaceRecord>(&value)
                .map(|s| s.space_admins)
                .unwrap_or_default();
            if admins.iter().any(|a| a == by) {
                return Ok(());
            }
        }
        Err(AppError::new(
            "NOT_PERMITTED",
            format!("{by} is not a space administrator: only a space administrator may {what}"),
        ))
    }
}

fn state_key(account: &str) -> String {
    format!("app:totp:{account}")
}

fn secret_key(account: &str) -> String {
    format!("app:totp-secret:{account}")
}
