//! Edits a model writes as text — SEARCH/REPLACE blocks and whole files — parsed tolerantly and
//! applied in memory, by exact match first and looser matches after.
//!
//! # The text format
//!
//! The canonical form (what [`Edit::render`] writes and what a prompt should ask for) is the
//! path alone on a line, then the block:
//!
//! ```text
//! path/to/file.py
//! <<<<<<< SEARCH
//! old lines, copied exactly from the file
//! =======
//! new lines
//! >>>>>>> REPLACE
//! ```
//!
//! and for a whole file:
//!
//! ```text
//! path/to/file.py
//! <<<<<<< FILE
//! entire new content
//! >>>>>>> FILE
//! ```
//!
//! An empty SEARCH part creates a missing file (or fills an existing empty one).
//!
//! # What the parser tolerates
//!
//! [`parse_edits`] reads what small models actually write:
//!
//! - blocks wrapped in ```` ``` ```` fences, with or without a language; the path may be on the
//!   fence's info string (```` ```python src/a.py ````), on the line before the fence, or on the
//!   line before the marker, written bare, as `File: path`, `**path**`, `` `path` ``, `# path`,
//!   or inside a prose line ending in `:` (``Update `src/a.py`:``); a `./` prefix is stripped;
//! - marker lines of 5 to 9 `<`, `=` or `>` characters, with any spacing and case
//!   (`<<<<< search`, `>>>>>>>>` alone closes a block);
//! - several blocks for one file, the path omitted from the second and later ones (the previous
//!   block's path is reused), and prose between blocks;
//! - a last block whose closing `>>>>>>> REPLACE` (or `>>>>>>> FILE`) is missing: it takes the
//!   rest of the answer, cut at the closing fence when the block was opened inside a fence;
//! - CRLF line endings in the answer.
//!
//! Inside a block everything is content except the markers: a `=======` line is the divider in
//! the SEARCH part and plain content in the REPLACE part and in a FILE block.
//!
//! A whole file may also come as a path line followed by a fenced block with no markers, but
//! only when the answer has no marker line at all and that path has exactly one fenced block;
//! a fence whose language is `diff` or `patch` is refused. Fenced blocks without a path are
//! ignored. The parser never judges whether a path is safe: the caller does.
//!
//! # How a SEARCH/REPLACE block is applied
//!
//! [`apply_search_replace`] tries, in order, stopping at the first rule that finds a place:
//!
//! 1. the SEARCH lines exactly, as whole lines ([`MatchKind::Exact`]);
//! 2. ignoring trailing whitespace on each line;
//! 3. ignoring indentation; then only the lines the edit changes (SEARCH and REPLACE compared
//!    line by line) are written, re-indented to the file's indentation (levels taken from the
//!    matched lines, tabs or spaces as in the file), and every unchanged line keeps the file's
//!    bytes; when the model's indentation gives no consistent map to the file's (flattened
//!    nesting), a new line's place cannot be derived and the block is refused with
//!    [`BlockFailure::IndentationUnclear`];
//! 4. fuzzy: the window of the file (the SEARCH's line count ±10%) most similar to the SEARCH
//!    (line diff of the trimmed lines, changed lines compared by character ratio), if its score
//!    reaches the threshold and no other, non-overlapping window comes within
//!    [`FUZZY_UNIQUE_MARGIN_PERMILLE`] of it; the replacement is written as in rule 3, the
//!    window lines that correspond to unchanged SEARCH lines kept as the file has them.
//!
//! Two or more places at one rule is [`BlockFailure::Ambiguous`]: nothing is guessed. No place
//! is [`BlockFailure::NotFound`] with the closest window, so the model can be shown the real
//! lines. The file keeps its line endings (a CRLF file stays CRLF) and its final-newline state.

mod apply;
mod feedback;
mod fuzzy;
mod lines;
mod matching;
mod parse;
mod paths;
mod preserve;
#[cfg(test)]
mod proptests;
mod reindent;

use std::collections::BTreeMap;

pub use apply::apply_edits;
pub use feedback::retry_feedback;
pub use matching::apply_search_replace;
pub use parse::{ParsedEdits, parse_edits, parse_edits_report};

/// A fuzzy threshold that accepts a typo or two in a SEARCH block but not a different block.
pub const DEFAULT_FUZZY_THRESHOLD_PERMILLE: u16 = 850;

/// How far (in permille) a second, non-overlapping window must stay below the best fuzzy window
/// for the best one to count as the unique match; a best window at `1000 - d` (with `d` below
/// this margin) only needs its rivals `d` lower, that is twice as different from the SEARCH.
pub const FUZZY_UNIQUE_MARGIN_PERMILLE: u16 = 50;

/// One edit a model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Edit {
    /// Replace the lines `search` of the file by `replace`.
    SearchReplace {
        /// The file's path as the model wrote it, trimmed, without a `./` prefix.
        path: String,
        /// The lines to find; the parser gives each line with its `\n`, `""` for none.
        search: String,
        /// The lines to put in their place, in the same form as `search`.
        replace: String,
    },
    /// Replace (or create) the whole file.
    WholeFile {
        /// The file's path as the model wrote it, trimmed, without a `./` prefix.
        path: String,
        /// The new content; the parser gives each line with its `\n`.
        content: String,
    },
}

impl Edit {
    /// The path of the file this edit changes.
    pub fn path(&self) -> &str {
        match self {
            Edit::SearchReplace { path, .. } | Edit::WholeFile { path, .. } => path,
        }
    }

