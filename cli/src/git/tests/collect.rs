//! Collecting the change set: what is in the diff and which files come with their content.

use super::Repo;
use crate::git::{ChangedFile, Checkout, Collected, DiffSpec, GitError};

/// A repository on branch `feature`, forked from `main` which moved on afterwards.
fn feature_repo() -> Repo {
    let repo = Repo::new();
    repo.write("lib.rs", "fn one() {}\n");
    repo.write("gone.txt", "bye\n");
    repo.commit_all("base");
    repo.git(&["switch", "--quiet", "--create", "feature"]);
    repo.write("lib.rs", "fn one() {}\nfn two() {}\n");
    repo.commit_all("feature work");
    repo.git(&["switch", "--quiet", "main"]);
    repo.write("main_only.txt", "main\n");
    repo.commit_all("main moves on");
    repo.git(&["switch", "--quiet", "feature"]);
    repo
}

fn collect(repo: &Repo, spec: &DiffSpec) -> Collected {
    repo.checkout().collect(spec).expect("collect")
}

fn paths(files: &[ChangedFile]) -> Vec<&str> {
    files.iter().map(|file| file.path.as_str()).collect()
}

fn content<'a>(collected: &'a Collected, path: &str) -> &'a str {
    collected.files.iter().find(|file| file.path == path).map(|file| file.content.as_str()).unwrap_or_default()
}

#[test]
fn the_default_base_is_the_fork_point_so_main_changes_stay_out() {
    let repo = feature_repo();
    repo.write("lib.rs", "fn one() {}\nfn two() {}\nfn three() {}\n");
    let collected = collect(&repo, &DiffSpec::default());
    assert_eq!(collected.base, repo.git(&["merge-base", "main", "HEAD"]));
    assert_eq!(collected.head, repo.git(&["rev-parse", "HEAD"]));
    assert!(collected.diff.contains("+fn two() {}"), "committed changes are in:\n{}", collected.diff);
    assert!(collected.diff.contains("+fn three() {}"), "uncommitted changes are in:\n{}", collected.diff);
    assert!(!collected.diff.contains("main_only"), "main's own changes are out:\n{}", collected.diff);
    assert_eq!(paths(&collected.files), ["lib.rs"]);
    assert_eq!(content(&collected, "lib.rs"), "fn one() {}\nfn two() {}\nfn three() {}\n");
    assert_eq!(collected.diff_len(), collected.diff.len());
}

#[test]
fn an_explicit_base_is_used_from_its_merge_base() {
    let repo = feature_repo();
    let spec = DiffSpec { base: Some("HEAD".to_owned()), ..DiffSpec::default() };
    let collected = collect(&repo, &spec);
    assert_eq!(collected.base, collected.head);
    assert_eq!(collected.diff, "", "nothing changed since HEAD");
    let spec = DiffSpec { base: Some("main".to_owned()), ..DiffSpec::default() };
    assert!(!collect(&repo, &spec).diff.contains("main_only"));
}

#[test]
fn staged_compares_the_index_and_ignores_unstaged_edits() {
    let repo = feature_repo();
    repo.write("lib.rs", "fn staged() {}\n");
    repo.git(&["add", "lib.rs"]);
    repo.write("lib.rs", "fn unstaged() {}\n");
    repo.write("untracked.txt", "not staged\n");
    let staged = collect(&repo, &DiffSpec { staged: true, ..DiffSpec::default() });
    assert!(staged.diff.contains("+fn staged() {}"), "{}", staged.diff);
    assert!(!staged.diff.contains("unstaged") && !staged.diff.contains("untracked.txt"), "{}", staged.diff);
    assert_eq!(content(&staged, "lib.rs"), "fn staged() {}\n");
    let worktree = collect(&repo, &DiffSpec::default());
    assert!(worktree.diff.contains("+fn unstaged() {}"), "{}", worktree.diff);
    assert_eq!(content(&worktree, "lib.rs"), "fn unstaged() {}\n");
}

#[test]
fn pathspecs_limit_tracked_and_untracked_files() {
    let repo = feature_repo();
    repo.write("src/a.rs", "a\n");
    repo.write("docs/b.md", "b\n");
    let spec = DiffSpec { paths: vec!["src".to_owned()], ..DiffSpec::default() };
    let collected = collect(&repo, &spec);
    assert_eq!(paths(&collected.files), ["src/a.rs"]);
    assert!(!collected.diff.contains("lib.rs") && !collected.diff.contains("docs/b.md"), "{}", collected.diff);
}

