//! Findings as SARIF 2.1.0, in the shape GitHub code scanning accepts: one run of the `prfix` tool,
//! one rule per category, results with a level, a location relative to `%SRCROOT%`, a stable
//! fingerprint and, for security findings, the `security-severity` GitHub ranks alerts by.

use prfix_proto::agent::v1 as pb;
use serde_json::{Value, json};

use super::{ReportError, Review, category, line_span, severity_name, severity_rank};

/// The schema a SARIF 2.1.0 log names.
pub(super) const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The key of prfix's own fingerprint in `partialFingerprints`.
pub(super) const FINGERPRINT_KEY: &str = "prfixFindingHash/v1";

/// Where the tool is described: the workspace's `repository` or `homepage`, when it sets one.
const INFORMATION_URI: Option<&str> = non_empty(env!("CARGO_PKG_REPOSITORY"), env!("CARGO_PKG_HOMEPAGE"));

const fn non_empty(first: &'static str, second: &'static str) -> Option<&'static str> {
    if !first.is_empty() {
        Some(first)
    } else if !second.is_empty() {
        Some(second)
    } else {
        None
    }
}

pub(super) fn render(review: &Review) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(&log(review))?;
    text.push('\n');
    Ok(text)
}

/// The SARIF log as a JSON value.
pub(super) fn log(review: &Review) -> Value {
    let mut categories: Vec<String> = Vec::new();
    for finding in review.findings {
        let name = category(finding);
        if !categories.contains(&name) {
            categories.push(name);
        }
    }
    let rules: Vec<Value> = categories.iter().map(|name| rule(name, review.findings)).collect();
    let results: Vec<Value> = review
        .findings
        .iter()
        .map(|finding| {
            let name = category(finding);
            let index = categories.iter().position(|c| *c == name).unwrap_or_default();
            result(finding, &name, index)
        })
        .collect();
    let mut driver = json!({
        "name": "prfix",
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    if let Some(uri) = INFORMATION_URI {
        driver["informationUri"] = json!(uri);
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "originalUriBaseIds": {
                "%SRCROOT%": {
                    "description": { "text": "The root of the repository the reviewed diff was taken in." }
                }
            },
            "invocations": [invocation(review)],
            "results": results,
            "properties": {
                "taskId": review.task_id,
                "reanchoredFindings": review.stats.reanchored,
                "droppedFindings": review.stats.dropped,
                "redactions": review.stats.redactions,
                "chunks": review.stats.chunks,
                "droppedSuggestions": review.stats.dropped_suggestions,
            }
        }]
    })
}

/// The run's invocation: it succeeded (there are findings to upload) and each failed part of the
/// review is a tool execution notification, an error naming the part, its reason and its files, so
/// code scanning shows that the analysis is incomplete.
fn invocation(review: &Review) -> Value {
    let notifications: Vec<Value> = review
        .failed_parts
        .iter()
        .map(|part| {
            let locations: Vec<Value> = part
                .paths
                .iter()
                .filter(|path| is_repository_path(path))
                .map(|path| {
                    json!({
                        "physicalLocation": {
                            "artifactLocation": { "uri": uri(path), "uriBaseId": "%SRCROOT%" }
                        }
                    })
                })
                .collect();
            let mut notification = json!({
                "descriptor": { "id": FAILED_PART_ID },
                "level": "error",
                "message": { "text": format!("Review {}; its files have no findings.", super::failed_part_line(part)) },
                "properties": { "part": part.part, "total": part.total, "reason": part.reason },
            });
            if !locations.is_empty() {
                notification["locations"] = json!(locations);
            }
            notification
        })
        .collect();
    let mut invocation = json!({ "executionSuccessful": true });
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = json!(notifications);
    }
    invocation
}

/// The id of the notification a failed part of a review is reported as.
pub(super) const FAILED_PART_ID: &str = "prfix/review-part-failed";

/// Whether a failed part's entry names a file of the repository (`src/a.rs`), not a description
/// of a piece of one or a path that leaves the repository.
fn is_repository_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\n', '\r'])
        && !path.split('/').any(|segment| segment.is_empty() || segment == "..")
}

fn rule(name: &str, findings: &[pb::Finding]) -> Value {
    let mut properties = json!({ "tags": [name] });
    if name == "security" {
        // GitHub reads the score from the rule: the worst finding of the category sets it.
        let worst =
            findings.iter().filter(|f| category(f) == "security").map(|f| severity_rank(f.severity)).max().unwrap_or(0);
        properties["security-severity"] = json!(security_severity(worst));
    }
    json!({
        "id": name,
        "shortDescription": { "text": rule_description(name) },
        "properties": properties,
    })
}

fn result(finding: &pb::Finding, rule_id: &str, rule_index: usize) -> Value {
    let (start, end) = line_span(finding).unwrap_or((1, 1));
    let mut result = json!({
        "ruleId": rule_id,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": { "text": message(finding) },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri(&finding.path), "uriBaseId": "%SRCROOT%" },
                "region": { "startLine": start, "endLine": end }
            }
        }],
        "partialFingerprints": { FINGERPRINT_KEY: fingerprint(finding) },
        "properties": { "severity": severity_name(finding.severity) },
    });
    if rule_id == "security" {
        result["properties"]["security-severity"] = json!(security_severity(finding.severity));
    }
    result
}

/// SARIF's level: critical and major are errors, minor a warning, info a note.
fn level(severity: i32) -> &'static str {
    match severity_name(severity) {
        "critical" | "major" => "error",
        "info" => "note",
        _ => "warning",
    }
}

/// GitHub's 0.1–10 score: above 9 critical, 7–8.9 high, 4–6.9 medium, below 4 low.
fn security_severity(severity: i32) -> &'static str {
    match severity_name(severity) {
        "critical" => "9.5",
        "major" => "8.0",
        "info" => "2.0",
        _ => "5.5",
    }
}

fn message(finding: &pb::Finding) -> String {
    match (finding.title.trim(), finding.body.trim()) {
        ("", "") => "(no description)".to_owned(),
        (title, "") => title.to_owned(),
        ("", body) => body.to_owned(),
        (title, body) => format!("{title}\n\n{body}"),
    }
}

fn rule_description(name: &str) -> String {
    match name {
        "bug" => "Wrong behaviour: a bug, a crash or lost data.".to_owned(),
        "security" => "A security weakness: injection, exposed secrets, missing checks.".to_owned(),
        "performance" => "Needless work: slow paths, extra allocations or queries.".to_owned(),
        "style" => "Style and naming.".to_owned(),
        "maintainability" => "Code that is hard to read, change or test.".to_owned(),
        "docs" | "documentation" => "Documentation that is missing, wrong or out of date.".to_owned(),
        "tests" | "testing" => "Missing or weak tests.".to_owned(),
        other => format!("Review findings in the \"{other}\" category."),
    }
}

/// A repository path as a relative URI reference: every byte but unreserved characters and `/`
/// percent-encoded, so spaces and non-ASCII names stay valid.
pub(super) fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A stable hash of the finding's path, category and title (64-bit FNV-1a, hex): the same
/// finding on a later push keeps its alert even when lines move.
pub(super) fn fingerprint(finding: &pb::Finding) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [finding.path.as_str(), &category(finding), finding.title.trim()] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
