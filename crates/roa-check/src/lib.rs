//! `roa-check`: an offline, explainable Runs-on-Atlassian (RoA) checker and major/minor
//! upgrade classifier for Forge manifests.
//!
//! ```
//! let manifest = br#"
//! app:
//!   id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-000000000000
//!   runtime: {name: nodejs22.x}
//! permissions:
//!   external:
//!     fetch:
//!       backend: [https://api.example.com]
//! "#;
//! let report = roa_check::check("manifest.yml", manifest).unwrap();
//! assert!(!report.eligible);
//! assert_eq!(report.findings[0].rule, "HAS_DEFINED_EGRESS");
//! assert_eq!((report.findings[0].line, report.findings[0].column), (8, 17));
//! ```
//!
//! Nothing here touches the network or the file system: callers pass bytes in.

pub mod address;
#[cfg(feature = "cli")]
pub mod cli;
pub mod diff;
pub mod finding;
pub mod model;
pub mod render;
pub mod rules;

use serde::Serialize;
pub use signoff_yaml::Budget;

pub use diff::{Class, Reason, Side, Update};
pub use finding::{Finding, Severity};
pub use model::Manifest;

/// The verdict on one manifest. Serializes to the documented JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub manifest: String,
    pub eligible: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The distinct eligibility rules that fired, sorted.
    pub fn error_rules(&self) -> Vec<&'static str> {
        let mut rules: Vec<_> = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.rule)
            .collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }
}

/// The upgrade verdict for two versions. Serializes to the documented JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    pub update: Update,
    pub reasons: Vec<Reason>,
    pub eligible: Eligibility,
}

/// RoA eligibility of the old and new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Eligibility {
    pub old: bool,
    pub new: bool,
}

/// A manifest that could not be read at all: the file and, when known, the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}:{}", self.column.unwrap_or(1))).unwrap_or_default())]
pub struct InputError {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

/// Loads a manifest from bytes with the default input budget.
pub fn load(name: &str, bytes: &[u8]) -> Result<Manifest, InputError> {
    load_with(name, bytes, Budget::default())
}

/// Loads a manifest from bytes within `budget`. YAML-level warnings (duplicate keys, extra
/// documents) become findings of the rule `YAML_WARNING`.
pub fn load_with(name: &str, bytes: &[u8], budget: Budget) -> Result<Manifest, InputError> {
    let doc = signoff_yaml::parse_bytes(bytes, budget).map_err(|e| {
        let pos = e.pos();
        let message = match &e {
            signoff_yaml::ParseError::Syntax { message, .. } => format!("invalid YAML: {message}"),
            signoff_yaml::ParseError::Empty => "the manifest is empty".to_string(),
            other => {
                // Drop the position prefix that Display adds: the error carries it apart.
                let text = other.to_string();
                match pos {
                    Some(p) => text
                        .strip_prefix(&format!("{p}: "))
                        .unwrap_or(&text)
                        .to_string(),
                    None => text,
                }
            }
        };
        InputError {
            file: name.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
        }
    })?;
    let mut manifest = Manifest::from_tree(doc.root).map_err(|e| InputError {
        file: name.to_string(),
        line: Some(e.pos.line),
        column: Some(e.pos.column),
        message: e.message,
    })?;
    manifest
        .warnings
        .extend(doc.warnings.into_iter().map(|w| Finding {
            rule: "YAML_WARNING",
            severity: Severity::Warning,
            message: w.message,
            path: String::new(),
            line: w.pos.line,
            column: w.pos.column,
        }));
    Ok(manifest)
}

/// Checks one manifest's eligibility.
pub fn check(name: &str, bytes: &[u8]) -> Result<Report, InputError> {
    let manifest = load(name, bytes)?;
    Ok(check_manifest(name, &manifest))
}

/// Checks a loaded manifest.
pub fn check_manifest(name: &str, manifest: &Manifest) -> Report {
    let findings = rules::evaluate(manifest);
    Report {
        manifest: name.to_string(),
        eligible: !findings.iter().any(|f| f.severity == Severity::Error),
        findings,
    }
}

/// Classifies the update from `old` to `new`.
pub fn diff(
    old_name: &str,
    old: &[u8],
    new_name: &str,
    new: &[u8],
) -> Result<DiffReport, InputError> {
    let old = load(old_name, old)?;
    let new = load(new_name, new)?;
    Ok(diff_manifests(&old, &new))
}

/// Classifies the update between two loaded manifests.
pub fn diff_manifests(old: &Manifest, new: &Manifest) -> DiffReport {
    let (before, after) = (check_manifest("", old), check_manifest("", new));
    let eligible = Eligibility {
        old: before.eligible,
        new: after.eligible,
    };
    let change = (eligible.old != eligible.new).then(|| {
        let bad = if eligible.old { &after } else { &before };
        let first = bad.findings.iter().find(|f| f.severity == Severity::Error);
        diff::EligibilityChange {
            lost: eligible.old,
            rules: bad.error_rules(),
            at: first.map_or_else(diff::root_loc, |f| model::Loc {
                path: f.path.clone(),
                pos: signoff_yaml::Pos {
                    line: f.line,
                    column: f.column,
                },
            }),
        }
    });
    let d = diff::diff(old, new, change);
    DiffReport {
        update: d.update,
        reasons: d.reasons,
        eligible,
    }
}
