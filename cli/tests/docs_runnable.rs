//! The documentation's examples run: every shell block of README.md and docs/*.md marked runnable is
//! executed against a live `prfix up` (the binary, on a fresh database, with the fake model), and a
//! block that fails is a failing test naming its file and line.
//!
//! A block is runnable when the line before its opening fence is `<!-- runnable -->` (an HTML comment,
//! invisible on GitHub and in the book) and the fence says `sh`. The blocks of one file run in order
//! in one shell (`bash -euo pipefail`), so a variable set in one block (`TOKEN=...`) serves the next,
//! in a git checkout with two commits and a change (for `git diff HEAD~1` and `prfix review`), with:
//!
//! - `prfix` on the `PATH`, a home and a config directory of its own, no terminal;
//! - `ADMIN_PASSWORD`: the password `prfix up` gave `admin` (the docs ask the reader to set it);
//! - `http://127.0.0.1:8080` in a block standing for the live gateway's URL (its port is chosen by the
//!   system here), and `PRFIX_GATEWAY` set to it, so that `prfix` finds it where a reader's finds
//!   theirs by default.

mod support;

use std::path::{Path, PathBuf};

use support::up::{ADMIN_PASSWORD, Up, prfix_dir};

/// The marker line before a runnable block.
const MARKER: &str = "<!-- runnable -->";

/// The gateway URL the docs use, replaced by the live one.
const DOCS_GATEWAY: &str = "http://127.0.0.1:8080";

/// A runnable block: the 1-based line of its opening fence, and its text.
#[derive(Debug, PartialEq)]
struct Block {
    line: usize,
    text: String,
}

/// The runnable blocks of a Markdown text, in order. A marker not followed by a `sh` fence is an
/// error (a marker that marks nothing would silently test nothing).
fn runnable_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at].trim() != MARKER {
            at += 1;
            continue;
        }
        let fence = at + 1;
        if lines.get(fence).map(|l| l.trim()) != Some("```sh") {
            return Err(format!("line {}: `{MARKER}` must be followed by a ```sh fence", at + 1));
        }
        let close = (fence + 1..lines.len())
            .find(|&i| lines[i].trim() == "```")
            .ok_or_else(|| format!("line {}: the runnable block is never closed", fence + 1))?;
        blocks.push(Block { line: fence + 1, text: lines[fence + 1..close].join("\n") });
        at = close + 1;
    }
    Ok(blocks)
}

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ is in the workspace").to_path_buf()
}

/// README.md and every docs/*.md, relative to the root, sorted.
fn documents() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ lists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A git checkout with two commits and an uncommitted change, as a reader's project would be.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a project directory");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?} failed");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("lib.py"), "def add(a, b):\n    return a + b\n").expect("write");
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "add"]);
    std::fs::write(dir.path().join("lib.py"), "def add(a, b):\n    return a - b\n").expect("write");
    git(&["commit", "-q", "-am", "subtract instead"]);
    std::fs::write(dir.path().join("lib.py"), "def add(a, b):\n    return b - a\n").expect("write");
    dir
}

/// Why a document's blocks failed: the block's file and line, and what the shell printed.
async fn run_blocks(up: &Up, name: &str, blocks: &[Block]) -> Result<(), String> {
    let project = project();
    let home = tempfile::tempdir().expect("a home");
    let mut script = String::new();
    for (n, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@block {n}' >&2\n"));
        script.push_str(&block.text.replace(DOCS_GATEWAY, &up.gateway));
        script.push('\n');
    }
    let path = format!("{}:{}", prfix_dir().display(), std::env::var("PATH").unwrap_or_default());
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(project.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", home.path())
        .env("PRFIX_CONFIG_DIR", home.path().join("config"))
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("PRFIX_GATEWAY", &up.gateway)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .map_err(|_| format!("{name}: its blocks did not finish within two minutes"))?
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failed = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@block ")?.trim().parse::<usize>().ok())
        .and_then(|n| blocks.get(n));
    let place = failed.map_or_else(|| name.to_owned(), |b| format!("{name}:{}", b.line));
    Err(format!(
        "{place}: the block failed ({})\n--- stdout\n{}\n--- stderr\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    ))
}

#[test]
fn markers_find_the_blocks_after_them_and_nothing_else() {
    let text = "# T\n\n```sh\nnot marked\n```\n\n<!-- runnable -->\n```sh\necho one\necho two\n```\n<!-- runnable -->\n```sh\ntrue\n```\n";
    assert_eq!(
        runnable_blocks(text),
        Ok(vec![Block { line: 8, text: "echo one\necho two".to_owned() }, Block { line: 13, text: "true".to_owned() }])
    );
    assert_eq!(runnable_blocks("<!-- runnable -->\n\n```sh\ntrue\n```\n").map_err(|e| e.contains("line 1")), Err(true));
    assert!(runnable_blocks("<!-- runnable -->\n```sh\ntrue\n").is_err_and(|e| e.contains("never closed")));
}

#[tokio::test]
async fn every_runnable_block_of_the_docs_runs_against_prfix_up_and_a_broken_one_fails() {
    let up = Up::start(&[]).await;
    let mut failures = Vec::new();
    let mut ran = Vec::new();
    for name in documents() {
        let text = std::fs::read_to_string(root().join(&name)).expect("the document reads");
        let blocks = match runnable_blocks(&text) {
            Ok(blocks) => blocks,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if blocks.is_empty() {
            continue;
        }
        ran.push(format!("{name} ({} blocks)", blocks.len()));
        if let Err(e) = run_blocks(&up, &name, &blocks).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}\n--- prfix up printed\n{}", failures.join("\n\n"), up.printed());
    for page in ["README.md", "docs/rest.md", "docs/cli.md"] {
        assert!(ran.iter().any(|r| r.starts_with(page)), "{page} has no runnable block; ran: {ran:?}");
    }

    // The runner catches a broken example: the fixture's second block calls the REST API with
    // curl's default form content type, which the gateway refuses (415).
    let fixture = std::fs::read_to_string(root().join("cli/tests/fixtures/docs/broken.md")).expect("the fixture");
    let blocks = runnable_blocks(&fixture).expect("the fixture's blocks");
    assert_eq!(blocks.len(), 2);
    let error = run_blocks(&up, "broken.md", &blocks).await.expect_err("the broken block fails");
    assert!(error.starts_with(&format!("broken.md:{}: the block failed", blocks[1].line)), "{error}");
    assert!(error.contains("status 415"), "{error}");
}
