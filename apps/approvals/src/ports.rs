//! What the app needs from the platform besides storage, as a trait: the invocation context,
//! the product (Confluence) API, the optional webhook, analytics, logs, the key-value
//! store's secrets and randomness. The component implements it over the WIT imports; tests
//! implement it in memory.

use std::fmt;

/// An error the app answers a caller with: a stable code and a message a person can act on.
/// It becomes the WIT `platform-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: String,
    pub message: String,
}

/// A page at its latest version, as the product API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub id: String,
    pub space: String,
    pub title: String,
    pub body: String,
    pub author: String,
    pub version: u32,
}

/// A content property: JSON text and its version (for optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub value: String,
    pub version: u32,
}

/// The page-status lozenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentState {
    /// At most 20 characters.
    pub name: String,
    pub color: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// The platform, as the app logic sees it. Product calls are not egress; `post` is.
pub trait Platform {
    /// The invocation's virtual time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// The account the platform invokes the app for, when the invocation context carries
    /// it. The current contract does not, so callers name themselves in the payload.
    fn caller(&self) -> Option<String>;
    fn get_page(&self, id: &str) -> Result<Option<Page>, AppError>;
    fn get_property(&self, page: &str, key: &str) -> Result<Option<Property>, AppError>;
    /// `version`: 1 to create, the current one plus one to update.
    fn set_property(
        &self,
        page: &str,
        key: &str,
        value: &str,
        version: u32,
    ) -> Result<(), AppError>;
    fn get_content_state(&self, page: &str) -> Result<Option<ContentState>, AppError>;
    /// Sets the lozenge; returns the page version this created.
    fn set_content_state(&self, page: &str, state: &ContentState) -> Result<u32, AppError>;
    /// An outbound HTTP POST of JSON (egress: judged against the manifest). Returns the
    /// status code.
    fn post(&self, url: &str, body: &str) -> Result<u16, AppError>;
    /// An analytics event; `properties` is JSON text. May be blocked by the site admin.
    fn track(&self, event: &str, properties: &str) -> Result<(), AppError>;
    fn log(&self, level: Level, message: &str);
    /// A secret of the hosted key-value store (`kvs.get-secret`): JSON text, never returned
    /// by queries. Secrets are here rather than on the `Kvs` seam because only the app's
    /// own TOTP enrolments use them, never the engine's store.
    fn get_secret(&self, key: &str) -> Result<Option<String>, AppError>;
    /// Sets a secret (`kvs.set-secret`); `value` is JSON text. The platform has no call to
    /// delete one: a reset overwrites it.
    fn set_secret(&self, key: &str, value: &str) -> Result<(), AppError>;
    /// Fills `buf` with cryptographically secure random bytes (in the component, WASI's
    /// `random`, which the simulator derives from its seed).
    fn random_bytes(&self, buf: &mut [u8]) -> Result<(), AppError>;
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> AppError {
        AppError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}
