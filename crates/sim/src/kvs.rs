//! The hosted key-value store (platform.md §6), with the platform's limits and error codes,
//! isolated per app, environment and installation, and physically separate per realm.
//!
//! Every call names the [`Scope`] asking and the realm the call runs in. The store pins each
//! installation to a realm when it is installed; a call from another realm is refused with
//! `CROSS_REALM_ACCESS` and recorded, and migrating an installation moves its data and leaves
//! none behind.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;

use crate::clock::Millis;
use crate::realm::Realm;

/// The platform's limits. [`KvsLimits::forge`] gives production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvsLimits {
    pub max_key_len: usize,
    pub max_value_bytes: usize,
    pub max_depth: usize,
    pub max_transaction_ops: usize,
    pub max_transaction_bytes: usize,
    pub max_batch_keys: usize,
    pub default_page: usize,
    pub max_page: usize,
    pub max_ttl_ms: u64,
    /// Requests per second per installation before `RATE_LIMIT_EXCEEDED`.
    pub requests_per_second: u32,
}

impl KvsLimits {
    pub fn forge() -> KvsLimits {
        KvsLimits {
            max_key_len: 500,
            max_value_bytes: 240 * 1024,
            max_depth: 31,
            max_transaction_ops: 25,
            max_transaction_bytes: 4 * 1024 * 1024,
            max_batch_keys: 25,
            default_page: 10,
            max_page: 100,
            max_ttl_ms: 365 * Millis::DAY,
            requests_per_second: 1_000,
        }
    }
}

/// The error codes the platform returns (and some of ours, marked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KvsErrorCode {
    KeyTooShort,
    KeyTooLong,
    InvalidKey,
    MaxSize,
    /// Ours: the platform names no code for nesting deeper than 31.
    ValueTooDeep,
    KeyConflict,
    RateLimitExceeded,
    InvalidTtl,
    InvalidLimit,
    InvalidCursor,
    TooManyOperations,
    DuplicateKeyInTransaction,
    TransactionTooLarge,
    TooManyKeys,
    /// Ours: a call from a realm the installation's data does not live in.
    CrossRealmAccess,
    /// An installation the store does not know (not installed, or uninstalled).
    UnknownInstallation,
    /// Injected by a scenario: the store is unavailable for this call.
    StorageUnavailable,
    /// Ours: a value given as text that is not JSON.
    InvalidValue,
}

impl KvsErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            KvsErrorCode::KeyTooShort => "KEY_TOO_SHORT",
            KvsErrorCode::KeyTooLong => "KEY_TOO_LONG",
            KvsErrorCode::InvalidKey => "INVALID_KEY",
            KvsErrorCode::MaxSize => "MAX_SIZE",
            KvsErrorCode::ValueTooDeep => "VALUE_TOO_DEEP",
            KvsErrorCode::KeyConflict => "KEY_CONFLICT",
            KvsErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            KvsErrorCode::InvalidTtl => "INVALID_TTL",
            KvsErrorCode::InvalidLimit => "INVALID_LIMIT",
            KvsErrorCode::InvalidCursor => "INVALID_CURSOR",
            KvsErrorCode::TooManyOperations => "TOO_MANY_OPERATIONS",
            KvsErrorCode::DuplicateKeyInTransaction => "DUPLICATE_KEY_IN_TRANSACTION",
            KvsErrorCode::TransactionTooLarge => "TRANSACTION_TOO_LARGE",
            KvsErrorCode::TooManyKeys => "TOO_MANY_KEYS",
            KvsErrorCode::CrossRealmAccess => "CROSS_REALM_ACCESS",
            KvsErrorCode::UnknownInstallation => "UNKNOWN_INSTALLATION",
            KvsErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            KvsErrorCode::InvalidValue => "INVALID_VALUE",
        }
    }
}

/// A refused call: the code and a message naming the key or limit involved. A refused call
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}: {message}", .code.as_str())]
pub struct KvsError {
    pub code: KvsErrorCode,
    pub message: String,
}

fn unavailable(e: BackendError) -> KvsError {
    err(
        KvsErrorCode::StorageUnavailable,
        format!("the store failed: {e}"),
    )
}

fn err(code: KvsErrorCode, message: impl Into<String>) -> KvsError {
    KvsError {
        code,
        message: message.into(),
    }
}

/// The isolation unit: one app, in one environment, in one installation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Scope {
    pub app: String,
    pub environment: String,
    pub installation: String,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.app, self.environment, self.installation)
    }
}

/// `set` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetOptions {
    /// Time to live in milliseconds (at most a year).
    pub ttl_ms: Option<u64>,
    /// `keyPolicy: FAIL_IF_EXISTS`: refuse with `KEY_CONFLICT` when the key is present.
    pub fail_if_exists: bool,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    Set {
        key: String,
        value: Json,
        options: SetOptions,
    },
    /// Like `Set`, with the value as JSON text (checked, and stored as given but for
    /// surrounding white space).
    SetText {
        key: String,
        text: String,
        options: SetOptions,
    },
    Delete {
        key: String,
    },
    /// A custom entity's value, as JSON text.
    EntitySetText {
        entity: String,
        key: String,
        text: String,
        options: SetOptions,
    },
    EntityDelete {
        entity: String,
        key: String,
    },
}

