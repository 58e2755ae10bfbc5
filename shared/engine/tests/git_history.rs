//! Acceptance: every non-merge commit of the repository this crate lives in is replayed through the
//! diff module. For each changed text file, our `unified_diff` of the old and new blobs applied by
//! real `git apply` (and by our `apply`) gives the new blob byte for byte, and git's own diff of the
//! commit parses and applies to the same content.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use prfix_engine::diff::{FileStatus, apply, parse, unified_diff};

const SUBMODULE: &str = "160000";

/// Runs git in the crate's repository and returns stdout; fails the test with git's message.
fn git(root: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["-c", "core.quotepath=true"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// The top of the git checkout holding this crate (or of `PRFIX_HISTORY_REPO`, to replay another
/// repository's history).
fn repository_root() -> PathBuf {
    let manifest = std::env::var("PRFIX_HISTORY_REPO").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let output = Command::new("git").args(["rev-parse", "--show-toplevel"]).current_dir(&manifest).output();
    match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim_end_matches('\n'))
        }
        _ => panic!(
            "{manifest} is not inside a git repository: this test replays the repository's commit history, so it \
             needs the sources as a git checkout (git clone), not an exported copy"
        ),
    }
}

/// Blobs read through one `git cat-file --batch` process.
struct Blobs {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Blobs {
    fn new(root: &Path) -> Self {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git cat-file runs");
        let input = child.stdin.take().expect("cat-file stdin");
        let output = BufReader::new(child.stdout.take().expect("cat-file stdout"));
        Self { child, input, output }
    }

