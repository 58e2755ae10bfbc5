//! The diff module against real git: git's output for every kind of change parses to the right
//! structure, writes back as git wrote it, and applies in memory to git's new content; our own
//! diffs apply with `git apply` to exactly the new content.

use std::path::Path;
use std::process::{Command, Stdio};

use prfix_engine::diff::{
    FilePatch, FileStatus, LineKind, MODE_EXECUTABLE, MODE_FILE, apply, parse, unified_diff, write,
};
use std::io::Write as _;

/// A throwaway git repository with a private configuration.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Self { dir: tempfile::tempdir().expect("temporary directory") };
        repo.git(&["init", "-q"]);
        repo.git(&["config", "user.name", "Diff Test"]);
        repo.git(&["config", "user.email", "diff@test.invalid"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(self.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CEILING_DIRECTORIES", self.path().parent().expect("temp dir has a parent"));
        command
    }

    /// Runs git and returns its stdout; fails the test when git fails.
    fn git(&self, args: &[&str]) -> Vec<u8> {
        let output = self.command().args(args).output().expect("git runs");
        assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("create directories");
        std::fs::write(path, content).expect("write file");
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.path().join(name)).expect("remove file");
    }

    /// Commits everything and returns the commit id.
    fn commit(&self) -> String {
        self.git(&["add", "-A"]);
        self.commit_index()
    }

    /// Commits what is staged and returns the commit id.
    fn commit_index(&self) -> String {
        self.git(&["commit", "-q", "--allow-empty", "-m", "change"]);
        String::from_utf8(self.git(&["rev-parse", "HEAD"])).expect("utf-8 id").trim().to_owned()
    }

    /// The content of `path` at `commit`, as text.
    fn blob(&self, commit: &str, path: &str) -> String {
        let bytes = self.git(&["cat-file", "blob", &format!("{commit}:{path}")]);
        String::from_utf8(bytes).expect("text blob")
    }

    /// Git's diff between two commits (`core.quotePath=true`), with extra options.
    fn diff(&self, from: &str, to: &str, options: &[&str]) -> String {
        let mut args = vec!["-c", "core.quotepath=true", "diff", "--no-color", "--no-ext-diff"];
        args.extend_from_slice(options);
        args.extend_from_slice(&[from, to]);
        String::from_utf8(self.git(&args)).expect("utf-8 diff")
    }
}

/// Parses git's diff from `from` to `to` and checks everything that must hold for any diff: the
/// written form reads back the same (and is git's own text less `index` lines when nothing is
/// binary), and each text patch applied to the old blob gives the new blob.
fn check_git_diff(repo: &Repo, from: &str, to: &str, options: &[&str]) -> Vec<FilePatch> {
    let text = repo.diff(from, to, options);
    let files = parse(&text).unwrap_or_else(|error| panic!("git's diff does not parse: {error}\n{text}"));
    let written = write(&files);
    assert_eq!(parse(&written).expect("written diff parses"), files, "round trip of\n{text}");
    let prefixed = !options.contains(&"--no-prefix");
    if prefixed && files.iter().all(|file| !file.binary) {
        let without_index: String = text.split_inclusive('\n').filter(|line| !line.starts_with("index ")).collect();
        assert_eq!(written, without_index, "write differs from git's text");
    }
    for file in files.iter().filter(|file| !file.binary) {
        let old = file.old_path.as_deref().map(|path| repo.blob(from, path));
        let new = file.new_path.as_deref().map(|path| repo.blob(to, path));
        let applied = apply(old.as_deref(), file).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(applied, new, "apply of {} gives git's new content", file.path());
    }
    files
}

fn numbered(lines: std::ops::RangeInclusive<u32>) -> String {
    lines.map(|n| format!("line {n}\n")).collect()
}

fn find<'a>(files: &'a [FilePatch], path: &str) -> &'a FilePatch {
    files.iter().find(|file| file.path() == path).unwrap_or_else(|| panic!("no patch for {path:?} in {files:?}"))
}

