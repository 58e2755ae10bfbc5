//! Finding the file path a model wrote before a block or a fence.
//!
//! Looking back from the block's first marker (or fence), blank lines and fence lines are
//! skipped (a fence's info string may hold the path) and the first other line decides:
//!
//! - alone and directly before the block, any single token is a path (`Makefile`, `src/a.rs`);
//! - decorated (`File: p`, `**p**`, `` `p` ``, `# p`, `p:`) or further up, the token must look
//!   like a path: a `/`, a `.` inside it, or a known extensionless file name;
//! - a prose line may name one path, in backticks or (if the line ends with `:`) as a word, if
//!   it has a `/` or a known source extension: ``Then in `src/a.rs`, change:``.

use super::parse::{Fence, marker};

/// File names without an extension that are still clearly files.
const KNOWN_NAMES: &[&str] = &[
    "makefile",
    "dockerfile",
    "containerfile",
    "gemfile",
    "rakefile",
    "procfile",
    "jenkinsfile",
    "vagrantfile",
    "justfile",
    "brewfile",
    "podfile",
    "license",
    "readme",
    "codeowners",
];

/// Extensions that make a word in prose a path.
const SOURCE_EXTENSIONS: &[&str] = &[
    "rs",
    "py",
    "pyi",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "go",
    "java",
    "kt",
    "kts",
    "c",
    "h",
    "cc",
    "cpp",
    "cxx",
    "hpp",
    "hh",
    "cs",
    "rb",
    "php",
    "swift",
    "scala",
    "m",
    "mm",
    "md",
    "rst",
    "toml",
    "yaml",
    "yml",
    "json",
    "txt",
    "sh",
    "bash",
    "zsh",
    "html",
    "htm",
    "css",
    "scss",
    "sass",
    "less",
    "sql",
    "proto",
    "xml",
    "gradle",
    "cfg",
    "ini",
    "conf",
    "lock",
    "vue",
    "svelte",
    "ex",
    "exs",
    "erl",
    "hrl",
    "hs",
    "ml",
    "mli",
    "lua",
    "pl",
    "pm",
    "r",
    "dart",
    "tf",
    "hcl",
    "nix",
    "zig",
    "jl",
    "clj",
    "cljs",
    "el",
    "vim",
    "ps1",
    "bat",
    "cmake",
    "mk",
    "env",
    "properties",
    "graphql",
    "gql",
    "csv",
    "mod",
    "sum",
];

/// The fence on `line` (3 or more backticks or tildes) and its info string.
pub(super) fn fence_line(line: &str) -> Option<(Fence, &str)> {
    let t = line.trim();
    let ch = t.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = t.chars().take_while(|c| *c == ch).count();
    if len < 3 {
        return None;
    }
    // `ch` is ASCII, so `len` is a byte offset on a character boundary.
    let info = t[len..].trim();
    if ch == '`' && info.contains('`') {
        return None;
    }
    Some((Fence { ch, len }, info))
}

/// The path named by the lines before a block (`before`, nearest last), if any.
pub(super) fn find_path(before: &[&str]) -> Option<String> {
    let mut direct = true;
    for line in before.iter().rev() {
        let t = line.trim();
        if t.is_empty() {
            direct = false;
            continue;
        }
        if let Some((_, info)) = fence_line(t) {
            if let Some(path) = path_in_fence_info(info) {
                return Some(path);
            }
            direct = false;
            continue;
        }
        return path_from_line(t, direct);
    }
    None
}

/// A path on a fence's info string: ```` ```python src/a.py ````, ```` ```src/a.py ````,
/// ```` ```py title="a.py" ````.
pub(super) fn path_in_fence_info(info: &str) -> Option<String> {
    info.split(|c: char| c.is_whitespace() || matches!(c, ':' | '=' | ',' | '{' | '}'))
        .map(|token| strip_dot_slash(token.trim_matches(|c| matches!(c, '"' | '\'' | '`'))))
        .find(|token| is_token(token) && (token.contains('/') || has_inner_dot(token)))
        .map(str::to_string)
}

/// The path named by one trimmed line, `direct` when it is right before the block.
fn path_from_line(line: &str, direct: bool) -> Option<String> {
    if marker(line).is_some() {
        return None;
    }
    let (token, decorated) = undecorate(line);
    let token = strip_dot_slash(token);
    if is_token(token) {
        let plain = direct && !decorated;
        return (plain || looks_like_path(token)).then(|| token.to_string());
    }
    prose_path(line)
}

