//! The JSON the app accepts: resolver payloads and product events. Parsing errors name the
//! path of the field that is wrong (`BAD_PAYLOAD: payload.reauth.at: ...`).

use std::fmt;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use signoff_core::Timestamp;
use signoff_core::workflow::Meaning;

use crate::ports::AppError;

/// Who acts: the payload's `accountId`, until the invocation context carries the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    #[serde(default)]
    pub account_id: Option<String>,
}

/// `assign-workflow`: a built-in template or a definition (YAML or JSON text) for a space.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignWorkflow {
    #[serde(default)]
    pub account_id: Option<String>,
    pub space: String,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// The space's administrators (reviewers by role, and who may reassign). The caller is
    /// always one.
    #[serde(default)]
    pub space_admins: Vec<String>,
    /// The page owner of documents started in the space (the `page_owner` role); by
    /// default each page's creator.
    #[serde(default)]
    pub page_owner: Option<String>,
}

/// `submit`, `withdraw`, `mark-up-to-date`, `archive`: a page, a comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageCommand {
    #[serde(default)]
    pub account_id: Option<String>,
    pub page_id: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `approve`, `reject`, `request-changes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decide {
    #[serde(default)]
    pub account_id: Option<String>,
    pub page_id: String,
    /// The document version decided on (default: the current one).
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub comment: Option<String>,
    /// Decide for this reviewer, under a delegation.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// An e-signature with the approval, when the reviewer's group requires one.
    #[serde(default)]
    pub signature: Option<SignaturePayload>,
}

/// An e-signature: printed name, meaning, and fresh re-authentication evidence.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignaturePayload {
    pub name: String,
    pub meaning: Meaning,
    #[serde(default)]
    pub reauth: Option<Reauth>,
}

/// Evidence that the signer authenticated again just now: the method and, for `totp`, the
/// code from the signer's authenticator app, which the app verifies against the signer's
/// enrolled secret (see `crate::totp`). Unknown fields (a `password`, the old `at`) are
/// refused, and so is a `code` under any other method: the app verifies only `totp`, and a
/// credential it cannot check is not taken at all.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reauth {
    pub method: String,
    #[serde(default)]
    pub code: Option<Code>,
    /// An identity provider's assertion id, recorded with the evidence.
    #[serde(default)]
    pub reference: Option<String>,
}

/// A one-time code as a payload carries it. Its `Debug` is redacted, and a code of the wrong
/// JSON type is refused without echoing it (serde's own message would quote the value).
#[derive(Clone, PartialEq, Eq)]
pub struct Code(pub String);

/// `sign`: a signature on the current version that is not a decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sign {
    #[serde(default)]
    pub account_id: Option<String>,
    pub page_id: String,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub comment: Option<String>,
    pub name: String,
    pub meaning: Meaning,
    pub reauth: Reauth,
}

/// `totp-enrol`: the caller enrols (no other field: the secret is made by the app).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpEnrol {
    #[serde(default)]
    pub account_id: Option<String>,
}

/// `totp-reset` and `totp-status`: the caller's own enrolment, or with `account` another
/// user's (space administrators only). A user resetting their own enrolment proves it with
/// a current `code`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpAccount {
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub code: Option<Code>,
}

/// `delegate`: let `to` decide for the caller on one page until `until`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    #[serde(default)]
    pub account_id: Option<String>,
    pub page_id: String,
    pub to: String,
    pub until: Timestamp,
    pub reason: String,
}

/// `status`, `history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    pub page_id: String,
}

/// `panel`: a page, as its viewer sees it (the viewer is the caller).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageView {
    #[serde(default)]
    pub account_id: Option<String>,
    pub page_id: String,
}

/// `space-workflow`: the workflow assigned to a space (the space settings page).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpaceQuery {
    #[serde(default)]
    pub account_id: Option<String>,
    pub space: String,
}

/// `validate-workflow`: a definition to check, YAML or JSON text.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateWorkflow {
    pub source: String,
}

