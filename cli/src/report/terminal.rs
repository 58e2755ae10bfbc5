//! Findings as terminal diagnostics, in the manner of cargo and ripgrep:
//!
//! ```text
//! major[bug]: Division by zero when size is 0
//!   --> src/pager.rs:37-38
//!    |
//! 37 |     let size = size.min(MAX_PAGE_SIZE);
//! 38 |     total / size
//!    |
//!    = `size.min(..)` keeps a zero size.
//!    = suggestion:
//!    +     total.div_ceil(size.clamp(1, MAX_PAGE_SIZE))
//! ```

use std::fmt::Write as _;

use prfix_proto::agent::v1 as pb;

use super::{
    Review, failed_part_line, failed_parts_warning, line_span, location, notes, printable, severity_name, summary,
    text_lines,
};

/// At most this many code lines are shown for one finding; the rest are counted.
const MAX_CODE_LINES: usize = 12;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

pub(super) fn render(review: &Review, color: bool) -> String {
    let mut out = String::new();
    for finding in review.findings {
        write_finding(&mut out, finding, review.files.get(&finding.path).map(String::as_str), color);
        out.push('\n');
    }
    out.push_str(&summary(review.findings));
    out.push('\n');
    for note in notes(&review.stats) {
        let _ = writeln!(out, "note: {note}");
    }
    if let Some(warning) = failed_parts_warning(review.failed_parts) {
        let label = if color { format!("{BOLD}\x1b[33mwarning{RESET}") } else { "warning".to_owned() };
        let _ = writeln!(out, "{label}: {warning}:");
        for part in review.failed_parts {
            let _ = writeln!(out, "  {}", printable(&failed_part_line(part)));
        }
    }
    out
}

fn write_finding(out: &mut String, finding: &pb::Finding, content: Option<&str>, color: bool) {
    let severity = severity_name(finding.severity);
    let category = printable(&super::category(finding));
    let title = printable(finding.title.trim());
    if color {
        let _ =
            writeln!(out, "{}{severity}{RESET}[{category}]: {BOLD}{title}{RESET}", severity_style(finding.severity));
    } else {
        let _ = writeln!(out, "{severity}[{category}]: {title}");
    }
    let (code, hidden) = code_lines(finding, content);
    let width = code.iter().map(|(number, _)| number.to_string().len()).max().unwrap_or(1);
    let pad = " ".repeat(width);
    let _ = writeln!(out, "{pad}--> {}", printable(&location(finding)));
    if !code.is_empty() {
        let _ = writeln!(out, "{pad} |");
        for (number, text) in &code {
            let _ = writeln!(out, "{}", format!("{number:>width$} | {}", printable(text)).trim_end());
        }
        if hidden > 0 {
            let _ = writeln!(out, "{pad} | ... {hidden} more line{}", if hidden == 1 { "" } else { "s" });
        }
        let _ = writeln!(out, "{pad} |");
    }
    for (index, line) in text_lines(finding.body.trim()).enumerate() {
        let mark = if index == 0 { '=' } else { ' ' };
        let _ = writeln!(out, "{pad} {mark} {}", printable(line));
    }
    if !finding.suggestion.is_empty() {
        let _ = writeln!(out, "{pad} = suggestion:");
        for line in text_lines(&finding.suggestion) {
            let _ = writeln!(out, "{pad} + {}", printable(line));
        }
    }
}

/// The numbered lines of `content` the finding covers, at most [`MAX_CODE_LINES`], and how many
/// more of them the file has; none when the content or the line is unknown.
fn code_lines<'a>(finding: &pb::Finding, content: Option<&'a str>) -> (Vec<(u32, &'a str)>, usize) {
    let (Some(content), Some((start, end))) = (content, line_span(finding)) else {
        return (Vec::new(), 0);
    };
    let mut covered = (1u32..)
        .zip(text_lines(content))
        .skip_while(|(number, _)| *number < start)
        .take_while(|(number, _)| *number <= end);
    let shown: Vec<(u32, &str)> = covered.by_ref().take(MAX_CODE_LINES).collect();
    (shown, covered.count())
}

/// The ANSI style of a severity: critical red bold, major red, minor yellow, info blue.
fn severity_style(severity: i32) -> &'static str {
    match severity_name(severity) {
        "critical" => "\x1b[1;31m",
        "major" => "\x1b[31m",
        "minor" => "\x1b[33m",
        "info" => "\x1b[34m",
        _ => BOLD,
    }
}
