//! Reading unified diffs: `git diff` output (extended headers, quoted names, binary patches) and
//! plain `---`/`+++` diffs such as `diff -u` writes.

use super::path::{split_git_header, split_prefix, unquote_path};
use super::{FilePatch, FileStatus, Hunk, Line, LineKind};

/// Why a diff could not be read; every variant names the 1-based line of the diff text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// A `@@` hunk header appears where no file header (`diff --git` or `---`/`+++`) precedes it.
    #[error("diff line {line}: a hunk appears before any file header (`diff --git` or `---`/`+++`)")]
    HunkOutsideFile {
        /// The line of the hunk header.
        line: usize,
    },
    /// A `@@` line does not read as `@@ -start[,count] +start[,count] @@`.
    #[error("diff line {line}: bad hunk header {text:?}: expected `@@ -start[,count] +start[,count] @@` within u32")]
    BadHunkHeader {
        /// The line of the header.
        line: usize,
        /// The start of the header's text.
        text: String,
    },
    /// A hunk ends before it has as many old and new lines as its header counts.
    #[error(
        "diff line {line}: the hunk at line {header_line} is cut short: {old_missing} old and {new_missing} new \
         lines its header counts are missing"
    )]
    ShortHunk {
        /// Where the hunk stops (the first line that is not part of it).
        line: usize,
        /// The line of the hunk's header.
        header_line: usize,
        /// How many old-side lines are missing.
        old_missing: u32,
        /// How many new-side lines are missing.
        new_missing: u32,
    },
    /// A line does not fit its hunk: the header counts no more lines of its side.
    #[error("diff line {line}: {text:?} does not fit the hunk at line {header_line}: its header counts do not add up")]
    CountMismatch {
        /// The line that does not fit.
        line: usize,
        /// The line of the hunk's header.
        header_line: usize,
        /// The start of the line's text.
        text: String,
    },
    /// A `\ No newline at end of file` marker follows no hunk line, or follows another marker.
    #[error("diff line {line}: a `\\ No newline at end of file` marker follows no hunk line")]
    StrayNoNewline {
        /// The line of the marker.
        line: usize,
    },
    /// A path in a header cannot be read (broken quoting, or nothing after the keyword).
    #[error("diff line {line}: cannot read the path in {text:?}")]
    BadPath {
        /// The header line.
        line: usize,
        /// The start of the header's text.
        text: String,
    },
    /// A file header gives no usable path for the side its status needs.
    #[error("diff line {line}: the file header names no path for the {side} side")]
    NoPath {
        /// The line where the file's header starts.
        line: usize,
        /// `old` or `new`.
        side: &'static str,
    },
    /// A mode line does not hold an octal file mode.
    #[error("diff line {line}: bad file mode in {text:?}: expected octal digits such as 100644")]
    BadMode {
        /// The mode line.
        line: usize,
        /// The start of the line's text.
        text: String,
    },
    /// A `similarity index` line does not hold a percentage from 0 to 100.
    #[error("diff line {line}: bad similarity in {text:?}: expected a percentage from 0% to 100%")]
    BadSimilarity {
        /// The similarity line.
        line: usize,
        /// The start of the line's text.
        text: String,
    },
    /// A `---` line outside a git header is not followed by a `+++` line.
    #[error("diff line {line}: a `---` file header is not followed by a `+++` line")]
    MissingNewName {
        /// The `---` line.
        line: usize,
    },
    /// The diff is a combined diff of a merge (`diff --cc`), which is not supported.
    #[error("diff line {line}: combined diffs of merges (`diff --cc`) are not supported")]
    Combined {
        /// The `diff --cc` line.
        line: usize,
    },
    /// A line outside any hunk is not part of a diff.
    #[error("diff line {line}: {text:?} is not part of a unified diff")]
    Garbage {
        /// The line.
        line: usize,
        /// The start of the line's text.
        text: String,
    },
}

impl DiffError {
    /// The 1-based line of the diff text the error is about.
    pub fn line(&self) -> usize {
        match self {
            Self::HunkOutsideFile { line }
            | Self::BadHunkHeader { line, .. }
            | Self::ShortHunk { line, .. }
            | Self::CountMismatch { line, .. }
            | Self::StrayNoNewline { line }
            | Self::BadPath { line, .. }
            | Self::NoPath { line, .. }
            | Self::BadMode { line, .. }
            | Self::BadSimilarity { line, .. }
            | Self::MissingNewName { line }
            | Self::Combined { line }
            | Self::Garbage { line, .. } => *line,
        }
    }
}

