//! Files as lines with their own line endings, and block text as plain lines.

/// A file split into lines, each remembering its line ending so untouched lines keep theirs.
pub(super) struct FileLines<'a> {
    /// The lines without their endings.
    pub(super) text: Vec<&'a str>,
    /// Each line's ending: `"\r\n"`, `"\n"`, or `""` for a last line without one.
    pub(super) eols: Vec<&'a str>,
    /// The ending most lines use, given to new lines.
    pub(super) dominant: &'static str,
    /// Whether the file ends with a line ending.
    pub(super) final_newline: bool,
}

impl<'a> FileLines<'a> {
    /// Splits `content` into lines.
    pub(super) fn new(content: &'a str) -> Self {
        let mut text = Vec::new();
        let mut eols = Vec::new();
        let (mut crlf, mut lf) = (0usize, 0usize);
        for piece in content.split_inclusive('\n') {
            if let Some(line) = piece.strip_suffix("\r\n") {
                crlf += 1;
                text.push(line);
                eols.push("\r\n");
            } else if let Some(line) = piece.strip_suffix('\n') {
                lf += 1;
                text.push(line);
                eols.push("\n");
            } else {
                text.push(piece);
                eols.push("");
            }
        }
        let dominant = if crlf > lf { "\r\n" } else { "\n" };
        FileLines { text, eols, dominant, final_newline: content.ends_with('\n') }
    }

    /// The file with lines `start..start + len` replaced by `new_lines` (which get the dominant
    /// ending), keeping the file's final-newline state.
    pub(super) fn splice(&self, start: usize, len: usize, new_lines: &[String]) -> String {
        let end = start.saturating_add(len).min(self.text.len());
        let start = start.min(end);
        let mut pieces: Vec<(&str, &str)> = Vec::with_capacity(self.text.len() + new_lines.len());
        pieces.extend(self.text[..start].iter().copied().zip(self.eols[..start].iter().copied()));
        pieces.extend(new_lines.iter().map(|l| (l.as_str(), self.dominant)));
        pieces.extend(self.text[end..].iter().copied().zip(self.eols[end..].iter().copied()));
        if let Some(last) = pieces.last_mut() {
            if !self.final_newline {
                last.1 = "";
            } else if last.1.is_empty() {
                last.1 = self.dominant;
            }
        }
        let mut out = String::with_capacity(pieces.iter().map(|(t, e)| t.len() + e.len()).sum());
        for (line, eol) in pieces {
            out.push_str(line);
            out.push_str(eol);
        }
        out
    }
}

/// The lines of a SEARCH, REPLACE or FILE text: CRLF read as LF, one final `\n` ignored,
/// `""` is no line at all.
pub(super) fn block_lines(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n");
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_string).collect()
}

/// The leading whitespace of `line`.
pub(super) fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// `text` cut to at most `max` characters, with `…` when cut.
pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crlf_file_gives_new_lines_crlf_and_keeps_a_missing_final_newline() {
        let file = FileLines::new("a\r\nb\r\nc");
        assert_eq!(file.text, vec!["a", "b", "c"]);
        assert_eq!(file.splice(1, 1, &["x".into(), "y".into()]), "a\r\nx\r\ny\r\nc");
        assert_eq!(file.splice(2, 1, &["z".into()]), "a\r\nb\r\nz");
        assert_eq!(file.splice(1, 2, &[]), "a");
    }

    #[test]
    fn block_text_ignores_one_final_newline_only() {
        assert!(block_lines("").is_empty());
        assert_eq!(block_lines("\n"), vec![""]);
        assert_eq!(block_lines("a\r\nb"), vec!["a", "b"]);
        assert_eq!(block_lines("a\n\n"), vec!["a", ""]);
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
