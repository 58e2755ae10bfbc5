//! Findings as Markdown for a pull-request comment: a heading, the summary, an overview table and
//! one section per finding. Everything the model or the repository wrote is escaped.

use std::fmt::Write as _;

use prfix_proto::agent::v1 as pb;

use super::escape;
use super::{Review, failed_parts_warning, line_span, location, notes, severity_name, summary};

pub(super) fn render(review: &Review) -> String {
    let mut out = String::from("## prfix review\n\n");
    if review.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let _ = writeln!(out, "{}.", summary(review.findings));
    }
    write_failed_parts(&mut out, review);
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

/// The parts of the review that failed, as a GitHub warning block: how many, and each one's files
/// and reason.
pub(super) fn write_failed_parts(out: &mut String, review: &Review) {
    let Some(warning) = failed_parts_warning(review.failed_parts) else {
        return;
    };
    let _ = writeln!(out, "\n> [!WARNING]\n> {}.", escape::inline(&warning));
    for part in review.failed_parts {
        let paths: Vec<String> = part.paths.iter().map(|p| escape::code(p, false)).collect();
        let files = if paths.is_empty() { String::new() } else { format!(" ({})", paths.join(", ")) };
        let reason =
            if part.reason.trim().is_empty() { "no reason given".to_owned() } else { escape::inline(&part.reason) };
        let _ = writeln!(out, "> - Part {} of {}{files}: {reason}", part.part, part.total);
    }
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