    /// The edit in the canonical text format that [`parse_edits`] reads back (exactly, as long as
    /// no content line is itself a marker line and texts are lines ending in `\n`).
    pub fn render(&self) -> String {
        match self {
            Edit::SearchReplace { path, search, replace } => format!(
                "{path}\n<<<<<<< SEARCH\n{}=======\n{}>>>>>>> REPLACE\n",
                with_final_newline(search),
                with_final_newline(replace)
            ),
            Edit::WholeFile { path, content } => {
                format!("{path}\n<<<<<<< FILE\n{}>>>>>>> FILE\n", with_final_newline(content))
            }
        }
    }
}

/// `text` with a `\n` added unless it is empty or already ends with one.
fn with_final_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') { text.to_string() } else { format!("{text}\n") }
}

/// Why nothing usable came out of a model's answer (or one of its blocks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditParseError {
    /// No block and no fenced file under a path.
    #[error(
        "the answer has no `<<<<<<< SEARCH` or `<<<<<<< FILE` block and no fenced file under a path line, \
         so it contains no edit"
    )]
    NoEdits,
    /// Divider or closing markers appeared, but no opening marker.
    #[error("the answer has `=======` or `>>>>>>>` marker lines but no `<<<<<<< SEARCH` line opening a block")]
    MissingOpenMarker,
    /// A block with no path before it and no earlier block to take one from.
    #[error("block {block} has no file path: put the path alone on the line before its `<<<<<<<` marker")]
    MissingPath {
        /// The block's number in the answer, from 1.
        block: usize,
    },
    /// A SEARCH part that ended without its `=======` divider.
    #[error("SEARCH block {block} for {path} has no ======= divider between its SEARCH and REPLACE parts")]
    MissingDivider {
        /// The block's number in the answer, from 1.
        block: usize,
        /// The file the block was for.
        path: String,
    },
    /// A block still open when the next one started.
    #[error("block {block} for {path} has no closing `>>>>>>>` marker before the next block starts")]
    MissingEnd {
        /// The block's number in the answer, from 1.
        block: usize,
        /// The file the block was for.
        path: String,
    },
    /// Several fenced whole-file versions of one path (without markers).
    #[error("{path} has {count} fenced blocks; send the whole file once, or SEARCH/REPLACE blocks")]
    DuplicateWholeFile {
        /// The file.
        path: String,
        /// How many fenced blocks named it.
        count: usize,
    },
    /// A fenced unified diff where a whole file was expected.
    #[error("the fenced block for {path} is a diff; send SEARCH/REPLACE blocks or the whole file instead")]
    DiffNotAccepted {
        /// The file the diff was for.
        path: String,
    },
}

/// Which rule found the place of a SEARCH block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// The SEARCH lines as they are (also: a whole file, or an empty SEARCH creating a file).
    Exact,
    /// The SEARCH lines once trailing whitespace is ignored.
    IgnoringTrailingWhitespace,
    /// The SEARCH lines once indentation is ignored; the REPLACE lines were re-indented.
    IgnoringIndentation,
    /// The most similar window of the file.
    Fuzzy {
        /// Its similarity to the SEARCH lines, 0 to 1000.
        score_permille: u16,
    },
}

/// The lines of a file closest to a SEARCH block that was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closest {
    /// The first line's number, from 1.
    pub start_line: usize,
    /// The lines, joined by `\n`, without line endings.
    pub text: String,
    /// Their similarity to the SEARCH lines, 0 to 1000.
    pub score_permille: u16,
}

/// Why one edit did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockFailure {
    /// No place matched, not even fuzzily; `closest` is the most similar window, if the file has lines.
    NotFound {
        /// The most similar window of the file.
        closest: Option<Closest>,
    },
    /// Several places matched at the first rule that matched anything.
    Ambiguous {
        /// How many places.
        matches: usize,
    },
    /// A SEARCH/REPLACE block for a file that is not among the files given.
    UnknownFile,
    /// An empty SEARCH (which creates a file) for a file that exists and is not empty.
    FileExists,
    /// An empty SEARCH given to [`apply_search_replace`] for content that is not empty.
    EmptySearch,
    /// The SEARCH lines were found only once indentation was ignored (or fuzzily), and the
    /// REPLACE lines' place in the file's nesting cannot be derived from them (the model
    /// flattened nested lines): nothing is guessed.
    IndentationUnclear {
        /// The lines the SEARCH matched, with their real indentation.
        closest: Closest,
        /// What is inconsistent.
        reason: String,
    },
}

impl std::fmt::Display for BlockFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockFailure::NotFound { closest: Some(c) } => write!(
                f,
                "the SEARCH lines were not found; the closest lines start at line {} ({}‰ similar)",
                c.start_line, c.score_permille
            ),
            BlockFailure::NotFound { closest: None } => write!(f, "the SEARCH lines were not found; the file is empty"),
            BlockFailure::Ambiguous { matches } => {
                write!(f, "the SEARCH lines match {matches} places, so the place to edit is ambiguous")
            }
            BlockFailure::UnknownFile => write!(f, "the file is not among the files given"),
            BlockFailure::FileExists => write!(f, "an empty SEARCH creates a file, but the file already exists"),
            BlockFailure::EmptySearch => write!(f, "the SEARCH part is empty but the content is not"),
            BlockFailure::IndentationUnclear { closest, reason } => write!(
                f,
                "the SEARCH lines match line {} only with their indentation ignored, and {reason}",
                closest.start_line
            ),
        }
    }
}

/// The files after a list of edits, and what happened to each edit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EditOutcome {
    /// Every file after the edits that applied (the given files plus created ones).
    pub files: BTreeMap<String, String>,
    /// The edits that applied: their index in the list and how their place was found.
    pub applied: Vec<(usize, MatchKind)>,
    /// The edits that did not apply: their index in the list and why.
    pub failed: Vec<(usize, BlockFailure)>,
    /// The paths of files that did not exist before, in the order they were created.
    pub created: Vec<String>,
}