#[test]
fn a_modified_file_with_several_hunks_matches_git() {
    let repo = Repo::new();
    repo.write("f.txt", numbered(1..=30));
    let from = repo.commit();
    let changed = numbered(1..=30).replace("line 2\n", "line two\nline 2.5\n").replace("line 25\n", "");
    repo.write("f.txt", changed);
    let to = repo.commit();
    let files = check_git_diff(&repo, &from, &to, &[]);
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(file.status, FileStatus::Modified);
    assert_eq!((file.old_path.as_deref(), file.new_path.as_deref()), (Some("f.txt"), Some("f.txt")));
    assert_eq!((file.additions(), file.deletions()), (2, 2));
    let ranges: Vec<_> =
        file.hunks.iter().map(|hunk| (hunk.old_start, hunk.old_count, hunk.new_start, hunk.new_count)).collect();
    assert_eq!(ranges, vec![(1, 5, 1, 6), (22, 7, 23, 6)]);
    assert_eq!(file.changed_new_lines(), vec![2, 3]);
    assert_eq!(file.new_lines_in_diff(), vec![1, 2, 3, 4, 5, 6, 23, 24, 25, 26, 27, 28]);
    let removed = file.hunks[1].lines.iter().find(|line| line.kind == LineKind::Removed).expect("a removed line");
    assert_eq!((removed.text.as_str(), removed.old_line, removed.new_line), ("line 25", Some(25), None));
}

#[test]
fn new_and_deleted_files_have_one_side_and_a_mode() {
    let repo = Repo::new();
    repo.write("old.txt", "going\naway\n");
    repo.write("gone empty.txt", "");
    let from = repo.commit();
    repo.remove("old.txt");
    repo.remove("gone empty.txt");
    repo.write("new.txt", "fresh\n");
    repo.write("empty.txt", "");
    repo.write("run.sh", "#!/bin/sh\n");
    repo.git(&["add", "-A"]);
    repo.git(&["update-index", "--chmod=+x", "run.sh"]);
    let to = repo.commit_index();
    // Without --no-renames git pairs the two empty files as a rename.
    let files = check_git_diff(&repo, &from, &to, &["--no-renames"]);
    assert_eq!(files.len(), 5);
    let new = find(&files, "new.txt");
    assert_eq!(
        (new.status, new.old_path.as_deref(), new.new_mode, new.old_mode),
        (FileStatus::Added, None, Some(MODE_FILE), None)
    );
    assert_eq!((new.hunks[0].old_start, new.hunks[0].old_count, new.hunks[0].new_start), (0, 0, 1));
    let old = find(&files, "old.txt");
    assert_eq!((old.status, old.new_path.as_deref(), old.old_mode), (FileStatus::Deleted, None, Some(MODE_FILE)));
    assert_eq!(old.deletions(), 2);
    let empty = find(&files, "empty.txt");
    assert_eq!((empty.status, empty.hunks.len()), (FileStatus::Added, 0));
    let gone = find(&files, "gone empty.txt");
    assert_eq!((gone.status, gone.hunks.len()), (FileStatus::Deleted, 0));
    assert_eq!(find(&files, "run.sh").new_mode, Some(MODE_EXECUTABLE));
}

#[test]
fn renames_and_copies_keep_both_paths_and_similarity() {
    let repo = Repo::new();
    let body = numbered(1..=20);
    repo.write("same.txt", &body);
    repo.write("edit me.txt", numbered(100..=120));
    repo.write("source.txt", numbered(200..=220));
    let from = repo.commit();
    repo.remove("same.txt");
    repo.write("moved/same.txt", &body);
    repo.remove("edit me.txt");
    repo.write("edited copy.txt", numbered(100..=120).replace("line 110\n", "line 110 changed\n"));
    repo.write("source copy.txt", numbered(200..=220).replace("line 201\n", "line 201 changed\n"));
    let to = repo.commit();
    let files = check_git_diff(&repo, &from, &to, &["-M", "-C", "-C"]);
    let pure = find(&files, "moved/same.txt");
    assert_eq!(pure.status, FileStatus::Renamed);
    assert_eq!(pure.old_path.as_deref(), Some("same.txt"));
    assert_eq!((pure.similarity, pure.hunks.len()), (Some(100), 0));
    let edited = find(&files, "edited copy.txt");
    assert_eq!((edited.status, edited.old_path.as_deref()), (FileStatus::Renamed, Some("edit me.txt")));
    assert!(edited.similarity.is_some_and(|similarity| similarity < 100), "{edited:?}");
    assert_eq!((edited.additions(), edited.deletions()), (1, 1));
    let copy = find(&files, "source copy.txt");
    assert_eq!((copy.status, copy.old_path.as_deref()), (FileStatus::Copied, Some("source.txt")));
    assert!(copy.similarity.is_some());
}