/// `configure-webhook`: a URL that receives each changed page's content, or `null` to stop.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigureWebhook {
    #[serde(default)]
    pub account_id: Option<String>,
    pub url: Option<String>,
}

/// A product event: `{eventType, atlassianId, content{id, type, status, title, space,
/// version}}` (platform.md §8). Only `eventType` and `content.id` are required: the app
/// reads the page itself rather than trusting a late or retried event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageEvent {
    pub event_type: String,
    /// The account that caused the event (the editor).
    #[serde(default)]
    pub atlassian_id: Option<String>,
    pub content: Content,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub id: Id,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub space: Option<SpaceRef>,
    #[serde(default)]
    pub version: Option<VersionRef>,
}

/// A content id, as a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Text(String),
    Number(u64),
}

/// `space: {key: "ENG"}`, or just `"ENG"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SpaceRef {
    Object { key: String },
    Key(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionRef {
    pub number: u32,
}

/// Parses JSON text into `T`, or `BAD_PAYLOAD` naming the field's path.
pub fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            what.to_owned()
        } else if path.starts_with('[') {
            format!("{what}{path}")
        } else {
            format!("{what}.{path}")
        };
        AppError::new("BAD_PAYLOAD", format!("{at}: {}", e.inner()))
    })
}

impl Code {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Code(s)),
            _ => Err(de::Error::custom(
                "the code must be a string of 6 digits (the value is not shown)",
            )),
        }
    }
}

impl Id {
    pub fn text(&self) -> String {
        match self {
            Id::Text(s) => s.clone(),
            Id::Number(n) => n.to_string(),
        }
    }
}

impl SpaceRef {
    pub fn key(&self) -> &str {
        match self {
            SpaceRef::Object { key } | SpaceRef::Key(key) => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_bad<T: DeserializeOwned + std::fmt::Debug>(text: &str, expect: &str) {
        let e = parse::<T>("payload", text).unwrap_err();
        assert_eq!(e.code, "BAD_PAYLOAD");
        assert!(e.message.contains(expect), "{e}");
    }

    #[test]
    fn bad_payloads_name_the_field() {
        check_bad::<Sign>(
            r#"{"pageId":"1","name":"A","meaning":"approval","reauth":{"method":"sso","at":"2026-01-01T00:00:00Z"}}"#,
            "unknown field `at`",
        );
        check_bad::<Sign>(
            r#"{"pageId":"1","name":"A","meaning":"approval","reauth":{"method":"password","password":"hunter2"}}"#,
            "unknown field `password`",
        );
        check_bad::<Decide>(r#"{"pageId":"1","version":"two"}"#, "payload.version");
        // A code of the wrong type is refused without quoting it.
        let e = parse::<Sign>(
            "payload",
            r#"{"pageId":"1","name":"A","meaning":"approval","reauth":{"method":"totp","code":287082}}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("payload.reauth.code"), "{e}");
        assert!(!e.message.contains("287082"), "{e}");
        let r: Reauth = parse("reauth", r#"{"method":"totp","code":"287082"}"#).unwrap();
        assert!(!format!("{r:?}").contains("287082"));
        check_bad::<Decide>(r#""text""#, "payload: invalid type");
        check_bad::<PageCommand>("{}", "missing field `pageId`");
    }

    #[test]
    fn events_take_ids_as_numbers_or_text_and_spaces_as_objects_or_keys() {
        let e: PageEvent = parse(
            "event",
            r#"{"eventType":"avi:confluence:created:page","content":{"id":42,"space":"ENG"}}"#,
        )
        .unwrap();
        assert_eq!(e.content.id.text(), "42");
        assert_eq!(e.content.space.unwrap().key(), "ENG");
        let e: PageEvent = parse(
            "event",
            r#"{"eventType":"avi:confluence:updated:page","atlassianId":"u1","content":{"id":"42","type":"page","status":"current","title":"T","space":{"key":"ENG"},"version":{"number":3}}}"#,
        )
        .unwrap();
        assert_eq!(e.content.space.unwrap().key(), "ENG");
        assert_eq!(e.content.version.unwrap().number, 3);
    }
}
