//! Writing patches back as git-style diff text.

use std::fmt::Write as _;

use super::path::quote_path;
use super::{FilePatch, FileStatus, Hunk, LineKind};

/// Writes patches as `git diff` would (names quoted like `core.quotePath=true`, counts of 1 left
/// out of hunk headers), so that `parse(&write(p)) == p` for every `p` that [`parse`](super::parse)
/// returned. Binary payloads are not kept, so a binary file is written as `Binary files … differ`;
/// `index` lines are not kept either.
pub fn write(patches: &[FilePatch]) -> String {
    let mut out = String::new();
    for patch in patches {
        write_file(&mut out, patch);
    }
    out
}

fn write_file(out: &mut String, patch: &FilePatch) {
    let old_name = patch.old_path.as_deref().or(patch.new_path.as_deref()).unwrap_or_default();
    let new_name = patch.new_path.as_deref().or(patch.old_path.as_deref()).unwrap_or_default();
    let old_label = match patch.status {
        FileStatus::Added => "/dev/null".to_owned(),
        _ => quote_path(&format!("a/{old_name}")),
    };
    let new_label = match patch.status {
        FileStatus::Deleted => "/dev/null".to_owned(),
        _ => quote_path(&format!("b/{new_name}")),
    };
    let _ =
        writeln!(out, "diff --git {} {}", quote_path(&format!("a/{old_name}")), quote_path(&format!("b/{new_name}")));
    if let Some(mode) = patch.old_mode {
        let keyword = if patch.status == FileStatus::Deleted { "deleted file mode" } else { "old mode" };
        let _ = writeln!(out, "{keyword} {mode:06o}");
    }
    if let Some(mode) = patch.new_mode {
        let keyword = if patch.status == FileStatus::Added { "new file mode" } else { "new mode" };
        let _ = writeln!(out, "{keyword} {mode:06o}");
    }
    if let Some(similarity) = patch.similarity {
        let _ = writeln!(out, "similarity index {similarity}%");
    }
    let moved = match patch.status {
        FileStatus::Renamed => Some("rename"),
        FileStatus::Copied => Some("copy"),
        _ => None,
    };
    if let Some(verb) = moved {
        let _ = writeln!(out, "{verb} from {}", quote_path(old_name));
        let _ = writeln!(out, "{verb} to {}", quote_path(new_name));
    }
    if patch.binary {
        let _ = writeln!(out, "Binary files {old_label} and {new_label} differ");
    }
    // Without hunks, an added or deleted file is only recognisable by its mode line or its labels.
    let status_needs_labels = match patch.status {
        FileStatus::Added => patch.new_mode.is_none(),
        FileStatus::Deleted => patch.old_mode.is_none(),
        _ => false,
    };
    if !patch.hunks.is_empty() || (status_needs_labels && !patch.binary) {
        let _ = writeln!(out, "--- {old_label}{}", tab_after_space(&old_label));
        let _ = writeln!(out, "+++ {new_label}{}", tab_after_space(&new_label));
    }
    for hunk in &patch.hunks {
        write_hunk(out, hunk);
    }
}

/// Git ends a `---`/`+++` name that holds a space with a tab, so that readers know where it ends.
fn tab_after_space(label: &str) -> &'static str {
    if label.contains(' ') { "\t" } else { "" }
}

fn write_hunk(out: &mut String, hunk: &Hunk) {
    let range = |start: u32, count: u32| if count == 1 { start.to_string() } else { format!("{start},{count}") };
    let _ = write!(out, "@@ -{} +{} @@", range(hunk.old_start, hunk.old_count), range(hunk.new_start, hunk.new_count));
    if !hunk.section.is_empty() {
        let _ = write!(out, " {}", hunk.section);
    }
    out.push('\n');
    for line in &hunk.lines {
        out.push(match line.kind {
            LineKind::Context => ' ',
            LineKind::Added => '+',
            LineKind::Removed => '-',
        });
        out.push_str(&line.text);
        out.push('\n');
        if line.no_newline_at_end {
            out.push_str("\\ No newline at end of file\n");
        }
    }
}