/// The line without the decorations models put around a path, and whether there were any.
fn undecorate(line: &str) -> (&str, bool) {
    let mut s = line.trim();
    let mut decorated = false;
    loop {
        let before = s;
        if s.starts_with('#') {
            s = s.trim_start_matches('#').trim_start();
        }
        for prefix in ["file path:", "filename:", "file:", "path:"] {
            if s.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
                s = s[prefix.len()..].trim_start();
            }
        }
        for wrap in ["**", "*", "`", "\"", "'"] {
            if s.len() >= 2 * wrap.len()
                && let Some(inner) = s.strip_prefix(wrap).and_then(|r| r.strip_suffix(wrap))
            {
                s = inner.trim();
            }
        }
        if let Some(inner) = s.strip_suffix(':') {
            s = inner.trim_end();
        }
        if s == before {
            return (s, decorated);
        }
        decorated = true;
    }
}

/// The one path a prose line names, in backticks or (for a line ending in `:`) as a word.
fn prose_path(line: &str) -> Option<String> {
    let quoted = line.split('`').skip(1).step_by(2);
    let ends_with_colon = line.trim_end_matches(['*', '`', ' ']).ends_with(':');
    let words = line.split_whitespace().filter(|_| ends_with_colon);
    let mut candidates: Vec<&str> = quoted
        .chain(words)
        .map(|w| strip_dot_slash(w.trim_matches(|c| matches!(c, '*' | '`' | '"' | '\'' | '(' | ')' | ',' | ';' | ':'))))
        .map(|w| w.strip_suffix('.').unwrap_or(w))
        .filter(|w| is_token(w) && !w.contains("://") && (w.contains('/') || has_source_extension(w)))
        .collect();
    candidates.dedup();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    }
}

/// `path` without `./` prefixes.
fn strip_dot_slash(mut path: &str) -> &str {
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path
}

/// A single word that could be a path: no spaces, markdown or `!`, a letter or digit, no final `.`, `,` or `;`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && !s.ends_with(['.', ',', ';'])
        && s.chars().any(char::is_alphanumeric)
        && !s.chars().any(|c| c.is_whitespace() || matches!(c, '`' | '*' | '"' | '<' | '>' | '|' | '?' | '!'))
}

/// A word that looks like a path even away from the block: `/`, an inner `.`, or a known name.
fn looks_like_path(s: &str) -> bool {
    s.contains('/') || has_inner_dot(s) || KNOWN_NAMES.iter().any(|name| name.eq_ignore_ascii_case(s))
}

/// Whether there is a `.` before the last character (`.gitignore`, `a.rs`).
fn has_inner_dot(s: &str) -> bool {
    s.trim_end_matches('.').contains('.')
}

/// Whether the word ends with a known source extension.
fn has_source_extension(s: &str) -> bool {
    s.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && SOURCE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorated_paths_are_unwrapped() {
        for line in
            ["File: src/a.py", "**src/a.py**", "`src/a.py`", "# src/a.py", "### `./src/a.py`:", "**File: src/a.py**"]
        {
            assert_eq!(find_path(&[line, ""]).as_deref(), Some("src/a.py"), "{line}");
        }
    }

    #[test]
    fn prose_names_a_path_only_when_it_names_exactly_one() {
        assert_eq!(find_path(&["Then in `src/b.rs`, change:"]).as_deref(), Some("src/b.rs"));
        assert_eq!(find_path(&["Changes to lib/util.go:"]).as_deref(), Some("lib/util.go"));
        assert_eq!(find_path(&["Move `a.rs` into `b.rs`:"]), None);
        assert_eq!(find_path(&["Rename `self.x` to:"]), None);
        assert_eq!(find_path(&["Now the caller:"]), None);
    }

    #[test]
    fn a_bare_word_is_a_path_only_right_before_the_block() {
        assert_eq!(find_path(&["Makefile"]).as_deref(), Some("Makefile"));
        assert_eq!(find_path(&["config"]).as_deref(), Some("config"));
        assert_eq!(find_path(&["config", ""]), None);
        assert_eq!(find_path(&["Then:"]), None);
        assert_eq!(find_path(&["Done."]), None);
        assert_eq!(find_path(&["Sure!"]), None);
        assert_eq!(find_path(&["---"]), None);
    }

    #[test]
    fn the_fence_info_string_may_carry_the_path() {
        assert_eq!(find_path(&["```python src/a.py"]).as_deref(), Some("src/a.py"));
        assert_eq!(find_path(&["```py title=\"a.py\""]).as_deref(), Some("a.py"));
        assert_eq!(find_path(&["src/a.py", "```python"]).as_deref(), Some("src/a.py"));
        assert_eq!(find_path(&["```rust"]), None);
    }
}
