//! [`MemoryKvs`]: a reference [`Kvs`] in memory that enforces the platform's limits and
//! error codes, for tests of anything that writes to the hosted store, with fault injection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    KeyPolicy, Kvs, KvsError, KvsOp, KvsPage, MAX_KEY_LEN, MAX_PAGE, MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_OPS, MAX_VALUE_BYTES,
};

/// The deepest nesting of a JSON value the platform stores.
pub const MAX_VALUE_DEPTH: usize = 31;

/// One installation's hosted store in memory. It refuses what the platform refuses, with the
/// same codes: keys (`KEY_TOO_SHORT`, `KEY_TOO_LONG`, `INVALID_KEY`), values (`MAX_SIZE`,
/// and two of ours, `INVALID_VALUE` for text that is not JSON and `VALUE_TOO_DEEP`),
/// transactions (`TOO_MANY_OPERATIONS`, `DUPLICATE_KEY_IN_TRANSACTION`,
/// `TRANSACTION_TOO_LARGE`, `KEY_CONFLICT`), queries (`INVALID_LIMIT`, `INVALID_CURSOR`).
/// Queries are strongly consistent here (the platform's are eventually consistent).
///
/// Clones share one store (an `Arc` inside), so several writers can race on it. Every call
/// is atomic; a refused call changes nothing. [`MemoryKvs::fail_next`] and
/// [`MemoryKvs::fail_after`] make calls fail with `STORAGE_UNAVAILABLE`.
#[derive(Debug, Clone, Default)]
pub struct MemoryKvs {
    inner: Arc<Mutex<State>>,
}

/// What a [`MemoryKvs`] has seen: calls, refusals, and the largest key, value and
/// transaction it accepted (to show that a client stays inside the limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryKvsStats {
    /// Every call, refused or not.
    pub calls: u64,
    /// Calls refused, for any reason (including injected failures).
    pub refused: u64,
    /// Transactions applied.
    pub transactions: u64,
    pub max_key_chars: usize,
    pub max_value_bytes: usize,
    pub max_transaction_ops: usize,
    pub max_transaction_bytes: usize,
    /// The largest page a query returned.
    pub max_page: usize,
}

#[derive(Debug, Default)]
struct State {
    map: BTreeMap<String, String>,
    stats: MemoryKvsStats,
    /// Calls to let through before the injected failures start.
    fail_after: u64,
    /// Calls to fail once `fail_after` is spent.
    fail: u32,
}

impl MemoryKvs {
    /// An empty store.
    pub fn new() -> MemoryKvs {
        MemoryKvs::default()
    }

    /// The next `calls` calls fail with `STORAGE_UNAVAILABLE` and change nothing.
    pub fn fail_next(&self, calls: u32) {
        self.fail_after(0, calls);
    }

    /// After `ok` more calls succeed (or are refused on their merits), the `calls` calls after
    /// them fail with `STORAGE_UNAVAILABLE` and change nothing.
    pub fn fail_after(&self, ok: u64, calls: u32) {
        let mut s = self.lock();
        s.fail_after = ok;
        s.fail = calls;
    }

    pub fn stats(&self) -> MemoryKvsStats {
        self.lock().stats
    }

