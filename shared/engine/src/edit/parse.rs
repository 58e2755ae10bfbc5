//! Reading edits out of a model's answer: marker blocks, or fenced whole files.

use super::paths::{fence_line, find_path};
use super::{Edit, EditParseError};

/// Everything read from an answer: the edits, and what was wrong with the blocks that were skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedEdits {
    /// The edits, in the order of the answer.
    pub edits: Vec<Edit>,
    /// One entry per block that could not be read (or why the answer has no edit at all).
    pub problems: Vec<EditParseError>,
}

/// The edits in a model's answer; an error naming why when there are none.
///
/// Blocks that cannot be read are skipped when others can; [`parse_edits_report`] lists them.
pub fn parse_edits(text: &str) -> Result<Vec<Edit>, EditParseError> {
    let report = parse_edits_report(text);
    if report.edits.is_empty() {
        return Err(report.problems.into_iter().next().unwrap_or(EditParseError::NoEdits));
    }
    Ok(report.edits)
}

/// The edits in a model's answer and a problem for each block that could not be read.
pub fn parse_edits_report(text: &str) -> ParsedEdits {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let markers: Vec<Option<Marker>> = lines.iter().map(|l| marker(l)).collect();
    let mut report = if markers.iter().any(|m| matches!(m, Some(Marker::OpenSearch | Marker::OpenFile))) {
        let mut parser = BlockParser::default();
        for (line, marker) in lines.iter().zip(markers) {
            parser.line(line, marker);
        }
        parser.finish()
    } else if markers.iter().any(Option::is_some) {
        ParsedEdits { edits: Vec::new(), problems: vec![EditParseError::MissingOpenMarker] }
    } else {
        fenced_files(&lines)
    };
    if report.edits.is_empty() && report.problems.is_empty() {
        report.problems.push(EditParseError::NoEdits);
    }
    report
}

/// A marker line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    /// `<<<<<<< SEARCH`
    OpenSearch,
    /// `<<<<<<< FILE`
    OpenFile,
    /// `=======`
    Divider,
    /// `>>>>>>> REPLACE`, `>>>>>>> FILE` or `>>>>>>>` alone.
    Close,
}

/// The marker on `line`: 5 to 9 `<`, `=` or `>` and a keyword, any spacing and case.
pub(super) fn marker(line: &str) -> Option<Marker> {
    let t = line.trim();
    let first = t.chars().next().filter(|c| matches!(c, '<' | '=' | '>'))?;
    let run = t.chars().take_while(|c| *c == first).count();
    if !(5..=9).contains(&run) {
        return None;
    }
    // `first` is ASCII, so `run` is a byte offset on a character boundary.
    let word = t[run..].trim().to_ascii_lowercase();
    match (first, word.as_str()) {
        ('<', "search") => Some(Marker::OpenSearch),
        ('<', "file") => Some(Marker::OpenFile),
        ('=', "") => Some(Marker::Divider),
        ('>', "replace" | "file" | "") => Some(Marker::Close),
        _ => None,
    }
}

/// A fence open outside blocks: its character and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fence {
    /// `` ` `` or `~`.
    pub(super) ch: char,
    /// How many of them (3 or more).
    pub(super) len: usize,
}

impl Fence {
    /// Whether `line` closes this fence: only fence characters, at least as many.
    pub(super) fn closed_by(&self, line: &str) -> bool {
        fence_line(line).is_some_and(|(f, info)| f.ch == self.ch && f.len >= self.len && info.is_empty())
    }
}

/// What a block opened with.
struct Open {
    /// The block's number in the answer, from 1.
    block: usize,
    /// Its file, if one was named before it (or before an earlier block).
    path: Option<String>,
    /// The fence it sits in, if any.
    fence: Option<Fence>,
}

/// Where the parser is.
#[derive(Default)]
enum State<'a> {
    /// Between blocks.
    #[default]
    Outside,
    /// In a SEARCH part.
    Search(Open, Vec<&'a str>),
    /// In a REPLACE part, after the SEARCH lines.
    Replace(Open, Vec<&'a str>, Vec<&'a str>),
    /// In a FILE block.
    File(Open, Vec<&'a str>),
}

/// Reads marker blocks line by line.
#[derive(Default)]
struct BlockParser<'a> {
    /// Edits and problems so far.
    out: ParsedEdits,
    /// Lines outside blocks since the last block: where the next block's path is looked for.
    pending: Vec<&'a str>,
    /// The fence open outside blocks, if any.
    fence: Option<Fence>,
    /// The last path named, reused by blocks that name none.
    last_path: Option<String>,
    /// Blocks opened so far.
    blocks: usize,
    /// Where the parser is.
    state: State<'a>,
}