/// One page of a `query`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub results: Vec<(String, Json)>,
    /// Pass it back to get the next page; `None` after the last one.
    pub cursor: Option<String>,
}

/// One page of a [`Kvs::query_text`]: values as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextPage {
    pub results: Vec<(String, String)>,
    pub cursor: Option<String>,
}

/// A cross-realm attempt the store refused, for the runtime report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealmViolation {
    pub at: Millis,
    pub scope: Scope,
    pub pinned: Realm,
    pub attempted_from: Realm,
    pub operation: &'static str,
}

/// A backend that failed (IO error, damaged file). Calls that meet one are refused with
/// `STORAGE_UNAVAILABLE` and change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The physical store of one realm: an ordered map with atomic batches of writes.
pub trait Backend: Send + fmt::Debug {
    fn get(&self, key: &str) -> Result<Option<String>, BackendError>;
    /// Keys starting with `prefix`, after `after` (exclusive), in order, at most `limit`.
    fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, BackendError>;
    /// Applies every write or none.
    fn apply(&mut self, writes: Vec<(String, Option<String>)>) -> Result<(), BackendError>;
    fn len(&self) -> Result<usize, BackendError>;
    fn is_empty(&self) -> Result<bool, BackendError> {
        Ok(self.len()? == 0)
    }
}

/// Where the realms' backends live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KvsStorage {
    /// In memory (tests, benchmarks).
    #[default]
    Memory,
    /// One redb file per realm, `DIR/REALM.redb`: realms are physically separate files.
    Redb { dir: std::path::PathBuf },
}

/// An in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: BTreeMap<String, String>,
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        Ok(self.map.get(key).cloned())
    }

    fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, BackendError> {
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a.to_string()),
            None => std::ops::Bound::Included(prefix.to_string()),
        };
        Ok(self
            .map
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&mut self, writes: Vec<(String, Option<String>)>) -> Result<(), BackendError> {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> Result<usize, BackendError> {
        Ok(self.map.len())
    }
}

/// What is stored under a key: the JSON value and its expiry, as
/// `{"value":VALUE,"expires":MILLIS}` (no `expires` when the key never expires).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Stored {
    value: Json,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expires: Option<Millis>,
}

/// [`Stored`] read without building the value: its JSON text is borrowed as it was set.
#[derive(serde::Deserialize)]
struct StoredText<'a> {
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
    #[serde(default)]
    expires: Option<Millis>,
}

impl StoredText<'_> {
    /// The stored form of a value's (validated) JSON text.
    fn encode(text: &str, expires: Option<Millis>) -> String {
        let mut out = String::with_capacity(text.len() + 40);
        out.push_str("{\"value\":");
        out.push_str(text);
        if let Some(e) = expires {
            out.push_str(",\"expires\":");
            out.push_str(&e.0.to_string());
        }
        out.push('}');
        out
    }
}

/// The JSON text of a value to store, checked: valid JSON (strings and numbers too: a lone
/// surrogate escape or `1e400` is refused, as a parser would), within the size limit (the
/// text's length, surrounding white space trimmed) and the nesting limit, without building
/// the value.
fn checked_text<'t>(limits: &KvsLimits, key: &str, text: &'t str) -> Result<&'t str, KvsError> {
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if text.len() > limits.max_value_bytes {
        return Err(err(
            KvsErrorCode::MaxSize,
            format!(
                "value of `{key}` is {} bytes; values allow {}",
                text.len(),
                limits.max_value_bytes
            ),
        ));
    }
    let depth = match check_json(text, limits.max_depth) {
        JsonCheck::Depth(d) | JsonCheck::TooDeep(d) => d,
        JsonCheck::Invalid(e) => {
            return Err(err(
                KvsErrorCode::InvalidValue,
                format!("the value of `{key}` is not JSON: {e}"),
            ));
        }
    };
    if depth > limits.max_depth {
        return Err(err(
            KvsErrorCode::ValueTooDeep,
            format!(
                "value of `{key}` nests {depth} levels; values allow {}",
                limits.max_depth
            ),
        ));
    }
    Ok(text)
}

/// serde_json refuses 128 nested brackets or more.
const PARSER_DEPTH: usize = 128;

/// What [`check_json`] found.
enum JsonCheck {
    /// Valid; the depth is exact when it is `limit` or more, else it may be one short.
    Depth(usize),
    /// Nested deeper than serde_json follows ([`PARSER_DEPTH`]): this many brackets.
    TooDeep(usize),
    Invalid(serde_json::Error),
}

/// Checks JSON text without building it: the syntax (`RawValue`), then one pass over the
/// bytes, which settles most values: brackets nesting `b` deep make `b` or `b + 1` levels
/// (a scalar inside the deepest adds one). Text with `b >= limit`, or with tokens only a
/// parser can judge (see [`Scan`]), is parsed token by token.
fn check_json(text: &str, limit: usize) -> JsonCheck {
    if let Err(e) = serde_json::from_str::<&serde_json::value::RawValue>(text) {
        return JsonCheck::Invalid(e);
    }
    let scanned = scan(text);
    if scanned.brackets < limit && !scanned.needs_parse {
        return JsonCheck::Depth(scanned.brackets);
    }
    match serde_json::from_str::<Depth>(text) {
        Ok(Depth(d)) => JsonCheck::Depth(d),
        Err(_) if scanned.brackets >= PARSER_DEPTH => JsonCheck::TooDeep(scanned.brackets),
        Err(e) => JsonCheck::Invalid(e),
    }
}

