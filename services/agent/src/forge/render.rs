//! A finished review as the forge shows it: one comment per finding on its line of the diff (with
//! a suggestion block when it has one) carrying a hidden fingerprint, the summary comment, and the
//! check's verdict.
//!
//! The fingerprint is what keeps a push from posting a finding twice: it is made of the file, the
//! finding's category and title, and the text of the line it sits on, not the line's number, so a
//! finding on a line that did not change is recognised after lines above it moved. Comments whose
//! fingerprint is already in a comment on the pull request are left out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use prfix_engine::diff::{FilePatch, LineKind};
use prfix_forge::{CheckReport, Conclusion, InlineComment};
use prfix_proto::agent::v1 as pb;
use sha2::{Digest, Sha256};

/// The hidden line a comment's fingerprint is written in.
fn marker(fingerprint: &str) -> String {
    format!("<!-- prfix:finding {fingerprint} -->")
}

/// The fingerprints written in `bodies` (the comments on the pull request's lines).
pub fn posted_fingerprints(bodies: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for body in bodies {
        let mut rest = body.as_str();
        while let Some(at) = rest.find("<!-- prfix:finding ") {
            rest = &rest[at + "<!-- prfix:finding ".len()..];
            if let Some(end) = rest.find(" -->") {
                out.insert(rest[..end].trim().to_owned());
                rest = &rest[end..];
            }
        }
    }
    out
}

/// What one finished review becomes on the forge.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The comments on lines not posted before.
    pub comments: Vec<InlineComment>,
    /// Comments left out because the same finding was posted on the same line before.
    pub already_posted: usize,
    /// The review's body.
    pub review_body: String,
    /// The summary comment's body (without its marker).
    pub summary: String,
}

/// The severity's lower-case name.
fn severity_name(severity: i32) -> &'static str {
    match pb::Severity::try_from(severity) {
        Ok(pb::Severity::Critical) => "critical",
        Ok(pb::Severity::Major) => "major",
        Ok(pb::Severity::Minor) => "minor",
        Ok(pb::Severity::Info) => "info",
        _ => "unspecified",
    }
}

/// `3 findings: 1 critical, 2 minor`, or `no findings`.
pub fn summary_line(findings: &[pb::Finding]) -> String {
    if findings.is_empty() {
        return "no findings".to_owned();
    }
    let mut parts = Vec::new();
    for severity in [pb::Severity::Critical, pb::Severity::Major, pb::Severity::Minor, pb::Severity::Info] {
        let count = findings.iter().filter(|f| f.severity == severity as i32).count();
        if count > 0 {
            parts.push(format!("{count} {}", severity_name(severity as i32)));
        }
    }
    let noun = if findings.len() == 1 { "finding" } else { "findings" };
    format!("{} {noun}: {}", findings.len(), parts.join(", "))
}

/// A fence of backticks longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// One line of text safe in a Markdown table cell or heading.
fn inline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|").replace('<', "&lt;")
}

