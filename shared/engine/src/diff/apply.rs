//! Applying one file's patch in memory, as `git apply` does: context must match exactly, and a
//! hunk that is not at its stated line is looked for nearest first, above and below.

use super::{FilePatch, FileStatus, Hunk, LineKind};

/// Why a patch does not apply to the given content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The patch is binary: its payload is not kept, so it cannot be applied.
    #[error("{path}: cannot apply a binary patch (its payload is not kept)")]
    Binary {
        /// The file's path.
        path: String,
    },
    /// The patch changes or deletes a file, but no old content was given.
    #[error("{path}: the patch changes a file that does not exist")]
    MissingFile {
        /// The file's path.
        path: String,
    },
    /// The patch creates a file, but the file already has content.
    #[error("{path}: the patch creates a file that already exists")]
    AlreadyExists {
        /// The file's path.
        path: String,
    },
    /// A hunk's context and removed lines are found nowhere in the file (with the hunk's
    /// anchoring: a hunk at line 1 must match at the start, one without trailing context at the end).
    #[error(
        "{path}: hunk {hunk} ({header}) does not apply: at line {line} the patch expects {expected} but the file has \
         {found}"
    )]
    HunkMismatch {
        /// The file's path.
        path: String,
        /// 1-based number of the hunk in the file's patch.
        hunk: usize,
        /// The hunk's `@@ … @@` header.
        header: String,
        /// The 1-based line (of the file as patched so far) where the hunk was expected and differs.
        line: usize,
        /// The patch's line there, quoted (with a note when it has no newline), or `end of file`.
        expected: String,
        /// The file's line there, quoted (with a note when it has no newline), or `end of file`.
        found: String,
    },
    /// After applying, a line the patch marks `\ No newline at end of file` is not the last line.
    #[error("{path}: hunk {hunk} leaves a line without newline in the middle of the file")]
    NewlineInMiddle {
        /// The file's path.
        path: String,
        /// 1-based number of the hunk whose line it is.
        hunk: usize,
    },
    /// A deletion patch leaves content behind.
    #[error("{path}: the deletion patch leaves {remaining} lines in the file")]
    DeletionLeavesContent {
        /// The file's path.
        path: String,
        /// How many lines are left.
        remaining: usize,
    },
}

/// One line of the image: its text without `'\n'`, and whether a `'\n'` follows it.
type ImageLine<'a> = (&'a str, bool);

/// Applies one file's patch to its old content (`None` when the file does not exist) and returns the
/// new content, `None` when the patch deletes the file. Like `git apply`: hunks apply in order to the
/// text as patched so far, each at its stated line or the nearest place where its context and removed
/// lines match exactly; when no hunk has any context (`-U0`), hunks are not anchored to the start or end.
pub fn apply(old: Option<&str>, patch: &FilePatch) -> Result<Option<String>, ApplyError> {
    let path = || patch.path().to_owned();
    if patch.binary {
        return Err(ApplyError::Binary { path: path() });
    }
    let old = match (patch.status, old) {
        (FileStatus::Added, Some(text)) if !text.is_empty() => return Err(ApplyError::AlreadyExists { path: path() }),
        (FileStatus::Added, _) => "",
        (_, None) => return Err(ApplyError::MissingFile { path: path() }),
        (_, Some(text)) => text,
    };
    let mut image: Vec<ImageLine<'_>> = old
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(text) => (text, true),
            None => (line, false),
        })
        .collect();
    let unidiff_zero = patch.hunks.iter().all(|hunk| hunk.lines.iter().all(|line| line.kind != LineKind::Context));
    for (index, hunk) in patch.hunks.iter().enumerate() {
        let changed = apply_hunk(&mut image, hunk, unidiff_zero).map_err(|miss| ApplyError::HunkMismatch {
            path: path(),
            hunk: index + 1,
            header: header(hunk),
            line: miss.line,
            expected: miss.expected,
            found: miss.found,
        })?;
        // Only the new lines and the one before them can have become a line without newline that is
        // not the last.
        let last = image.len().saturating_sub(1);
        let around = changed.start.saturating_sub(1)..changed.end.min(last);
        if image.get(around).is_some_and(|lines| lines.iter().any(|(_, newline)| !newline)) {
            return Err(ApplyError::NewlineInMiddle { path: path(), hunk: index + 1 });
        }
    }
    if patch.status == FileStatus::Deleted {
        return match image.len() {
            0 => Ok(None),
            remaining => Err(ApplyError::DeletionLeavesContent { path: path(), remaining }),
        };
    }
    let mut new = String::with_capacity(old.len());
    for (text, newline) in image {
        new.push_str(text);
        if newline {
            new.push('\n');
        }
    }
    Ok(Some(new))
}