/// Reads every file of a unified diff, in order. Blank lines and other `diff` command lines between
/// files are skipped; anything else outside a file is an error. An empty text gives no files.
pub fn parse(diff: &str) -> Result<Vec<FilePatch>, DiffError> {
    let mut cursor = Cursor::new(diff);
    let mut files = Vec::new();
    while let Some(raw) = cursor.peek() {
        let line = trim_cr(raw);
        if line.starts_with("diff --git ") {
            files.push(parse_git_file(&mut cursor)?);
        } else if line.starts_with("diff --cc ") || line.starts_with("diff --combined ") {
            return Err(DiffError::Combined { line: cursor.line_no() });
        } else if line.starts_with("--- ") {
            files.push(parse_plain_file(&mut cursor)?);
        } else if line.starts_with("@@") {
            return Err(DiffError::HunkOutsideFile { line: cursor.line_no() });
        } else if let Some(names) = line.strip_prefix("Binary files ").and_then(|rest| rest.strip_suffix(" differ")) {
            files.push(plain_binary_file(names, cursor.line_no())?);
            cursor.advance();
        } else if line.trim().is_empty() || line.starts_with("diff ") {
            cursor.advance();
        } else {
            return Err(DiffError::Garbage { line: cursor.line_no(), text: excerpt(line) });
        }
    }
    Ok(files)
}

/// Reads hunks alone, without any file header: the `patch` text a code host gives for one file of a
/// pull request (`@@ -1,3 +1,4 @@` and its lines, then the next hunk). Anything else is an error.
pub fn parse_hunks(text: &str) -> Result<Vec<Hunk>, DiffError> {
    let mut cursor = Cursor::new(text);
    let hunks = read_hunks(&mut cursor)?;
    match cursor.peek() {
        Some(line) => Err(DiffError::Garbage { line: cursor.line_no(), text: excerpt(line) }),
        None => Ok(hunks),
    }
}

/// The lines of the diff and the position of the next one to read.
struct Cursor<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The lines of `text`; a final `'\n'` ends the last line rather than starting an empty one.
    fn new(text: &'a str) -> Self {
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.last() == Some(&"") {
            lines.pop();
        }
        Self { lines, pos: 0 }
    }

    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.pos).copied()
    }

    fn advance(&mut self) {
        self.pos += 1;
    }

    /// The 1-based number of the line `peek` returns.
    fn line_no(&self) -> usize {
        self.pos + 1
    }
}

/// What the headers of one file said, before paths and status are settled.
#[derive(Default)]
struct Headers {
    /// Names from `diff --git`, with their prefixes (`a/`, `b/` or none) split off.
    git_names: Option<((String, String), (String, String))>,
    /// `---` name: `Some(None)` for /dev/null.
    old_label: Option<Option<String>>,
    /// `+++` name: `Some(None)` for /dev/null.
    new_label: Option<Option<String>>,
    new_file_mode: Option<u32>,
    deleted_file_mode: Option<u32>,
    old_mode: Option<u32>,
    new_mode: Option<u32>,
    similarity: Option<u8>,
    rename_from: Option<String>,
    rename_to: Option<String>,
    copy_from: Option<String>,
    copy_to: Option<String>,
    binary: bool,
}