#[test]
fn a_mode_change_alone_has_modes_and_no_hunks() {
    let repo = Repo::new();
    repo.write("tool", "echo hi\n");
    let from = repo.commit();
    repo.git(&["update-index", "--chmod=+x", "tool"]);
    let to = repo.commit_index();
    let files = check_git_diff(&repo, &from, &to, &[]);
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(
        (file.status, file.old_mode, file.new_mode),
        (FileStatus::Modified, Some(MODE_FILE), Some(MODE_EXECUTABLE))
    );
    assert!(file.hunks.is_empty());
}

#[test]
fn binary_files_are_flagged_and_their_payload_skipped() {
    let repo = Repo::new();
    repo.write("a.bin", [0u8, 1, 2, 3, 255, 0, 7]);
    repo.write("b.bin", (0..=255u8).cycle().take(3000).collect::<Vec<u8>>());
    repo.write("z.txt", "before\n");
    let from = repo.commit();
    repo.write("a.bin", [0u8, 9, 9, 9]);
    let mut changed: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    changed[1500] = 42;
    repo.write("b.bin", changed);
    repo.write("new.bin", [0u8; 40]);
    repo.write("z.txt", "after\n");
    let to = repo.commit();
    for options in [&[][..], &["--binary"][..]] {
        let text = repo.diff(&from, &to, options);
        assert_eq!(text.contains("GIT binary patch"), !options.is_empty(), "{text}");
        let files = check_git_diff(&repo, &from, &to, options);
        assert_eq!(files.len(), 4, "{text}");
        for name in ["a.bin", "b.bin", "new.bin"] {
            let file = find(&files, name);
            assert!(file.binary && file.hunks.is_empty(), "{file:?}");
        }
        assert_eq!(find(&files, "new.bin").status, FileStatus::Added);
        let text_file = find(&files, "z.txt");
        assert!(!text_file.binary);
        assert_eq!((text_file.additions(), text_file.deletions()), (1, 1));
    }
}

#[test]
fn missing_final_newlines_on_either_side_are_marked() {
    let repo = Repo::new();
    repo.write("gains.txt", "a\nb");
    repo.write("loses.txt", "a\nb\n");
    repo.write("neither.txt", "a\nb");
    repo.write("context.txt", "1\n2\n3\n4\n5");
    let from = repo.commit();
    repo.write("gains.txt", "a\nb\n");
    repo.write("loses.txt", "a\nb");
    repo.write("neither.txt", "a\nc");
    repo.write("context.txt", "1\nTWO\n3\n4\n5");
    let to = repo.commit();
    let files = check_git_diff(&repo, &from, &to, &[]);
    let marked = |name: &str| -> Vec<(LineKind, bool)> {
        find(&files, name).hunks[0].lines.iter().map(|line| (line.kind, line.no_newline_at_end)).collect()
    };
    use LineKind::{Added, Context, Removed};
    assert_eq!(marked("gains.txt"), vec![(Context, false), (Removed, true), (Added, false)]);
    assert_eq!(marked("loses.txt"), vec![(Context, false), (Removed, false), (Added, true)]);
    assert_eq!(marked("neither.txt"), vec![(Context, false), (Removed, true), (Added, true)]);
    assert_eq!(marked("context.txt").last(), Some(&(Context, true)));
}

#[test]
fn crlf_content_keeps_carriage_returns_in_line_text() {
    let repo = Repo::new();
    repo.write("win.txt", "one\r\ntwo\r\nthree\r\n");
    repo.write("mixed.txt", "unix\nwindows\r\nend");
    let from = repo.commit();
    repo.write("win.txt", "one\r\n2\r\nthree\r\n");
    repo.write("mixed.txt", "unix\r\nwindows\nend\r\n");
    let to = repo.commit();
    let files = check_git_diff(&repo, &from, &to, &[]);
    let win = find(&files, "win.txt");
    let texts: Vec<&str> = win.hunks[0].lines.iter().map(|line| line.text.as_str()).collect();
    assert_eq!(texts, vec!["one\r", "two\r", "2\r", "three\r"]);
}

#[test]
fn single_line_hunks_are_written_without_counts() {
    let repo = Repo::new();
    repo.write("one.txt", "x\n");
    let from = repo.commit();
    repo.write("one.txt", "y\n");
    let to = repo.commit();
    assert!(repo.diff(&from, &to, &[]).contains("\n@@ -1 +1 @@\n"));
    let file = &check_git_diff(&repo, &from, &to, &[])[0];
    assert_eq!((file.hunks[0].old_start, file.hunks[0].old_count, file.hunks[0].new_count), (1, 1, 1));
}

