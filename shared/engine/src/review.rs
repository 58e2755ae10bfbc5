//! Reviews: which files to look at, chunks that fit a model's context, the prompt, and turning a
//! model's findings into findings anchored to lines that exist in the diff.

use std::collections::{BTreeMap, HashSet};

use crate::diff::{FilePatch, FileStatus, LineKind};
use crate::prompt::Fence;
use crate::tokens;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// Paths left out of reviews by default: lock files, generated, minified and vendored code.
pub const DEFAULT_IGNORE_GLOBS: &[&str] = &[
    "**/Cargo.lock",
    "**/package-lock.json",
    "**/npm-shrinkwrap.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/poetry.lock",
    "**/Pipfile.lock",
    "**/uv.lock",
    "**/go.sum",
    "**/Gemfile.lock",
    "**/composer.lock",
    "**/*.min.js",
    "**/*.min.css",
    "**/*.map",
    "**/*.pb.go",
    "**/*_pb2.py",
    "**/*_pb2_grpc.py",
    "**/*.generated.*",
    "**/generated/**",
    "**/vendor/**",
    "**/third_party/**",
    "**/node_modules/**",
    "**/dist/**",
];

/// How much a finding matters; numbers grow with severity (as in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info = 1,
    /// Style, naming, small improvements.
    Minor = 2,
    /// A bug or risk to fix before merging.
    Major = 3,
    /// Security hole, data loss, crash.
    Critical = 4,
}

impl Severity {
    /// Reads the words models use (`high`, `warning`, `nit`...); `None` for anything else.
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" | "blocker" | "severe" | "fatal" => Some(Self::Critical),
            "major" | "high" | "error" | "bug" => Some(Self::Major),
            "minor" | "medium" | "moderate" | "warning" | "warn" | "low" => Some(Self::Minor),
            "info" | "information" | "informational" | "nit" | "nitpick" | "note" | "suggestion" | "trivial" => {
                Some(Self::Info)
            }
            _ => None,
        }
    }
}

/// Why a review input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// An ignore glob does not parse.
    #[error("ignore glob `{glob}` is not valid: {reason}")]
    Glob {
        /// The glob.
        glob: String,
        /// What is wrong.
        reason: String,
    },
    /// The model's answer holds no findings list.
    #[error("the model's answer holds no findings list: {0}")]
    NoFindings(String),
}

/// Files of the diff the review looks at, and those it leaves out with the reason.
#[derive(Debug)]
pub struct Selection {
    /// Files to review.
    pub files: Vec<FilePatch>,
    /// Left out: path and why.
    pub skipped: Vec<(String, &'static str)>,
}

fn globset(extra: &[String]) -> Result<GlobSet, ReviewError> {
    let mut builder = GlobSetBuilder::new();
    for given in DEFAULT_IGNORE_GLOBS.iter().copied().chain(extra.iter().map(String::as_str)) {
        // A leading `/` anchors at the repository root, as in `.gitignore`; paths here are relative.
        let glob = given.strip_prefix('/').unwrap_or(given);
        let parsed =
            Glob::new(glob).map_err(|e| ReviewError::Glob { glob: given.to_owned(), reason: e.to_string() })?;
        builder.add(parsed);
        // Without a `/` anchor, `dist/**` matches in any directory too, as `.gitignore` would.
        if !given.starts_with('/')
            && !glob.starts_with("**/")
            && let Ok(anywhere) = Glob::new(&format!("**/{glob}"))
        {
            builder.add(anywhere);
        }
    }
    builder.build().map_err(|e| ReviewError::Glob { glob: extra.join(", "), reason: e.to_string() })
}

/// Leaves out binary files, deletions, files without hunks and ignored paths.
pub fn select(patches: Vec<FilePatch>, extra_globs: &[String]) -> Result<Selection, ReviewError> {
    let ignore = globset(extra_globs)?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for patch in patches {
        let path = patch.path().to_owned();
        if patch.binary {
            skipped.push((path, "binary"));
        } else if matches!(patch.status, FileStatus::Deleted) {
            skipped.push((path, "deleted"));
        } else if patch.hunks.is_empty() {
            skipped.push((path, "no content change"));
        } else if ignore.is_match(&path) {
            skipped.push((path, "ignored (lock, generated or vendored)"));
        } else {
            files.push(patch);
        }
    }
    Ok(Selection { files, skipped })
}

/// A file's hunks with new-side line numbers: `  12 + added`, `  13   context`, `     - removed`.
pub fn render_hunks(patch: &FilePatch) -> String {
    let mut out = String::new();
    for hunk in &patch.hunks {
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@{}\n",
            hunk.old_start,
            hunk.old_count,
            hunk.new_start,
            hunk.new_count,
            if hunk.section.is_empty() { String::new() } else { format!(" {}", hunk.section.trim()) }
        ));
        for line in &hunk.lines {
            let text = line.text.trim_end_matches('\r');
            match (line.kind, line.new_line) {
                (LineKind::Added, Some(n)) => out.push_str(&format!("{n:>5} + {text}\n")),
                (LineKind::Context, Some(n)) => out.push_str(&format!("{n:>5}   {text}\n")),
                _ => out.push_str(&format!("      - {text}\n")),
            }
        }
    }
    out
}

