//! A file's hunks as the model reads them: new-side line numbers in front of each line.
//!
//! `  12 + added`, `  13   context`, `     - removed`; each hunk starts with its `@@` header. The
//! packer ([`super::plan_parts`]) renders line by line with the same functions, so a part holds
//! exactly the text [`render_hunks`] would give for the lines it carries.

use crate::diff::{FilePatch, Hunk, Line, LineKind};

/// Longest hunk section (the function name git writes after `@@`) shown, in characters.
const SECTION_CHARS: usize = 100;

/// A file's hunks with new-side line numbers: `  12 + added`, `  13   context`, `     - removed`.
pub fn render_hunks(patch: &FilePatch) -> String {
    let mut out = String::new();
    for hunk in &patch.hunks {
        out.push_str(&hunk_header(hunk, false));
        for line in &hunk.lines {
            out.push_str(&line_prefix(line));
            out.push_str(line_text(line));
            out.push('\n');
        }
    }
    out
}

/// A hunk's `@@ -a,b +c,d @@ section` line; `continued` marks a hunk split over parts.
pub(super) fn hunk_header(hunk: &Hunk, continued: bool) -> String {
    let section: String = hunk.section.trim().chars().take(SECTION_CHARS).collect();
    format!(
        "@@ -{},{} +{},{} @@{}{}{}\n",
        hunk.old_start,
        hunk.old_count,
        hunk.new_start,
        hunk.new_count,
        if section.is_empty() { "" } else { " " },
        section,
        if continued { " (continued)" } else { "" }
    )
}

/// What comes before a line's text: its new line number and its kind.
pub(super) fn line_prefix(line: &Line) -> String {
    match (line.kind, line.new_line) {
        (LineKind::Added, Some(n)) => format!("{n:>5} + "),
        (LineKind::Context, Some(n)) => format!("{n:>5}   "),
        _ => "      - ".to_owned(),
    }
}

/// A line's text as shown, without the `'\r'` of a CRLF line.
pub(super) fn line_text(line: &Line) -> &str {
    line.text.trim_end_matches('\r')
}