#[test]
fn unusual_file_names_are_decoded_and_quoted_again_like_git() {
    let repo = Repo::new();
    let names = ["with space.txt", "tést \"q\".txt", "日本/語.txt", "back\\slash", "tab\there", "a b/c d.txt"];
    for name in names {
        repo.write(name, format!("{name}\n"));
    }
    repo.write("old name here.txt", numbered(1..=10));
    let from = repo.commit();
    for name in names {
        repo.write(name, format!("{name} changed\n"));
    }
    repo.remove("old name here.txt");
    repo.write("new name there.txt", numbered(1..=10).replace("line 5\n", "five\n"));
    let to = repo.commit();
    let text = repo.diff(&from, &to, &["-M"]);
    assert!(text.contains("diff --git \"a/t\\303\\251st \\\"q\\\".txt\" \"b/t\\303\\251st \\\"q\\\".txt\""), "{text}");
    let files = check_git_diff(&repo, &from, &to, &["-M"]);
    for name in names {
        let file = find(&files, name);
        assert_eq!((file.old_path.as_deref(), file.status), (Some(name), FileStatus::Modified));
    }
    let renamed = find(&files, "new name there.txt");
    assert_eq!((renamed.status, renamed.old_path.as_deref()), (FileStatus::Renamed, Some("old name here.txt")));
    let no_prefix = check_git_diff(&repo, &from, &to, &["-M", "--no-prefix"]);
    assert_eq!(no_prefix, files);
}

#[test]
fn no_prefix_output_reads_the_same_paths_for_new_deleted_and_spaced_files() {
    let repo = Repo::new();
    repo.write("dir/x y.txt", "1\n");
    repo.write("a/inside.txt", "2\n");
    let from = repo.commit();
    repo.write("dir/x y.txt", "one\n");
    repo.remove("a/inside.txt");
    repo.write("b/new.txt", "3\n");
    let to = repo.commit();
    assert_eq!(check_git_diff(&repo, &from, &to, &["--no-prefix"]), check_git_diff(&repo, &from, &to, &[]));
}

#[test]
fn a_plain_diff_u_without_git_headers_reads_and_applies() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("old.txt"), numbered(1..=12)).expect("write old");
    std::fs::write(dir.path().join("new.txt"), numbered(1..=12).replace("line 6\n", "six\n")).expect("write new");
    let output = Command::new("diff")
        .args(["-u", "old.txt", "new.txt"])
        .current_dir(dir.path())
        .output()
        .expect("the `diff` tool (diffutils) runs");
    let text = String::from_utf8(output.stdout).expect("utf-8 diff");
    let files = parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].old_path.as_deref(), files[0].new_path.as_deref()), (Some("old.txt"), Some("new.txt")));
    let applied = apply(Some(&numbered(1..=12)), &files[0]).expect("applies");
    assert_eq!(applied, Some(numbered(1..=12).replace("line 6\n", "six\n")));
}

#[test]
fn corrupted_git_output_is_refused_with_the_line() {
    let repo = Repo::new();
    repo.write("f.txt", numbered(1..=10));
    let from = repo.commit();
    repo.write("f.txt", numbered(1..=10).replace("line 5\n", "five\n"));
    let to = repo.commit();
    let text = repo.diff(&from, &to, &[]);
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.iter().position(|line| line.starts_with('+') && !line.starts_with("+++")).expect("added line");
    let mut shortened = lines.clone();
    shortened.remove(cut);
    let error = parse(&shortened.join("\n")).expect_err("a hunk short of one line");
    assert_eq!(error.line(), shortened.len() + 1, "{error}");
    let hunk_first: String =
        lines.iter().skip_while(|line| !line.starts_with("@@")).map(|line| format!("{line}\n")).collect();
    assert_eq!(parse(&hunk_first).expect_err("no file header").line(), 1);
}

/// Applies `diff` with real `git apply` in a fresh repository holding the `old` files, and returns
/// the content of each path afterwards (`None` when it does not exist).
fn git_apply(files: &[(&str, Option<&str>)], diff: &str, options: &[&str], paths: &[&str]) -> Vec<Option<String>> {
    let repo = Repo::new();
    for (name, content) in files {
        if let Some(content) = content {
            repo.write(name, content);
        }
    }
    let mut child = repo
        .command()
        .args(["apply", "--whitespace=nowarn"])
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git apply runs");
    child.stdin.take().expect("stdin").write_all(diff.as_bytes()).expect("write the patch");
    let output = child.wait_with_output().expect("git apply finishes");
    assert!(output.status.success(), "git apply failed: {}\n{diff}", String::from_utf8_lossy(&output.stderr));
    paths
        .iter()
        .map(|name| {
            let path = repo.path().join(name);
            path.exists().then(|| String::from_utf8(std::fs::read(path).expect("read result")).expect("utf-8"))
        })
        .collect()
}

