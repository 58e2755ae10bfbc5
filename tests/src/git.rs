//! Real `git` repositories in temporary directories, for change sets made the way the CLI makes
//! them and for checking patches with `git apply`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch repository, removed when dropped.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// `git init` in a new temporary directory, with an identity and no line-ending conversion.
    pub fn init() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// The working tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git and returns stdout; panics with stderr when it fails.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git").args(args).current_dir(self.path()).output().expect("git runs");
        assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes a file (creating directories).
    pub fn write(&self, path: &str, content: &str) {
        let full: PathBuf = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create directories");
        }
        std::fs::write(full, content).expect("write file");
    }

    /// Reads a file.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).expect("read file")
    }

    /// Stages everything and commits.
    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// `git apply` of `patch` in the working tree: Ok, or git's error text.
    pub fn apply(&self, patch: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = Command::new("git")
            .args(["apply", "--whitespace=nowarn", "-"])
            .current_dir(self.path())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("git apply runs");
        child.stdin.take().expect("stdin").write_all(patch.as_bytes()).expect("write the patch");
        let output = child.wait_with_output().expect("git apply ends");
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
    }

    /// The change set of `base..HEAD` as the CLI sends it: the diff and the changed files' new
    /// contents.
    pub fn change_set(&self, base: &str) -> prfix_proto::agent::v1::ChangeSet {
        let diff = self.git(&["diff", "--no-color", "-M", &format!("{base}..HEAD")]);
        let names = self.git(&["diff", "--name-only", "--diff-filter=d", &format!("{base}..HEAD")]);
        let files = names
            .lines()
            .filter(|n| !n.is_empty())
            .map(|path| prfix_proto::agent::v1::ChangedFile {
                path: path.to_owned(),
                new_content: self.read(path),
                old_content: None,
            })
            .collect();
        prfix_proto::agent::v1::ChangeSet { diff, files, base_ref: base.to_owned(), ..Default::default() }
    }
}

/// The change set of a commit that changes one line of `src/lib.rs` (`1` to `2`): the smallest
/// reviewable change, for tests about tasks rather than about reviews.
pub fn small_change() -> prfix_proto::agent::v1::ChangeSet {
    let repo = Repo::init();
    repo.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    repo.commit("base");
    repo.write("src/lib.rs", "pub fn one() -> u32 {\n    2\n}\n");
    repo.commit("change");
    repo.change_set("HEAD~1")
}