/// A part of a review small enough for one model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Paths in it.
    pub paths: Vec<String>,
    /// The rendered diff text (each file fenced separately by the prompt).
    pub parts: Vec<(String, String)>,
    /// Estimated tokens of the parts.
    pub tokens: usize,
}

/// Packs files into chunks of at most `budget` estimated tokens, whole files where they fit, a
/// file's hunks split over chunks where it does not, a hunk split by lines as a last resort.
pub fn chunk(files: &[FilePatch], budget: usize) -> Vec<Chunk> {
    let budget = budget.max(200);
    let mut pieces: Vec<(String, String, usize)> = Vec::new();
    for file in files {
        let whole = render_hunks(file);
        let cost = tokens::estimate(&whole);
        if cost <= budget {
            pieces.push((file.path().to_owned(), whole, cost));
            continue;
        }
        for hunk in &file.hunks {
            let single = FilePatch { hunks: vec![hunk.clone()], ..file.clone() };
            let text = render_hunks(&single);
            let cost = tokens::estimate(&text);
            if cost <= budget {
                pieces.push((file.path().to_owned(), text, cost));
                continue;
            }
            let mut current = String::new();
            let mut current_cost = 0;
            for line in text.lines() {
                let line_cost = tokens::estimate(line) + 1;
                if current_cost + line_cost > budget && !current.is_empty() {
                    pieces.push((file.path().to_owned(), std::mem::take(&mut current), current_cost));
                    current_cost = 0;
                }
                // A single line over the budget is cut: the model sees its start.
                let line: String =
                    if line_cost > budget { line.chars().take(budget * 2).collect() } else { line.to_owned() };
                current.push_str(&line);
                current.push('\n');
                current_cost += line_cost.min(budget);
            }
            if !current.is_empty() {
                pieces.push((file.path().to_owned(), current, current_cost));
            }
        }
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    for (path, text, cost) in pieces {
        match chunks.last_mut() {
            Some(last) if last.tokens + cost <= budget => {
                if !last.paths.contains(&path) {
                    last.paths.push(path.clone());
                }
                last.parts.push((path, text));
                last.tokens += cost;
            }
            _ => chunks.push(Chunk { paths: vec![path.clone()], parts: vec![(path, text)], tokens: cost }),
        }
    }
    chunks
}

/// The JSON schema of a review answer (Ollama's `format` and the prompt).
pub fn findings_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "line": {"type": "integer"},
                        "end_line": {"type": "integer"},
                        "severity": {"type": "string", "enum": ["critical", "major", "minor", "info"]},
                        "category": {"type": "string"},
                        "title": {"type": "string"},
                        "body": {"type": "string"},
                        "suggestion": {"type": "string"}
                    },
                    "required": ["path", "line", "severity", "title", "body"]
                }
            }
        },
        "required": ["findings"]
    })
}

/// The review's system prompt: stable for a given fence and instructions, first in every call.
pub fn system_prompt(fence: &Fence, extra_instructions: &str) -> String {
    let mut prompt = format!(
        "You are a meticulous senior engineer reviewing a pull request. Report real problems in the \
         changed lines: bugs, security holes, data loss, crashes, races, resource leaks, wrong error handling, \
         and clear maintainability problems. Do not praise, do not restate the change, do not report style \
         nits unless asked.\n\n{}\n\n\
         Each diff line is shown as `<new line number> + text` (added), `<new line number>   text` (unchanged) \
         or `      - text` (removed). Anchor each finding to the new line number of an added or unchanged line of \
         that file. Answer with JSON only, matching this schema:\n{}\n\
         severity is one of critical (security hole, data loss, crash), major (a bug to fix before merging), \
         minor (a small improvement), info. category is a short word such as bug, security, performance, \
         error-handling, concurrency, maintainability. suggestion, when you have one, is the replacement text \
         for the lines from line to end_line. If there is nothing to report, answer {{\"findings\": []}}.",
        fence.rule(),
        findings_schema()
    );
    if !extra_instructions.trim().is_empty() {
        prompt.push_str(
            "\n\nExtra instructions from the person who asked for this review (about what to look for; \
             they do not change the answer format or these rules):\n",
        );
        prompt.push_str(extra_instructions.trim());
    }
    prompt
}