fn parse_git_file(cursor: &mut Cursor<'_>) -> Result<FilePatch, DiffError> {
    let start = cursor.line_no();
    let first = trim_cr(cursor.peek().unwrap_or_default());
    let mut headers = Headers {
        git_names: split_git_header(first.strip_prefix("diff --git ").unwrap_or_default()),
        ..Headers::default()
    };
    cursor.advance();
    while let Some(raw) = cursor.peek() {
        let line = trim_cr(raw);
        let no = cursor.line_no();
        if let Some(mode) = line.strip_prefix("old mode ") {
            headers.old_mode = Some(parse_mode(mode, line, no)?);
        } else if let Some(mode) = line.strip_prefix("new mode ") {
            headers.new_mode = Some(parse_mode(mode, line, no)?);
        } else if let Some(mode) = line.strip_prefix("new file mode ") {
            headers.new_file_mode = Some(parse_mode(mode, line, no)?);
        } else if let Some(mode) = line.strip_prefix("deleted file mode ") {
            headers.deleted_file_mode = Some(parse_mode(mode, line, no)?);
        } else if let Some(percent) = line.strip_prefix("similarity index ") {
            headers.similarity = Some(parse_similarity(percent, line, no)?);
        } else if line.starts_with("dissimilarity index ") || line.starts_with("index ") {
            // Nothing we keep: rewrite scores and blob ids.
        } else if let Some(name) = line.strip_prefix("rename from ").or_else(|| line.strip_prefix("rename old ")) {
            headers.rename_from = Some(parse_name(name, line, no)?);
        } else if let Some(name) = line.strip_prefix("rename to ").or_else(|| line.strip_prefix("rename new ")) {
            headers.rename_to = Some(parse_name(name, line, no)?);
        } else if let Some(name) = line.strip_prefix("copy from ") {
            headers.copy_from = Some(parse_name(name, line, no)?);
        } else if let Some(name) = line.strip_prefix("copy to ") {
            headers.copy_to = Some(parse_name(name, line, no)?);
        } else if line.starts_with("Binary files ") && line.ends_with(" differ") {
            headers.binary = true;
            if line.starts_with("Binary files /dev/null and ") {
                headers.old_label.get_or_insert(None);
            }
            if line.ends_with(" and /dev/null differ") {
                headers.new_label.get_or_insert(None);
            }
        } else if line == "GIT binary patch" {
            headers.binary = true;
            cursor.advance();
            skip_binary_payload(cursor);
            continue;
        } else if line.starts_with("--- ") {
            read_labels(cursor, &mut headers)?;
            continue;
        } else {
            break;
        }
        cursor.advance();
    }
    let hunks = read_hunks(cursor)?;
    finish(headers, hunks, start)
}

/// A file of a diff without `diff --git`: a `---` line, a `+++` line, hunks.
fn parse_plain_file(cursor: &mut Cursor<'_>) -> Result<FilePatch, DiffError> {
    let start = cursor.line_no();
    let mut headers = Headers::default();
    read_labels(cursor, &mut headers)?;
    let hunks = read_hunks(cursor)?;
    finish(headers, hunks, start)
}

/// Reads the `---` line at the cursor and the `+++` line after it.
fn read_labels(cursor: &mut Cursor<'_>, headers: &mut Headers) -> Result<(), DiffError> {
    let old_no = cursor.line_no();
    let old_line = trim_cr(cursor.peek().unwrap_or_default());
    cursor.advance();
    let new_no = cursor.line_no();
    let Some(new_line) = cursor.peek().map(trim_cr).filter(|line| line.starts_with("+++ ")) else {
        return Err(DiffError::MissingNewName { line: old_no });
    };
    cursor.advance();
    headers.old_label = Some(parse_label(old_line.get(4..).unwrap_or_default(), old_line, old_no)?);
    headers.new_label = Some(parse_label(new_line.get(4..).unwrap_or_default(), new_line, new_no)?);
    Ok(())
}

/// Settles paths and status from everything the file's headers said.
fn finish(headers: Headers, hunks: Vec<Hunk>, start: usize) -> Result<FilePatch, DiffError> {
    let (prefixes, header_paths) = match &headers.git_names {
        Some(((old_prefix, old), (new_prefix, new))) => {
            ((old_prefix.as_str(), new_prefix.as_str()), (Some(old.clone()), Some(new.clone())))
        }
        None => (label_prefixes(&headers), (None, None)),
    };
    let strip = |label: &Option<Option<String>>, prefix: &str| -> Option<Option<String>> {
        label.as_ref().map(|name| name.as_ref().map(|name| name.strip_prefix(prefix).unwrap_or(name).to_owned()))
    };
    let old_label = strip(&headers.old_label, prefixes.0);
    let new_label = strip(&headers.new_label, prefixes.1);

    let status = if headers.new_file_mode.is_some() || old_label == Some(None) {
        FileStatus::Added
    } else if headers.deleted_file_mode.is_some() || new_label == Some(None) {
        FileStatus::Deleted
    } else if headers.rename_from.is_some() || headers.rename_to.is_some() {
        FileStatus::Renamed
    } else if headers.copy_from.is_some() || headers.copy_to.is_some() {
        FileStatus::Copied
    } else {
        FileStatus::Modified
    };
    let old_path = headers
        .rename_from
        .clone()
        .or(headers.copy_from.clone())
        .or(old_label.flatten())
        .or(header_paths.0)
        .filter(|path| !path.is_empty());
    let new_path = headers
        .rename_to
        .clone()
        .or(headers.copy_to.clone())
        .or(new_label.flatten())
        .or(header_paths.1)
        .filter(|path| !path.is_empty());
    let (old_path, new_path) = match status {
        FileStatus::Added => (None, Some(new_path.or(old_path).ok_or(DiffError::NoPath { line: start, side: "new" })?)),
        FileStatus::Deleted => {
            (Some(old_path.or(new_path).ok_or(DiffError::NoPath { line: start, side: "old" })?), None)
        }
        _ => (
            Some(old_path.ok_or(DiffError::NoPath { line: start, side: "old" })?),
            Some(new_path.ok_or(DiffError::NoPath { line: start, side: "new" })?),
        ),
    };
    Ok(FilePatch {
        old_path,
        new_path,
        status,
        old_mode: headers.deleted_file_mode.or(headers.old_mode),
        new_mode: headers.new_file_mode.or(headers.new_mode),
        similarity: headers.similarity,
        binary: headers.binary,
        hunks,
    })
}