/// Whether `text` is one JSON value that a parser reads, every token checked, nothing
/// built.
pub(crate) fn is_json(text: &str) -> bool {
    matches!(check_json(text, PARSER_DEPTH), JsonCheck::Depth(_))
}

/// How many levels a JSON value nests (a scalar or an empty array is 1, `[0]` is 2), read
/// by a parse that checks every token and builds nothing.
struct Depth(usize);

impl<'de> serde::Deserialize<'de> for Depth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Depth, D::Error> {
        d.deserialize_any(DepthVisitor)
    }
}

/// A string, checked (escapes included) and dropped: an object's key.
struct CheckedStr;

impl<'de> serde::Deserialize<'de> for CheckedStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CheckedStr, D::Error> {
        d.deserialize_str(DepthVisitor).map(|_| CheckedStr)
    }
}

struct DepthVisitor;

impl<'de> serde::de::Visitor<'de> for DepthVisitor {
    type Value = Depth;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_str<E>(self, _: &str) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_unit<E>(self) -> Result<Depth, E> {
        Ok(Depth(1))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Depth, A::Error> {
        let mut inner = 0;
        while let Some(Depth(d)) = seq.next_element::<Depth>()? {
            inner = inner.max(d);
        }
        Ok(Depth(inner + 1))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Depth, A::Error> {
        let mut inner = 0;
        while let Some((CheckedStr, Depth(d))) = map.next_entry::<CheckedStr, Depth>()? {
            inner = inner.max(d);
        }
        Ok(Depth(inner + 1))
    }
}

/// What one pass over JSON text finds: how deep `[` and `{` nest outside strings, and
/// whether the text holds what only a full parse can judge: a `\u` escape in the surrogate
/// range (`\uD...`: a lone one is not a character), an exponent, or a run of 300 digits or
/// more (a number that may be out of range).
struct Scan {
    brackets: usize,
    needs_parse: bool,
}

fn scan(text: &str) -> Scan {
    let (mut level, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    let (mut needs_parse, mut digits) = (false, 0usize);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                b'u' if escaped => {
                    escaped = false;
                    needs_parse |= matches!(bytes.get(i + 1), Some(b'd' | b'D'));
                }
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_digit() {
            digits += 1;
            needs_parse |= digits >= 300;
            continue;
        }
        digits = 0;
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                level += 1;
                max = max.max(level);
            }
            b']' | b'}' => level = level.saturating_sub(1),
            b'e' | b'E' => needs_parse = true,
            _ => {}
        }
    }
    Scan {
        brackets: max,
        needs_parse,
    }
}

/// The hosted store of every installation of every app, one backend per realm.
#[derive(Debug)]
pub struct Kvs {
    limits: KvsLimits,
    storage: KvsStorage,
    realms: BTreeMap<Realm, Box<dyn Backend>>,
    pinned: HashMap<Scope, Realm>,
    buckets: HashMap<Scope, Bucket>,
    violations: Vec<RealmViolation>,
    /// Calls to fail with `STORAGE_UNAVAILABLE`, per installation (fault injection).
    faults: HashMap<Scope, u32>,
    /// In memory, an installation's keys start with a short number instead of its app,
    /// environment and installation (most of a key's bytes): see [`Kvs::base`].
    bases: HashMap<Scope, String>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// Separates the parts of a physical key; key characters never include it.
const SEP: char = '\u{1f}';
/// Between a custom entity's name and a key, in the physical key of its value.
const ENTITY_SEP: char = '\u{1e}';

fn entity_key(entity: &str, key: &str) -> String {
    format!("{entity}{ENTITY_SEP}{key}")
}

impl Kvs {
    /// A store with in-memory backends, created per realm as needed.
    pub fn new(limits: KvsLimits) -> Kvs {
        Kvs::with_storage(limits, KvsStorage::Memory)
    }