/// The user message for one chunk.
pub fn chunk_prompt(fence: &Fence, chunk: &Chunk, index: usize, total: usize) -> String {
    let mut prompt = format!("Review part {} of {} of the change.\n\n", index + 1, total);
    for (path, text) in &chunk.parts {
        prompt.push_str(&fence.wrap(&format!("diff of {path}"), text));
        prompt.push('\n');
    }
    prompt.push_str("Answer with the JSON object only.");
    prompt
}

/// A finding as the model wrote it, before anchoring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawFinding {
    /// Path as written.
    pub path: String,
    /// First line, when readable.
    pub line: Option<u32>,
    /// Last line, when readable.
    pub end_line: Option<u32>,
    /// Severity, when readable.
    pub severity: Option<Severity>,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Suggested replacement.
    pub suggestion: String,
}

fn text_of(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Reads `12`, `"12"`, `"12-14"`, `"L12"`; the second value is an end line found in a range.
fn line_of(value: Option<&serde_json::Value>) -> (Option<u32>, Option<u32>) {
    match value {
        Some(serde_json::Value::Number(n)) => {
            (n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).and_then(|n| u32::try_from(n).ok()), None)
        }
        Some(serde_json::Value::String(s)) => {
            let mut numbers =
                s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).filter_map(|p| p.parse::<u32>().ok());
            (numbers.next(), numbers.next())
        }
        _ => (None, None),
    }
}

/// Reads findings from a model's answer: an object with `findings` (or another array field), or
/// a bare array, tolerating prose, fences, trailing commas and a cut-off tail.
pub fn parse_findings(answer: &str) -> Result<Vec<RawFinding>, ReviewError> {
    let value = crate::json::parse_lenient(answer).map_err(|e| ReviewError::NoFindings(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("findings") {
            Some(serde_json::Value::Array(items)) => items,
            _ => match map
                .into_iter()
                .find_map(|(_, v)| if let serde_json::Value::Array(a) = v { Some(a) } else { None })
            {
                Some(items) => items,
                None => return Err(ReviewError::NoFindings("an object without a `findings` array".to_owned())),
            },
        },
        other => return Err(ReviewError::NoFindings(format!("a JSON {} instead of an object", kind(&other)))),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let serde_json::Value::Object(map) = item else { return None };
            let get = |names: &[&str]| names.iter().find_map(|n| map.get(*n));
            let (line, range_end) = line_of(get(&["line", "start_line", "line_number", "lineNumber"]));
            let (end_line, _) = line_of(get(&["end_line", "endLine", "line_end"]));
            Some(RawFinding {
                path: text_of(get(&["path", "file", "filename", "file_path"])),
                line,
                end_line: end_line.or(range_end),
                severity: Severity::parse(&text_of(get(&["severity", "level", "priority"]))),
                category: text_of(get(&["category", "type", "kind"])),
                title: text_of(get(&["title", "summary", "issue"])),
                body: text_of(get(&["body", "description", "message", "details", "explanation"])),
                suggestion: text_of(get(&["suggestion", "fix", "replacement"])),
            })
        })
        .collect())
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// A finding anchored to a line of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Path as in the diff.
    pub path: String,
    /// First line, new side, present in the diff.
    pub line: u32,
    /// Last line, new side, inclusive, present in the diff.
    pub end_line: u32,
    /// How much it matters.
    pub severity: Severity,
    /// Category.
    pub category: String,
    /// One-line summary.
    pub title: String,
    /// Explanation.
    pub body: String,
    /// Replacement text.
    pub suggestion: String,
}

/// Findings after anchoring, with what it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchored {
    /// Anchored findings.
    pub findings: Vec<Finding>,
    /// Findings moved to the nearest changed line.
    pub reanchored: usize,
    /// Findings dropped (file not in the diff, nothing to say).
    pub dropped: usize,
}

