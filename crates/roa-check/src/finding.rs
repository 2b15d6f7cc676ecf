//! Findings: one rule that fired at one place of a manifest.

use serde::Serialize;

/// How much a finding matters. `Error` makes the app ineligible for Runs on Atlassian;
/// `Warning` is worth fixing but does not change the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One rule that fired, with the manifest path and position of the offending node.
/// The field order is the documented JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    pub path: String,
    pub line: u32,
    pub column: u32,
}
