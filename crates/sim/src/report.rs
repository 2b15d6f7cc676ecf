//! The runtime RoA report: what `roa-check` says of an app's manifest beside what the app
//! was seen doing in a simulation (the egress ledger, cross-realm storage attempts, remote
//! storage), with a verdict on the observed behaviour.
//!
//! The observed verdict is stricter than the static one: an app whose manifest is eligible
//! but whose code tries to send data to a host it did not declare is reported as not
//! eligible, even though the gate blocked every attempt.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::egress::BlockReason;
use crate::flow::{Flow, Simulation};
use crate::kvs::RealmViolation;
use roa_check::address::Address;

/// The report on one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoaReport {
    pub app: String,
    /// The latest deployed version.
    pub version: u32,
    /// `roa-check` on the latest version's manifest.
    pub static_verdict: StaticVerdict,
    /// Updates that lost eligibility, as reported at upgrade time.
    pub eligibility_lost: Vec<LostAt>,
    /// The ledger, grouped by destination host, category and in-scope flag.
    pub egress: Vec<EgressLine>,
    pub cross_realm: Vec<RealmViolation>,
    /// Remote storage used (remotes are not simulated, so always empty).
    pub remote_storage: Vec<String>,
    pub observed: Observed,
    /// Node apps: the Node.js that ran the app and the isolation around its worker processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticVerdict {
    pub eligible: bool,
    /// The eligibility rules that fired.
    pub rules: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostAt {
    pub version: u32,
    pub update: &'static str,
}

/// The app's egress to one host, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressLine {
    pub host: String,
    pub category: &'static str,
    pub in_scope_eud: bool,
    pub allowed: u32,
    pub blocked: u32,
    pub bytes: usize,
    /// Why attempts were blocked, each reason once.
    pub blocked_because: Vec<BlockReason>,
    /// The end-user data the requests carried (`page 100001 body`, `account alice`), each
    /// once.
    pub carried: Vec<String>,
}

/// What the app was seen doing, judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub eligible: bool,
    /// Why not, one sentence each; empty when eligible.
    pub reasons: Vec<String>,
}