impl<'a> BlockParser<'a> {
    /// Takes one line of the answer.
    fn line(&mut self, line: &'a str, marker: Option<Marker>) {
        let opens = matches!(marker, Some(Marker::OpenSearch | Marker::OpenFile));
        self.state = match (std::mem::take(&mut self.state), marker) {
            (State::Outside, Some(Marker::OpenSearch)) => State::Search(self.open(), Vec::new()),
            (State::Outside, Some(Marker::OpenFile)) => State::File(self.open(), Vec::new()),
            (State::Outside, _) => {
                self.outside(line);
                State::Outside
            }
            (State::Search(open, search), Some(Marker::Divider)) => State::Replace(open, search, Vec::new()),
            (State::Search(open, lines), Some(_)) => {
                self.missing_divider(open);
                self.reopen_after(lines, line, marker, opens)
            }
            (State::Replace(open, search, replace), Some(Marker::Close)) => {
                self.search_replace(open, &search, &replace);
                State::Outside
            }
            (State::File(open, lines), Some(Marker::Close)) => {
                self.whole_file(open, &lines);
                State::Outside
            }
            (State::Replace(open, _, lines) | State::File(open, lines), Some(_)) if opens => {
                self.missing_end(open);
                self.reopen_after(lines, line, marker, opens)
            }
            (State::Search(open, mut lines), None) => {
                lines.push(line);
                State::Search(open, lines)
            }
            (State::Replace(open, search, mut lines), _) => {
                lines.push(line);
                State::Replace(open, search, lines)
            }
            (State::File(open, mut lines), _) => {
                lines.push(line);
                State::File(open, lines)
            }
        };
    }

    /// After a broken block: its lines may hold the next block's path; `line` is read again.
    fn reopen_after(&mut self, lines: Vec<&'a str>, line: &'a str, marker: Option<Marker>, opens: bool) -> State<'a> {
        self.pending = lines;
        if opens {
            self.line(line, marker);
            std::mem::take(&mut self.state)
        } else {
            self.pending.clear();
            State::Outside
        }
    }

    /// A line between blocks: kept for the path search, and followed for fences.
    fn outside(&mut self, line: &'a str) {
        self.pending.push(line);
        match self.fence {
            Some(open) if open.closed_by(line) => self.fence = None,
            Some(_) => {}
            None => self.fence = fence_line(line).map(|(f, _)| f),
        }
    }

    /// Starts a block, finding its path.
    fn open(&mut self) -> Open {
        self.blocks += 1;
        let path = find_path(&self.pending).or_else(|| self.last_path.clone());
        if path.is_some() {
            self.last_path.clone_from(&path);
        }
        self.pending.clear();
        Open { block: self.blocks, path, fence: self.fence }
    }

    /// The end of the answer: an open REPLACE part or FILE block takes the rest.
    fn finish(mut self) -> ParsedEdits {
        match std::mem::take(&mut self.state) {
            State::Outside => {}
            State::Search(open, _) => self.missing_divider(open),
            State::Replace(open, search, replace) => {
                let replace = rest(replace, open.fence);
                self.search_replace(open, &search, &replace);
            }
            State::File(open, lines) => {
                let lines = rest(lines, open.fence);
                self.whole_file(open, &lines);
            }
        }
        self.out
    }

    /// Records a complete SEARCH/REPLACE block.
    fn search_replace(&mut self, open: Open, search: &[&str], replace: &[&str]) {
        match open.path {
            Some(path) => {
                self.out.edits.push(Edit::SearchReplace { path, search: joined(search), replace: joined(replace) })
            }
            None => self.out.problems.push(EditParseError::MissingPath { block: open.block }),
        }
    }

    /// Records a complete FILE block.
    fn whole_file(&mut self, open: Open, lines: &[&str]) {
        match open.path {
            Some(path) => self.out.edits.push(Edit::WholeFile { path, content: joined(lines) }),
            None => self.out.problems.push(EditParseError::MissingPath { block: open.block }),
        }
    }

    /// Records a SEARCH part that ended without a divider.
    fn missing_divider(&mut self, open: Open) {
        self.out.problems.push(match open.path {
            Some(path) => EditParseError::MissingDivider { block: open.block, path },
            None => EditParseError::MissingPath { block: open.block },
        });
    }

    /// Records a block still open when the next one started.
    fn missing_end(&mut self, open: Open) {
        self.out.problems.push(match open.path {
            Some(path) => EditParseError::MissingEnd { block: open.block, path },
            None => EditParseError::MissingPath { block: open.block },
        });
    }
}

