//! Review findings rendered for people and tools: `prfix review --format <terminal|json|sarif|markdown|github>`.
//!
//! - [`Format::Terminal`]: diagnostics like cargo's, with the code lines the finding is about.
//! - [`Format::Json`]: a stable document for scripts.
//! - [`Format::Sarif`]: SARIF 2.1.0, as GitHub code scanning uploads it.
//! - [`Format::Markdown`]: a pull-request comment.
//! - [`Format::Github`]: the body of GitHub's "create a review" call, every comment on a line of the diff.

mod escape;
mod github;
mod json;
mod markdown;
mod sarif;
mod terminal;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use prfix_proto::agent::v1 as pb;

pub use github::{Comment as GithubComment, GithubReview};

/// How `prfix review` prints its findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable diagnostics with code lines (colour when the output is a terminal).
    Terminal,
    /// A pretty-printed JSON document: task id, findings, statistics.
    Json,
    /// SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// Markdown for a pull-request comment.
    Markdown,
    /// The JSON body of GitHub's "create a review" API, with one comment per finding.
    Github,
}

/// Everything a report needs to know about one finished review.
#[derive(Clone, Copy, Debug)]
pub struct Review<'a> {
    /// The findings, most severe first; lines are on the new side of the diff.
    pub findings: &'a [pb::Finding],
    /// The unified diff that was reviewed, as `git diff` printed it.
    pub diff: &'a str,
    /// New contents of the changed files by path, to show the code a finding is about.
    pub files: &'a BTreeMap<String, String>,
    /// The id of the review task on the server.
    pub task_id: &'a str,
    /// What the server did to the findings and the change.
    pub stats: ReviewStats,
    /// Parts of the review whose model answers stayed unusable: their files have no findings. The
    /// findings are those of the other parts.
    pub failed_parts: &'a [pb::FailedPart],
}

/// What the server reports about a review besides its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReviewStats {
    /// Findings the model placed outside the diff that were moved to the nearest changed line.
    pub reanchored: i32,
    /// Findings that could not be placed on the diff (file not in it) and were dropped.
    pub dropped: i32,
    /// Secrets redacted from the change before it reached a model.
    pub redactions: i32,
    /// How many chunks the diff was split into.
    pub chunks: i32,
    /// Suggestions dropped because applying them to their lines would not change the file.
    pub dropped_suggestions: i32,
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The diff does not parse, so comments cannot be placed on its lines.
    #[error("the reviewed diff cannot be read ({0}): pass the diff exactly as `git diff` printed it")]
    Diff(#[from] prfix_engine::diff::DiffError),
    /// JSON encoding failed (not expected for these documents).
    #[error("could not encode the report as JSON ({0}): this is a bug in prfix, please report it")]
    Json(#[from] serde_json::Error),
}

/// Renders `review` in `format`. `color` adds ANSI colours to the terminal format and is ignored
/// by the others; without it the output holds no escape sequence at all.
pub fn render(format: Format, review: &Review, color: bool) -> Result<String, ReportError> {
    match format {
        Format::Terminal => Ok(terminal::render(review, color)),
        Format::Json => json::render(review),
        Format::Sarif => sarif::render(review),
        Format::Markdown => Ok(markdown::render(review)),
        Format::Github => github::render(review),
    }
}

/// The body of GitHub's "create a review" call for `review`: every comment on a line the diff
/// shows (the common ground of the forges `prfix review --post` posts to).
pub fn github_review(review: &Review) -> Result<GithubReview, ReportError> {
    github::build(review)
}

/// Markdown for a pull-request comment: the summary, a table and a section per finding.
pub fn markdown(review: &Review) -> String {
    markdown::render(review)
}

/// `3 findings: 1 critical, 2 minor`, or `no findings`.
pub fn summary_line(findings: &[pb::Finding]) -> String {
    summary(findings)
}

/// The lower-case name of a severity value: "critical", "major", "minor", "info" or "unspecified".
pub fn severity_name(severity: i32) -> &'static str {
    match pb::Severity::try_from(severity) {
        Ok(pb::Severity::Critical) => "critical",
        Ok(pb::Severity::Major) => "major",
        Ok(pb::Severity::Minor) => "minor",
        Ok(pb::Severity::Info) => "info",
        Ok(pb::Severity::Unspecified) | Err(_) => "unspecified",
    }
}

/// Severities from the most to the least severe, as the summary counts them.
const SEVERITY_ORDER: [i32; 5] = [4, 3, 2, 1, 0];

/// The lines a finding covers, `None` when it names no line (line 0 or less). The end is never
/// before the start.
fn line_span(finding: &pb::Finding) -> Option<(u32, u32)> {
    let start = u32::try_from(finding.line).ok().filter(|line| *line >= 1)?;
    let end = u32::try_from(finding.end_line).unwrap_or(0).max(start);
    Some((start, end))
}

