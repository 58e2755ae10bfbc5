//! The patch of a fix: built from the edited files, its paths checked, and checked to reproduce
//! the edited files before it is returned.

use std::collections::BTreeMap;

use super::FixError;
use crate::diff;

/// Per-file figures of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Path.
    pub path: String,
    /// Whether the file is new.
    pub added: bool,
    /// Lines added.
    pub additions: usize,
    /// Lines removed.
    pub deletions: usize,
}

/// Builds the git-style patch from `original` to `edited`, checking every path (relative, no `..`,
/// nothing under `.git/`, no new file unless `allow_new`), and checks that the patch applied to the
/// originals gives the edited files exactly.
pub fn build_patch(
    original: &BTreeMap<String, String>,
    edited: &BTreeMap<String, String>,
    allow_new: bool,
) -> Result<(String, Vec<FileStat>), FixError> {
    let mut patch = String::new();
    let mut stats = Vec::new();
    for (path, new) in edited {
        let old = original.get(path);
        if old == Some(new) {
            continue;
        }
        let checked =
            crate::paths::check(path).map_err(|e| FixError::Path { path: path.clone(), reason: e.to_string() })?;
        if checked != *path {
            return Err(FixError::Path { path: path.clone(), reason: format!("write it as `{checked}`") });
        }
        if old.is_none() && !allow_new {
            return Err(FixError::Path {
                path: path.clone(),
                reason: "it is not in the change set and creating files was not asked for".to_owned(),
            });
        }
        let text = diff::unified_diff(path, path, old.map(String::as_str), Some(new), 3);
        let parsed =
            diff::parse(&text).map_err(|e| FixError::PatchCheck { path: path.clone(), reason: e.to_string() })?;
        let Some(file) = parsed.first() else {
            return Err(FixError::PatchCheck { path: path.clone(), reason: "the diff is empty".to_owned() });
        };
        let applied = diff::apply(old.map(String::as_str), file)
            .map_err(|e| FixError::PatchCheck { path: path.clone(), reason: e.to_string() })?;
        if applied.as_deref() != Some(new.as_str()) {
            return Err(FixError::PatchCheck {
                path: path.clone(),
                reason: "applying it does not give the edited file".to_owned(),
            });
        }
        stats.push(FileStat {
            path: path.clone(),
            added: old.is_none(),
            additions: file.additions(),
            deletions: file.deletions(),
        });
        patch.push_str(&text);
    }
    if patch.is_empty() {
        return Err(FixError::Empty);
    }
    Ok((patch, stats))
}