/// The lines of a block left open at the end of the answer: cut at the closing fence if it was
/// opened in one, without trailing blank lines.
fn rest(mut lines: Vec<&str>, fence: Option<Fence>) -> Vec<&str> {
    if let Some(fence) = fence
        && let Some(at) = lines.iter().rposition(|l| fence.closed_by(l))
    {
        lines.truncate(at);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// The lines, each followed by `\n`.
fn joined(lines: &[&str]) -> String {
    lines.iter().flat_map(|l| [*l, "\n"]).collect()
}

/// Whole files given as fenced blocks under a path, in an answer without markers.
fn fenced_files(lines: &[&str]) -> ParsedEdits {
    let mut found: Vec<(String, String, Vec<&str>)> = Vec::new();
    let (mut i, mut since) = (0, 0);
    while i < lines.len() {
        let Some((fence, info)) = fence_line(lines[i]) else {
            i += 1;
            continue;
        };
        let path = super::paths::path_in_fence_info(info).or_else(|| find_path(&lines[since..i]));
        let end = (i + 1..lines.len()).find(|&j| fence.closed_by(lines[j]));
        let body = match end {
            Some(end) => lines[i + 1..end].to_vec(),
            None => rest(lines[i + 1..].to_vec(), None),
        };
        if let Some(path) = path {
            let language = info.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            found.push((path, language, body));
        }
        i = end.map_or(lines.len(), |end| end + 1);
        since = i;
    }
    let mut out = ParsedEdits::default();
    for (index, (path, language, body)) in found.iter().enumerate() {
        let count = found.iter().filter(|(p, _, _)| p == path).count();
        let first = found.iter().position(|(p, _, _)| p == path) == Some(index);
        if count > 1 {
            if first {
                out.problems.push(EditParseError::DuplicateWholeFile { path: path.clone(), count });
            }
        } else if matches!(language.as_str(), "diff" | "patch") || looks_like_diff(body) {
            out.problems.push(EditParseError::DiffNotAccepted { path: path.clone() });
        } else {
            out.edits.push(Edit::WholeFile { path: path.clone(), content: joined(body) });
        }
    }
    out
}

/// Whether a fenced body starts like a unified diff.
fn looks_like_diff(body: &[&str]) -> bool {
    body.iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("diff --git ") || l.starts_with("--- a/") || l.starts_with("@@ -"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_accept_five_to_nine_characters_and_any_case() {
        assert_eq!(marker("<<<<< search"), Some(Marker::OpenSearch));
        assert_eq!(marker("  <<<<<<<<< SEARCH  "), Some(Marker::OpenSearch));
        assert_eq!(marker("<<<< SEARCH"), None);
        assert_eq!(marker("<<<<<<<<<< SEARCH"), None);
        assert_eq!(marker("<<<<<<< HEAD"), None);
        assert_eq!(marker("======= x"), None);
        assert_eq!(marker(">>>>>>>"), Some(Marker::Close));
        assert_eq!(marker(">>>>>>> Replace"), Some(Marker::Close));
        assert_eq!(marker("ÿ<<<<<"), None);
    }

    #[test]
    fn an_unclosed_last_block_in_a_fence_stops_at_the_closing_fence() {
        let fence = Fence { ch: '`', len: 3 };
        assert_eq!(rest(vec!["a", "```", "Hope this helps", ""], Some(fence)), vec!["a"]);
        assert_eq!(rest(vec!["a", "", ""], None), vec!["a"]);
    }
}
