//! Which lines a bug fix changed, for the SZZ method: the old-side lines of a fix commit's diff,
//! leaving out what cannot hold the bug: whitespace-only changes, blank and comment lines,
//! renames and moved code (refactoring), test files and files that are not source code.
//!
//! Everything here is a pure function of the diff and the files, so it is tested without git.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use prfix_engine::diff::{FilePatch, FileStatus, LineKind};

/// Extensions of source files, the ones a review can find bugs in.
const SOURCE_EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "js", "jsx", "mjs", "cjs", "ts", "tsx", "go", "java", "kt", "kts", "scala", "c", "h", "cc",
    "cpp", "cxx", "hpp", "hh", "cs", "rb", "php", "swift", "m", "mm", "sh", "bash", "zsh", "sql", "lua", "pl", "pm",
    "r", "dart", "ex", "exs", "erl", "hs", "ml", "clj", "groovy", "vue", "svelte", "proto", "tf",
];

/// Line-comment starts of languages whose comments start with `#`.
const HASH_COMMENTS: &[&str] =
    &["py", "pyi", "rb", "sh", "bash", "zsh", "pl", "pm", "r", "ex", "exs", "tf", "toml", "yaml", "yml"];

/// Lines left out of a fix, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeftOut {
    /// Changed lines whose change was only whitespace.
    pub whitespace: usize,
    /// Removed lines that were blank or comments.
    pub comment: usize,
    /// Removed lines of renames or moved code.
    pub refactoring: usize,
}

impl LeftOut {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: LeftOut) {
        self.whitespace += other.whitespace;
        self.comment += other.comment;
        self.refactoring += other.refactoring;
    }
}

/// The extension of `path`, lowercased.
fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default()
}

/// Whether `path` is a test: under a `test`/`tests`/`spec`/`__tests__` directory, or named like one
/// (`test_x.py`, `x_test.go`, `x.test.ts`, `x.spec.js`, `XTest.java`).
pub fn is_test_path(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    if parts.iter().any(|p| matches!(*p, "test" | "tests" | "spec" | "specs" | "__tests__" | "testing")) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name);
    stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_spec")
        || (stem.ends_with("Test") && stem.len() > 4)
        || name.contains(".test.")
        || name.contains(".spec.")
}

/// Whether a bug can live in `path`: a source file that is not a test.
pub fn is_reviewable(path: &str) -> bool {
    SOURCE_EXTENSIONS.contains(&extension(path).as_str()) && !is_test_path(path)
}

/// Whether `text` (a line of `path`) is blank or only a comment.
pub fn is_blank_or_comment(path: &str, text: &str) -> bool {
    let line = text.trim();
    if line.is_empty() {
        return true;
    }
    let ext = extension(path);
    if HASH_COMMENTS.contains(&ext.as_str()) {
        return line.starts_with('#');
    }
    if ext == "sql" || ext == "lua" || ext == "hs" {
        return line.starts_with("--");
    }
    line.starts_with("//") || line.starts_with("/*") || line.starts_with("*/") || line.starts_with("* ") || line == "*"
}

/// `text` without any whitespace.
fn squeezed<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines.flat_map(|l| l.chars()).filter(|c| !c.is_whitespace()).collect()
}

/// Tokens of code: identifiers and single other characters, whitespace dropped.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn is_identifier(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Whether `removed` became `added` by renaming identifiers only: the same tokens but for
/// identifiers, each old name always replaced by the same new one, and every renamed old name gone
/// from the new file (a rename changes every use; a fix that swaps one variable for another that
/// still exists is a fix, not a rename).
fn is_rename(removed: &str, added: &str, new_file_identifiers: &HashSet<String>) -> bool {
    let (old, new) = (tokens(removed), tokens(added));
    if old.len() != new.len() || old == new {
        return false;
    }
    let mut mapping: BTreeMap<&str, &str> = BTreeMap::new();
    let mut reverse: BTreeMap<&str, &str> = BTreeMap::new();
    for (o, n) in old.iter().zip(&new) {
        if o == n {
            continue;
        }
        if !is_identifier(o) || !is_identifier(n) {
            return false;
        }
        let (o, n) = (o.as_str(), n.as_str());
        if *mapping.entry(o).or_insert(n) != n || *reverse.entry(n).or_insert(o) != o {
            return false;
        }
    }
    mapping.keys().all(|old_name| !new_file_identifiers.contains(*old_name))
}

