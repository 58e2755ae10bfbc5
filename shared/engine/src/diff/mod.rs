//! Unified diffs as `git diff` writes them: [`parse`] them, [`write`] them back, make them from two
//! texts with [`unified_diff`], and [`apply`] one file's patch in memory the way `git apply` does.
//!
//! The parser reads everything git produces for text and binary files: new, deleted, renamed and
//! copied files, mode changes, `\ No newline at end of file`, CRLF content, C-quoted names, and the
//! plain `---`/`+++` diffs of `diff -u`. Binary patches are recognised and their payload skipped.
//!
//! Line texts never hold the line's `'\n'`; a `'\r'` of a CRLF file stays in the text, so what is
//! applied is byte for byte what git would write.

mod apply;
mod generate;
mod parse;
mod path;
mod write;

#[cfg(test)]
mod tests;

pub use apply::{ApplyError, apply};
pub use generate::{file_patch, unified_diff};
pub use parse::{DiffError, parse, parse_hunks};
pub use path::{quote_path, unquote_path};
pub use write::write;

/// The numeric mode of a regular file, as in `new file mode 100644` (the mode fields hold real
/// numbers: git's text is octal).
pub const MODE_FILE: u32 = 0o100_644;
/// The numeric mode of an executable file (`100755`).
pub const MODE_EXECUTABLE: u32 = 0o100_755;
/// The numeric mode of a symbolic link (`120000`).
pub const MODE_SYMLINK: u32 = 0o120_000;
/// The numeric mode of a submodule entry (`160000`).
pub const MODE_SUBMODULE: u32 = 0o160_000;

/// What one line of a hunk does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// Unchanged, on both sides (a `' '` line).
    Context,
    /// Only in the new file (a `'+'` line).
    Added,
    /// Only in the old file (a `'-'` line).
    Removed,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Whether the line is kept, added or removed.
    pub kind: LineKind,
    /// The line without its prefix character and without `'\n'`; the `'\r'` of a CRLF line stays.
    pub text: String,
    /// 1-based number of the line in the old file (context and removed lines).
    pub old_line: Option<u32>,
    /// 1-based number of the line in the new file (context and added lines).
    pub new_line: Option<u32>,
    /// The line is the last of its file(s) and has no `'\n'` (`\ No newline at end of file` follows it).
    pub no_newline_at_end: bool,
}

/// One `@@ -a,b +c,d @@` block of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First old line the hunk covers (1-based; the line before the change when `old_count` is 0).
    pub old_start: u32,
    /// How many old lines (context and removed) the hunk covers.
    pub old_count: u32,
    /// First new line the hunk covers (1-based; the line before the change when `new_count` is 0).
    pub new_start: u32,
    /// How many new lines (context and added) the hunk covers.
    pub new_count: u32,
    /// The text after the second `@@` (git puts the enclosing function there), without the one
    /// separating space.
    pub section: String,
    /// The hunk's lines in order.
    pub lines: Vec<Line>,
}

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileStatus {
    /// The file is new (`new file mode`, or `--- /dev/null`).
    Added,
    /// The file was removed (`deleted file mode`, or `+++ /dev/null`).
    Deleted,
    /// The file changed in place (content or mode).
    Modified,
    /// The file moved (`rename from`/`rename to`), maybe with changes.
    Renamed,
    /// The file was copied (`copy from`/`copy to`), maybe with changes.
    Copied,
}

/// Everything a diff says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The path before the change, without `a/`; `None` for a new file.
    pub old_path: Option<String>,
    /// The path after the change, without `b/`; `None` for a deleted file.
    pub new_path: Option<String>,
    /// What happened to the file.
    pub status: FileStatus,
    /// The old mode from `old mode` or `deleted file mode` (e.g. [`MODE_FILE`]); `None` when the diff
    /// does not say (git's `index` line mode is not kept).
    pub old_mode: Option<u32>,
    /// The new mode from `new mode` or `new file mode`; `None` when the diff does not say.
    pub new_mode: Option<u32>,
    /// The percentage of `similarity index` (renames and copies).
    pub similarity: Option<u8>,
    /// The file is binary (`Binary files … differ` or a `GIT binary patch`, whose payload is not kept).
    pub binary: bool,
    /// The text changes, in file order.
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The file's path: the new path, or the old path for a deletion.
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or_default()
    }

    /// How many lines the patch adds.
    pub fn additions(&self) -> usize {
        self.lines().filter(|line| line.kind == LineKind::Added).count()
    }

    /// How many lines the patch removes.
    pub fn deletions(&self) -> usize {
        self.lines().filter(|line| line.kind == LineKind::Removed).count()
    }

    /// The new-side numbers of every context and added line the diff shows, sorted, without repeats:
    /// the lines a review comment may be anchored to.
    pub fn new_lines_in_diff(&self) -> Vec<u32> {
        sorted_unique(self.lines().filter(|line| line.kind != LineKind::Removed).filter_map(|line| line.new_line))
    }

    /// The new-side numbers of the added lines, sorted, without repeats.
    pub fn changed_new_lines(&self) -> Vec<u32> {
        sorted_unique(self.lines().filter(|line| line.kind == LineKind::Added).filter_map(|line| line.new_line))
    }

    fn lines(&self) -> impl Iterator<Item = &Line> {
        self.hunks.iter().flat_map(|hunk| hunk.lines.iter())
    }
}

fn sorted_unique(numbers: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut numbers: Vec<u32> = numbers.collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}
