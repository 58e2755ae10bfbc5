//! Tests of the git module against real repositories in temporary directories.

mod collect;
mod queries;
mod snapshot;

use std::path::Path;
use std::process::Command;

use super::Checkout;

/// A throwaway repository on branch `main`, with an identity and no CRLF conversion.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// An empty repository (no commit).
    fn empty() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = Self { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.configure();
        repo
    }

    /// A repository with one commit holding `README.md`.
    fn new() -> Self {
        let repo = Self::empty();
        repo.write("README.md", "hello\n");
        repo.commit_all("initial");
        repo
    }

    fn configure(&self) {
        for (key, value) in [
            ("user.name", "Test"),
            ("user.email", "test@example.com"),
            ("core.autocrlf", "false"),
            ("commit.gpgsign", "false"),
        ] {
            self.git(&["config", key, value]);
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn checkout(&self) -> Checkout {
        Checkout::discover(self.path()).expect("the repository is found")
    }

    /// Runs git here and returns its trimmed stdout; panics when git fails.
    fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args)
    }

    fn write(&self, path: &str, content: &str) {
        self.write_bytes(path, content.as_bytes());
    }

    fn write_bytes(&self, path: &str, content: &[u8]) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("a file has a parent")).expect("create directories");
        std::fs::write(full, content).expect("write a file");
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).expect("read a file")
    }

    fn exists(&self, path: &str) -> bool {
        self.path().join(path).exists()
    }

    /// Stages everything and commits; returns the new commit's sha.
    fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--message", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A bare clone of this repository in `dir`, and a clone of that bare one whose `origin/HEAD`
    /// points at the bare repository's default branch.
    fn clone_through_bare(&self, dir: &Path) -> Repo {
        let bare = dir.join("origin.git");
        let work = tempfile::tempdir().expect("temporary directory");
        git_in(dir, &["clone", "--quiet", "--bare", &self.path().display().to_string(), &bare.display().to_string()]);
        git_in(work.path(), &["clone", "--quiet", &bare.display().to_string(), "."]);
        let clone = Repo { dir: work };
        clone.configure();
        clone
    }
}

/// Runs git in `dir` with the machine's own configuration shut out; panics when git fails.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