#[test]
fn our_diffs_apply_with_git_apply_to_the_exact_new_content() {
    let many = numbered(1..=40);
    let many_changed = many.replace("line 3\n", "three\n").replace("line 30\n", "").replace("line 39\n", "39\n40a\n");
    let tricky_old = "-- dash\n++ plus\n\\ backslash\n  spaced\nend\n";
    let tricky_new = "-- dash\n++ plus changed\n\\ backslash\n+++ new\n  spaced\nend";
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        ("multi.txt", "multi.txt", Some(&many), Some(&many_changed)),
        ("crlf.txt", "crlf.txt", Some("a\r\nb\r\nc\r\n"), Some("a\r\nB\r\nc\r\n")),
        ("mixed.txt", "mixed.txt", Some("a\nb\r\n"), Some("a\r\nb\n")),
        ("gains.txt", "gains.txt", Some("a\nb"), Some("a\nb\n")),
        ("loses.txt", "loses.txt", Some("a\nb\n"), Some("a\nb")),
        ("neither.txt", "neither.txt", Some("a\nb"), Some("a\nc")),
        ("fills.txt", "fills.txt", Some(""), Some("now\nfull\n")),
        ("empties.txt", "empties.txt", Some("was\nfull\n"), Some("")),
        ("created.txt", "created.txt", None, Some("brand\nnew")),
        ("created empty.txt", "created empty.txt", None, Some("")),
        ("deleted.txt", "deleted.txt", Some("bye\n"), None),
        ("deleted empty.txt", "deleted empty.txt", Some(""), None),
        ("tést \"q\".txt", "tést \"q\".txt", Some("é\n"), Some("è\n")),
        ("dir/with space.txt", "dir/with space.txt", Some("x\n"), Some("y\n")),
        ("tricky.txt", "tricky.txt", Some(tricky_old), Some(tricky_new)),
        ("rename me.txt", "renamed to.txt", Some(&many), Some(&many_changed)),
        ("pure rename.txt", "purely renamed.txt", Some("same\n"), Some("same\n")),
    ];
    for context in [3, 1, 0] {
        for (old_path, new_path, old, new) in &cases {
            let diff = unified_diff(old_path, new_path, *old, *new, context);
            assert!(!diff.is_empty(), "{old_path}: a change gives a diff");
            let options: &[&str] = if context == 0 { &["--unidiff-zero"] } else { &[] };
            let after = git_apply(&[(old_path, *old)], &diff, options, &[old_path, new_path]);
            let expected_old_path = if old_path == new_path { new.map(str::to_owned) } else { None };
            assert_eq!(after, vec![expected_old_path, new.map(str::to_owned)], "git apply of\n{diff}");
            let parsed = parse(&diff).unwrap_or_else(|error| panic!("{error}\n{diff}"));
            assert_eq!(parsed.len(), 1);
            assert_eq!(apply(*old, &parsed[0]).expect("our apply"), new.map(str::to_owned), "apply of\n{diff}");
        }
    }
}

#[test]
fn our_hunks_are_the_hunks_git_makes_for_unambiguous_changes() {
    let repo = Repo::new();
    let old: String = (1..=60).map(|n| format!("{n}\n")).collect();
    // Changes 6 lines apart (twice the context) share a hunk; 7 lines apart they do not.
    let new = old
        .replace("\n5\n", "\nfive\n")
        .replace("\n12\n", "\ntwelve\n")
        .replace("\n20\n", "\ntwenty\n")
        .replace("\n40\n", "\n")
        .replace("\n60\n", "\n60\nsixty-one\n");
    repo.write("n.txt", &old);
    let from = repo.commit();
    repo.write("n.txt", &new);
    let to = repo.commit();
    for context in [0usize, 1, 3, 5] {
        let option = format!("-U{context}");
        let theirs = parse(&repo.diff(&from, &to, &[&option])).expect("git's diff parses");
        let ours = parse(&unified_diff("n.txt", "n.txt", Some(&old), Some(&new), context)).expect("ours parses");
        assert_eq!(ours[0].hunks, theirs[0].hunks, "with {option}");
    }
}