    /// The object named `name` (an id or `rev:path`), or `None` when it does not exist.
    fn get(&mut self, name: &str) -> Option<Vec<u8>> {
        writeln!(self.input, "{name}").expect("ask cat-file");
        self.input.flush().expect("flush cat-file");
        let mut header = String::new();
        self.output.read_line(&mut header).expect("cat-file answers");
        if header.trim_end().ends_with(" missing") || header.trim_end().ends_with(" ambiguous") {
            return None;
        }
        let size: usize = header.trim_end().rsplit(' ').next().and_then(|size| size.parse().ok()).expect("object size");
        let mut content = vec![0; size + 1];
        self.output.read_exact(&mut content).expect("object content");
        content.pop();
        Some(content)
    }
}

impl Drop for Blobs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One changed file of a commit, from `git diff-tree --raw --numstat`.
struct Change {
    path: String,
    old_id: Option<String>,
    new_id: Option<String>,
    submodule: bool,
    binary: bool,
}

/// The files a commit changes (renames as delete and add).
fn changes(root: &Path, parent: &str, commit: &str) -> Vec<Change> {
    let output = git(
        root,
        &[
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--raw",
            "--numstat",
            "--no-abbrev",
            "--no-textconv",
            parent,
            commit,
        ],
    );
    let text = String::from_utf8_lossy(&output);
    let mut tokens = text.split('\0').filter(|token| !token.is_empty());
    let mut found: Vec<Change> = Vec::new();
    let mut binary_paths = Vec::new();
    let absent = |id: &str| (!id.bytes().all(|byte| byte == b'0')).then(|| id.to_owned());
    while let Some(token) = tokens.next() {
        if let Some(raw) = token.strip_prefix(':') {
            let fields: Vec<&str> = raw.split(' ').collect();
            let path = tokens.next().expect("raw entry has a path").to_owned();
            let submodule = fields[0] == SUBMODULE || fields[1] == SUBMODULE;
            found.push(Change { path, old_id: absent(fields[2]), new_id: absent(fields[3]), submodule, binary: false });
        } else {
            let mut fields = token.splitn(3, '\t');
            if fields.next() == Some("-") {
                binary_paths.push(fields.nth(1).expect("numstat entry has a path").to_owned());
            }
        }
    }
    for change in &mut found {
        change.binary = binary_paths.contains(&change.path);
    }
    found
}

/// Runs `git apply` on `diff` in `dir` (not a repository) with no user configuration.
fn git_apply(dir: &Path, ceiling: &Path, diff: &str) {
    let mut child = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", ceiling)
        .args(["apply", "--whitespace=nowarn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git apply runs");
    child.stdin.take().expect("stdin").write_all(diff.as_bytes()).expect("write the patch");
    let output = child.wait_with_output().expect("git apply finishes");
    assert!(output.status.success(), "git apply failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A text file of a commit: its old and new content.
struct TextChange {
    path: String,
    old: Option<String>,
    new: Option<String>,
}

#[derive(Default)]
struct Counts {
    commits: usize,
    files: usize,
    skipped: usize,
    git_patches: usize,
}

#[test]
fn every_commit_of_this_repository_round_trips_through_our_diffs_and_git_apply() {
    let root = repository_root();
    let head = Command::new("git").arg("-C").arg(&root).args(["rev-parse", "--verify", "-q", "HEAD"]).output();
    assert!(
        head.is_ok_and(|output| output.status.success()),
        "the repository at {} has no commits to replay",
        root.display()
    );
    let empty_tree = String::from_utf8(git(&root, &["hash-object", "-t", "tree", "/dev/null"])).expect("id");
    let empty_tree = empty_tree.trim().to_owned();
    let history = String::from_utf8(git(&root, &["rev-list", "--no-merges", "--parents", "HEAD"])).expect("ids");
    let mut blobs = Blobs::new(&root);
    let scratch = tempfile::tempdir().expect("scratch directory");
    let mut counts = Counts::default();
    for (index, line) in history.lines().enumerate() {
        let mut ids = line.split(' ');
        let commit = ids.next().expect("commit id").to_owned();
        let parent = ids.next().unwrap_or(&empty_tree).to_owned();
        counts.commits += 1;

        let mut texts = Vec::new();
        let mut excluded = Vec::new();
        for change in changes(&root, &parent, &commit) {
            let mut read = |id: &Option<String>| -> Result<Option<String>, ()> {
                match id {
                    None => Ok(None),
                    Some(id) => String::from_utf8(blobs.get(id).expect("blob exists")).map(Some).map_err(|_| ()),
                }
            };
            let contents = if change.binary || change.submodule {
                Err(())
            } else {
                read(&change.old_id).and_then(|old| Ok((old, read(&change.new_id)?)))
            };
            match contents {
                Ok((old, new)) => texts.push(TextChange { path: change.path, old, new }),
                Err(()) => {
                    counts.skipped += 1;
                    excluded.push(change.path);
                }
            }
        }
        check_our_diffs(&texts, &scratch.path().join(index.to_string()), scratch.path(), &commit);
        counts.files += texts.len();
        counts.git_patches += check_git_show(&root, &mut blobs, &parent, &commit, &excluded);
    }
    eprintln!(
        "checked {} commits: {} text files through unified_diff + git apply + apply, {} patches of git show \
         through parse + apply; {} binary, submodule or non-UTF-8 files skipped",
        counts.commits, counts.files, counts.git_patches, counts.skipped
    );
    assert!(counts.commits > 0, "no commits found");
}

/// Our diffs of the commit's text files, applied together by `git apply` in `dir` and one by one by
/// our `apply`, give every new file exactly and remove the deleted ones.
fn check_our_diffs(texts: &[TextChange], dir: &Path, ceiling: &Path, commit: &str) {
    std::fs::create_dir_all(dir).expect("scratch directory for the commit");
    let mut diff = String::new();
    for text in texts {
        if let Some(old) = &text.old {
            let path = dir.join(&text.path);
            std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("create directories");
            std::fs::write(&path, old).expect("write the old file");
        }
        let ours = unified_diff(&text.path, &text.path, text.old.as_deref(), text.new.as_deref(), 3);
        let parsed = parse(&ours).unwrap_or_else(|error| panic!("{commit} {}: {error}\n{ours}", text.path));
        if let Some(patch) = parsed.first() {
            let applied = apply(text.old.as_deref(), patch).unwrap_or_else(|error| panic!("{commit}: {error}"));
            assert_eq!(applied, text.new, "{commit} {}: our apply of our diff", text.path);
        }
        diff.push_str(&ours);
    }
    if !diff.is_empty() {
        git_apply(dir, ceiling, &diff);
    }
    for text in texts {
        let path = dir.join(&text.path);
        match &text.new {
            Some(new) => {
                let written = std::fs::read(&path).unwrap_or_else(|error| panic!("{commit} {}: {error}", text.path));
                assert!(
                    written == new.as_bytes(),
                    "{commit} {}: git apply of our diff differs from the blob",
                    text.path
                );
            }
            None => assert!(!path.exists(), "{commit} {}: git apply of our diff left the deleted file", text.path),
        }
    }
    std::fs::remove_dir_all(dir).expect("clean the scratch directory");
}

/// Git's own diff of the commit parses, and each text patch applies to the old blob to give the new
/// one. Returns how many patches were applied.
fn check_git_show(root: &Path, blobs: &mut Blobs, parent: &str, commit: &str, excluded: &[String]) -> usize {
    let output = git(
        root,
        &[
            "show",
            "--format=",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--binary",
            "--no-show-signature",
            "--submodule=short",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            commit,
        ],
    );
    let Ok(text) = String::from_utf8(output) else {
        return 0;
    };
    let patches = parse(&text).unwrap_or_else(|error| panic!("git show {commit} does not parse: {error}"));
    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    let mut read = |name: String| -> Option<String> {
        cache
            .entry(name)
            .or_insert_with_key(|name| blobs.get(name).map(|bytes| String::from_utf8(bytes).expect("text blob")))
            .clone()
    };
    let mut applied = 0;
    for patch in &patches {
        let skip = patch.binary
            || [&patch.old_path, &patch.new_path].into_iter().flatten().any(|path| excluded.contains(path));
        if skip {
            continue;
        }
        let old = patch.old_path.as_ref().map(|path| read(format!("{parent}:{path}")).expect("old blob exists"));
        let new = patch.new_path.as_ref().map(|path| read(format!("{commit}:{path}")).expect("new blob exists"));
        let result = apply(old.as_deref(), patch).unwrap_or_else(|error| panic!("git show {commit}: {error}"));
        assert_eq!(result, new, "git show {commit}: apply of {} gives the new blob", patch.path());
        assert_eq!(patch.status == FileStatus::Deleted, new.is_none());
        applied += 1;
    }
    applied
}
