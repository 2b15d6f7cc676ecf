//! The egress gate: what a manifest allows, what the admin blocks, what is recorded.

use std::collections::BTreeMap;

use signoff_sim::egress::{
    AdminSwitches, BlockReason, EgressPolicy, Request, Verdict, destination,
};

const MANIFEST: &str = r#"
app:
  id: ari:cloud:ecosystem::app/11111111-2222-3333-4444-555555555555
permissions:
  external:
    fetch:
      backend:
        - address: https://analytics.example.com
          category: analytics
          inScopeEUD: false
        - address: "*.partner.example.net"
        - address: ${HOOK_HOST}
        - address: ${UNSET}
        - remote: backend
    images:
      - address: https://images.example.org
"#;

fn policy() -> EgressPolicy {
    let m = roa_check::load("manifest.yml", MANIFEST.as_bytes()).unwrap();
    let env = BTreeMap::from([("HOOK_HOST".to_string(), "hooks.example.com".to_string())]);
    EgressPolicy::from_manifest(&m, &env)
}

fn get(url: &str) -> Request {
    Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body_bytes: 0,
    }
}

/// Judges `req` with `admin` switches and compares with `expect`.
fn check(req: Request, admin: AdminSwitches, expect: Result<(bool, bool), BlockReason>) {
    let got = match policy().check(&req, admin) {
        Verdict::Allowed {
            analytics,
            in_scope_eud,
            ..
        } => Ok((analytics, in_scope_eud)),
        Verdict::Blocked(r) => Err(r),
    };
    assert_eq!(got, expect, "{}", req.url);
}

const OPEN: AdminSwitches = AdminSwitches {
    analytics_blocked: false,
    logs_blocked: false,
};
const NO_ANALYTICS: AdminSwitches = AdminSwitches {
    analytics_blocked: true,
    logs_blocked: false,
};

#[test]
fn declared_hosts_are_allowed_with_their_category() {
    check(
        get("https://analytics.example.com/v1/events"),
        OPEN,
        Ok((true, false)),
    );
    check(
        get("https://a.partner.example.net/x"),
        OPEN,
        Ok((false, true)),
    );
    check(
        get("https://hooks.example.com/post"),
        OPEN,
        Ok((false, true)),
    );
}

#[test]
fn everything_else_is_blocked_with_a_reason() {
    check(
        get("https://evil.example.com/"),
        OPEN,
        Err(BlockReason::NotDeclared),
    );
    check(
        get("https://partner.example.net/"),
        OPEN,
        Err(BlockReason::NotDeclared),
    );
    check(
        get("https://images.example.org/a.png"),
        OPEN,
        Err(BlockReason::NotDeclared),
    );
    check(
        get("http://analytics.example.com/"),
        OPEN,
        Err(BlockReason::InsecureScheme),
    );
    check(get("https:///nohost"), OPEN, Err(BlockReason::MalformedUrl));
    check(
        get("https://analytics.example.com/"),
        NO_ANALYTICS,
        Err(BlockReason::AnalyticsBlockedByAdmin),
    );
    let mut forged = get("https://analytics.example.com/");
    forged
        .headers
        .push(("Host".into(), "evil.example.com".into()));
    check(forged, OPEN, Err(BlockReason::ForgedHostHeader));
}

#[test]
fn the_ledger_records_host_and_path_without_the_query() {
    assert_eq!(
        destination("https://hooks.example.com/post?page=secret#x"),
        "hooks.example.com/post"
    );
    assert_eq!(
        destination("https://hooks.example.com"),
        "hooks.example.com"
    );
}
