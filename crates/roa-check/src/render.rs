//! Rendering reports as text (for people), JSON (stable, documented) and SARIF 2.1.0 (for
//! code-scanning tools). Renderers return strings; only binaries print.

use serde_json::{Value, json};

use crate::diff::{Class, REASONS};
use crate::rules::{ELIGIBILITY_RULES, WARNING_RULES};
use crate::{DiffReport, InputError, Report, Severity};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// A verdict line, then `FILE:LINE:COL: RULE: message` per finding.
    Text,
    /// One JSON object per manifest, one per line.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
}

/// The outcome of checking one file: a report, or the reason it could not be read.
pub type Outcome = Result<Report, InputError>;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// Renders `check` results as text: per file a verdict line, then one line per finding.
pub fn check_text(outcomes: &[Outcome], color: bool) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match outcome {
            Err(e) => {
                out.push_str(&format!(
                    "{}: {}\n",
                    paint(color, BOLD, &place(&e.file, e.line, e.column)),
                    paint(color, RED, &format!("cannot check: {}", e.message))
                ));
            }
            Ok(r) => {
                let errors = r
                    .findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .count();
                let warnings = r.findings.len() - errors;
                let counts = format!(
                    "{} {}, {} {}",
                    errors,
                    plural(errors, "error"),
                    warnings,
                    plural(warnings, "warning")
                );
                let verdict = if r.eligible {
                    format!(
                        "{} ({counts})",
                        paint(color, GREEN, "ELIGIBLE for Runs on Atlassian")
                    )
                } else {
                    format!(
                        "{} ({}; {counts})",
                        paint(color, RED, "NOT ELIGIBLE for Runs on Atlassian"),
                        r.error_rules().join(", ")
                    )
                };
                out.push_str(&format!("{}: {verdict}\n", paint(color, BOLD, &r.manifest)));
                for f in &r.findings {
                    let (code, prefix) = match f.severity {
                        Severity::Error => (RED, ""),
                        Severity::Warning => (YELLOW, "warning: "),
                    };
                    out.push_str(&format!(
                        "{}:{}:{}: {}: {prefix}{}\n",
                        r.manifest,
                        f.line,
                        f.column,
                        paint(color, code, f.rule),
                        f.message
                    ));
                }
            }
        }
    }
    out
}

/// Renders `check` results as JSON lines: the documented object per manifest, or
/// `{"manifest", "error": {"message", "line", "column"}}` for one that could not be read.
pub fn check_json(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let value = match outcome {
            Ok(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            Err(e) => json!({
                "manifest": e.file,
                "error": {"message": e.message, "line": e.line, "column": e.column},
            }),
        };
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

/// Renders `check` results as one SARIF 2.1.0 log.
pub fn check_sarif(outcomes: &[Outcome]) -> String {
    let mut results = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(r) => {
                for f in &r.findings {
                    results.push(sarif_result(
                        f.rule,
                        match f.severity {
                            Severity::Error => "error",
                            Severity::Warning => "warning",
                        },
                        &f.message,
                        &r.manifest,
                        f.line,
                        f.column,
                        &f.path,
                    ));
                }
            }
            Err(e) => results.push(sarif_result(
                "INVALID_MANIFEST",
                "error",
                &e.message,
                &e.file,
                e.line.unwrap_or(1),
                e.column.unwrap_or(1),
                "",
            )),
        }
    }
    let mut rules: Vec<Value> = ELIGIBILITY_RULES
        .iter()
        .map(|(id, text)| sarif_rule(id, text, "error"))
        .collect();
    rules.extend(
        WARNING_RULES
            .iter()
            .map(|(id, text)| sarif_rule(id, text, "warning")),
    );
    rules.push(sarif_rule(
        "INVALID_MANIFEST",
        "the manifest could not be read or parsed",
        "error",
    ));
    sarif_log(rules, results)
}

/// Renders a diff as text: the verdict, eligibility, then one line per reason.
pub fn diff_text(old: &str, new: &str, d: &DiffReport, color: bool) -> String {
    let verdict = match d.update {
        crate::Update::Major => paint(
            color,
            RED,
            "major update: every site admin must consent before it is applied",
        ),
        crate::Update::Minor => paint(
            color,
            GREEN,
            "minor update: applied to installations automatically",
        ),
        crate::Update::None => paint(color, GREEN, "no change that matters for the upgrade"),
    };
    let yes_no = |b: bool| if b { "eligible" } else { "not eligible" };
    let mut out = format!("{old} -> {new}: {verdict}\n");
    let lost = if d.eligible.old && !d.eligible.new {
        paint(
            color,
            RED,
            " (eligibility LOST: tell site admins at upgrade time)",
        )
    } else if !d.eligible.old && d.eligible.new {
        paint(color, GREEN, " (eligibility gained)")
    } else {
        String::new()
    };
    out.push_str(&format!(
        "Runs on Atlassian: old {}, new {}{lost}\n",
        yes_no(d.eligible.old),
        yes_no(d.eligible.new)
    ));
    for r in &d.reasons {
        let file = match r.side {
            crate::Side::Old => old,
            crate::Side::New => new,
        };
        let (code, class) = match r.class {
            Class::Major => (RED, "major"),
            Class::Minor => (YELLOW, "minor"),
            Class::Info => (BOLD, "info"),
        };
        out.push_str(&format!(
            "{file}:{}:{}: {} ({class}): {}\n",
            r.line,
            r.column,
            paint(color, code, r.id),
            r.message
        ));
    }
    out
}

/// Renders a diff as the documented JSON object (one line).
pub fn diff_json(d: &DiffReport) -> String {
    let mut s = serde_json::to_string(d).unwrap_or_default();
    s.push('\n');
    s
}

/// Renders a diff as SARIF: one result per reason (major as warning, minor and info as
/// note), located in the file the reason points into.
pub fn diff_sarif(old: &str, new: &str, d: &DiffReport) -> String {
    let results = d
        .reasons
        .iter()
        .map(|r| {
            let file = match r.side {
                crate::Side::Old => old,
                crate::Side::New => new,
            };
            let level = match r.class {
                Class::Major => "warning",
                Class::Minor | Class::Info => "note",
            };
            sarif_result(r.id, level, &r.message, file, r.line, r.column, &r.path)
        })
        .collect();
    let rules = REASONS
        .iter()
        .map(|(id, class, text)| {
            let level = if *class == Class::Major {
                "warning"
            } else {
                "note"
            };
            sarif_rule(id, text, level)
        })
        .collect();
    sarif_log(rules, results)
}

fn sarif_rule(id: &str, text: &str, level: &str) -> Value {
    json!({
        "id": id,
        "shortDescription": {"text": text},
        "defaultConfiguration": {"level": level},
    })
}

fn sarif_result(
    rule: &str,
    level: &str,
    message: &str,
    file: &str,
    line: u32,
    column: u32,
    path: &str,
) -> Value {
    let mut location = json!({
        "physicalLocation": {
            "artifactLocation": {"uri": file},
            "region": {"startLine": line.max(1), "startColumn": column.max(1)},
        },
    });
    if !path.is_empty() {
        location["logicalLocations"] = json!([{"fullyQualifiedName": path}]);
    }
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": message},
        "locations": [location],
    })
}

fn sarif_log(rules: Vec<Value>, results: Vec<Value>) -> String {
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "roa-check",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).unwrap_or_default();
    s.push('\n');
    s
}

fn place(file: &str, line: Option<u32>, column: Option<u32>) -> String {
    match line {
        Some(l) => format!("{file}:{l}:{}", column.unwrap_or(1)),
        None => file.to_string(),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