    /// Every key and value, in key order.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.lock()
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Stores `raw` under `key` without any check: a damaged store, for tests.
    pub fn damage(&self, key: &str, raw: &str) {
        self.lock().map.insert(key.to_owned(), raw.to_owned());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the map consistent (changes are applied after all
        // checks), so a poisoned lock still holds good data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call and runs `f`, unless an injected failure is due.
    fn call<T>(&self, f: impl FnOnce(&mut State) -> Result<T, KvsError>) -> Result<T, KvsError> {
        let mut s = self.lock();
        s.stats.calls += 1;
        let result = if s.fail_after > 0 {
            s.fail_after -= 1;
            f(&mut s)
        } else if s.fail > 0 {
            s.fail -= 1;
            Err(err(
                KvsError::STORAGE_UNAVAILABLE,
                "injected failure: the store is unavailable",
            ))
        } else {
            f(&mut s)
        };
        if result.is_err() {
            s.stats.refused += 1;
        }
        result
    }
}

impl Kvs for MemoryKvs {
    fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        self.call(|s| {
            check_key(key)?;
            Ok(s.map.get(key).cloned())
        })
    }

    fn set(&self, key: &str, value: &str, policy: KeyPolicy) -> Result<(), KvsError> {
        self.transact(vec![KvsOp::Set {
            key: key.to_owned(),
            value: value.to_owned(),
            policy,
        }])
        .map(|_| ())
    }

    fn delete(&self, key: &str) -> Result<(), KvsError> {
        self.transact(vec![KvsOp::Delete {
            key: key.to_owned(),
        }])
    }

    fn query(&self, prefix: &str, limit: u32, cursor: Option<&str>) -> Result<KvsPage, KvsError> {
        self.call(|s| {
            if limit == 0 || limit > MAX_PAGE {
                return Err(err(
                    "INVALID_LIMIT",
                    format!("limit {limit} is outside 1 to {MAX_PAGE}"),
                ));
            }
            let after = match cursor {
                None => None,
                Some(c) => Some(
                    decode_cursor(c)
                        .filter(|k| k.starts_with(prefix))
                        .ok_or_else(|| {
                            err(
                                "INVALID_CURSOR",
                                format!("cursor `{c}` was not issued for a query of `{prefix}`"),
                            )
                        })?,
                ),
            };
            let start = match &after {
                Some(k) => std::ops::Bound::Excluded(k.clone()),
                None => std::ops::Bound::Included(prefix.to_owned()),
            };
            let limit = limit as usize;
            let mut entries: Vec<(String, String)> = s
                .map
                .range((start, std::ops::Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit + 1)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let more = entries.len() > limit;
            entries.truncate(limit);
            s.stats.max_page = s.stats.max_page.max(entries.len());
            let cursor = match entries.last() {
                Some((last, _)) if more => Some(encode_cursor(last)),
                _ => None,
            };
            Ok(KvsPage { entries, cursor })
        })
    }

    fn transact(&self, ops: Vec<KvsOp>) -> Result<(), KvsError> {
        self.call(|s| {
            if ops.len() > MAX_TRANSACTION_OPS {
                return Err(err(
                    "TOO_MANY_OPERATIONS",
                    format!(
                        "{} operations; a transaction allows {MAX_TRANSACTION_OPS}",
                        ops.len()
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            let mut bytes = 0usize;
            let mut max_value = 0usize;
            let mut max_key = 0usize;
            for op in &ops {
                let key = match op {
                    KvsOp::Set { key, .. } | KvsOp::Delete { key } => key,
                };
                max_key = max_key.max(check_key(key)?);
                if !seen.insert(key.as_str()) {
                    return Err(err(
                        "DUPLICATE_KEY_IN_TRANSACTION",
                        format!("key `{key}` appears twice in one transaction"),
                    ));
                }
                bytes += key.len();
                if let KvsOp::Set { value, policy, .. } = op {
                    check_value(key, value)?;
                    if *policy == KeyPolicy::FailIfExists && s.map.contains_key(key) {
                        return Err(err(
                            KvsError::KEY_CONFLICT,
                            format!("key `{key}` exists (FAIL_IF_EXISTS)"),
                        ));
                    }
                    bytes += value.len();
                    max_value = max_value.max(value.len());
                }
            }
            if bytes > MAX_TRANSACTION_BYTES {
                return Err(err(
                    "TRANSACTION_TOO_LARGE",
                    format!("{bytes} bytes; a transaction allows {MAX_TRANSACTION_BYTES}"),
                ));
            }
            let st = &mut s.stats;
            st.transactions += 1;
            st.max_key_chars = st.max_key_chars.max(max_key);
            st.max_value_bytes = st.max_value_bytes.max(max_value);
            st.max_transaction_ops = st.max_transaction_ops.max(ops.len());
            st.max_transaction_bytes = st.max_transaction_bytes.max(bytes);
            for op in ops {
                match op {
                    KvsOp::Set { key, value, .. } => {
                        s.map.insert(key, value);
                    }
                    KvsOp::Delete { key } => {
                        s.map.remove(&key);
                    }
                }
            }
            Ok(())
        })
    }
}

fn err(code: &str, message: impl Into<String>) -> KvsError {
    KvsError {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Checks a key against platform.md §6 and returns its length in characters.
fn check_key(key: &str) -> Result<usize, KvsError> {
    let len = key.chars().count();
    if len <= 1 {
        return Err(err(
            "KEY_TOO_SHORT",
            format!("key `{key}` is {len} characters; keys need at least 2"),
        ));
    }
    if len > MAX_KEY_LEN {
        return Err(err(
            "KEY_TOO_LONG",
            format!("key of {len} characters; keys allow {MAX_KEY_LEN}"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":._#-".contains(c) || c.is_whitespace();
    if let Some(bad) = key.chars().find(|c| !allowed(*c)) {
        return Err(err(
            "INVALID_KEY",
            format!("key `{key}` contains {bad:?}; keys allow [a-zA-Z0-9:._#-] and white space"),
        ));
    }
    if key.trim().is_empty() {
        return Err(err("INVALID_KEY", "a key may not be only white space"));
    }
    Ok(len)
}

fn check_value(key: &str, value: &str) -> Result<(), KvsError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(err(
            "MAX_SIZE",
            format!(
                "value of `{key}` is {} bytes; values allow {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    let depth = depth(value);
    if depth > MAX_VALUE_DEPTH {
        return Err(err(
            "VALUE_TOO_DEEP",
            format!("value of `{key}` nests {depth} levels; values allow {MAX_VALUE_DEPTH}"),
        ));
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(value) {
        return Err(err(
            "INVALID_VALUE",
            format!("value of `{key}` is not JSON: {e}"),
        ));
    }
    Ok(())
}

/// The nesting depth of JSON text (arrays and objects), counted without recursion so that a
/// hostile value cannot overflow the stack; text that is not JSON is refused afterwards.
fn depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // The values inside the innermost container are one more level (a scalar is one).
    max + 1
}

/// Cursors are opaque to clients: the last key of the page, hex-encoded.
fn encode_cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(c: &str) -> Option<String> {
    if c.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}