impl RoaReport {
    /// The report on `app` (its id) after a run.
    pub fn of(sim: &Simulation, app: &str) -> Option<RoaReport> {
        let latest = sim.versions(app).last()?;
        let installs: Vec<&str> = sim
            .installations()
            .filter(|(_, a)| *a == app)
            .map(|(i, _)| i)
            .collect();
        let mut lines: BTreeMap<(String, &'static str, bool), EgressLine> = BTreeMap::new();
        for a in sim
            .platform()
            .ledger()
            .iter()
            .filter(|a| installs.contains(&a.installation.as_str()))
        {
            let host = Address::parse(&a.destination).host;
            let host = if host.is_empty() {
                a.destination.clone()
            } else {
                host
            };
            let line = lines
                .entry((host.clone(), a.category, a.in_scope_eud))
                .or_insert_with(|| EgressLine {
                    host,
                    category: a.category,
                    in_scope_eud: a.in_scope_eud,
                    allowed: 0,
                    blocked: 0,
                    bytes: 0,
                    blocked_because: Vec::new(),
                    carried: Vec::new(),
                });
            if a.allowed {
                line.allowed += 1;
                line.bytes += a.bytes;
            } else {
                line.blocked += 1;
            }
            if let Some(r) = a
                .blocked_because
                .filter(|r| !line.blocked_because.contains(r))
            {
                line.blocked_because.push(r);
            }
            if let Some(c) = a.carries.as_ref().filter(|c| !line.carried.contains(c)) {
                line.carried.push(c.clone());
            }
        }
        let egress: Vec<EgressLine> = lines.into_values().collect();
        let cross_realm: Vec<RealmViolation> = sim
            .platform()
            .kvs_violations()
            .iter()
            .filter(|v| v.scope.app == app)
            .cloned()
            .collect();
        let eligibility_lost = sim
            .trace()
            .iter()
            .filter_map(|e| match &e.what {
                Flow::Deploy(d)
                    if d.app == app && d.eligible_before == Some(true) && !d.eligible_after =>
                {
                    Some(LostAt {
                        version: d.version,
                        update: d.update.as_str(),
                    })
                }
                _ => None,
            })
            .collect();
        let observed = judge(&egress, &cross_realm);
        Some(RoaReport {
            app: app.to_string(),
            version: latest.number,
            static_verdict: StaticVerdict {
                eligible: latest.check.eligible,
                rules: latest.check.error_rules(),
            },
            eligibility_lost,
            egress,
            cross_realm,
            remote_storage: Vec::new(),
            observed,
            runtime: latest.app.node().map(|n| {
                let (a, b, c) = n.env.version;
                format!(
                    "Node.js {a}.{b}.{c}, a worker process per installation ({})",
                    n.env.isolation.describe()
                )
            }),
        })
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "app {} (version {})", self.app, self.version);
        let verdict = if self.static_verdict.eligible {
            "runs on Atlassian".to_string()
        } else {
            format!("NOT eligible ({})", self.static_verdict.rules.join(", "))
        };
        let _ = writeln!(out, "  static:   {verdict}");
        let observed = if self.observed.eligible {
            "runs on Atlassian".to_string()
        } else {
            format!("NOT eligible — {}", self.observed.reasons.join("; "))
        };
        let _ = writeln!(out, "  observed: {observed}");
        if let Some(r) = &self.runtime {
            let _ = writeln!(out, "  runtime:  {r}");
        }
        for l in &self.eligibility_lost {
            let _ = writeln!(
                out,
                "  upgrade:  version {} ({}) lost RoA eligibility",
                l.version, l.update
            );
        }
        if self.egress.is_empty() {
            let _ = writeln!(out, "  egress:   none");
        } else {
            let _ = writeln!(out, "  egress:");
        }
        for e in &self.egress {
            let mut line = format!(
                "    {} {}{}: {} allowed ({} bytes), {} blocked",
                e.host,
                e.category,
                if e.in_scope_eud { ", in-scope EUD" } else { "" },
                e.allowed,
                e.bytes,
                e.blocked
            );
            if !e.blocked_because.is_empty() {
                let why: Vec<&str> = e.blocked_because.iter().map(|r| reason_id(*r)).collect();
                let _ = write!(line, " ({})", why.join(", "));
            }
            if !e.carried.is_empty() {
                let _ = write!(line, "; carried {}", e.carried.join(", "));
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "  cross-realm storage attempts: {}",
            self.cross_realm.len()
        );
        let _ = writeln!(out, "  remote storage: none (remotes are not simulated)");
        out
    }
}

/// The observed verdict: any egress that is not analytics without in-scope end-user data,
/// any attempt the gate blocked for a reason other than the admin's analytics switch, any
/// cross-realm storage attempt, makes the app not eligible.
fn judge(egress: &[EgressLine], cross_realm: &[RealmViolation]) -> Observed {
    let mut reasons = Vec::new();
    for e in egress {
        let pages = e.carried.iter().any(|c| c.starts_with("page "));
        let accounts = e.carried.iter().any(|c| c.starts_with("account "));
        let content = match (pages, accounts) {
            (false, false) => "data",
            (true, false) => "page content",
            (false, true) => "account ids",
            (true, true) => "page content and account ids",
        };
        if e.allowed > 0 && (e.category != "analytics" || e.in_scope_eud) {
            let what = if e.in_scope_eud {
                format!("in-scope end-user {content}")
            } else {
                content.to_string()
            };
            reasons.push(format!(
                "{what} sent to {} ({} egress, {} times)",
                e.host, e.category, e.allowed
            ));
        } else if e.allowed > 0 && !e.carried.is_empty() {
            // Declared as analytics without in-scope end-user data, and seen carrying some.
            reasons.push(format!(
                "{content} sent to {} (analytics egress declared inScopeEUD: false; {} requests)",
                e.host, e.allowed
            ));
        }
        let refused: Vec<&BlockReason> = e
            .blocked_because
            .iter()
            .filter(|r| **r != BlockReason::AnalyticsBlockedByAdmin)
            .collect();
        if e.blocked > 0 && !refused.is_empty() {
            let host = if refused.contains(&&BlockReason::NotDeclared) {
                format!("undeclared host {}", e.host)
            } else {
                e.host.clone()
            };
            reasons.push(format!(
                "{content} sent to {host} (blocked {} times)",
                e.blocked
            ));
        }
    }
    if !cross_realm.is_empty() {
        reasons.push(format!(
            "{} storage accesses from outside the data's realm",
            cross_realm.len()
        ));
    }
    Observed {
        eligible: reasons.is_empty(),
        reasons,
    }
}

fn reason_id(r: BlockReason) -> &'static str {
    match r {
        BlockReason::NotDeclared => "not_declared",
        BlockReason::AnalyticsBlockedByAdmin => "analytics_blocked_by_admin",
        BlockReason::InsecureScheme => "insecure_scheme",
        BlockReason::ForgedHostHeader => "forged_host_header",
        BlockReason::MalformedUrl => "malformed_url",
        BlockReason::RawSocket => "raw_socket",
        BlockReason::NameLookup => "name_lookup",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analytics(in_scope_eud: bool, carried: &[&str]) -> EgressLine {
        EgressLine {
            host: "in.stats.example".into(),
            category: "analytics",
            in_scope_eud,
            allowed: 3,
            blocked: 0,
            bytes: 120,
            blocked_because: Vec::new(),
            carried: carried.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn analytics_declared_without_end_user_data_is_judged_by_what_it_carried() {
        // As declared: counts and names only.
        let clean = judge(&[analytics(false, &[])], &[]);
        assert!(clean.eligible, "{clean:?}");
        // Account ids (app 08 of the corpus sends its users' ids as `user_id`).
        let ids = judge(&[analytics(false, &["account alice"])], &[]);
        assert!(!ids.eligible);
        assert_eq!(
            ids.reasons,
            vec![
                "account ids sent to in.stats.example (analytics egress declared inScopeEUD: \
                 false; 3 requests)"
                    .to_string()
            ]
        );
        let both = judge(
            &[analytics(false, &["account bob", "page 100001 body"])],
            &[],
        );
        assert!(
            both.reasons[0].starts_with("page content and account ids sent to"),
            "{both:?}"
        );
        // Declared in scope: not eligible whatever it carried, as before.
        let declared = judge(&[analytics(true, &["account alice"])], &[]);
        assert_eq!(
            declared.reasons,
            vec![
                "in-scope end-user account ids sent to in.stats.example (analytics egress, 3 \
                 times)"
                    .to_string()
            ]
        );
    }
}
