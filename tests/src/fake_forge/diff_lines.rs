//! The lines a pull request's diff shows, as a forge knows them: a comment (review comment, GitLab
//! position, Gitea review comment) must sit on one of them, with the right numbers on each side.

use std::collections::BTreeMap;

/// One line the diff shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Its number in the old file (`None`: added).
    pub old: Option<u32>,
    /// Its number in the new file (`None`: removed).
    pub new: Option<u32>,
    /// The hunk it is in, counted over the file.
    pub hunk: usize,
}

/// Every line a unified diff shows, by file (new path).
#[derive(Debug, Clone, Default)]
pub struct DiffLines {
    files: BTreeMap<String, (Option<String>, Vec<Shown>)>,
}

impl DiffLines {
    /// The lines of `diff` (as `git diff` prints it); panics on a diff that does not parse.
    pub fn parse(diff: &str) -> Self {
        let patches = prfix_engine::diff::parse(diff).expect("the pull request's diff parses");
        let mut files = BTreeMap::new();
        for patch in patches {
            let shown = patch
                .hunks
                .iter()
                .enumerate()
                .flat_map(|(hunk, h)| h.lines.iter().map(move |l| Shown { old: l.old_line, new: l.new_line, hunk }))
                .collect();
            files.insert(patch.path().to_owned(), (patch.old_path.clone(), shown));
        }
        Self { files }
    }

    /// The file's old path (renames), when the diff has the file.
    pub fn old_path(&self, path: &str) -> Option<Option<&str>> {
        self.files.get(path).map(|(old, _)| old.as_deref())
    }

    /// The shown line with new number `line` in `path`.
    pub fn new_line(&self, path: &str, line: u32) -> Option<Shown> {
        self.files.get(path)?.1.iter().copied().find(|s| s.new == Some(line))
    }

    /// The shown line with old number `line` in `path`.
    pub fn old_line(&self, path: &str, line: u32) -> Option<Shown> {
        self.files.get(path)?.1.iter().copied().find(|s| s.old == Some(line))
    }

    /// Whether the diff has `path`.
    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }
}
