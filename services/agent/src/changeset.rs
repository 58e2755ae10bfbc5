//! Change sets: checked against the limits when a task is created, and redacted before a worker
//! shows any of it to a model.

use std::collections::BTreeMap;

use prfix_engine::diff::{self, FilePatch};
use prfix_engine::redact::{Redactor, Vault};
use prfix_proto::agent::v1 as pb;

use crate::settings::ChangeSetLimits;

/// Checks sizes, paths and the diff of a change set; the message names the field and the limit.
pub fn validate(cs: &pb::ChangeSet, limits: &ChangeSetLimits, needs_diff: bool) -> Result<(), String> {
    let pb::ChangeSet { diff, files, context_files, base_ref: _, head_ref: _, repository: _ } = cs;
    if diff.len() > limits.max_diff_bytes {
        return Err(format!(
            "change_set.diff is {} bytes, over the limit of {} bytes; review fewer files (pass paths) or a smaller range",
            diff.len(),
            limits.max_diff_bytes
        ));
    }
    if files.len() > limits.max_files {
        return Err(format!("change_set.files has {} files, over the limit of {}", files.len(), limits.max_files));
    }
    if context_files.len() > limits.max_context_files {
        return Err(format!(
            "change_set.context_files has {} files, over the limit of {}",
            context_files.len(),
            limits.max_context_files
        ));
    }
    if needs_diff && diff.trim().is_empty() {
        return Err("change_set.diff is empty: there is nothing to work on".to_owned());
    }
    let patches = diff::parse(diff).map_err(|e| format!("change_set.diff is not a unified diff: {e}"))?;
    if needs_diff && patches.is_empty() {
        return Err("change_set.diff holds no file changes".to_owned());
    }
    for patch in &patches {
        for path in [patch.old_path.as_deref(), patch.new_path.as_deref()].into_iter().flatten() {
            prfix_engine::paths::check(path)
                .map_err(|e| format!("change_set.diff names a path that is refused: {e}"))?;
        }
    }
    let mut total = diff.len();
    let mut seen = std::collections::HashSet::new();
    let named = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("change_set.files[{i}]"),
                f.path.as_str(),
                f.new_content.len() + f.old_content.as_ref().map_or(0, String::len),
            )
        })
        .chain(
            context_files
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("change_set.context_files[{i}]"), f.path.as_str(), f.content.len())),
        );
    for (field, path, size) in named {
        let checked = prfix_engine::paths::check(path).map_err(|e| format!("{field}.path: {e}"))?;
        if checked != path {
            return Err(format!("{field}.path `{path}` must be written `{checked}`"));
        }
        if !seen.insert(path.to_owned()) {
            return Err(format!("{field}.path `{path}` appears twice in the change set"));
        }
        if size > limits.max_file_bytes {
            return Err(format!(
                "{field} ({path}) is {size} bytes, over the limit of {} bytes per file",
                limits.max_file_bytes
            ));
        }
        total += size;
    }
    if total > limits.max_total_bytes {
        return Err(format!(
            "the change set is {total} bytes in all, over the limit of {} bytes; send fewer files",
            limits.max_total_bytes
        ));
    }
    Ok(())
}

/// A change set as a worker uses it: every text redacted with one vault.
pub struct Prepared {
    /// The diff, redacted.
    pub diff: String,
    /// Its files, parsed from the redacted diff (line numbers are unchanged by redaction).
    pub patches: Vec<FilePatch>,
    /// Post-change contents of the changed files, redacted.
    pub files: BTreeMap<String, String>,
    /// Post-change contents as sent, not redacted (the base of a fix's patch).
    pub original_files: BTreeMap<String, String>,
    /// Context files, redacted.
    pub context: BTreeMap<String, String>,
    /// Context files as sent.
    pub original_context: BTreeMap<String, String>,
    /// The secrets replaced, to restore them in patches.
    pub vault: Vault,
}

/// Redacts a change set; `extra` are the task's other texts (check output, instructions) that will
/// be redacted with the same vault afterwards.
pub fn prepare(cs: &pb::ChangeSet, redactor: &Redactor, extra: &[&str]) -> Result<Prepared, String> {
    let mut vault = Vault::default();
    // Literal placeholder-shaped text anywhere in the task is reserved first, so a secret's
    // placeholder can never be confused with text a file already held.
    vault.reserve(&cs.diff);
    for f in &cs.files {
        vault.reserve(&f.new_content);
    }
    for f in &cs.context_files {
        vault.reserve(&f.content);
    }
    for text in extra {
        vault.reserve(text);
    }
    let diff_text = redactor.redact(&cs.diff, &mut vault);
    let patches = diff::parse(&diff_text).map_err(|e| format!("change_set.diff is not a unified diff: {e}"))?;
    let mut files = BTreeMap::new();
    let mut original_files = BTreeMap::new();
    for f in &cs.files {
        files.insert(f.path.clone(), redactor.redact(&f.new_content, &mut vault));
        original_files.insert(f.path.clone(), f.new_content.clone());
    }
    let mut context = BTreeMap::new();
    let mut original_context = BTreeMap::new();
    for f in &cs.context_files {
        context.insert(f.path.clone(), redactor.redact(&f.content, &mut vault));
        original_context.insert(f.path.clone(), f.content.clone());
    }
    Ok(Prepared { diff: diff_text, patches, files, original_files, context, original_context, vault })
}
