//! The key layout of [`HostedStore`](super::HostedStore): every key it writes, built in one
//! place so that the limits (length, alphabet) are checked by construction.
//!
//! A key is `PREFIX:KIND:COMPONENT...`. Names that come from users (document ids, states,
//! reviewers, workflow hashes) become *components*: bytes outside `[a-zA-Z0-9.-]` are
//! escaped as `_` and two upper-case hex digits (reversible: `_` is always escaped itself;
//! and never `:`, so `COMPONENT:` is an exact prefix for queries); a component whose escaped form is longer than
//! [`MAX_COMPONENT`] is replaced by `#` and the SHA-256 of the name (`#` is always escaped
//! otherwise, so the two forms never meet). Values always carry the original name, so
//! nothing is ever read back from a hashed key. Numbers are fixed-width lower-case hex, so
//! that their keys sort like the numbers.

use signoff_core::audit::sha256_hex;

/// The longest escaped component kept readable; longer names are hashed (65 characters).
pub(crate) const MAX_COMPONENT: usize = 120;
/// The longest namespace prefix.
pub(crate) const MAX_PREFIX: usize = 64;

/// A name as a key component (see the module docs).
pub(crate) fn component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
        if out.len() > MAX_COMPONENT {
            return format!("#{}", sha256_hex(name.as_bytes()));
        }
    }
    out
}

/// Whether `prefix` can namespace a store: 1 to [`MAX_PREFIX`] characters from
/// `[a-zA-Z0-9._-]` (no `:`, so that two prefixes never overlap).
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    (1..=MAX_PREFIX).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A `u64` as 16 hex digits: keys sort like the numbers.
pub(crate) fn num(n: u64) -> String {
    format!("{n:016x}")
}

/// An `i64` as 16 hex digits that sort like the numbers (sign bit flipped).
pub(crate) fn signed(n: i64) -> String {
    num((n as u64) ^ (1 << 63))
}

/// The inverse of [`signed`].
pub(crate) fn parse_signed(s: &str) -> Option<i64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16)
        .ok()
        .map(|v| (v ^ (1 << 63)) as i64)
}

/// The keys of one store (one prefix). Arguments named `d`, `state`, `user` and `hash` are
/// components (already passed through [`component`]).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// A document's stream head: its length.
    pub fn head(&self, d: &str) -> String {
        self.key(&["h", d])
    }
    pub fn heads(&self) -> String {
        self.key(&["h", ""])
    }
    /// The append whose first record is `first`.
    pub fn append(&self, d: &str, first: u64) -> String {
        self.key(&["a", d, &num(first)])
    }
    pub fn appends(&self, d: &str) -> String {
        self.key(&["a", d, ""])
    }
    /// Part `i` of the append at `first` whose text has the SHA-256 `sha`.
    pub fn append_part(&self, d: &str, first: u64, sha: &str, i: u32) -> String {
        self.key(&["x", d, &num(first), short(sha), &format!("{i:08x}")])
    }
    /// A document's index row.
    pub fn row(&self, d: &str) -> String {
        self.key(&["r", d])
    }
    /// Taken (`FAIL_IF_EXISTS`) by the write that makes revision `rev` of a row.
    pub fn row_mark(&self, d: &str, rev: u64) -> String {
        self.key(&["rm", d, &num(rev)])
    }
    pub fn by_state(&self, state: &str, d: &str) -> String {
        self.key(&["s", state, d])
    }
    pub fn by_state_prefix(&self, state: &str) -> String {
        self.key(&["s", state, ""])
    }
    pub fn by_reviewer(&self, user: &str, d: &str) -> String {
        self.key(&["u", user, d])
    }
    pub fn by_reviewer_prefix(&self, user: &str) -> String {
        self.key(&["u", user, ""])
    }
    pub fn by_due(&self, due: i64, d: &str) -> String {
        self.key(&["t", &signed(due), d])
    }
    pub fn by_due_prefix(&self) -> String {
        self.key(&["t", ""])
    }
    /// The last outbox batch number handed out.
    pub fn outbox_next(&self) -> String {
        self.key(&["on"])
    }
    /// Taken by the enqueue whose first batch is `batch`.
    pub fn outbox_mark(&self, batch: u64) -> String {
        self.key(&["oa", &num(batch)])
    }
    pub fn outbox(&self, batch: u64) -> String {
        self.key(&["o", &num(batch)])
    }
    pub fn outboxes(&self) -> String {
        self.key(&["o", ""])
    }
    /// Taken by the acknowledgement that makes revision `rev` of a batch.
    pub fn outbox_ack_mark(&self, batch: u64, rev: u64) -> String {
        self.key(&["om", &num(batch), &num(rev)])
    }
    pub fn workflow(&self, hash: &str) -> String {
        self.key(&["w", hash])
    }
    pub fn workflow_part(&self, hash: &str, sha: &str, i: u32) -> String {
        self.key(&["wx", hash, short(sha), &format!("{i:08x}")])
    }
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0xf)])
}