/// `path:12` or `path:12-14`, or the path alone when the finding names no line.
fn location(finding: &pb::Finding) -> String {
    match line_span(finding) {
        Some((start, end)) if end > start => format!("{}:{start}-{end}", finding.path),
        Some((start, _)) => format!("{}:{start}", finding.path),
        None => finding.path.clone(),
    }
}

/// The category as a rule name: trimmed, lower case, "general" when empty.
fn category(finding: &pb::Finding) -> String {
    let category = finding.category.trim().to_lowercase();
    if category.is_empty() { "general".to_owned() } else { category }
}

/// `3 findings: 1 critical, 2 minor`, or `no findings`.
fn summary(findings: &[pb::Finding]) -> String {
    if findings.is_empty() {
        return "no findings".to_owned();
    }
    let counts: Vec<String> = SEVERITY_ORDER
        .iter()
        .filter_map(|severity| {
            let count = findings.iter().filter(|f| severity_rank(f.severity) == *severity).count();
            (count > 0).then(|| format!("{count} {}", severity_name(*severity)))
        })
        .collect();
    format!("{}: {}", plural(findings.len(), "finding"), counts.join(", "))
}

/// A severity as one of [`SEVERITY_ORDER`] (unknown values count as unspecified).
fn severity_rank(severity: i32) -> i32 {
    if (1..=4).contains(&severity) { severity } else { 0 }
}

/// Sentences about what happened besides the findings: moved or dropped findings, redacted
/// secrets, a diff reviewed in several chunks.
fn notes(stats: &ReviewStats) -> Vec<String> {
    let mut notes = Vec::new();
    if stats.reanchored > 0 {
        let verb = if stats.reanchored == 1 { "was" } else { "were" };
        notes.push(format!(
            "{} {verb} placed outside the diff by the model and moved to the nearest changed line",
            plural(count(stats.reanchored), "finding")
        ));
    }
    if stats.dropped > 0 {
        let (verb, files) = if stats.dropped == 1 { ("was", "its file is") } else { ("were", "their files are") };
        notes.push(format!("{} {verb} dropped: {files} not part of the diff", plural(count(stats.dropped), "finding")));
    }
    if stats.redactions > 0 {
        let verb = if stats.redactions == 1 { "was" } else { "were" };
        notes.push(format!(
            "{} {verb} redacted before the change reached the model",
            plural(count(stats.redactions), "secret")
        ));
    }
    if stats.chunks > 1 {
        notes.push(format!("the diff was reviewed in {} chunks", stats.chunks));
    }
    if stats.dropped_suggestions > 0 {
        let verb = if stats.dropped_suggestions == 1 { "was" } else { "were" };
        notes.push(format!(
            "{} {verb} dropped: applying it to its lines would not change the file",
            plural(count(stats.dropped_suggestions), "suggestion")
        ));
    }
    notes
}

/// `1 of 5 parts of the review failed; the findings are those of the other parts`, `None` when
/// every part was reviewed.
pub fn failed_parts_warning(parts: &[pb::FailedPart]) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    let total = parts.iter().map(|p| count(p.total)).max().unwrap_or(0).max(parts.len());
    let theirs = if parts.len() == 1 { "its files have" } else { "their files have" };
    Some(format!(
        "{} of {total} parts of the review failed ({theirs} no findings); the findings are those of the other parts",
        parts.len()
    ))
}

/// `part 3 of 5 (src/a.rs, src/b.rs): the answer was not JSON`, the reason on one line.
pub fn failed_part_line(part: &pb::FailedPart) -> String {
    let mut line = format!("part {} of {}", part.part, part.total);
    if !part.paths.is_empty() {
        line.push_str(&format!(" ({})", part.paths.join(", ")));
    }
    let reason = one_line(&part.reason);
    line.push_str(": ");
    line.push_str(if reason.is_empty() { "no reason given" } else { &reason });
    line
}

/// The text with its runs of white space (line breaks included) as single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn count(value: i32) -> usize {
    usize::try_from(value).unwrap_or(0)
}

/// `1 finding`, `2 findings`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// The text with every control character but tab, and every bidirectional override, shown as
/// `\u{..}`: nothing a model or a file wrote can move the cursor, recolour or clear a terminal, or
/// make code read differently from what it is.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\t') || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] line by line: the line breaks stay, everything else that could act on a terminal
/// is shown as `\u{..}`.
pub fn printable_lines(text: &str) -> String {
    text.split('\n').map(|line| printable(line.strip_suffix('\r').unwrap_or(line))).collect::<Vec<_>>().join("\n")
}

/// The text's lines without their `\n` or `\r\n`; an empty text has none.
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| line.strip_suffix('\r').unwrap_or(line))
}
