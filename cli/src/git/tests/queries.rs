//! Finding the repository, its default branch, revisions, dirtiness, and applying patches.

use super::Repo;
use crate::git::{Checkout, GitError};

#[test]
fn discover_from_a_subdirectory_finds_the_top_of_the_tree() {
    let repo = Repo::new();
    repo.write("src/deep/file.txt", "x\n");
    let checkout = Checkout::discover(&repo.path().join("src/deep")).expect("found from a subdirectory");
    let top = repo.path().canonicalize().expect("canonical path");
    assert_eq!(checkout.root().canonicalize().expect("canonical root"), top);
}

#[test]
fn discover_outside_a_repository_says_to_run_inside_a_checkout() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let error = Checkout::discover(dir.path()).expect_err("not a repository");
    assert!(matches!(error, GitError::NotARepository { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("not a git repository"), "{message}");
    assert!(message.ends_with("run prfix inside a checkout"), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn default_branch_of_a_clone_is_the_target_of_origin_head() {
    let upstream = Repo::new();
    upstream.git(&["branch", "--move", "main", "trunk"]);
    let holder = tempfile::tempdir().expect("temporary directory");
    let clone = upstream.clone_through_bare(holder.path());
    clone.git(&["switch", "--quiet", "--create", "feature"]);
    assert_eq!(clone.checkout().default_branch().expect("default branch"), "origin/trunk");
}

#[test]
fn default_branch_without_a_remote_is_local_main_then_master() {
    let repo = Repo::new();
    repo.git(&["switch", "--quiet", "--create", "feature"]);
    assert_eq!(repo.checkout().default_branch().expect("default branch"), "main");
    repo.git(&["branch", "--move", "main", "master"]);
    assert_eq!(repo.checkout().default_branch().expect("default branch"), "master");
}

#[test]
fn default_branch_falls_back_to_the_upstream_of_the_current_branch() {
    let repo = Repo::new();
    repo.git(&["branch", "--move", "main", "trunk"]);
    repo.git(&["switch", "--quiet", "--create", "feature", "--track", "trunk"]);
    assert_eq!(repo.checkout().default_branch().expect("default branch"), "trunk");
}

#[test]
fn without_any_default_branch_the_error_says_to_pass_base() {
    let repo = Repo::new();
    repo.git(&["branch", "--move", "main", "trunk"]);
    let error = repo.checkout().default_branch().expect_err("no default branch");
    assert!(matches!(error, GitError::NoDefaultBranch));
    assert!(error.to_string().contains("pass --base"));
}

#[test]
fn resolve_gives_the_full_sha_and_an_unknown_ref_is_named() {
    let repo = Repo::new();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let checkout = repo.checkout();
    assert_eq!(checkout.resolve("main").expect("main resolves"), head);
    assert_eq!(checkout.head().expect("head"), head);
    for rev in ["nope", "--output=/tmp/x", ""] {
        let error = checkout.resolve(rev).expect_err("unknown ref");
        assert!(matches!(&error, GitError::RefNotFound { rev: named } if named == rev), "{error:?}");
    }
    let message = checkout.resolve("nope").expect_err("unknown ref").to_string();
    assert!(message.starts_with("base ref `nope` not found: "), "{message}");
}

#[test]
fn head_of_a_repository_without_commits_says_to_commit_first() {
    let repo = Repo::empty();
    let error = repo.checkout().head().expect_err("no commits");
    assert!(matches!(error, GitError::NoCommits));
}

#[test]
fn merge_base_with_a_branch_that_moved_on_is_the_fork_point() {
    let repo = Repo::new();
    let fork = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["switch", "--quiet", "--create", "feature"]);
    repo.write("feature.txt", "feature\n");
    repo.commit_all("feature work");
    repo.git(&["switch", "--quiet", "main"]);
    repo.write("main.txt", "main\n");
    repo.commit_all("main moves on");
    let checkout = repo.checkout();
    assert_eq!(checkout.merge_base("main", "feature").expect("merge base"), fork);
}

#[test]
fn unrelated_histories_have_no_merge_base() {
    let repo = Repo::new();
    repo.git(&["switch", "--quiet", "--orphan", "other"]);
    repo.write("other.txt", "other\n");
    repo.commit_all("unrelated");
    let error = repo.checkout().merge_base("main", "other").expect_err("no common history");
    assert!(matches!(error, GitError::NoMergeBase { .. }), "{error:?}");
}

#[test]
fn dirty_means_tracked_changes_or_untracked_files_but_not_ignored_ones() {
    let repo = Repo::new();
    repo.write(".gitignore", "*.log\n");
    repo.commit_all("ignore logs");
    let checkout = repo.checkout();
    assert!(!checkout.is_dirty().expect("status"));
    repo.write("debug.log", "noise\n");
    assert!(!checkout.is_dirty().expect("status"), "an ignored file is not a change");
    repo.write("new.txt", "new\n");
    assert!(checkout.is_dirty().expect("status"), "an untracked file is a change");
    std::fs::remove_file(repo.path().join("new.txt")).expect("remove");
    repo.write("README.md", "changed\n");
    assert!(checkout.is_dirty().expect("status"), "a modified file is a change");
    repo.git(&["add", "README.md"]);
    assert!(checkout.is_dirty().expect("status"), "a staged change is a change");
}

const PATCH: &str = "\
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1 +1 @@
-hello
+hello, world
";

#[test]
fn apply_changes_the_working_tree_and_check_only_does_not() {
    let repo = Repo::new();
    let checkout = repo.checkout();
    checkout.apply(PATCH, true).expect("the patch would apply");
    assert_eq!(repo.read("README.md"), "hello\n");
    checkout.apply(PATCH, false).expect("the patch applies");
    assert_eq!(repo.read("README.md"), "hello, world\n");
    assert_eq!(repo.git(&["diff", "--cached", "--name-only"]), "", "the index is not touched");
}

#[test]
fn a_patch_that_does_not_apply_is_refused_with_git_reason_on_one_line() {
    let repo = Repo::new();
    repo.write("README.md", "something else\n");
    let checkout = repo.checkout();
    for check_only in [true, false] {
        let error = checkout.apply(PATCH, check_only).expect_err("conflict");
        let GitError::ApplyFailed { message } = &error else { panic!("unexpected error {error:?}") };
        assert!(message.contains("README.md"), "{message}");
        let text = error.to_string();
        assert!(text.starts_with("the patch does not apply: ") && !text.contains('\n'), "{text}");
    }
    assert_eq!(repo.read("README.md"), "something else\n");
}

#[test]
fn a_missing_directory_is_not_a_repository() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing");
    let error = Checkout::discover(&missing).expect_err("no such directory");
    assert!(matches!(error, GitError::NotARepository { .. }), "{error:?}");
}
