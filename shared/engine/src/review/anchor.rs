//! Findings anchored to lines the diff shows, then deduplicated and ordered.

use std::collections::{BTreeMap, HashSet};

use super::{RawFinding, Severity};
use crate::diff::FilePatch;

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
///
/// A review of many parts anchors each part's answer: build [`DiffLines`] once and call
/// [`DiffLines::anchor`] per part instead.
pub fn anchor(raw: Vec<RawFinding>, files: &[FilePatch]) -> Anchored {
    DiffLines::new(files).anchor(raw)
}

/// The lines each file of a diff shows and changes, indexed once for anchoring many answers.
#[derive(Debug, Clone)]
pub struct DiffLines<'a> {
    /// Per path: the new-side lines shown and the added lines, both sorted.
    lines_of: BTreeMap<&'a str, (Vec<u32>, Vec<u32>)>,
}

impl<'a> DiffLines<'a> {
    /// Indexes `files`.
    pub fn new(files: &'a [FilePatch]) -> Self {
        let lines_of = files.iter().map(|file| (file.path(), (file.new_lines_in_diff(), file.changed_new_lines())));
        Self { lines_of: lines_of.collect() }
    }

    /// [`anchor`] against the indexed files.
    pub fn anchor(&self, raw: Vec<RawFinding>) -> Anchored {
        anchor_in(&self.lines_of, raw)
    }
}

fn anchor_in(lines_of: &BTreeMap<&str, (Vec<u32>, Vec<u32>)>, raw: Vec<RawFinding>) -> Anchored {
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
