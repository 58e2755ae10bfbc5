//! Snapshots: the working tree put back exactly, with commits and the stash list untouched.

use super::Repo;

/// A repository with every kind of local change: a modified file, a staged change, a deleted
/// file and an untracked file.
fn busy_repo() -> Repo {
    let repo = Repo::new();
    repo.write("modified.txt", "original\n");
    repo.write("staged.txt", "original\n");
    repo.write("deleted.txt", "still here\n");
    repo.commit_all("files");
    repo.write("modified.txt", "work in progress\n");
    repo.write("staged.txt", "staged change\n");
    repo.git(&["add", "staged.txt"]);
    std::fs::remove_file(repo.path().join("deleted.txt")).expect("remove");
    repo.write("notes.txt", "my notes\n");
    repo
}

/// Everything `git status` says, including what is staged.
fn status(repo: &Repo) -> String {
    repo.git(&["status", "--porcelain", "--untracked-files=all"])
}

#[test]
fn restore_puts_back_modified_staged_deleted_and_untracked_files() {
    let repo = busy_repo();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let before = status(&repo);
    let snapshot = repo.checkout().snapshot().expect("snapshot");
    assert!(snapshot.stash().is_some(), "tracked changes are kept in a stash commit");

    // What a fix might do.
    repo.write("modified.txt", "rewritten by the fixer\n");
    repo.write("staged.txt", "rewritten too\n");
    repo.git(&["add", "staged.txt"]);
    repo.write("deleted.txt", "recreated\n");
    repo.write("notes.txt", "overwritten notes\n");
    repo.write("brand/new/file.rs", "fn new() {}\n");

    snapshot.restore().expect("restore");
    assert_eq!(status(&repo), before);
    assert_eq!(repo.read("modified.txt"), "work in progress\n");
    assert_eq!(repo.read("staged.txt"), "staged change\n");
    assert_eq!(repo.git(&["show", ":staged.txt"]), "staged change", "the staged change is staged again");
    assert!(!repo.exists("deleted.txt"));
    assert_eq!(repo.read("notes.txt"), "my notes\n");
    assert!(!repo.exists("brand"), "new files and the directories made for them are gone");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "HEAD is unchanged");
    assert_eq!(repo.git(&["stash", "list"]), "", "the stash list is untouched");
}

#[test]
fn a_snapshot_of_a_clean_tree_has_no_stash_and_restore_removes_new_files() {
    let repo = Repo::new();
    repo.write(".gitignore", "build/\n");
    repo.commit_all("ignore build");
    repo.write("build/cache.bin", "kept\n");
    let snapshot = repo.checkout().snapshot().expect("snapshot");
    assert_eq!(snapshot.stash(), None);

    repo.write("README.md", "changed\n");
    repo.write("extra.txt", "extra\n");
    repo.write("build/more.bin", "ignored output\n");
    std::fs::remove_file(repo.path().join(".gitignore")).expect("remove");

    snapshot.restore().expect("restore");
    assert_eq!(status(&repo), "");
    assert_eq!(repo.read("README.md"), "hello\n");
    assert!(!repo.exists("extra.txt"));
    assert_eq!(repo.read("build/cache.bin"), "kept\n", "ignored files are left alone");
    assert!(repo.exists("build/more.bin"), "ignored files are left alone");
}

#[test]
fn restore_can_run_twice_and_a_deleted_untracked_file_comes_back_with_its_mode() {
    let repo = busy_repo();
    repo.write("script.sh", "#!/bin/sh\n");
    set_executable(&repo.path().join("script.sh"));
    let before = status(&repo);
    let snapshot = repo.checkout().snapshot().expect("snapshot");
    std::fs::remove_file(repo.path().join("script.sh")).expect("remove");
    std::fs::remove_file(repo.path().join("notes.txt")).expect("remove");
    snapshot.restore().expect("restore");
    snapshot.restore().expect("restore again");
    assert_eq!(status(&repo), before);
    assert_eq!(repo.read("script.sh"), "#!/bin/sh\n");
    assert!(is_executable(&repo.path().join("script.sh")));
    assert_eq!(repo.git(&["stash", "list"]), "");
}

#[cfg(unix)]
fn set_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn set_executable(_path: &std::path::Path) {}

#[cfg(not(unix))]
fn is_executable(_path: &std::path::Path) -> bool {
    true
}