    /// A store whose realms live where `storage` says (one redb file per realm, or memory).
    /// Files are opened on a realm's first use.
    pub fn with_storage(limits: KvsLimits, storage: KvsStorage) -> Kvs {
        Kvs {
            limits,
            storage,
            realms: BTreeMap::new(),
            pinned: HashMap::new(),
            buckets: HashMap::new(),
            violations: Vec::new(),
            faults: HashMap::new(),
            bases: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &KvsLimits {
        &self.limits
    }

    /// Pins an installation's data to a realm (at install time).
    pub fn install(&mut self, scope: Scope, realm: Realm) {
        if self.storage == KvsStorage::Memory && !self.bases.contains_key(&scope) {
            let base = format!("{:x}{SEP}", self.bases.len());
            self.bases.insert(scope.clone(), base);
        }
        self.pinned.insert(scope, realm);
    }

    /// Where an installation's physical keys start: `APP SEP ENVIRONMENT SEP INSTALLATION
    /// SEP` in files (so that `signoff sim inspect` can name them), a number given at
    /// install time in memory.
    fn base(&self, scope: &Scope) -> String {
        self.bases
            .get(scope)
            .cloned()
            .unwrap_or_else(|| scope_prefix(scope))
    }

    fn physical(&self, scope: &Scope, kind: char, key: &str) -> String {
        let mut k = self.base(scope);
        k.push(kind);
        k.push_str(key);
        k
    }

    /// The realm an installation's data is pinned to.
    pub fn realm_of(&self, scope: &Scope) -> Option<Realm> {
        self.pinned.get(scope).copied()
    }

    /// Cross-realm attempts refused so far.
    pub fn violations(&self) -> &[RealmViolation] {
        &self.violations
    }

    /// Makes the next `calls` calls of an installation fail with `STORAGE_UNAVAILABLE`.
    pub fn inject_unavailable(&mut self, scope: &Scope, calls: u32) {
        *self.faults.entry(scope.clone()).or_insert(0) += calls;
    }

    /// How many physical keys each realm holds (for residency checks).
    pub fn keys_per_realm(&self) -> Result<BTreeMap<Realm, usize>, KvsError> {
        self.realms
            .iter()
            .map(|(r, b)| Ok((*r, b.len().map_err(unavailable)?)))
            .collect()
    }

    pub fn get(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<Option<Json>, KvsError> {
        self.get_text(scope, from, now, key)?
            .map(|t| parse_stored_value(key, &t))
            .transpose()
    }

    /// Like [`Kvs::get`], with the value as the JSON text it was set with (what the
    /// platform's API hands an app; nothing is parsed but the envelope).
    pub fn get_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<Option<String>, KvsError> {
        self.lookup(scope, from, now, key, 'k', "get")
    }

    pub fn set(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
        value: Json,
        options: SetOptions,
    ) -> Result<(), KvsError> {
        self.set_text(scope, from, now, key, &value.to_string(), options)
    }

    /// Like [`Kvs::set`], with the value as JSON text: checked (`INVALID_VALUE` when it is
    /// not JSON) and stored as given, without surrounding white space.
    pub fn set_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
        text: &str,
        options: SetOptions,
    ) -> Result<(), KvsError> {
        self.admit(scope, from, now, "set")?;
        let write = self.prepare_set(scope, now, key, text, options)?;
        self.apply(from, vec![write])
    }

    pub fn delete(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<(), KvsError> {
        self.remove(scope, from, now, 'k', key, key, "delete")
    }

    /// `query().where('key', beginsWith(prefix))`: keys in lexicographic order, a page at a
    /// time (default 10, at most 100), with an opaque cursor.
    pub fn query(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        prefix: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page, KvsError> {
        let page = self.query_text(scope, from, now, prefix, limit, cursor)?;
        Ok(Page {
            results: page
                .results
                .into_iter()
                .map(|(k, t)| {
                    let v = parse_stored_value(&k, &t)?;
                    Ok((k, v))
                })
                .collect::<Result<_, KvsError>>()?,
            cursor: page.cursor,
        })
    }

    /// Like [`Kvs::query`], with each value as its JSON text.
    pub fn query_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        prefix: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<TextPage, KvsError> {
        self.admit(scope, from, now, "query")?;
        let limit = limit.unwrap_or(self.limits.default_page);
        if limit == 0 || limit > self.limits.max_page {
            return Err(err(
                KvsErrorCode::InvalidLimit,
                format!("limit {limit} is outside 1 to {}", self.limits.max_page),
            ));
        }
        let base = self.physical(scope, 'k', "");
        let full_prefix = self.physical(scope, 'k', prefix);
        // Cursors name keys in their long form, whatever the storage.
        let long_base = long_physical(scope, 'k', "");
        let after = match cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .filter(|k| k.starts_with(&long_physical(scope, 'k', prefix)))
                    .map(|k| format!("{base}{}", &k[long_base.len()..]))
                    .ok_or_else(|| {
                        err(
                            KvsErrorCode::InvalidCursor,
                            format!("cursor `{c}` was not issued for this query"),
                        )
                    })?,
            ),
        };
        // Read one more than a page to know whether another page follows; expired entries
        // are skipped, so that may take more than one read.
        let mut results = Vec::new();
        let mut last = after;
        'scan: loop {
            let want = limit + 1 - results.len();
            let chunk = self.range(from, &full_prefix, last.as_deref(), want)?;
            let read = chunk.len();
            for (k, v) in chunk {
                last = Some(k.clone());
                let Ok(stored) = serde_json::from_str::<StoredText<'_>>(&v) else {
                    continue;
                };
                if stored.expires.is_some_and(|e| e <= now) {
                    continue;
                }
                results.push((k[base.len()..].to_string(), stored.value.get().to_owned()));
                if results.len() > limit {
                    break 'scan;
                }
            }
            if read < want {
                break;
            }
        }
        let more = results.len() > limit;
        results.truncate(limit);
        let cursor = more.then(|| {
            let last_key = &results[limit - 1].0;
            encode_cursor(&long_physical(scope, 'k', last_key))
        });
        Ok(TextPage { results, cursor })
    }