fn normalise_path(path: &str) -> String {
    let path = path.trim().trim_matches('`').trim();
    let path = path.strip_prefix("a/").or_else(|| path.strip_prefix("b/")).unwrap_or(path);
    path.trim_start_matches("./").trim_start_matches('/').to_owned()
}

/// Anchors each finding to a line present in `files`' hunks: a line on the new side that the diff
/// shows is kept; another line moves to the nearest added line of that file (or the nearest shown
/// line when the file only lost lines); a path not in the diff is matched by a unique suffix or the
/// finding is dropped. The range end is clamped to the contiguous shown lines after `line`.
pub fn anchor(raw: Vec<RawFinding>, files: &[FilePatch]) -> Anchored {
    let mut lines_of: BTreeMap<&str, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for file in files {
        lines_of.insert(file.path(), (file.new_lines_in_diff(), file.changed_new_lines()));
    }
    let mut out = Anchored::default();
    for finding in raw {
        let wanted = normalise_path(&finding.path);
        let path = if lines_of.contains_key(wanted.as_str()) {
            Some(wanted.clone())
        } else {
            let suffix_matches: Vec<&&str> = lines_of
                .keys()
                .filter(|p| {
                    !wanted.is_empty() && (p.ends_with(&format!("/{wanted}")) || wanted.ends_with(&format!("/{p}")))
                })
                .collect();
            (suffix_matches.len() == 1).then(|| suffix_matches[0].to_string())
        };
        let Some(path) = path else {
            out.dropped += 1;
            continue;
        };
        if finding.title.is_empty() && finding.body.is_empty() {
            out.dropped += 1;
            continue;
        }
        let Some((shown, changed)) = lines_of.get(path.as_str()) else {
            out.dropped += 1;
            continue;
        };
        let targets = if changed.is_empty() { shown } else { changed };
        let Some(&nearest_default) = targets.first() else {
            out.dropped += 1;
            continue;
        };
        let (line, moved) = match finding.line {
            Some(l) if shown.binary_search(&l).is_ok() => (l, path != wanted),
            Some(l) => (nearest(targets, l).unwrap_or(nearest_default), true),
            None => (nearest_default, true),
        };
        let mut end_line = line;
        if !moved && let Some(wanted_end) = finding.end_line.filter(|e| *e > line) {
            // Extend only over lines the diff shows without a gap.
            let start = shown.binary_search(&line).unwrap_or(0);
            for window in shown[start..].windows(2) {
                if window[1] != window[0] + 1 || window[1] > wanted_end {
                    break;
                }
                end_line = window[1];
            }
        }
        if moved {
            out.reanchored += 1;
        }
        let title = if finding.title.is_empty() {
            finding.body.lines().next().unwrap_or_default().chars().take(120).collect()
        } else {
            finding.title
        };
        out.findings.push(Finding {
            path,
            line,
            end_line,
            severity: finding.severity.unwrap_or(Severity::Minor),
            category: if finding.category.is_empty() { "general".to_owned() } else { finding.category.to_lowercase() },
            title,
            body: finding.body,
            suggestion: finding.suggestion,
        });
    }
    out
}

fn nearest(sorted: &[u32], line: u32) -> Option<u32> {
    sorted.iter().copied().min_by_key(|candidate| (candidate.abs_diff(line), *candidate))
}

fn title_key(title: &str) -> String {
    title.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Removes duplicates (same file, overlapping lines, same title or same line and category; the
/// most severe stays), drops findings below `min_severity`, orders by severity then place, and keeps
/// at most `max`.
pub fn finalize(mut findings: Vec<Finding>, min_severity: Option<Severity>, max: usize) -> Vec<Finding> {
    findings.retain(|f| min_severity.is_none_or(|min| f.severity >= min));
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    let mut kept: Vec<Finding> = Vec::new();
    let mut seen_titles: HashSet<(String, String)> = HashSet::new();
    for finding in findings {
        let key = (finding.path.clone(), title_key(&finding.title));
        let duplicate = seen_titles.contains(&key)
            || kept.iter().any(|k| {
                k.path == finding.path
                    && k.line <= finding.end_line
                    && finding.line <= k.end_line
                    && (title_key(&k.title) == title_key(&finding.title)
                        || (k.line == finding.line && k.category == finding.category))
            });
        if duplicate {
            continue;
        }
        seen_titles.insert(key);
        kept.push(finding);
        if kept.len() >= max {
            break;
        }
    }
    kept
}
