//! Making a git-style diff of two texts: `similar`'s Myers line diff, grouped into hunks the way
//! git's xdiff does (changes closer than twice the context share a hunk).

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffTag, capture_diff_slices_deadline};

use super::write::write;
use super::{FilePatch, FileStatus, Hunk, Line, LineKind, MODE_FILE};

/// How long the line diff may search for a minimal diff before it settles for a correct, larger one.
const DIFF_DEADLINE: Duration = Duration::from_secs(10);

/// A git-style diff turning `old` into `new` (`None` for a file that does not exist on that side),
/// with `context` lines around each change: `diff --git`, `new file mode 100644` or
/// `deleted file mode 100644`, rename lines when the paths differ, `---`/`+++`, hunks and
/// `\ No newline at end of file`. Empty when nothing changed. `git apply` accepts the result.
pub fn unified_diff(old_path: &str, new_path: &str, old: Option<&str>, new: Option<&str>, context: usize) -> String {
    file_patch(old_path, new_path, old, new, context).map(|patch| write(&[patch])).unwrap_or_default()
}

/// The patch [`unified_diff`] writes, as a structure; `None` when nothing changed.
pub fn file_patch(
    old_path: &str,
    new_path: &str,
    old: Option<&str>,
    new: Option<&str>,
    context: usize,
) -> Option<FilePatch> {
    let status = match (old, new) {
        (None, None) => return None,
        (None, Some(_)) => FileStatus::Added,
        (Some(_), None) => FileStatus::Deleted,
        (Some(old), Some(new)) if old == new && old_path == new_path => return None,
        (Some(_), Some(_)) if old_path != new_path => FileStatus::Renamed,
        (Some(_), Some(_)) => FileStatus::Modified,
    };
    let hunks = hunks(old.unwrap_or_default(), new.unwrap_or_default(), context);
    Some(FilePatch {
        old_path: old.map(|_| old_path.to_owned()),
        new_path: new.map(|_| new_path.to_owned()),
        status,
        old_mode: (status == FileStatus::Deleted).then_some(MODE_FILE),
        new_mode: (status == FileStatus::Added).then_some(MODE_FILE),
        similarity: (status == FileStatus::Renamed && hunks.is_empty()).then_some(100),
        binary: false,
        hunks,
    })
}

/// One line of the edit script, with where it stands on each side (0-based; for a line missing
/// on a side, the number of that side's lines before it).
struct Edit<'a> {
    kind: LineKind,
    text: &'a str,
    old_pos: usize,
    new_pos: usize,
}

fn hunks(old: &str, new: &str, context: usize) -> Vec<Hunk> {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let deadline = Instant::now().checked_add(DIFF_DEADLINE);
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &old_lines, &new_lines, deadline);
    // Only the lengths of the ops are used: `similar` may report a delete's new index elsewhere.
    let (mut old_pos, mut new_pos) = (0, 0);
    let mut script = Vec::with_capacity(old_lines.len().max(new_lines.len()));
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        let (old_len, new_len) = (old_range.len(), new_range.len());
        if tag == DiffTag::Equal {
            for offset in 0..old_len {
                let text = old_lines.get(old_pos + offset).copied().unwrap_or_default();
                script.push(Edit {
                    kind: LineKind::Context,
                    text,
                    old_pos: old_pos + offset,
                    new_pos: new_pos + offset,
                });
            }
        } else {
            for offset in 0..old_len {
                let text = old_lines.get(old_pos + offset).copied().unwrap_or_default();
                script.push(Edit { kind: LineKind::Removed, text, old_pos: old_pos + offset, new_pos });
            }
            for offset in 0..new_len {
                let text = new_lines.get(new_pos + offset).copied().unwrap_or_default();
                script.push(Edit {
                    kind: LineKind::Added,
                    text,
                    old_pos: old_pos + old_len,
                    new_pos: new_pos + offset,
                });
            }
        }
        old_pos += old_len;
        new_pos += if tag == DiffTag::Equal { old_len } else { new_len };
    }
    group(&script, context).into_iter().map(|range| make_hunk(&script, range)).collect()
}

/// The script ranges of the hunks: each change with `context` lines around it, changes at most
/// `2 * context` lines apart joined.
fn group(script: &[Edit<'_>], context: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut last_change: Option<usize> = None;
    for (index, edit) in script.iter().enumerate() {
        if edit.kind == LineKind::Context {
            continue;
        }
        let end = index.saturating_add(context).saturating_add(1).min(script.len());
        match (groups.last_mut(), last_change) {
            (Some(current), Some(previous)) if index - previous - 1 <= context.saturating_mul(2) => current.end = end,
            _ => groups.push(index.saturating_sub(context)..end),
        }
        last_change = Some(index);
    }
    groups
}

fn make_hunk(script: &[Edit<'_>], range: std::ops::Range<usize>) -> Hunk {
    let edits = script.get(range).unwrap_or_default();
    let number = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    let old_count = edits.iter().filter(|edit| edit.kind != LineKind::Added).count();
    let new_count = edits.iter().filter(|edit| edit.kind != LineKind::Removed).count();
    let (old_pos, new_pos) = edits.first().map(|edit| (edit.old_pos, edit.new_pos)).unwrap_or_default();
    let start = |pos: usize, count: usize| number(if count > 0 { pos + 1 } else { pos });
    let lines = edits
        .iter()
        .map(|edit| {
            let text = edit.text.strip_suffix('\n');
            Line {
                kind: edit.kind,
                text: text.unwrap_or(edit.text).to_owned(),
                old_line: (edit.kind != LineKind::Added).then(|| number(edit.old_pos + 1)),
                new_line: (edit.kind != LineKind::Removed).then(|| number(edit.new_pos + 1)),
                no_newline_at_end: text.is_none(),
            }
        })
        .collect();
    Hunk {
        old_start: start(old_pos, old_count),
        old_count: number(old_count),
        new_start: start(new_pos, new_count),
        new_count: number(new_count),
        section: String::new(),
        lines,
    }
}