    /// All or nothing: at most 25 operations, each key once, at most 4 MB.
    pub fn transact(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        ops: Vec<TxOp>,
    ) -> Result<(), KvsError> {
        self.admit(scope, from, now, "transact")?;
        if ops.len() > self.limits.max_transaction_ops {
            return Err(err(
                KvsErrorCode::TooManyOperations,
                format!(
                    "{} operations; a transaction allows {}",
                    ops.len(),
                    self.limits.max_transaction_ops
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut writes = Vec::with_capacity(ops.len());
        let mut bytes = 0usize;
        for op in ops {
            let key = match &op {
                TxOp::Set { key, .. } | TxOp::SetText { key, .. } | TxOp::Delete { key } => {
                    key.clone()
                }
                TxOp::EntitySetText { entity, key, .. } | TxOp::EntityDelete { entity, key } => {
                    entity_key(entity, key)
                }
            };
            if !seen.insert(key.clone()) {
                return Err(err(
                    KvsErrorCode::DuplicateKeyInTransaction,
                    format!("key `{key}` appears twice in one transaction"),
                ));
            }
            let write = match op {
                TxOp::Set {
                    key,
                    value,
                    options,
                } => self.prepare_set(scope, now, &key, &value.to_string(), options)?,
                TxOp::SetText { key, text, options } => {
                    self.prepare_set(scope, now, &key, &text, options)?
                }
                TxOp::Delete { key } => {
                    self.check_key(&key)?;
                    (self.physical(scope, 'k', &key), None)
                }
                TxOp::EntitySetText {
                    entity,
                    key,
                    text,
                    options,
                } => self.prepare_entity_set(scope, now, &entity, &key, &text, options)?,
                TxOp::EntityDelete { entity, key } => {
                    self.check_key(&key)?;
                    (self.physical(scope, 'e', &entity_key(&entity, &key)), None)
                }
            };
            bytes += write.0.len() + write.1.as_ref().map_or(0, String::len);
            writes.push(write);
        }
        if bytes > self.limits.max_transaction_bytes {
            return Err(err(
                KvsErrorCode::TransactionTooLarge,
                format!(
                    "{bytes} bytes; a transaction allows {}",
                    self.limits.max_transaction_bytes
                ),
            ));
        }
        self.apply(from, writes)
    }

    /// Best effort: at most 25 keys; each key succeeds or fails on its own.
    pub fn batch_set(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        items: Vec<(String, Json)>,
    ) -> Result<Vec<Result<(), KvsError>>, KvsError> {
        let items = items.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        self.batch_set_text(scope, from, now, items)
    }

    /// Like [`Kvs::batch_set`], with each value as JSON text (checked as by
    /// [`Kvs::set_text`]; a value that is not JSON fails its own entry).
    pub fn batch_set_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        items: Vec<(String, String)>,
    ) -> Result<Vec<Result<(), KvsError>>, KvsError> {
        self.admit(scope, from, now, "batch_set")?;
        if items.len() > self.limits.max_batch_keys {
            return Err(err(
                KvsErrorCode::TooManyKeys,
                format!(
                    "{} keys; a batch allows {}",
                    items.len(),
                    self.limits.max_batch_keys
                ),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (key, text) in items {
            match self.prepare_set(scope, now, &key, &text, SetOptions::default()) {
                Ok(write) => {
                    out.push(self.apply(from, vec![write]));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }

    /// Secrets: stored apart from keys, never returned by `query`.
    pub fn set_secret(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
        value: Json,
    ) -> Result<(), KvsError> {
        self.set_secret_text(scope, from, now, key, &value.to_string())
    }

    /// Like [`Kvs::set_secret`], with the value as JSON text (checked as by
    /// [`Kvs::set_text`]).
    pub fn set_secret_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
        text: &str,
    ) -> Result<(), KvsError> {
        self.admit(scope, from, now, "set_secret")?;
        self.check_key(key)?;
        let stored = StoredText::encode(checked_text(&self.limits, key, text)?, None);
        let k = self.physical(scope, 's', key);
        self.apply(from, vec![(k, Some(stored))])
    }

    /// A custom entity's value (JSON text) under `key`, unless absent or expired.
    pub fn entity_get_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        entity: &str,
        key: &str,
    ) -> Result<Option<String>, KvsError> {
        self.admit(scope, from, now, "entity_get")?;
        self.check_key(key)?;
        self.read(scope, &entity_key(entity, key), 'e', now)
    }

    /// Stores a custom entity's value (JSON text, checked as by [`Kvs::set_text`]).
    #[allow(clippy::too_many_arguments)] // The store's usual five, and the entity's name.
    pub fn entity_set_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        entity: &str,
        key: &str,
        text: &str,
        options: SetOptions,
    ) -> Result<(), KvsError> {
        self.admit(scope, from, now, "entity_set")?;
        let write = self.prepare_entity_set(scope, now, entity, key, text, options)?;
        self.apply(from, vec![write])
    }

    /// Deletes a custom entity's value (absent or not).
    pub fn entity_delete(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        entity: &str,
        key: &str,
    ) -> Result<(), KvsError> {
        let stored = entity_key(entity, key);
        self.remove(scope, from, now, 'e', &stored, key, "entity_delete")
    }

    /// Every live value of one custom entity, in key order, for an index query to filter and
    /// sort (the simulator keeps no index structures: a query reads the entity's values).
    pub fn entity_scan(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        entity: &str,
    ) -> Result<Vec<(String, String)>, KvsError> {
        self.admit(scope, from, now, "entity_query")?;
        let prefix = self.physical(scope, 'e', &entity_key(entity, ""));
        let rows = self.range(from, &prefix, None, usize::MAX)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let Ok(stored) = serde_json::from_str::<StoredText<'_>>(&v) else {
                continue;
            };
            if stored.expires.is_some_and(|e| e <= now) {
                continue;
            }
            out.push((k[prefix.len()..].to_string(), stored.value.get().to_owned()));
        }
        Ok(out)
    }

    /// The physical write of an entity value (for `entity_set_text` and transactions): the
    /// same checks as a plain key's.
    pub(crate) fn prepare_entity_set(
        &mut self,
        scope: &Scope,
        now: Millis,
        entity: &str,
        key: &str,
        text: &str,
        options: SetOptions,
    ) -> Result<(String, Option<String>), KvsError> {
        self.check_key(key)?;
        self.prepare_write(
            scope,
            now,
            'e',
            &entity_key(entity, key),
            key,
            text,
            options,
        )
    }

    /// Deletes a secret (absent or not).
    pub fn delete_secret(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<(), KvsError> {
        self.remove(scope, from, now, 's', key, key, "delete_secret")
    }

    pub fn get_secret(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<Option<Json>, KvsError> {
        self.get_secret_text(scope, from, now, key)?
            .map(|t| parse_stored_value(key, &t))
            .transpose()
    }

    /// Like [`Kvs::get_secret`], with the value as the JSON text it was set with.
    pub fn get_secret_text(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
    ) -> Result<Option<String>, KvsError> {
        self.lookup(scope, from, now, key, 's', "get_secret")
    }

    /// Everything an installation stores, for `signoff sim inspect`: keys and values, with
    /// secrets listed by key only.
    pub fn inspect(&self, scope: &Scope) -> Result<Vec<(String, Json)>, KvsError> {
        let Some(realm) = self.realm_of(scope) else {
            return Ok(Vec::new());
        };
        let Some(backend) = self.realms.get(&realm) else {
            return Ok(Vec::new());
        };
        let base = self.base(scope);
        Ok(backend
            .range(&base, None, usize::MAX)
            .map_err(unavailable)?
            .into_iter()
            .map(|(k, v)| {
                let rest = &k[base.len()..];
                let (kind, key) = rest.split_at(1);
                let value = match kind {
                    "s" => Json::String("<secret>".into()),
                    _ => serde_json::from_str::<Stored>(&v).map_or(Json::Null, |s| s.value),
                };
                let shown = match kind {
                    "s" => format!("secret:{key}"),
                    "e" => match key.split_once(ENTITY_SEP) {
                        Some((entity, key)) => format!("entity:{entity}/{key}"),
                        None => format!("entity:{key}"),
                    },
                    _ => key.to_string(),
                };
                (shown, value)
            })
            .collect())
    }

    /// Moves an installation's data to another realm, as when an admin migrates the site.
    /// Returns the number of keys moved; afterwards the old realm holds none of them.
    pub fn migrate(&mut self, scope: &Scope, to: Realm) -> Result<usize, KvsError> {
        let from = self.realm_of(scope).ok_or_else(|| {
            err(
                KvsErrorCode::UnknownInstallation,
                format!("{scope} is not installed"),
            )
        })?;
        if from == to {
            return Ok(0);
        }
        let base = self.base(scope);
        let entries = self.range(from, &base, None, usize::MAX)?;
        let moved = entries.len();
        let deletes = entries.iter().map(|(k, _)| (k.clone(), None)).collect();
        // Copy first, then delete: a failure in between leaves a copy, never a loss.
        self.apply(to, entries.into_iter().map(|(k, v)| (k, Some(v))).collect())?;
        self.apply(from, deletes)?;
        if !self.range(from, &base, None, 1)?.is_empty() {
            return Err(err(
                KvsErrorCode::StorageUnavailable,
                format!("{scope}: data was left behind in {from}"),
            ));
        }
        self.pinned.insert(scope.clone(), to);
        Ok(moved)
    }

    /// Removes an installation and all its data.
    pub fn uninstall(&mut self, scope: &Scope) -> Result<(), KvsError> {
        if let Some(realm) = self.pinned.remove(scope) {
            let base = self.base(scope);
            let keys = self.range(realm, &base, None, usize::MAX)?;
            self.apply(realm, keys.into_iter().map(|(k, _)| (k, None)).collect())?;
        }
        Ok(())
    }

    /// The backend of a realm, opened on first use.
    fn backend(&mut self, realm: Realm) -> Result<&mut Box<dyn Backend>, KvsError> {
        if !self.realms.contains_key(&realm) {
            let backend: Box<dyn Backend> = match &self.storage {
                KvsStorage::Memory => Box::new(MemoryBackend::default()),
                KvsStorage::Redb { dir } => Box::new(
                    crate::redb_backend::RedbBackend::open(&dir.join(format!("{realm}.redb")))
                        .map_err(unavailable)?,
                ),
            };
            self.realms.insert(realm, backend);
        }
        self.realms
            .get_mut(&realm)
            .ok_or_else(|| err(KvsErrorCode::StorageUnavailable, "no backend"))
    }

    fn apply(
        &mut self,
        realm: Realm,
        writes: Vec<(String, Option<String>)>,
    ) -> Result<(), KvsError> {
        self.backend(realm)?.apply(writes).map_err(unavailable)
    }

    fn range(
        &mut self,
        realm: Realm,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, KvsError> {
        self.backend(realm)?
            .range(prefix, after, limit)
            .map_err(unavailable)
    }

    /// Checks that the installation exists, the call runs in its realm, no fault is
    /// injected, and the rate limit allows it.
    fn admit(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        operation: &'static str,
    ) -> Result<(), KvsError> {
        let Some(pinned) = self.realm_of(scope) else {
            return Err(err(
                KvsErrorCode::UnknownInstallation,
                format!("{scope} is not installed"),
            ));
        };
        if pinned != from {
            self.violations.push(RealmViolation {
                at: now,
                scope: scope.clone(),
                pinned,
                attempted_from: from,
                operation,
            });
            return Err(err(
                KvsErrorCode::CrossRealmAccess,
                format!("{scope} keeps its data in {pinned}; a call from {from} cannot reach it"),
            ));
        }
        if let Some(n) = self.faults.get_mut(scope)
            && *n > 0
        {
            *n -= 1;
            return Err(err(
                KvsErrorCode::StorageUnavailable,
                "injected fault: storage unavailable",
            ));
        }
        let rate = f64::from(self.limits.requests_per_second);
        if !self.buckets.contains_key(scope) {
            self.buckets.insert(
                scope.clone(),
                Bucket {
                    tokens: rate,
                    at: now,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(scope) else {
            return Err(err(KvsErrorCode::StorageUnavailable, "no rate bucket"));
        };
        let elapsed = now.0.saturating_sub(bucket.at.0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(err(
                KvsErrorCode::RateLimitExceeded,
                format!(
                    "{scope} made more than {} requests in a second",
                    self.limits.requests_per_second
                ),
            ));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// A delete of `stored` (of `kind`; `key` is the app's key, checked), after admission.
    #[allow(clippy::too_many_arguments)]
    fn remove(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        kind: char,
        stored: &str,
        key: &str,
        operation: &'static str,
    ) -> Result<(), KvsError> {
        self.admit(scope, from, now, operation)?;
        self.check_key(key)?;
        let k = self.physical(scope, kind, stored);
        self.apply(from, vec![(k, None)])
    }

    /// A `get` of a key (`kind` `k`) or a secret (`s`), after the usual admission checks.
    fn lookup(
        &mut self,
        scope: &Scope,
        from: Realm,
        now: Millis,
        key: &str,
        kind: char,
        operation: &'static str,
    ) -> Result<Option<String>, KvsError> {
        self.admit(scope, from, now, operation)?;
        self.check_key(key)?;
        self.read(scope, key, kind, now)
    }

    /// The JSON text stored under a key, unless it expired by `now`.
    fn read(
        &mut self,
        scope: &Scope,
        key: &str,
        kind: char,
        now: Millis,
    ) -> Result<Option<String>, KvsError> {
        let Some(realm) = self.realm_of(scope) else {
            return Ok(None);
        };
        let key_of = self.physical(scope, kind, key);
        let Some(raw) = self.backend(realm)?.get(&key_of).map_err(unavailable)? else {
            return Ok(None);
        };
        let stored: StoredText<'_> = serde_json::from_str(&raw).map_err(|e| {
            err(
                KvsErrorCode::StorageUnavailable,
                format!("stored value of `{key}` is damaged: {e}"),
            )
        })?;
        Ok(stored
            .expires
            .is_none_or(|e| e > now)
            .then(|| stored.value.get().to_owned()))
    }

    fn prepare_set(
        &mut self,
        scope: &Scope,
        now: Millis,
        key: &str,
        text: &str,
        options: SetOptions,
    ) -> Result<(String, Option<String>), KvsError> {
        self.check_key(key)?;
        self.prepare_write(scope, now, 'k', key, key, text, options)
    }

    /// A checked write of `text` under `stored` (of `kind`): the value's size and depth, the
    /// TTL's range and `FAIL_IF_EXISTS`. `key` is the app's key, for messages.
    #[allow(clippy::too_many_arguments)]
    fn prepare_write(
        &mut self,
        scope: &Scope,
        now: Millis,
        kind: char,
        stored: &str,
        key: &str,
        text: &str,
        options: SetOptions,
    ) -> Result<(String, Option<String>), KvsError> {
        let text = checked_text(&self.limits, key, text)?;
        if let Some(ttl) = options.ttl_ms
            && (ttl == 0 || ttl > self.limits.max_ttl_ms)
        {
            return Err(err(
                KvsErrorCode::InvalidTtl,
                format!("TTL of {ttl} ms is outside 1 ms to one year"),
            ));
        }
        if options.fail_if_exists && self.read(scope, stored, kind, now)?.is_some() {
            return Err(err(
                KvsErrorCode::KeyConflict,
                format!("key `{key}` exists (keyPolicy FAIL_IF_EXISTS)"),
            ));
        }
        let value = StoredText::encode(text, options.ttl_ms.map(|t| now.plus(t)));
        Ok((self.physical(scope, kind, stored), Some(value)))
    }

    fn check_key(&self, key: &str) -> Result<(), KvsError> {
        let len = key.chars().count();
        if len <= 1 {
            return Err(err(
                KvsErrorCode::KeyTooShort,
                format!("key `{key}` is {len} characters; keys need at least 2"),
            ));
        }
        if len > self.limits.max_key_len {
            return Err(err(
                KvsErrorCode::KeyTooLong,
                format!(
                    "key of {len} characters; keys allow {}",
                    self.limits.max_key_len
                ),
            ));
        }
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || ":._#-".contains(c) || c.is_whitespace();
        if let Some(bad) = key.chars().find(|c| !allowed(*c) || *c == SEP) {
            return Err(err(
                KvsErrorCode::InvalidKey,
                format!(
                    "key `{key}` contains `{bad}`; keys allow [a-zA-Z0-9:._#-] and white space"
                ),
            ));
        }
        if key.trim().is_empty() {
            return Err(err(
                KvsErrorCode::InvalidKey,
                "a key may not be only white space",
            ));
        }
        Ok(())
    }
}

/// The value of JSON text read back from the store (checked when it was set).
fn parse_stored_value(key: &str, text: &str) -> Result<Json, KvsError> {
    serde_json::from_str(text).map_err(|e| {
        err(
            KvsErrorCode::StorageUnavailable,
            format!("stored value of `{key}` is damaged: {e}"),
        )
    })
}

/// One key of a data directory written by a run with `KvsStorage::Redb`, for
/// `signoff sim inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredKey {
    pub realm: Realm,
    pub scope: Scope,
    /// The app's key; secrets are shown as `secret:<key>` with the value hidden.
    pub key: String,
    pub value: Json,
}

/// Everything stored in a data directory (one redb file per realm), in realm, then key
/// order. Expired values are shown too: expiry is judged on the run's virtual clock.
///
/// Files are read, never written or created: a directory without any realm file, or an
/// empty or damaged one, is an error naming it (redb's panics on damaged files are
/// contained).
pub fn inspect_dir(dir: &std::path::Path) -> Result<Vec<StoredKey>, KvsError> {
    let mut out = Vec::new();
    let mut found = false;
    for realm in Realm::ALL {
        let path = dir.join(format!("{realm}.redb"));
        if !path.exists() {
            continue;
        }
        found = true;
        let damaged = |panic: String| {
            unavailable(BackendError(format!(
                "{}: the file is damaged: {panic}",
                path.display()
            )))
        };
        let rows = signoff_storage::contain::contain(|| {
            let backend = crate::redb_backend::RedbBackend::open_read_only(&path)?;
            backend.range("", None, usize::MAX)
        })
        .map_err(damaged)?
        .map_err(unavailable)?;
        for (k, v) in rows {
            let mut parts = k.splitn(4, SEP);
            let (Some(app), Some(environment), Some(installation), Some(rest)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(kind) = rest.chars().next() else {
                continue;
            };
            let key = &rest[kind.len_utf8()..];
            let (key, value) = match kind {
                's' => (format!("secret:{key}"), Json::String("<secret>".into())),
                'e' => (
                    match key.split_once(ENTITY_SEP) {
                        Some((entity, key)) => format!("entity:{entity}/{key}"),
                        None => format!("entity:{key}"),
                    },
                    serde_json::from_str::<Stored>(&v).map_or(Json::Null, |s| s.value),
                ),
                _ => (
                    key.to_string(),
                    serde_json::from_str::<Stored>(&v).map_or(Json::Null, |s| s.value),
                ),
            };
            out.push(StoredKey {
                realm,
                scope: Scope {
                    app: app.to_string(),
                    environment: environment.to_string(),
                    installation: installation.to_string(),
                },
                key,
                value,
            });
        }
    }
    if !found {
        let names: Vec<String> = Realm::ALL.iter().map(|r| format!("{r}.redb")).collect();
        return Err(unavailable(BackendError(format!(
            "no realm store ({}) in {}",
            names.join(", "),
            dir.display()
        ))));
    }
    Ok(out)
}

fn scope_prefix(scope: &Scope) -> String {
    format!(
        "{}{SEP}{}{SEP}{}{SEP}",
        scope.app, scope.environment, scope.installation
    )
}

/// A physical key in its long form (as files store it, and as cursors name it).
fn long_physical(scope: &Scope, kind: char, key: &str) -> String {
    let mut k = scope_prefix(scope);
    k.push(kind);
    k.push_str(key);
    k
}

/// Cursors are opaque to apps: the last physical key, hex-encoded.
fn encode_cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(c: &str) -> Option<String> {
    if !c.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}
