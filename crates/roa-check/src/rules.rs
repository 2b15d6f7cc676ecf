//! The Runs-on-Atlassian eligibility rules (platform.md §3) and the validator warnings on
//! egress entries (platform.md §2).
//!
//! Rule names follow the ones the Forge CLI prints (`HAS_DEFINED_EGRESS`, ...), so that users
//! recognise them. Where Atlassian's material is unclear we take the stricter reading and say
//! so in the message and in the README.

use crate::address::{Address, host_matches};
use crate::finding::{Finding, Severity};
use crate::model::{Egress, EgressKind, EgressList, Loc, Manifest};

/// The six rules that decide eligibility, with a one-line description each (for `--help`,
/// SARIF rule metadata and the README).
pub const ELIGIBILITY_RULES: &[(&str, &str)] = &[
    (
        "HAS_REMOTES",
        "the app declares remotes, or an endpoint/remote module or egress entry points at one",
    ),
    (
        "HAS_CONNECT_MODULES",
        "the app uses Connect modules (connectModules or connect-*:* module types)",
    ),
    (
        "HAS_DEFINED_EGRESS",
        "the app declares egress that is not analytics with inScopeEUD: false",
    ),
    ("HAS_PROVIDERS", "the app declares external auth providers"),
    (
        "HAS_EGRESS_WEBTRIGGER_MODULE",
        "the app has a web trigger whose response is not static",
    ),
    (
        "HAS_NON_DARE_COMPLIANT_SQL_MODULE",
        "the app has an sql module marked dareCompliant: false",
    ),
];

/// The warnings roa-check gives, with a one-line description each. They never change the
/// verdict; most are what the Forge validator would reject or deprecate.
pub const WARNING_RULES: &[(&str, &str)] = &[
    (
        "ATLASSIAN_DOMAIN_EGRESS",
        "an Atlassian domain is declared for fetch or scripts",
    ),
    (
        "BACKEND_ADDRESS_PATH",
        "a fetch.backend address has a path, which is ignored",
    ),
    (
        "CSP_KEYWORD_AS_ADDRESS",
        "a CSP keyword such as unsafe-inline is listed as an egress address",
    ),
    (
        "DEPRECATED_EGRESS_STRING",
        "an egress entry is a plain string (deprecated)",
    ),
    ("DUPLICATE_SCOPE", "a scope is listed twice"),
    ("GLOBAL_EGRESS", "an egress entry is the global wildcard *"),
    (
        "INSECURE_EGRESS_ADDRESS",
        "an egress address uses http:// or ws://",
    ),
    ("INVALID_APP_ID", "app.id is not an app ARI"),
    (
        "INVALID_EGRESS_ADDRESS",
        "an egress address uses a scheme such as javascript:, data: or file:",
    ),
    (
        "INVALID_EGRESS_CATEGORY",
        "an egress category other than analytics",
    ),
    (
        "INVALID_EGRESS_ENTRY",
        "an egress entry object without address, or a remote entry outside fetch",
    ),
    ("INVALID_IN_SCOPE_EUD", "inScopeEUD is not a boolean"),
    (
        "INVALID_INTERVAL",
        "a scheduledTrigger interval is not fiveMinute, hour, day or week",
    ),
    ("INVALID_MEMORY", "memoryMB is outside 128 to 1024"),
    ("INVALID_TIMEOUT", "timeoutSeconds is outside 1 to 900"),
    (
        "INVALID_WEBTRIGGER_OUTPUTS",
        "a static web trigger has no outputs, or more than 20",
    ),
    (
        "MISPLACED_EGRESS_LIST",
        "a list under fetch other than backend or client",
    ),
    ("MISSING_APP", "the manifest has no app section"),
    ("MISSING_APP_ID", "app.id is missing"),
    ("MISSING_MODULE_KEY", "a module has no key"),
    (
        "REMOTE_STORAGE_WITHOUT_IN_SCOPE_EUD",
        "a remote lists the storage operation without storage.inScopeEUD",
    ),
    ("UNKNOWN_KEY", "a key the manifest format does not have"),
    (
        "UNKNOWN_MODULE_TYPE",
        "a module type roa-check does not know",
    ),
    (
        "UNKNOWN_REMOTE",
        "an egress entry names a remote that is not declared",
    ),
    (
        "UNSUPPORTED_RUNTIME",
        "app.runtime.name is not a supported runtime",
    ),
    (
        "WRONG_TYPE",
        "a value of the wrong type (a string where a list belongs, ...)",
    ),
    (
        "YAML_WARNING",
        "a YAML oddity: duplicate keys, several documents, a bad merge key",
    ),
];

/// Evaluates every rule on a loaded manifest. Findings come sorted by position.
pub fn evaluate(m: &Manifest) -> Vec<Finding> {
    let mut out = Findings(m.warnings.clone());
    remotes(m, &mut out);
    connect(m, &mut out);
    egress(m, &mut out);
    providers(m, &mut out);
    webtriggers(m, &mut out);
    sql(m, &mut out);
    let mut findings = out.0;
    findings.sort_by(|a, b| {
        (a.line, a.column, a.severity, a.rule).cmp(&(b.line, b.column, b.severity, b.rule))
    });
    findings
}

struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, rule: &'static str, severity: Severity, loc: &Loc, message: String) {
        self.0.push(Finding {
            rule,
            severity,
            message,
            path: loc.path.clone(),
            line: loc.pos.line,
            column: loc.pos.column,
        });
    }

    fn error(&mut self, rule: &'static str, loc: &Loc, message: String) {
        self.push(rule, Severity::Error, loc, message);
    }

    fn warning(&mut self, rule: &'static str, loc: &Loc, message: String) {
        self.push(rule, Severity::Warning, loc, message);
    }
}

fn remotes(m: &Manifest, out: &mut Findings) {
    for r in &m.remotes {
        let what = match &r.operations {
            None => {
                "declares no `operations`, so the platform assumes it stores in-scope End-User Data"
                    .to_string()
            }
            Some(ops) => format!("is used for {}", ops.join(", ")),
        };
        out.error(
            "HAS_REMOTES",
            &r.loc,
            format!("remote `{}` runs outside Atlassian and {what}", r.key),
        );
    }
    for module in m.modules_of("endpoint").chain(m.modules_of("remote")) {
        let target = module
            .field("remote")
            .map(|r| format!(" served by remote `{r}`"))
            .unwrap_or_default();
        out.error(
            "HAS_REMOTES",
            &module.loc,
            format!(
                "{}{target} sends invocations outside Atlassian",
                module.label()
            ),
        );
    }
    if let Some((_, endpoint)) = m.root.get_entry("endpoint") {
        out.error(
            "HAS_REMOTES",
            &Loc {
                path: "endpoint".into(),
                pos: endpoint.pos,
            },
            "a top-level `endpoint` routes invocations to a remote".into(),
        );
    }
    if let Some(remote) = &m.app.connect_remote {
        out.error(
            "HAS_REMOTES",
            &remote.loc,
            format!(
                "the Connect app is served by remote `{}` outside Atlassian",
                remote.value
            ),
        );
    }
    for e in &m.egress {
        if let EgressKind::Remote(key) = &e.kind {
            out.error(
                "HAS_REMOTES",
                &e.loc,
                format!("{} allows calls to remote `{key}`", e.list.name()),
            );
            if !e.list.is_fetch() {
                out.warning(
                    "INVALID_EGRESS_ENTRY",
                    &e.loc,
                    format!(
                        "`remote:` entries belong in fetch.backend or fetch.client, not {}",
                        e.list.name()
                    ),
                );
            }
            if !m.remotes.iter().any(|r| &r.key == key) {
                out.warning(
                    "UNKNOWN_REMOTE",
                    &e.loc,
                    format!("no remote has the key `{key}`"),
                );
            }
        }
    }
}

fn connect(m: &Manifest, out: &mut Findings) {
    if let Some(loc) = &m.connect_modules {
        out.error(
            "HAS_CONNECT_MODULES",
            loc,
            "`connectModules` declares Connect modules, which run on the vendor's servers".into(),
        );
    }
    for module in m.modules.iter().filter(|x| x.kind.starts_with("connect-")) {
        out.error(
            "HAS_CONNECT_MODULES",
            &module.loc,
            format!("{} is a Connect module", module.label()),
        );
    }
}

fn egress(m: &Manifest, out: &mut Findings) {
    if let Some(c) = &m.configurable_egress {
        if c.value {
            out.error(
                "HAS_DEFINED_EGRESS",
                &c.loc,
                "customer-managed egress (`configurable.enabled: true`) lets the app reach hosts the admin adds".into(),
            );
        }
    }
    for e in &m.egress {
        let raw = match &e.kind {
            EgressKind::Legacy(a) | EgressKind::Object { address: a, .. } => a.as_str(),
            EgressKind::Remote(_) => continue,
        };
        let addr = Address::parse(raw);
        validate_address(e, raw, &addr, out);
        if is_default_allowed(e.list, &addr) {
            continue;
        }
        let why = match &e.kind {
            EgressKind::Legacy(_) => "a plain string entry counts as in-scope egress".to_string(),
            _ if !e.is_analytics() => match e.category() {
                Some(c) => format!("its category `{c}` is not analytics"),
                None => "it has no `category: analytics`".into(),
            },
            EgressKind::Object { in_scope_eud, .. } => match in_scope_eud {
                crate::model::InScope::Default => {
                    "it is analytics but omits `inScopeEUD`, which defaults to true".into()
                }
                crate::model::InScope::NotBool(v) => {
                    format!("it is analytics but `inScopeEUD: {v}` is not the boolean false")
                }
                crate::model::InScope::Explicit(true) => {
                    "it is analytics but declares `inScopeEUD: true`".into()
                }
                crate::model::InScope::Explicit(false) => continue,
            },
            EgressKind::Remote(_) => continue,
        };
        out.error(
            "HAS_DEFINED_EGRESS",
            &e.loc,
            format!("{} \"{raw}\" is egress: {why}", e.list.name()),
        );
    }
}