/// The finding's fingerprint: its file, category, title, and the text of its first line.
pub fn fingerprint(finding: &pb::Finding, line_text: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        finding.path.as_str(),
        &finding.category.trim().to_lowercase(),
        &finding.title.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
        line_text.trim(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// Where on the diff a finding's comment goes: (start of a range, line, old line of an unchanged
/// line, text of the first line); `None` when the diff does not show the file.
fn place(finding: &pb::Finding, patch: &FilePatch) -> Option<(Option<u32>, u32, Option<u32>, String)> {
    let lines: Vec<&prfix_engine::diff::Line> =
        patch.hunks.iter().flat_map(|h| &h.lines).filter(|l| l.kind != LineKind::Removed).collect();
    let shown = |n: u32| lines.iter().find(|l| l.new_line == Some(n)).copied();
    let hunk_of = |n: u32| {
        patch.hunks.iter().position(|h| h.lines.iter().any(|l| l.kind != LineKind::Removed && l.new_line == Some(n)))
    };
    let start = u32::try_from(finding.line.max(1)).unwrap_or(1);
    let end = u32::try_from(finding.end_line).unwrap_or(0).max(start);
    let first = match shown(start) {
        Some(line) => line,
        // Moved by the agent onto a line it shows, normally; else the nearest shown line.
        None => *lines.iter().min_by_key(|l| l.new_line.map_or(u32::MAX, |n| n.abs_diff(start)))?,
    };
    let first_number = first.new_line?;
    let range = end > first_number && shown(end).is_some() && hunk_of(end) == hunk_of(first_number);
    let (start_line, line) = if range { (Some(first_number), end) } else { (None, first_number) };
    let last = shown(line)?;
    let old_line = (last.kind == LineKind::Context).then_some(last.old_line).flatten();
    Some((start_line, line, old_line, first.text.clone()))
}

/// The comment body of a finding, ending with its fingerprint.
fn comment_body(finding: &pb::Finding, fingerprint: &str) -> String {
    let mut body = format!(
        "**{} · {}:** {}",
        severity_name(finding.severity),
        inline(if finding.category.trim().is_empty() { "general" } else { &finding.category }),
        inline(&finding.title),
    );
    if !finding.body.trim().is_empty() {
        let _ = write!(body, "\n\n{}", finding.body.trim());
    }
    if !finding.suggestion.is_empty() {
        let fence = fence(&finding.suggestion);
        let suggestion = finding.suggestion.trim_end_matches('\n');
        let _ = write!(body, "\n\n{fence}suggestion\n{suggestion}\n{fence}");
    }
    let _ = write!(body, "\n\n{}", marker(fingerprint));
    body
}

/// Renders `result`, the review of `diff` at `head_sha`, leaving out comments whose fingerprint is
/// in `posted`; `scope` is a sentence saying what was reviewed (empty for a first review).
pub fn render(
    result: &pb::ReviewResult,
    patches: &[FilePatch],
    head_sha: &str,
    posted: &BTreeSet<String>,
    task_id: &str,
    scope: &str,
) -> Rendered {
    let mut comments = Vec::new();
    let mut already_posted = 0;
    let mut outside = Vec::new();
    for finding in &result.findings {
        let patch = patches.iter().find(|p| p.path() == finding.path);
        let Some((start_line, line, old_line, text)) = patch.and_then(|p| place(finding, p)) else {
            outside.push(finding);
            continue;
        };
        let fingerprint = fingerprint(finding, &text);
        if posted.contains(&fingerprint) {
            already_posted += 1;
            continue;
        }
        let old_path = patch.and_then(|p| p.old_path.clone()).filter(|old| *old != finding.path);
        comments.push(InlineComment {
            path: finding.path.clone(),
            old_path,
            line,
            start_line,
            old_line,
            body: comment_body(finding, &fingerprint),
        });
    }
    let short = head_sha.get(..12).unwrap_or(head_sha);
    let mut review_body =
        format!("## prfix review\n\n{} on commit {short}.", capitalised(&summary_line(&result.findings)));
    if already_posted > 0 {
        let _ =
            write!(review_body, " {already_posted} of them were posted on these lines before and are not repeated.");
    }
    review_body.push('\n');
    let summary = summary(result, &outside, short, task_id, scope);
    Rendered { comments, already_posted, review_body, summary }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The summary comment: the count, a table of the findings, what failed, the commit reviewed.
fn summary(result: &pb::ReviewResult, outside: &[&pb::Finding], short: &str, task_id: &str, scope: &str) -> String {
    let mut out = format!("## prfix review\n\n{}.\n", capitalised(&summary_line(&result.findings)));
    if !scope.trim().is_empty() {
        let _ = write!(out, "\n{}\n", scope.trim());
    }
    if !result.findings.is_empty() {
        out.push_str("\n| Severity | Where | Finding |\n|---|---|---|\n");
        for finding in &result.findings {
            let place = if finding.end_line > finding.line {
                format!("{}:{}-{}", finding.path, finding.line, finding.end_line)
            } else {
                format!("{}:{}", finding.path, finding.line)
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                severity_name(finding.severity),
                inline(&place),
                inline(&finding.title)
            );
        }
    }
    if !outside.is_empty() {
        out.push_str("\n### Findings outside the diff\n");
        for finding in outside {
            let _ = write!(
                out,
                "\n**{}** (`{}`): {}\n",
                inline(&finding.title),
                inline(&finding.path),
                finding.body.trim()
            );
        }
    }
    if !result.failed_parts.is_empty() {
        out.push_str("\n> Warning: part of the change could not be reviewed; its files have no findings:\n");
        for part in &result.failed_parts {
            let _ = writeln!(out, "> - {}: {}", inline(&part.paths.join(", ")), inline(&part.reason));
        }
    }
    let _ = write!(out, "\n<sub>Reviewed commit {short}");
    if !task_id.is_empty() {
        let _ = write!(out, " · prfix task `{task_id}`");
    }
    out.push_str(".</sub>\n");
    out
}

/// The check's verdict: failure when a finding reaches `fail_on`, neutral when a part of the review
/// failed, else success; with its one-line title.
pub fn check(result: &pb::ReviewResult, fail_on: Option<pb::Severity>, summary: &str) -> CheckReport {
    let conclusion = if fail_on.is_some_and(|threshold| result.findings.iter().any(|f| f.severity >= threshold as i32))
    {
        Conclusion::Failure
    } else if !result.failed_parts.is_empty() {
        Conclusion::Neutral
    } else {
        Conclusion::Success
    };
    CheckReport {
        conclusion,
        title: capitalised(&summary_line(&result.findings)),
        summary: summary.to_owned(),
        details_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(line: i32, title: &str) -> pb::Finding {
        pb::Finding {
            path: "app/db.py".to_owned(),
            line,
            severity: pb::Severity::Critical as i32,
            category: "security".to_owned(),
            title: title.to_owned(),
            ..Default::default()
        }
    }

    const DIFF: &str = "diff --git a/app/db.py b/app/db.py\n--- a/app/db.py\n+++ b/app/db.py\n@@ -1,2 +1,3 @@\n def f():\n+    x = 1\n     return 2\n";

    #[test]
    fn a_finding_posted_before_on_the_same_line_text_is_left_out() {
        let patches = prfix_engine::diff::parse(DIFF).unwrap_or_default();
        let result = pb::ReviewResult { findings: vec![finding(2, "Magic number")], ..Default::default() };
        let first = render(&result, &patches, "abc", &BTreeSet::new(), "", "");
        assert_eq!(first.comments.len(), 1);
        assert_eq!((first.comments[0].line, first.comments[0].old_line), (2, None));
        let posted = posted_fingerprints(&[first.comments[0].body.clone()]);
        assert_eq!(posted.len(), 1);
        let again = render(&result, &patches, "def", &posted, "", "");
        assert_eq!((again.comments.len(), again.already_posted), (0, 1));
        // Another finding on that line is new.
        let other = pb::ReviewResult { findings: vec![finding(2, "Unused variable")], ..Default::default() };
        assert_eq!(render(&other, &patches, "def", &posted, "", "").comments.len(), 1);
        // A context line keeps its old number for forges that need both.
        let context = pb::ReviewResult { findings: vec![finding(3, "Returns a constant")], ..Default::default() };
        assert_eq!(render(&context, &patches, "def", &posted, "", "").comments[0].old_line, Some(2));
    }
}
