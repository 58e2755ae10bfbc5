//! Findings as Markdown for a pull-request comment: a heading, the summary, an overview table and
//! one section per finding. Everything the model or the repository wrote is escaped.

use std::fmt::Write as _;

use prfix_proto::agent::v1 as pb;

use super::escape;
use super::{Review, line_span, location, notes, severity_name, summary};

pub(super) fn render(review: &Review) -> String {
    let mut out = String::from("## prfix review\n\n");
    if review.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let _ = writeln!(out, "{}.", summary(review.findings));
    }
    write_notes(&mut out, review);
    if !review.findings.is_empty() {
        out.push_str("\n| Severity | Location | Category | Finding |\n| --- | --- | --- | --- |\n");
        for finding in review.findings {
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} |",
                emoji(finding.severity),
                severity_name(finding.severity),
                escape::code(&location(finding), true),
                escape::cell(&super::category(finding)),
                escape::cell(finding.title.trim()),
            );
        }
        for (number, finding) in (1..).zip(review.findings) {
            out.push('\n');
            write_finding(&mut out, "###", number, finding, line_span(finding).is_some());
        }
    }
    if !review.task_id.is_empty() {
        let _ = write!(out, "\n<sub>prfix task {}</sub>\n", escape::code(review.task_id, false));
    }
    out
}

/// The notes about moved, dropped and redacted things, as a quoted block.
pub(super) fn write_notes(out: &mut String, review: &Review) {
    let notes = notes(&review.stats);
    if notes.is_empty() {
        return;
    }
    out.push('\n');
    for note in notes {
        let _ = writeln!(out, "> Note: {note}.  ");
    }
}

/// One finding as a section under a `heading` (`###`): title, location, body and suggestion;
/// `applies` says whether the suggestion may be a ```` ```suggestion ```` block.
pub(super) fn write_finding(out: &mut String, heading: &str, number: usize, finding: &pb::Finding, applies: bool) {
    let _ = writeln!(out, "{heading} {number}. {} {}", emoji(finding.severity), escape::inline(&title(finding)));
    let _ = writeln!(
        out,
        "\n{} · {} · {}",
        escape::code(&location(finding), false),
        severity_name(finding.severity),
        escape::inline(&super::category(finding)),
    );
    if !finding.body.trim().is_empty() {
        let _ = writeln!(out, "\n{}", escape::prose(&finding.body));
    }
    if !finding.suggestion.is_empty() {
        out.push('\n');
        out.push_str(&suggestion_block(finding, applies));
    }
}

/// The suggestion as a ```` ```suggestion ```` block when it can replace known lines, else as a
/// plain code block with a label.
pub(super) fn suggestion_block(finding: &pb::Finding, applies: bool) -> String {
    if applies {
        escape::fenced("suggestion", &finding.suggestion)
    } else {
        format!("Suggested replacement:\n\n{}", escape::fenced("", &finding.suggestion))
    }
}

/// The title, or the first line of the body when the title is empty.
pub(super) fn title(finding: &pb::Finding) -> String {
    let title = finding.title.trim();
    if !title.is_empty() {
        return title.to_owned();
    }
    super::text_lines(finding.body.trim()).next().unwrap_or("(untitled finding)").to_owned()
}

/// A coloured circle for the severity.
pub(super) fn emoji(severity: i32) -> &'static str {
    match severity_name(severity) {
        "critical" => "🔴",
        "major" => "🟠",
        "minor" => "🟡",
        "info" => "🔵",
        _ => "⚪",
    }
}