#[test]
fn pathspecs_are_read_relative_to_the_directory_prfix_runs_in() {
    let repo = feature_repo();
    repo.write("src/a.rs", "a\n");
    repo.write("src/b.rs", "b\n");
    repo.write("a.rs", "top\n");
    let checkout = Checkout::discover(&repo.path().join("src")).expect("found from src");
    let spec = DiffSpec { paths: vec!["a.rs".to_owned()], ..DiffSpec::default() };
    let collected = checkout.collect(&spec).expect("collect");
    assert_eq!(paths(&collected.files), ["src/a.rs"]);
    let everything = checkout.collect(&DiffSpec::default()).expect("collect");
    assert_eq!(paths(&everything.files), ["lib.rs", "a.rs", "src/a.rs", "src/b.rs"]);
}

#[test]
fn untracked_files_are_new_files_but_ignored_ones_are_not() {
    let repo = feature_repo();
    repo.write(".gitignore", "target/\n");
    repo.commit_all("ignore target");
    repo.write("target/out.txt", "build output\n");
    repo.write("notes/new é.txt", "first\nsecond\n");
    repo.write("empty.txt", "");
    let collected = collect(&repo, &DiffSpec::default());
    assert!(collected.diff.contains("diff --git a/notes/new é.txt b/notes/new é.txt\nnew file mode 100644\n"));
    assert!(collected.diff.contains("+first\n+second\n"), "{}", collected.diff);
    assert!(!collected.diff.contains("out.txt"), "{}", collected.diff);
    assert_eq!(content(&collected, "notes/new é.txt"), "first\nsecond\n");
    assert_eq!(content(&collected, "empty.txt"), "");
    assert!(paths(&collected.files).contains(&"empty.txt"));
    assert!(!repo.git(&["ls-files"]).contains("notes"), "the index is not touched");
}

#[test]
fn deleted_files_are_in_the_diff_but_not_among_the_files() {
    let repo = feature_repo();
    std::fs::remove_file(repo.path().join("gone.txt")).expect("remove");
    let collected = collect(&repo, &DiffSpec::default());
    assert!(collected.diff.contains("deleted file mode 100644"), "{}", collected.diff);
    assert!(collected.diff.contains("-bye"), "{}", collected.diff);
    assert_eq!(paths(&collected.files), ["lib.rs"]);
}

#[test]
fn binary_and_non_utf8_files_are_listed_without_content() {
    let repo = feature_repo();
    repo.write_bytes("image.bin", &[0, 159, 146, 150, 0, 1]);
    repo.write_bytes("latin1.txt", b"caf\xe9\n");
    let collected = collect(&repo, &DiffSpec::default());
    assert_eq!(collected.binary, ["image.bin", "latin1.txt"]);
    assert_eq!(paths(&collected.files), ["lib.rs"]);
}

#[test]
fn the_diff_is_plain_text_whatever_the_user_config_says() {
    let repo = feature_repo();
    for (key, value) in [
        ("color.ui", "always"),
        ("color.diff", "always"),
        ("diff.external", "false"),
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("diff.relative", "true"),
        ("core.quotepath", "true"),
    ] {
        repo.git(&["config", key, value]);
    }
    repo.write("src/é.rs", "new\n");
    let checkout = Checkout::discover(&repo.path().join("src")).expect("found from src");
    let collected = checkout.collect(&DiffSpec::default()).expect("collect");
    assert!(!collected.diff.contains('\u{1b}'), "no color codes:\n{}", collected.diff);
    assert!(collected.diff.contains("diff --git a/lib.rs b/lib.rs\n"), "{}", collected.diff);
    assert!(collected.diff.contains("+++ b/src/é.rs\n"), "{}", collected.diff);
    assert_eq!(paths(&collected.files), ["lib.rs", "src/é.rs"]);
}

#[test]
fn context_lines_follow_the_spec() {
    let repo = Repo::new();
    repo.write("long.txt", "1\n2\n3\n4\n5\n6\n7\n");
    repo.commit_all("long file");
    repo.write("long.txt", "1\n2\n3\nfour\n5\n6\n7\n");
    let spec = DiffSpec { base: Some("HEAD".to_owned()), context_lines: 1, ..DiffSpec::default() };
    let collected = collect(&repo, &spec);
    assert!(collected.diff.contains("@@ -3,3 +3,3 @@\n 3\n-4\n+four\n 5\n"), "{}", collected.diff);
}

#[test]
fn an_unknown_base_is_named_in_the_error() {
    let repo = feature_repo();
    let spec = DiffSpec { base: Some("origin/nope".to_owned()), ..DiffSpec::default() };
    let error = repo.checkout().collect(&spec).expect_err("unknown base");
    assert!(matches!(&error, GitError::RefNotFound { rev } if rev == "origin/nope"), "{error:?}");
}
