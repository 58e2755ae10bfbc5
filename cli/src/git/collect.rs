//! [`Checkout::collect`]: the diff of a checkout against a base, with the new content of every
//! changed text file.

use prfix_engine::diff::{FilePatch, FileStatus, MODE_SUBMODULE, MODE_SYMLINK};

use super::command::{git, nul_separated, one_line, run, stdout};
use super::{Checkout, GitError};

/// What to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSpec {
    /// The revision to compare against; the diff starts at its merge base with `HEAD` (as a pull
    /// request's does). `None`: the merge base of `HEAD` and [`Checkout::default_branch`].
    pub base: Option<String>,
    /// Compare the index (staged changes only) instead of the working tree.
    pub staged: bool,
    /// Limit the diff to these pathspecs, read relative to the directory the checkout was
    /// discovered from (as git reads them); empty: the whole tree.
    pub paths: Vec<String>,
    /// Unchanged lines shown around each change.
    pub context_lines: u32,
}

impl Default for DiffSpec {
    fn default() -> Self {
        Self { base: None, staged: false, paths: Vec::new(), context_lines: 3 }
    }
}

/// One changed file with its new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path from the top of the working tree, with `/` separators.
    pub path: String,
    /// The whole new text (from the working tree, or from the index when staged).
    pub content: String,
}

/// The change set of a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Collected {
    /// The sha the diff starts from.
    pub base: String,
    /// The sha of `HEAD`.
    pub head: String,
    /// The unified diff, as `git diff` writes it (untracked files appear as new files).
    pub diff: String,
    /// Changed text files that still exist, in diff order, with their new content.
    pub files: Vec<ChangedFile>,
    /// Changed files that are binary or not UTF-8 text: in the diff, but without content.
    pub binary: Vec<String>,
}

impl Collected {
    /// The size of the diff in bytes, for the caller's limits.
    pub fn diff_len(&self) -> usize {
        self.diff.len()
    }
}

/// The diff options that keep git's output plain text whatever the user's config says.
const DIFF_OPTIONS: [&str; 7] =
    ["--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", "--submodule=short", "-M"];

impl Checkout {
    /// Collects the diff between the base and the working tree (or the index when staged),
    /// untracked files that are not ignored included as new files, and the new content of each
    /// changed text file. Deleted files are in the diff but not in `files`.
    pub fn collect(&self, spec: &DiffSpec) -> Result<Collected, GitError> {
        let head = self.head()?;
        let base = match &spec.base {
            Some(rev) => self.merge_base(rev, "HEAD")?,
            None => self.merge_base(&self.default_branch()?, "HEAD")?,
        };
        let context = format!("-U{}", spec.context_lines);
        let mut command = git(&self.cwd);
        command.arg("diff").args(DIFF_OPTIONS).args(["--no-relative", &context]);
        if spec.staged {
            command.arg("--cached");
        }
        command.arg(&base).arg("--").args(&spec.paths);
        let mut diff = String::from_utf8_lossy(&stdout(command, "diff the working tree")?).into_owned();
        if !spec.staged {
            for path in self.untracked(&spec.paths)? {
                diff.push_str(&self.new_file_diff(&path, &context)?);
            }
        }
        let patches =
            prfix_engine::diff::parse(&diff).map_err(|error| GitError::BadDiff { message: error.to_string() })?;
        let mut files = Vec::new();
        let mut binary = Vec::new();
        for patch in &patches {
            if patch.binary {
                binary.push(patch.path().to_owned());
            } else if patch.status != FileStatus::Deleted && !is_link_or_submodule(patch) {
                let path = patch.path();
                let bytes = if spec.staged { self.staged_content(path)? } else { self.worktree_content(path)? };
                match bytes.map(String::from_utf8) {
                    Some(Ok(content)) => files.push(ChangedFile { path: path.to_owned(), content }),
                    Some(Err(_)) => binary.push(path.to_owned()),
                    None => {}
                }
            }
        }
        Ok(Collected { base, head, diff, files, binary })
    }

    /// Untracked files that are not ignored, within `paths` (everywhere when empty), as paths from
    /// the top of the tree.
    pub(super) fn untracked(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        // Without pathspecs ls-files only lists the current directory: list from the top instead.
        let mut command = git(if paths.is_empty() { &self.root } else { &self.cwd });
        command.args(["ls-files", "-z", "--others", "--exclude-standard", "--full-name", "--"]).args(paths);
        let output = stdout(command, "list untracked files")?;
        // A trailing `/` is a nested repository, which is not a file.
        Ok(nul_separated(&output).filter(|path| !path.ends_with('/')).collect())
    }

    /// The diff that adds the untracked file `path` (`git diff --no-index /dev/null <path>`, which
    /// writes the same headers as `git diff` would for a new file).
    fn new_file_diff(&self, path: &str, context: &str) -> Result<String, GitError> {
        let full = self.root.join(path);
        let metadata = std::fs::symlink_metadata(&full).map_err(|source| GitError::File {
            what: "read",
            path: full.clone(),
            source,
        })?;
        if !metadata.is_file() && !metadata.is_symlink() {
            return Ok(String::new());
        }
        let mut command = git(&self.root);
        command.arg("diff").args(DIFF_OPTIONS).args(["--no-index", context, "--", "/dev/null", path]);
        let output = run(command, None)?;
        // Exit status 1 means "the files differ", which they do.
        match output.status.code() {
            Some(0 | 1) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            _ => Err(GitError::Failed {
                what: format!("diff the untracked file {path}"),
                message: one_line(&output.stderr),
            }),
        }
    }

    /// The bytes of `path` in the working tree; `None` when it is not a regular file.
    fn worktree_content(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let full = self.root.join(path);
        match std::fs::symlink_metadata(&full) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(GitError::File { what: "read", path: full, source }),
        }
        std::fs::read(&full).map(Some).map_err(|source| GitError::File { what: "read", path: full, source })
    }

    /// The bytes of `path` in the index; `None` when it is not a regular file there.
    fn staged_content(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let mut command = git(&self.root);
        command.args(["--literal-pathspecs", "ls-files", "--stage", "-z", "--", path]);
        let listing = stdout(command, "read the index")?;
        let Some(entry) = nul_separated(&listing).next() else { return Ok(None) };
        // `<mode> <sha> <stage>\t<path>`
        let mut fields = entry.split([' ', '\t']);
        let (Some(mode), Some(sha)) = (fields.next(), fields.next()) else { return Ok(None) };
        if !mode.starts_with("100") {
            return Ok(None);
        }
        let mut command = git(&self.root);
        command.args(["cat-file", "blob", sha]);
        stdout(command, "read a staged file").map(Some)
    }
}

/// Whether the patch's new side is a symbolic link or a submodule, which have no text to review.
fn is_link_or_submodule(patch: &FilePatch) -> bool {
    matches!(patch.new_mode, Some(MODE_SYMLINK | MODE_SUBMODULE))
}