/// The old-side lines of `patch` (a file of a fix commit's diff, made with `-U0`) that the fix
/// changed and that may hold the bug, with the lines left out. `new_content` is the file after the
/// fix; `added_elsewhere` holds the trimmed added lines of the whole commit (to tell moved code).
pub fn fixed_lines(
    patch: &FilePatch,
    new_content: &str,
    added_elsewhere: &HashSet<String>,
) -> (BTreeSet<u32>, LeftOut) {
    let mut fixed = BTreeSet::new();
    let mut left = LeftOut::default();
    if patch.status == FileStatus::Added || patch.binary {
        return (fixed, left);
    }
    let path = patch.old_path.as_deref().unwrap_or_else(|| patch.path());
    let identifiers: HashSet<String> = tokens(new_content).into_iter().filter(|t| is_identifier(t)).collect();
    for hunk in &patch.hunks {
        // Blank and comment lines cannot hold the bug; the rest of the hunk is judged on its code.
        let code =
            |kind: LineKind| hunk.lines.iter().filter(move |l| l.kind == kind && !is_blank_or_comment(path, &l.text));
        let comments =
            hunk.lines.iter().filter(|l| l.kind == LineKind::Removed).count() - code(LineKind::Removed).count();
        left.comment += comments;
        let removed: Vec<_> = code(LineKind::Removed).collect();
        let added: Vec<_> = code(LineKind::Added).collect();
        if removed.is_empty() {
            continue;
        }
        let removed_text = removed.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
        let added_text = added.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
        if squeezed(removed.iter().map(|l| l.text.as_str())) == squeezed(added.iter().map(|l| l.text.as_str())) {
            left.whitespace += removed.len();
            continue;
        }
        if !added.is_empty() && is_rename(&removed_text, &added_text, &identifiers) {
            left.refactoring += removed.len();
            continue;
        }
        if added.is_empty() && removed.iter().all(|l| added_elsewhere.contains(l.text.trim())) {
            left.refactoring += removed.len();
            continue;
        }
        fixed.extend(removed.iter().filter_map(|l| l.old_line));
    }
    (fixed, left)
}

/// The trimmed, non-blank added lines of a commit's files, for [`fixed_lines`].
pub fn added_lines(patches: &[FilePatch]) -> HashSet<String> {
    patches
        .iter()
        .flat_map(|p| &p.hunks)
        .flat_map(|h| &h.lines)
        .filter(|l| l.kind == LineKind::Added && !l.text.trim().is_empty())
        .map(|l| l.text.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(diff: &str, new_content: &str) -> (Vec<u32>, LeftOut) {
        let patches = prfix_engine::diff::parse(diff).expect("a diff");
        let added = added_lines(&patches);
        let (fixed, left) = fixed_lines(&patches[0], new_content, &added);
        (fixed.into_iter().collect(), left)
    }

    const HEAD: &str = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n";

    #[test]
    fn a_changed_line_of_code_is_fixed_and_an_added_one_is_not() {
        let diff = format!("{HEAD}@@ -3 +3 @@\n-    return x - 1\n+    return x + 1\n@@ -9,0 +10 @@\n+    log(x)\n");
        assert_eq!(lines_of(&diff, "def f(x):\n    return x + 1\n"), (vec![3], LeftOut::default()));
    }

    #[test]
    fn whitespace_and_comment_changes_are_left_out() {
        let diff = format!(
            "{HEAD}@@ -2 +2 @@\n-    return  x+1\n+    return x + 1\n@@ -5,2 +5,2 @@\n-# old note\n-\n+# new note\n+\n"
        );
        let (fixed, left) = lines_of(&diff, "");
        assert!(fixed.is_empty(), "{fixed:?}");
        assert_eq!(left, LeftOut { whitespace: 1, comment: 2, refactoring: 0 });
    }

    #[test]
    fn a_rename_is_refactoring_but_swapping_in_a_variable_that_exists_is_a_fix() {
        let renamed = format!("{HEAD}@@ -2 +2 @@\n-    total = count + 1\n+    total = amount + 1\n");
        let (fixed, left) = lines_of(&renamed, "def f(amount):\n    total = amount + 1\n");
        assert!(fixed.is_empty());
        assert_eq!(left.refactoring, 1);
        let swapped = format!("{HEAD}@@ -2 +2 @@\n-    return a\n+    return b\n");
        let (fixed, _) = lines_of(&swapped, "def f(a, b):\n    return b\n");
        assert_eq!(fixed.into_iter().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn moved_code_is_refactoring() {
        let diff = format!("{HEAD}@@ -4 +3,0 @@\n-    check(x)\n@@ -8,0 +8 @@\n+    check(x)\n");
        let (fixed, left) = lines_of(&diff, "");
        assert!(fixed.is_empty());
        assert_eq!(left.refactoring, 1);
    }

    #[test]
    fn sources_are_reviewable_and_tests_and_docs_are_not() {
        for path in ["src/lib.rs", "app/db.py", "web/a.tsx", "cmd/main.go"] {
            assert!(is_reviewable(path), "{path}");
        }
        for path in ["README.md", "tests/app.rs", "test_calc.py", "pkg/a_test.go", "web/a.spec.ts", "Cargo.lock"] {
            assert!(!is_reviewable(path), "{path}");
        }
        assert!(is_test_path("test_calc.py") && is_test_path("src/FooTest.java") && !is_test_path("src/latest.rs"));
    }

    #[test]
    fn comment_syntax_follows_the_language() {
        assert!(is_blank_or_comment("a.py", "  # note") && !is_blank_or_comment("a.py", "x = 1  # note"));
        assert!(is_blank_or_comment("a.rs", "/// doc") && !is_blank_or_comment("a.rs", "#[derive(Debug)]"));
        assert!(is_blank_or_comment("a.sql", "-- note") && is_blank_or_comment("a.c", " * more"));
        assert!(!is_blank_or_comment("a.rs", "*x = 1;"));
    }
}
