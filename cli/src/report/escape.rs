//! Markdown escaping for text a model or a file wrote: whatever it holds, it shows as written and
//! cannot end a table row, open a code block that swallows the rest, or inject HTML.

/// ASCII punctuation that means something inline (CommonMark lets any ASCII punctuation be escaped).
const INLINE_SPECIAL: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '|', '~', '&', '!'];

/// Characters that start a block (heading, quote, list, thematic break, setext underline, table)
/// when they open a line.
const BLOCK_START: &[char] = &['#', '>', '+', '-', '=', '|', '*', '_'];

/// One line of inline text: line breaks turned into spaces, special characters backslash-escaped,
/// code spans closed on the line (`` `like_this` ``) kept as code.
pub(super) fn inline(text: &str) -> String {
    prose_line(&one_line(text), false)
}

/// A table cell: like [`inline`] text, with `|` escaped inside code spans too, so the cell stays
/// one cell on its row.
pub(super) fn cell(text: &str) -> String {
    prose_line(&one_line(text), true)
}

/// A code span around `text` (line breaks turned into spaces), delimited by more backticks than
/// any run inside it. `in_table` escapes `|`, which GitHub's tables need even inside code.
pub(super) fn code(text: &str, in_table: bool) -> String {
    let text = one_line(text);
    let ticks = "`".repeat(longest_run(&text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    let text = if in_table { text.replace('|', "\\|") } else { text };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// A fenced code block with the info string `info`, fenced by more backticks than any run in the
/// text so the text cannot close it early.
pub(super) fn fenced(info: &str, text: &str) -> String {
    let fence = "`".repeat((longest_run(text, '`') + 1).max(3));
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\r').unwrap_or(body);
    if body.is_empty() { format!("{fence}{info}\n{fence}\n") } else { format!("{fence}{info}\n{body}\n{fence}\n") }
}

/// Several lines of prose: line breaks kept, every line escaped like [`inline`] text, except
/// that code spans closed on the same line (`` `like_this` ``) are kept as code.
pub(super) fn prose(text: &str) -> String {
    let lines: Vec<String> = super::text_lines(text.trim_matches('\n')).map(|line| prose_line(line, false)).collect();
    lines.join("\n")
}

/// One line escaped; `in_table` also escapes `|` inside code spans.
fn prose_line(line: &str, in_table: bool) -> String {
    let rest = line.trim_start_matches([' ', '\t']);
    // Four blanks would open an indented code block: keep at most three.
    let mut out = " ".repeat((line.len() - rest.len()).min(3));
    let chars: Vec<char> = rest.chars().collect();
    let mut index = 0;
    match chars.first() {
        Some(first) if BLOCK_START.contains(first) => {
            out.push('\\');
            out.push(*first);
            index = 1;
        }
        Some(first) if first.is_ascii_digit() => {
            // `1.` or `1)` opens an ordered list: escape the mark after the digits.
            index = chars.iter().take_while(|c| c.is_ascii_digit()).count();
            out.extend(&chars[..index]);
            if let Some(mark @ ('.' | ')')) = chars.get(index) {
                out.push('\\');
                out.push(*mark);
                index += 1;
            }
        }
        _ => {}
    }
    while let Some(&c) = chars.get(index) {
        if c == '`' {
            let run = chars[index..].iter().take_while(|c| **c == '`').count();
            if let Some(close) = closing_run(&chars[index + run..], run) {
                let end = index + run + close + run;
                for c in &chars[index..end] {
                    if in_table && *c == '|' {
                        out.push('\\');
                    }
                    out.push(*c);
                }
                index = end;
            } else {
                out.push_str(&"\\`".repeat(run));
                index += run;
            }
            continue;
        }
        if INLINE_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
        index += 1;
    }
    out
}

/// Where a run of exactly `run` backticks starts in `chars`, if one does.
fn closing_run(chars: &[char], run: usize) -> Option<usize> {
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == '`' {
            let len = chars[index..].iter().take_while(|c| **c == '`').count();
            if len == run {
                return Some(index);
            }
            index += len;
        } else {
            index += 1;
        }
    }
    None
}

fn longest_run(text: &str, mark: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        current = if c == mark { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}

fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.trim().chars() {
        if c == '\n' || c == '\r' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = c == ' ';
        }
    }
    out
}