/// Prefixes of a diff without `diff --git`: `a/` and `b/` when the names carry them.
fn label_prefixes(headers: &Headers) -> (&'static str, &'static str) {
    let has = |label: &Option<Option<String>>, prefix: &str| match label {
        Some(Some(name)) => name.starts_with(prefix),
        _ => true,
    };
    let both_null = matches!((&headers.old_label, &headers.new_label), (Some(None), Some(None)));
    if !both_null && has(&headers.old_label, "a/") && has(&headers.new_label, "b/") { ("a/", "b/") } else { ("", "") }
}

/// A `---`/`+++` name: quoted, or up to the first tab (git adds one after names with spaces, `diff -u`
/// a timestamp). `None` for /dev/null.
fn parse_label(text: &str, line: &str, no: usize) -> Result<Option<String>, DiffError> {
    let name = if text.starts_with('"') {
        unquote_path(text).ok_or_else(|| DiffError::BadPath { line: no, text: excerpt(line) })?.0
    } else {
        text.split('\t').next().unwrap_or_default().to_owned()
    };
    if name.is_empty() {
        return Err(DiffError::BadPath { line: no, text: excerpt(line) });
    }
    Ok((name != "/dev/null").then_some(name))
}

/// A name of `rename from` and the like: the rest of the line, maybe quoted.
fn parse_name(text: &str, line: &str, no: usize) -> Result<String, DiffError> {
    let name = if text.starts_with('"') { unquote_path(text).map(|(name, _)| name) } else { Some(text.to_owned()) };
    name.filter(|name| !name.is_empty()).ok_or_else(|| DiffError::BadPath { line: no, text: excerpt(line) })
}

fn parse_mode(text: &str, line: &str, no: usize) -> Result<u32, DiffError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 7 || !text.bytes().all(|byte| (b'0'..=b'7').contains(&byte)) {
        return Err(DiffError::BadMode { line: no, text: excerpt(line) });
    }
    u32::from_str_radix(text, 8).map_err(|_| DiffError::BadMode { line: no, text: excerpt(line) })
}

fn parse_similarity(text: &str, line: &str, no: usize) -> Result<u8, DiffError> {
    text.trim()
        .strip_suffix('%')
        .and_then(|number| number.parse::<u8>().ok())
        .filter(|percent| *percent <= 100)
        .ok_or_else(|| DiffError::BadSimilarity { line: no, text: excerpt(line) })
}

/// `Binary files A and B differ` outside a git header (`diff -r` output).
fn plain_binary_file(names: &str, no: usize) -> Result<FilePatch, DiffError> {
    let splits: Vec<(&str, &str)> =
        names.match_indices(" and ").filter_map(|(at, _)| Some((names.get(..at)?, names.get(at + 5..)?))).collect();
    let pick = splits
        .iter()
        .find(|(old, new)| split_prefix(old).1 == split_prefix(new).1)
        .or(splits.first())
        .ok_or_else(|| DiffError::BadPath { line: no, text: excerpt(names) })?;
    let label = |name: &str| (name != "/dev/null").then(|| name.to_owned());
    let headers =
        Headers { old_label: Some(label(pick.0)), new_label: Some(label(pick.1)), binary: true, ..Headers::default() };
    finish(headers, Vec::new(), no)
}

/// Skips the `literal`/`delta` blocks of a `GIT binary patch`: base85 lines (never a space) and the
/// blank lines that end each block.
fn skip_binary_payload(cursor: &mut Cursor<'_>) {
    while let Some(raw) = cursor.peek() {
        let line = trim_cr(raw);
        let payload =
            line.is_empty() || line.starts_with("literal ") || line.starts_with("delta ") || !line.contains(' ');
        if !payload {
            break;
        }
        cursor.advance();
    }
}

