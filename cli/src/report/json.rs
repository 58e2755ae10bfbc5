//! Findings as a stable JSON document for scripts:
//! `{"task_id", "summary", "findings": [{"path", "line", "end_line", "severity", ...}], "stats": {...},
//! "failed_parts": [{"part", "total", "paths", "reason"}]}`.

use serde::{Deserialize, Serialize};

use super::{ReportError, Review, severity_name, summary};

/// The whole document. Field names are part of prfix's interface: add fields, never rename them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Document {
    /// The id of the review task on the server.
    pub(super) task_id: String,
    /// `3 findings: 1 critical, 2 minor`, or `no findings`.
    pub(super) summary: String,
    /// The findings, in the order the server gave them.
    pub(super) findings: Vec<Finding>,
    /// What the server did besides finding.
    pub(super) stats: Stats,
    /// Parts of the review that failed (their files have no findings); empty when all succeeded.
    pub(super) failed_parts: Vec<FailedPart>,
}

/// A part of the review whose model answers stayed unusable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FailedPart {
    /// Which part, from 1.
    pub(super) part: i32,
    /// How many parts the review had.
    pub(super) total: i32,
    /// The files (or pieces of files) the part covered.
    pub(super) paths: Vec<String>,
    /// Why it failed.
    pub(super) reason: String,
}

/// One finding; `severity` is a name ("critical", "major", "minor", "info", "unspecified").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Finding {
    /// The file, relative to the repository root.
    pub(super) path: String,
    /// First line, new side (0 when the finding names no line).
    pub(super) line: i32,
    /// Last line, inclusive, never before `line`.
    pub(super) end_line: i32,
    /// How much it matters, by name.
    pub(super) severity: String,
    /// For example "bug", "security", "performance", "style".
    pub(super) category: String,
    /// One-line summary.
    pub(super) title: String,
    /// Explanation.
    pub(super) body: String,
    /// The proposed replacement of the lines, `null` when there is none.
    pub(super) suggestion: Option<String>,
}

/// The review's [`super::ReviewStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stats {
    /// Findings moved to the nearest changed line.
    pub(super) reanchored: i32,
    /// Findings dropped because their file is not in the diff.
    pub(super) dropped: i32,
    /// Secrets redacted before the change reached a model.
    pub(super) redactions: i32,
    /// Chunks the diff was reviewed in.
    pub(super) chunks: i32,
    /// Suggestions dropped because they would not change the file.
    pub(super) dropped_suggestions: i32,
}

pub(super) fn document(review: &Review) -> Document {
    Document {
        task_id: review.task_id.to_owned(),
        summary: summary(review.findings),
        findings: review
            .findings
            .iter()
            .map(|f| Finding {
                path: f.path.clone(),
                line: f.line,
                end_line: f.end_line.max(f.line),
                severity: severity_name(f.severity).to_owned(),
                category: f.category.clone(),
                title: f.title.clone(),
                body: f.body.clone(),
                suggestion: (!f.suggestion.is_empty()).then(|| f.suggestion.clone()),
            })
            .collect(),
        stats: Stats {
            reanchored: review.stats.reanchored,
            dropped: review.stats.dropped,
            redactions: review.stats.redactions,
            chunks: review.stats.chunks,
            dropped_suggestions: review.stats.dropped_suggestions,
        },
        failed_parts: review
            .failed_parts
            .iter()
            .map(|p| FailedPart { part: p.part, total: p.total, paths: p.paths.clone(), reason: p.reason.clone() })
            .collect(),
    }
}

pub(super) fn render(review: &Review) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(&document(review))?;
    text.push('\n');
    Ok(text)
}