/// Validator warnings of platform.md §2 on one entry.
fn validate_address(e: &Egress, raw: &str, addr: &Address, out: &mut Findings) {
    if let EgressKind::Legacy(_) = e.kind {
        out.warning(
            "DEPRECATED_EGRESS_STRING",
            &e.loc,
            format!(
                "plain string egress entries are deprecated; write `- address: {}` with a category and inScopeEUD",
                if raw.starts_with('*') { format!("'{raw}'") } else { raw.to_string() }
            ),
        );
    }
    if let Some(c) = e.category() {
        if !c.eq_ignore_ascii_case("analytics") {
            out.warning(
                "INVALID_EGRESS_CATEGORY",
                &e.loc,
                format!("category `{c}` is not known; the only category is analytics"),
            );
        }
    }
    if addr.is_global() {
        out.warning(
            "GLOBAL_EGRESS",
            &e.loc,
            "`*` allows the app to reach any host".into(),
        );
    }
    let keyword = raw.trim_matches('\'');
    if [
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "self",
        "none",
        "strict-dynamic",
    ]
    .contains(&keyword)
    {
        out.warning(
            "CSP_KEYWORD_AS_ADDRESS",
            &e.loc,
            format!(
                "`{keyword}` is a CSP option, not an address; it belongs under permissions.content"
            ),
        );
    }
    match addr.scheme.as_deref() {
        None | Some("https") | Some("wss") => {}
        Some(s @ ("http" | "ws")) => out.warning(
            "INSECURE_EGRESS_ADDRESS",
            &e.loc,
            format!("`{s}://` is not allowed; use https:// or wss://"),
        ),
        Some(s) => out.warning(
            "INVALID_EGRESS_ADDRESS",
            &e.loc,
            format!("`{s}:` addresses are not allowed in egress lists"),
        ),
    }
    if e.list == EgressList::FetchBackend && addr.path.is_some() {
        out.warning(
            "BACKEND_ADDRESS_PATH",
            &e.loc,
            format!(
                "the path `{}` is ignored: backend egress is allowed per host",
                addr.path.as_deref().unwrap_or_default()
            ),
        );
    }
    if (e.list.is_fetch() || e.list == EgressList::Scripts) && is_atlassian_domain(&addr.host) {
        out.warning(
            "ATLASSIAN_DOMAIN_EGRESS",
            &e.loc,
            format!(
                "`{}` is an Atlassian domain and may not be declared for {}; call the product through its API instead",
                addr.host,
                e.list.name()
            ),
        );
    }
}

/// Hosts the platform allows without a declaration (platform.md §3). The tenant's own host is
/// any `*.atlassian.net` site.
fn is_default_allowed(list: EgressList, addr: &Address) -> bool {
    if addr.is_global() || addr.has_placeholder() {
        return false;
    }
    let tenant = host_matches("*.atlassian.net", &addr.host);
    match list {
        EgressList::Images => {
            tenant
                || [
                    "*.wp.com",
                    "secure.gravatar.com",
                    "images.unsplash.com",
                    "api.media.atlassian.com",
                    "api.atlassian.com",
                ]
                .iter()
                .any(|p| host_matches(p, &addr.host))
        }
        EgressList::Media | EgressList::Frames => tenant || addr.host == "api.media.atlassian.com",
        _ => false,
    }
}

fn is_atlassian_domain(host: &str) -> bool {
    host == "atlassian.net"
        || host_matches("*.atlassian.net", host)
        || host == "api.atlassian.com"
        || host == "bitbucket.org"
        || host_matches("*.bitbucket.org", host)
}

fn providers(m: &Manifest, out: &mut Findings) {
    for p in &m.providers {
        out.error(
            "HAS_PROVIDERS",
            &p.loc,
            format!(
                "auth provider `{}` lets the app call an external service with user tokens",
                p.key
            ),
        );
    }
}

fn webtriggers(m: &Manifest, out: &mut Findings) {
    for w in m.modules_of("webtrigger") {
        if !w.is_static_webtrigger() {
            let how = match w
                .node
                .get("response")
                .and_then(|r| r.get("type"))
                .and_then(|t| t.scalar_text())
            {
                Some(t) => format!("its response type is `{t}`"),
                None => "it has no `response.type: static` (dynamic is the default)".into(),
            };
            out.error(
                "HAS_EGRESS_WEBTRIGGER_MODULE",
                &w.loc,
                format!(
                    "{} can return data computed at run time to any caller: {how}",
                    w.label()
                ),
            );
        }
    }
}

fn sql(m: &Manifest, out: &mut Findings) {
    for s in m.modules_of("sql") {
        let Some(flag) = s.node.get("dareCompliant") else {
            continue;
        };
        let falsy = match flag.as_bool() {
            Some(b) => !b,
            // Stricter reading: a string "false" is taken at its word.
            None => flag
                .scalar_text()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("false")),
        };
        if falsy {
            out.error(
                "HAS_NON_DARE_COMPLIANT_SQL_MODULE",
                &Loc {
                    path: format!("{}.dareCompliant", s.loc.path),
                    pos: flag.pos,
                },
                format!(
                    "{} is marked dareCompliant: false, so its data has no residency",
                    s.label()
                ),
            );
        }
    }
}
