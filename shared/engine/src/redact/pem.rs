//! Multi-line private key blocks: the BEGIN and END lines stay, each body line's key material is
//! a secret of its own, so the line structure (and every line number after it) is unchanged.
//!
//! A block starts at a line ending with a `-----BEGIN … PRIVATE KEY-----` marker (whatever
//! precedes it: a diff marker, indentation, `KEY = """`). It goes on while lines look like key
//! material (base64, possibly quoted or followed by `\n"` or `" +`), armor headers or blank lines,
//! and ends at the END line or at the first line that looks like anything else, so a marker
//! mentioned in code does not swallow the code after it.

use std::ops::Range;

use regex::Regex;

use super::vault::PLACEHOLDER_PREFIX;

/// The byte ranges of key material in the private key blocks of `text`; `begin` is the rule's
/// BEGIN-line pattern (group 1: what precedes the marker).
pub(super) fn key_material(text: &str, begin: &Regex) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut block: Option<Prefix> = None;
    let mut offset = 0;
    for raw_line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.strip_suffix('\n').unwrap_or(raw_line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match &block {
            None => {
                if let Some(prefix) = begin.captures(line).and_then(|caps| caps.get(1)) {
                    block = Some(Prefix::of(prefix.as_str()));
                }
            }
            Some(prefix) => {
                if line.contains("-----END ") {
                    block = None;
                    continue;
                }
                match body_line(line, prefix) {
                    Body::Material(range) => found.push(line_start + range.start..line_start + range.end),
                    Body::Skip => {}
                    Body::Other => {
                        block = None;
                        if let Some(prefix) = begin.captures(line).and_then(|caps| caps.get(1)) {
                            block = Some(Prefix::of(prefix.as_str()));
                        }
                    }
                }
            }
        }
    }
    found
}

/// What precedes the BEGIN marker, as far as body lines share it.
struct Prefix {
    /// The BEGIN line starts with a diff marker or a space, so body lines may too.
    diff_marker: bool,
}

impl Prefix {
    fn of(prefix: &str) -> Self {
        Self { diff_marker: prefix.starts_with(['+', '-', ' ']) }
    }
}

/// What one line inside a block is.
enum Body {
    /// Key material at this byte range of the line.
    Material(Range<usize>),
    /// A blank line, an armor header or an already redacted line: the block goes on.
    Skip,
    /// Not part of a key: the block ends.
    Other,
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn body_line(line: &str, prefix: &Prefix) -> Body {
    let bytes = line.as_bytes();
    let mut start = 0;
    if prefix.diff_marker && matches!(bytes.first(), Some(b'+' | b'-' | b' ')) {
        start = 1;
    }
    while bytes.get(start).is_some_and(|&b| b == b' ' || b == b'\t') {
        start += 1;
    }
    let rest = line.get(start..).unwrap_or_default();
    if rest.is_empty() {
        return Body::Skip;
    }
    if rest.starts_with(PLACEHOLDER_PREFIX) {
        let digits = rest.get(PLACEHOLDER_PREFIX.len()..).unwrap_or_default();
        let number_len = digits.bytes().take_while(u8::is_ascii_digit).count();
        return if number_len > 0 && tail_is_punctuation(digits.get(number_len..).unwrap_or_default()) {
            Body::Skip
        } else {
            Body::Other
        };
    }
    if is_armor_header(rest) {
        return Body::Skip;
    }
    if rest.starts_with(['"', '\'']) {
        start += 1;
    }
    let run = bytes.get(start..).unwrap_or_default().iter().take_while(|&&b| is_base64(b)).count();
    let end = start + run;
    if run == 0 || !tail_is_punctuation(line.get(end..).unwrap_or_default()) {
        return Body::Other;
    }
    Body::Material(start..end)
}

/// Whether what follows the key material on its line is only string-literal punctuation:
/// `\n`, quotes, `+`, `,`, `;`, `)`, `\` and blanks.
fn tail_is_punctuation(tail: &str) -> bool {
    let tail = tail.replace("\\n", "");
    tail.chars().all(|c| matches!(c, '"' | '\'' | '+' | ',' | ';' | ')' | '\\' | ' ' | '\t'))
}

/// `Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`, `Version: …`, `Comment: …`.
fn is_armor_header(line: &str) -> bool {
    let Some((name, _)) = line.split_once(": ") else {
        return false;
    };
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
