//! Findings as the JSON body of GitHub's "create a review" call
//! (`POST /repos/{owner}/{repo}/pulls/{number}/reviews`): one comment per finding, each on a line
//! the diff shows on its RIGHT side, since GitHub rejects the whole review otherwise.
//!
//! A finding on a line the diff does not show moves to the nearest line it shows, and says so; a
//! range that leaves its hunk collapses to its first line; a finding on a file the diff does not
//! touch goes into the review's body.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use prfix_engine::diff::{self, FilePatch};
use prfix_proto::agent::v1 as pb;
use serde::{Deserialize, Serialize};

use super::markdown::{self, emoji, suggestion_block, title};
use super::{ReportError, Review, escape, line_span, severity_name, summary};

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubReview {
    /// Always `COMMENT`: prfix neither approves nor blocks.
    pub event: String,
    /// The summary, and the findings that could not become comments.
    pub body: String,
    /// One comment per finding on a file of the diff.
    pub comments: Vec<Comment>,
}

/// One review comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The file, as the diff names it.
    pub path: String,
    /// The (last) line, new side.
    pub line: u32,
    /// Always `RIGHT`: the new side.
    pub side: String,
    /// The first line of a multi-line comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_line: Option<u32>,
    /// `RIGHT` with `start_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_side: Option<String>,
    /// Markdown: the finding, and a ```` ```suggestion ```` block when it replaces exactly its lines.
    pub body: String,
}

/// Where a finding's comment goes.
struct Anchor {
    /// First line of a range, when the comment spans several lines.
    start: Option<u32>,
    /// The (last) line.
    line: u32,
    /// Why the comment is not exactly where the finding said, if it is not.
    note: Option<String>,
}

pub(super) fn render(review: &Review) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(&build(review)?)?;
    text.push('\n');
    Ok(text)
}

pub(super) fn build(review: &Review) -> Result<GithubReview, ReportError> {
    // No diff (a stored review rendered again by `prfix tasks show`): the server anchored every
    // finding on a line of the diff it reviewed, so the findings' own lines are used.
    let known_diff = !review.diff.trim().is_empty();
    let patches = if known_diff { diff::parse(review.diff)? } else { Vec::new() };
    let mut by_path: BTreeMap<&str, &FilePatch> = BTreeMap::new();
    for patch in &patches {
        by_path.entry(patch.path()).or_insert(patch);
    }
    let mut comments = Vec::new();
    let mut outside = Vec::new();
    for finding in review.findings {
        let anchored = if known_diff {
            by_path.get(finding.path.as_str()).and_then(|patch| anchor(finding, patch))
        } else {
            stored_anchor(finding)
        };
        match anchored {
            Some(anchor) => comments.push(comment(finding, anchor)),
            None => outside.push(finding),
        }
    }
    Ok(GithubReview { event: "COMMENT".to_owned(), body: body(review, comments.len(), &outside), comments })
}

fn anchor(finding: &pb::Finding, patch: &FilePatch) -> Option<Anchor> {
    let shown = patch.new_lines_in_diff();
    let first = *shown.first()?;
    let Some((start, end)) = line_span(finding) else {
        let line = patch.changed_new_lines().first().copied().unwrap_or(first);
        let note = format!("this finding names no line; it is placed on line {line}, the first change of the file.");
        return Some(Anchor { start: None, line, note: Some(note) });
    };
    if shown.binary_search(&start).is_err() {
        let line = nearest(&shown, start).unwrap_or(first);
        let note = format!(
            "this finding is about {}, which the diff does not show; it is placed on line {line}, the nearest line \
             the diff shows.",
            lines_text(start, end)
        );
        return Some(Anchor { start: None, line, note: Some(note) });
    }
    if end == start {
        return Some(Anchor { start: None, line: start, note: None });
    }
    let hunk = hunk_of(patch, start);
    if hunk.is_some() && hunk == hunk_of(patch, end) && shown.binary_search(&end).is_ok() {
        return Some(Anchor { start: Some(start), line: end, note: None });
    }
    let note = format!(
        "this finding is about {}, which the diff does not show in one piece; it is placed on line {start}.",
        lines_text(start, end)
    );
    Some(Anchor { start: None, line: start, note: Some(note) })
}

/// Where the finding says it is: its range, or its line.
fn stored_anchor(finding: &pb::Finding) -> Option<Anchor> {
    let (start, end) = line_span(finding)?;
    Some(Anchor { start: (end > start).then_some(start), line: end, note: None })
}

/// The index of the hunk whose new side covers `line`.
fn hunk_of(patch: &FilePatch, line: u32) -> Option<usize> {
    patch.hunks.iter().position(|hunk| {
        hunk.new_count > 0
            && hunk.new_start <= line
            && u64::from(line) < u64::from(hunk.new_start) + u64::from(hunk.new_count)
    })
}

/// The shown line closest to `line`; the earlier one on a tie.
fn nearest(shown: &[u32], line: u32) -> Option<u32> {
    shown.iter().copied().min_by_key(|candidate| (candidate.abs_diff(line), *candidate))
}

fn lines_text(start: u32, end: u32) -> String {
    if end > start { format!("lines {start}–{end}") } else { format!("line {start}") }
}

fn comment(finding: &pb::Finding, anchor: Anchor) -> Comment {
    let mut body = format!(
        "**{} {} · {}:** {}",
        emoji(finding.severity),
        severity_name(finding.severity),
        escape::inline(&super::category(finding)),
        escape::inline(&title(finding)),
    );
    if !finding.body.trim().is_empty() {
        let _ = write!(body, "\n\n{}", escape::prose(&finding.body));
    }
    if !finding.suggestion.is_empty() {
        body.push_str("\n\n");
        body.push_str(&suggestion_block(finding, anchor.note.is_none()));
    }
    if let Some(note) = &anchor.note {
        let _ = write!(body, "\n\n> Note from prfix: {note}");
    }
    let body = body.trim_end().to_owned();
    Comment {
        path: finding.path.clone(),
        line: anchor.line,
        side: "RIGHT".to_owned(),
        start_line: anchor.start,
        start_side: anchor.start.map(|_| "RIGHT".to_owned()),
        body,
    }
}

fn body(review: &Review, placed: usize, outside: &[&pb::Finding]) -> String {
    let mut out = String::from("## prfix review\n\n");
    if review.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let _ = writeln!(out, "{}.", summary(review.findings));
        if !outside.is_empty() {
            let _ = writeln!(
                out,
                "\nComments on the diff: {placed}. On files the diff does not touch, listed below: {}.",
                outside.len()
            );
        }
    }
    markdown::write_failed_parts(&mut out, review);
    markdown::write_notes(&mut out, review);
    if !outside.is_empty() {
        out.push_str("\n### Findings outside the diff\n");
        for (number, finding) in (1..).zip(outside) {
            out.push('\n');
            markdown::write_finding(&mut out, "####", number, finding, false);
        }
    }
    if !review.task_id.is_empty() {
        let _ = write!(out, "\n<sub>prfix task {}</sub>\n", escape::code(review.task_id, false));
    }
    out
}
