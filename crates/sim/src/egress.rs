//! The egress gate: every outbound request an app makes is matched against its manifest's
//! `permissions.external.fetch.backend`, the site admin's switches, and recorded in the
//! ledger whether it was allowed or not.
//!
//! Blocked requests fail as the platform's do, with `REQUEST_EGRESS_ALLOWLIST_ERR`. Calls to
//! the host product's own API are not egress and never come here.

use std::collections::BTreeMap;

use roa_check::address::{Address, host_matches};
use roa_check::model::{EgressKind, EgressList, Manifest};
use serde::Serialize;

use crate::clock::Millis;
use crate::realm::Realm;

/// The error code apps see for a blocked request.
pub const EGRESS_ERROR_CODE: &str = "REQUEST_EGRESS_ALLOWLIST_ERR";

/// What the manifest allows a backend function to reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    entries: Vec<Allowed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    /// `*`, `*.example.com` or `api.example.com`, lower case.
    host: String,
    /// When the manifest wrote one (`https`, `wss`), the request must use it.
    scheme: Option<String>,
    analytics: bool,
    in_scope_eud: bool,
    /// The manifest path of the entry, for the ledger.
    path: String,
}

/// The site admin's switches for one installation (platform.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AdminSwitches {
    pub analytics_blocked: bool,
    pub logs_blocked: bool,
}

/// An outbound request as the app asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
}

/// Why a request was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// No `fetch.backend` entry of the manifest covers the host.
    NotDeclared,
    /// The entry is analytics egress and the site admin turned analytics off.
    AnalyticsBlockedByAdmin,
    /// `http://` or another scheme than `https`/`wss`.
    InsecureScheme,
    /// A `Host` header naming another host than the URL (domain fronting).
    ForgedHostHeader,
    /// A URL without a host.
    MalformedUrl,
    /// A Node app opened a socket itself (`net`, `tls`, `http2`) instead of using `fetch`.
    RawSocket,
    /// A Node app looked a name up itself (`dns`).
    NameLookup,
}

impl BlockReason {
    pub fn describe(self) -> &'static str {
        match self {
            BlockReason::NotDeclared => {
                "the host is not declared in permissions.external.fetch.backend"
            }
            BlockReason::AnalyticsBlockedByAdmin => "the site admin blocked analytics egress",
            BlockReason::InsecureScheme => "only https:// and wss:// may leave the platform",
            BlockReason::ForgedHostHeader => "the Host header names another host than the URL",
            BlockReason::MalformedUrl => "the URL has no host",
            BlockReason::RawSocket => "apps reach the network only through fetch, not raw sockets",
            BlockReason::NameLookup => "apps may not look names up themselves",
        }
    }
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        analytics: bool,
        in_scope_eud: bool,
        /// The manifest path of the entry that allowed it.
        entry: String,
    },
    Blocked(BlockReason),
}

/// One line of the egress ledger: every attempt, allowed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressAttempt {
    pub at: Millis,
    pub site: String,
    pub installation: String,
    pub realm: Realm,
    pub method: String,
    /// Host and path (no query string: it may carry data, and the ledger counts bytes).
    pub destination: String,
    /// `analytics` or `other`.
    pub category: &'static str,
    pub in_scope_eud: bool,
    pub bytes: usize,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_because: Option<BlockReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_entry: Option<String>,
    /// What the request carried that the platform recognises as the site's end-user data:
    /// `page 100001 body` (its body or URL holds a page's body or title), else `account
    /// alice` (an account id of one of the site's people, as a word of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carries: Option<String>,
}

impl EgressPolicy {
    /// The backend fetch policy of a manifest. `${VAR}` placeholders are replaced from `env`
    /// (the app's environment variables); an entry whose placeholder has no value allows
    /// nothing.
    pub fn from_manifest(m: &Manifest, env: &BTreeMap<String, String>) -> EgressPolicy {
        let mut entries = Vec::new();
        for e in m
            .egress
            .iter()
            .filter(|e| e.list == EgressList::FetchBackend)
        {
            let raw = match &e.kind {
                EgressKind::Legacy(a) | EgressKind::Object { address: a, .. } => a.clone(),
                // Remotes are not simulated: nothing is reachable through them.
                EgressKind::Remote(_) => continue,
            };
            let Some(raw) = expand(&raw, env) else {
                continue;
            };
            let addr = Address::parse(&raw);
            if addr.host.is_empty() {
                continue;
            }
            entries.push(Allowed {
                host: addr.host,
                scheme: addr.scheme,
                analytics: e.is_analytics(),
                in_scope_eud: e.in_scope_eud(),
                path: e.loc.path.clone(),
            });
        }
        // Most specific first: an exact host, then wildcards by length, then `*`.
        entries.sort_by_key(|a| {
            let wildcard = a.host.starts_with('*');
            (wildcard, std::cmp::Reverse(a.host.len()))
        });
        EgressPolicy { entries }
    }

    /// Judges one request.
    pub fn check(&self, req: &Request, admin: AdminSwitches) -> Verdict {
        let addr = Address::parse(&req.url);
        match addr.scheme.as_deref() {
            Some("https") | Some("wss") => {}
            _ => return Verdict::Blocked(BlockReason::InsecureScheme),
        }
        if addr.host.is_empty() || addr.host.contains('*') {
            return Verdict::Blocked(BlockReason::MalformedUrl);
        }
        let forged = req.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("host") && Address::parse(value).host != addr.host
        });
        if forged {
            return Verdict::Blocked(BlockReason::ForgedHostHeader);
        }
        let Some(entry) = self.entries.iter().find(|a| {
            (a.host == "*" || host_matches(&a.host, &addr.host))
                && a.scheme
                    .as_ref()
                    .is_none_or(|s| Some(s) == addr.scheme.as_ref())
        }) else {
            return Verdict::Blocked(BlockReason::NotDeclared);
        };
        if entry.analytics && admin.analytics_blocked {
            return Verdict::Blocked(BlockReason::AnalyticsBlockedByAdmin);
        }
        Verdict::Allowed {
            analytics: entry.analytics,
            in_scope_eud: entry.in_scope_eud,
            entry: entry.path.clone(),
        }
    }
}

/// Replaces `${VAR}` from `env`; `None` when a placeholder has no value.
fn expand(raw: &str, env: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        out.push_str(env.get(&rest[start + 2..end])?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Where a request goes, for the ledger: host and path without the query string.
pub fn destination(url: &str) -> String {
    let addr = Address::parse(url);
    let path = addr
        .path
        .as_deref()
        .map(|p| p.split(['?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    format!("{}{path}", addr.host)
}