/// Reads the hunks that follow a file header.
fn read_hunks(cursor: &mut Cursor<'_>) -> Result<Vec<Hunk>, DiffError> {
    let mut hunks = Vec::new();
    while let Some(raw) = cursor.peek() {
        if !trim_cr(raw).starts_with("@@") {
            break;
        }
        hunks.push(parse_hunk(cursor)?);
    }
    Ok(hunks)
}

fn parse_hunk(cursor: &mut Cursor<'_>) -> Result<Hunk, DiffError> {
    let header_line = cursor.line_no();
    let header = trim_cr(cursor.peek().unwrap_or_default());
    let mut hunk = parse_hunk_header(header)
        .ok_or_else(|| DiffError::BadHunkHeader { line: header_line, text: excerpt(header) })?;
    cursor.advance();
    let (mut old_left, mut new_left) = (hunk.old_count, hunk.new_count);
    let (mut old_no, mut new_no) = (hunk.old_start, hunk.new_start);
    while let Some(raw) = cursor.peek() {
        let no = cursor.line_no();
        if raw.starts_with('\\') {
            match hunk.lines.last_mut() {
                Some(last) if !last.no_newline_at_end => last.no_newline_at_end = true,
                _ => return Err(DiffError::StrayNoNewline { line: no }),
            }
            cursor.advance();
            continue;
        }
        if old_left == 0 && new_left == 0 {
            break;
        }
        let (kind, text) = match raw.as_bytes().first() {
            None => (LineKind::Context, ""),
            Some(b' ') => (LineKind::Context, raw.get(1..).unwrap_or_default()),
            Some(b'-') => (LineKind::Removed, raw.get(1..).unwrap_or_default()),
            Some(b'+') => (LineKind::Added, raw.get(1..).unwrap_or_default()),
            Some(_) => break,
        };
        let uses_old = kind != LineKind::Added;
        let uses_new = kind != LineKind::Removed;
        if (uses_old && old_left == 0) || (uses_new && new_left == 0) {
            return Err(DiffError::CountMismatch { line: no, header_line, text: excerpt(raw) });
        }
        let mut line = Line { kind, text: text.to_owned(), old_line: None, new_line: None, no_newline_at_end: false };
        if uses_old {
            line.old_line = Some(old_no);
            old_no = old_no.saturating_add(1);
            old_left -= 1;
        }
        if uses_new {
            line.new_line = Some(new_no);
            new_no = new_no.saturating_add(1);
            new_left -= 1;
        }
        hunk.lines.push(line);
        cursor.advance();
    }
    if old_left > 0 || new_left > 0 {
        return Err(DiffError::ShortHunk {
            line: cursor.line_no(),
            header_line,
            old_missing: old_left,
            new_missing: new_left,
        });
    }
    if let Some(raw) = cursor.peek() {
        let stray = matches!(raw.as_bytes().first(), Some(b' ' | b'-' | b'+')) && !raw.starts_with("--- ");
        if stray {
            return Err(DiffError::CountMismatch { line: cursor.line_no(), header_line, text: excerpt(raw) });
        }
    }
    Ok(hunk)
}

/// `@@ -1,3 +1,4 @@ section` into an empty hunk; `None` when malformed or the ranges overflow.
fn parse_hunk_header(header: &str) -> Option<Hunk> {
    let rest = header.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, rest) = rest.split_once(" @@")?;
    let section = rest.strip_prefix(' ').unwrap_or(rest);
    let (old_start, old_count) = parse_range(old)?;
    let (new_start, new_count) = parse_range(new)?;
    Some(Hunk { old_start, old_count, new_start, new_count, section: section.to_owned(), lines: Vec::new() })
}

/// `start,count` or `start` (count 1); the range must fit in u32.
fn parse_range(text: &str) -> Option<(u32, u32)> {
    let number = |text: &str| -> Option<u32> {
        (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())).then(|| text.parse().ok()).flatten()
    };
    let (start, count) = match text.split_once(',') {
        Some((start, count)) => (number(start)?, number(count)?),
        None => (number(text)?, 1),
    };
    start.checked_add(count)?;
    Some((start, count))
}

fn trim_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// At most 80 characters of a line, for error messages.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_owned(),
    }
}
