//! What a finding's suggestion does to the file, applied as GitHub's "Commit suggestion" does:
//! the suggestion's lines replace lines `line..=end_line` of the new file.
//!
//! The file's line endings are kept (a CRLF file stays CRLF, a last line without a newline stays
//! without one). A model that flattened the suggestion's indentation gets the replaced block's
//! common indentation back, but only when the suggestion as a whole has none (its lines share no
//! leading whitespace; lines indented relative to its first keep that) and the replaced lines
//! have some; a suggestion with its own indentation is kept as written. A suggestion
//! that would leave the file as it is says nothing, and the agent drops it (and counts it).

use super::Finding;

/// What a finding's suggestion would do to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuggestionCheck {
    /// It changes the file: the suggestion to publish (lines joined by `\n`, re-indented if the
    /// model had flattened it), which [`apply_suggestion`] applies.
    Keep(String),
    /// Applying it leaves the file byte-identical: drop it.
    Unchanged,
    /// `line..=end_line` is not a range of the file's lines: drop it.
    OutOfRange,
    /// The finding has no suggestion.
    Absent,
}

/// Checks `finding`'s suggestion against `file`, the content of its file after the change.
pub fn check_suggestion(file: &str, finding: &Finding) -> SuggestionCheck {
    if finding.suggestion.is_empty() {
        return SuggestionCheck::Absent;
    }
    let lines = split_lines(file);
    let Some((start, end)) = range(lines.len(), finding) else { return SuggestionCheck::OutOfRange };
    let replaced: Vec<&str> = lines[start..end].iter().map(|(text, _)| *text).collect();
    let suggestion = normalise(&finding.suggestion, &replaced);
    if suggestion.iter().map(String::as_str).eq(replaced.iter().copied()) {
        return SuggestionCheck::Unchanged;
    }
    SuggestionCheck::Keep(suggestion.join("\n"))
}

/// `file` with `finding`'s suggestion applied (normalised as [`check_suggestion`] does), or `None`
/// when it has none or its range is not in the file.
pub fn apply_suggestion(file: &str, finding: &Finding) -> Option<String> {
    if finding.suggestion.is_empty() {
        return None;
    }
    let lines = split_lines(file);
    let (start, end) = range(lines.len(), finding)?;
    let replaced: Vec<&str> = lines[start..end].iter().map(|(text, _)| *text).collect();
    let suggestion = normalise(&finding.suggestion, &replaced);
    let crlf = lines.iter().filter(|(_, ending)| *ending == "\r\n").count();
    let lf = lines.iter().filter(|(_, ending)| *ending == "\n").count();
    let newline = if crlf > lf { "\r\n" } else { "\n" };
    // The last replaced line's ending goes on the last new line (none at the end of the file).
    let last_ending = lines.get(end - 1).map_or(newline, |(_, ending)| *ending);
    let mut out = String::with_capacity(file.len() + finding.suggestion.len());
    for (text, ending) in &lines[..start] {
        out.push_str(text);
        out.push_str(ending);
    }
    for (i, line) in suggestion.iter().enumerate() {
        out.push_str(line);
        out.push_str(if i + 1 == suggestion.len() { last_ending } else { newline });
    }
    for (text, ending) in &lines[end..] {
        out.push_str(text);
        out.push_str(ending);
    }
    Some(out)
}

/// The file's lines with their endings (`"\n"`, `"\r\n"` or `""` for a last line without one).
fn split_lines(file: &str) -> Vec<(&str, &str)> {
    file.split_inclusive('\n')
        .map(|line| match line.strip_suffix("\r\n") {
            Some(text) => (text, "\r\n"),
            None => line.strip_suffix('\n').map_or((line, ""), |text| (text, "\n")),
        })
        .collect()
}

/// The 0-based half-open range of lines `line..=end_line` (`end_line` before `line` means `line`).
fn range(count: usize, finding: &Finding) -> Option<(usize, usize)> {
    let start = usize::try_from(finding.line).ok()?.checked_sub(1)?;
    let end = usize::try_from(finding.end_line.max(finding.line)).ok()?;
    (end <= count).then_some((start, end))
}

/// The suggestion's lines without line endings (one final newline is the end of its last line,
/// not an empty line), re-indented when the model flattened them.
fn normalise(suggestion: &str, replaced: &[&str]) -> Vec<String> {
    let body = suggestion.strip_suffix('\n').map_or(suggestion, |s| s.strip_suffix('\r').unwrap_or(s));
    let lines: Vec<&str> = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let flat = common_indent(&lines).is_empty();
    let indent = common_indent(replaced);
    if !flat || indent.is_empty() {
        return lines.into_iter().map(str::to_owned).collect();
    }
    lines.into_iter().map(|l| if l.trim().is_empty() { l.to_owned() } else { format!("{indent}{l}") }).collect()
}

/// The leading whitespace all non-blank lines share.
fn common_indent<'a>(lines: &[&'a str]) -> &'a str {
    let mut shared: Option<&str> = None;
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        shared = Some(match shared {
            None => indent,
            Some(current) => {
                let same = current.bytes().zip(indent.bytes()).take_while(|(a, b)| a == b).count();
                &current[..same]
            }
        });
    }
    shared.unwrap_or("")
}
