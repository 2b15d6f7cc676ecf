//! Egress addresses as the manifest writes them: `*`, `*.host`, `host`, or a URL.

/// An address taken apart. Parsing never fails: what cannot be understood is kept as the host
/// so that it can still be compared and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `https`, `wss`, `http`, ... when written.
    pub scheme: Option<String>,
    /// Lower-cased host, with a leading `*.` kept, without port.
    pub host: String,
    /// The path after the host, if any other than `/`.
    pub path: Option<String>,
}

impl Address {
    pub fn parse(raw: &str) -> Address {
        let raw = raw.trim();
        // Byte-wise searches: the patterns are ASCII, so the indexes are the same as `str`'s,
        // without a substring searcher's set-up (this runs for every egress entry).
        let separator = (0..raw.len()).find(|&i| raw.as_bytes()[i..].starts_with(b"://"));
        let (scheme, rest) = match separator {
            Some(i) => (Some(raw[..i].to_ascii_lowercase()), &raw[i + 3..]),
            None => match raw.split_once(':') {
                // `javascript:`, `data:`, `file:` and similar have no `//`.
                Some((s, rest))
                    if !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_alphabetic())
                        && !rest.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    (Some(s.to_ascii_lowercase()), rest)
                }
                _ => (None, raw),
            },
        };
        let (authority, path) = match rest.bytes().position(|b| matches!(b, b'/' | b'?' | b'#')) {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let authority = authority
            .rfind('@')
            .map_or(authority, |at| &authority[at + 1..]);
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let path = path.filter(|p| *p != "/").map(str::to_string);
        Address { scheme, host, path }
    }

    /// Whether the address is the global wildcard `*`.
    pub fn is_global(&self) -> bool {
        self.host == "*"
    }

    /// Whether the address is or may contain an unexpanded `${VAR}` placeholder.
    pub fn has_placeholder(&self) -> bool {
        self.host.contains("${")
    }

    /// Whether this address is `host` or a wildcard that covers it (`*.wp.com` covers
    /// `i0.wp.com`), or `host` is a wildcard pattern equal to this one.
    pub fn matches_host(&self, pattern: &str) -> bool {
        host_matches(pattern, &self.host)
    }

    /// A stable text for comparing two versions of a manifest: scheme (https when omitted),
    /// host and path.
    pub fn canonical(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_deref().unwrap_or("https"),
            self.host,
            self.path.as_deref().unwrap_or("")
        )
    }
}

/// Whether `host` is covered by `pattern` (`*.example.com` covers `a.example.com` and
/// `*.example.com` itself).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_manifests_use() {
        let a = Address::parse("https://App.Example.com:8443/api/v2?x=1");
        assert_eq!(a.scheme.as_deref(), Some("https"));
        assert_eq!(a.host, "app.example.com");
        assert_eq!(a.path.as_deref(), Some("/api/v2?x=1"));
        let b = Address::parse("*.testplanit.com");
        assert_eq!(
            (b.scheme, b.host.as_str(), b.path),
            (None, "*.testplanit.com", None)
        );
        let c = Address::parse("javascript:alert(1)");
        assert_eq!(c.scheme.as_deref(), Some("javascript"));
        let d = Address::parse("localhost:3000");
        assert_eq!((d.scheme, d.host.as_str()), (None, "localhost"));
        assert_eq!(Address::parse("https://x.com/").path, None);
        assert!(Address::parse("*").is_global());
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(host_matches("*.wp.com", "i0.wp.com"));
        assert!(host_matches("*.wp.com", "*.wp.com"));
        assert!(!host_matches("*.wp.com", "wp.com"));
        assert!(!host_matches("*.wp.com", "evilwp.com"));
    }
}