/// Where and how a hunk failed to match at its stated position.
struct Miss {
    line: usize,
    expected: String,
    found: String,
}

/// Applies one hunk and returns where its new lines now are in the image.
fn apply_hunk<'a>(
    image: &mut Vec<ImageLine<'a>>,
    hunk: &'a Hunk,
    unidiff_zero: bool,
) -> Result<std::ops::Range<usize>, Miss> {
    let side = |keep: LineKind| -> Vec<ImageLine<'a>> {
        hunk.lines
            .iter()
            .filter(|line| line.kind != keep)
            .map(|line| (line.text.as_str(), !line.no_newline_at_end))
            .collect()
    };
    let preimage = side(LineKind::Added);
    let postimage = side(LineKind::Removed);
    let trailing_context = hunk.lines.iter().rev().take_while(|line| line.kind == LineKind::Context).count();
    let match_beginning = hunk.old_start == 0 || (hunk.old_start == 1 && !unidiff_zero);
    let match_end = !unidiff_zero && trailing_context == 0;
    // As git does, the hint is the hunk's new-side start: earlier hunks already moved the text.
    let hint = usize::try_from(hunk.new_start.saturating_sub(1)).unwrap_or(usize::MAX).min(image.len());
    let found = find(image, &preimage, hint, match_beginning, match_end).ok_or_else(|| {
        let at = if match_beginning {
            0
        } else if match_end {
            image.len().saturating_sub(preimage.len())
        } else {
            hint
        };
        describe_miss(image, &preimage, at)
    })?;
    let inserted = found..found + postimage.len();
    image.splice(found..found + preimage.len(), postimage);
    Ok(inserted)
}

/// The nearest position to `hint` where `preimage` matches, trying `hint`, then one below, one
/// above, two below, … (git's order).
fn find(
    image: &[ImageLine<'_>],
    preimage: &[ImageLine<'_>],
    hint: usize,
    match_beginning: bool,
    match_end: bool,
) -> Option<usize> {
    let last = image.len().checked_sub(preimage.len())?;
    let fits = |at: usize| {
        at <= last
            && (!match_beginning || at == 0)
            && (!match_end || at == last)
            && image.get(at..at + preimage.len()) == Some(preimage)
    };
    if match_beginning {
        return fits(0).then_some(0);
    }
    if match_end {
        return fits(last).then_some(last);
    }
    let hint = hint.min(last);
    (0..=last.max(hint))
        .flat_map(|distance| [hint.checked_add(distance), hint.checked_sub(distance)])
        .flatten()
        .find(|&at| fits(at))
}

/// The first line where `preimage` differs from the image at `at`.
fn describe_miss(image: &[ImageLine<'_>], preimage: &[ImageLine<'_>], at: usize) -> Miss {
    let shown = |line: Option<&ImageLine<'_>>| match line {
        Some((text, true)) => format!("{text:?}"),
        Some((text, false)) => format!("{text:?} (no newline at end of file)"),
        None => "end of file".to_owned(),
    };
    let offset = preimage.iter().enumerate().position(|(index, line)| image.get(at + index) != Some(line));
    match offset {
        Some(index) => {
            Miss { line: at + index + 1, expected: shown(preimage.get(index)), found: shown(image.get(at + index)) }
        }
        // The text matches here but the hunk is anchored elsewhere (start or end of file).
        None => Miss {
            line: at + preimage.len() + 1,
            expected: "end of file".to_owned(),
            found: shown(image.get(at + preimage.len())),
        },
    }
}

fn header(hunk: &Hunk) -> String {
    format!("@@ -{},{} +{},{} @@", hunk.old_start, hunk.old_count, hunk.new_start, hunk.new_count)
}
