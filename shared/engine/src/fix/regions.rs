//! The regions of files the coder sees: resolved from what the plan named (symbols of a file's
//! outline, line ranges, or a file alone), then widened by context lines and merged.

use std::collections::BTreeMap;

use super::{Plan, RegionRef};
use crate::diff::{self, FilePatch};
use crate::outline::{line_count, outline};

/// A run of lines of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The file.
    pub path: String,
    /// The first line, from 1.
    pub start_line: usize,
    /// The last line, inclusive.
    pub end_line: usize,
    /// What it is (`Cart.total`, `lines 10-40`, `changed lines`), for prompts and errors.
    pub label: String,
}

impl Region {
    /// `path lines A-B (label)`, as errors name a region.
    pub fn describe(&self) -> String {
        format!("{} lines {}-{} ({})", self.path, self.start_line, self.end_line, self.label)
    }
}

/// The regions the plan names, resolved against `files` (paths it names that are not there are
/// skipped): a symbol by its outline (every symbol of that name), lines as given (clamped to the
/// file), a file named alone by the hunks the change made in it, or whole when it has none. A
/// plan that names nothing usable gives the hunks of every changed file, or every file whole
/// when the diff has none. Regions come without context lines; see [`widen`].
pub fn resolve_regions(plan: &Plan, files: &BTreeMap<String, String>, diff_text: &str) -> Vec<Region> {
    let patches = diff::parse(diff_text).unwrap_or_default();
    let mut named: Vec<RegionRef> = plan.regions.clone();
    for path in &plan.files {
        let path = path.trim().trim_start_matches("./");
        if !named.iter().any(|r| r.path == path) {
            named.push(RegionRef { path: path.to_owned(), ..RegionRef::default() });
        }
    }
    let mut regions: Vec<Region> = named
        .iter()
        .filter_map(|r| files.get(&r.path).map(|content| (r, content)))
        .flat_map(|(r, content)| resolve_one(r, content, &patches))
        .collect();
    if regions.is_empty() {
        regions = files
            .iter()
            .flat_map(|(path, content)| {
                let r = RegionRef { path: path.clone(), ..RegionRef::default() };
                let changed = hunk_regions(&r.path, &patches, line_count(content));
                if changed.is_empty() && !patches.is_empty() { Vec::new() } else { resolve_one(&r, content, &patches) }
            })
            .collect();
    }
    regions
}

/// One named place as regions of its file.
fn resolve_one(r: &RegionRef, content: &str, patches: &[FilePatch]) -> Vec<Region> {
    let lines = line_count(content).max(1);
    let region = |start: usize, end: usize, label: String| Region {
        path: r.path.clone(),
        start_line: start.clamp(1, lines),
        end_line: end.clamp(start.clamp(1, lines), lines),
        label,
    };
    if let Some(symbol) = &r.symbol {
        let found: Vec<Region> = outline(&r.path, content)
            .find(symbol)
            .into_iter()
            .map(|s| region(s.start_line, s.end_line, s.qualified_name()))
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    if let Some(start) = r.start_line {
        let mut lines = region(start, r.end_line.unwrap_or(start).max(start), String::new());
        lines.label = format!("lines {}-{}", lines.start_line, lines.end_line);
        return vec![lines];
    }
    let changed = hunk_regions(&r.path, patches, lines);
    if !changed.is_empty() {
        return changed;
    }
    let why = match &r.symbol {
        Some(symbol) => format!("whole file: `{symbol}` is not in its outline"),
        None => "whole file".to_owned(),
    };
    vec![region(1, lines, why)]
}

/// The new-side lines of each hunk of `path` in the diff.
fn hunk_regions(path: &str, patches: &[FilePatch], lines: usize) -> Vec<Region> {
    patches
        .iter()
        .filter(|p| p.path() == path)
        .flat_map(|p| &p.hunks)
        .map(|h| {
            let start = (h.new_start as usize).clamp(1, lines.max(1));
            let end = (h.new_start as usize + (h.new_count as usize).saturating_sub(1)).clamp(start, lines.max(1));
            Region { path: path.to_owned(), start_line: start, end_line: end, label: "changed lines".to_owned() }
        })
        .collect()
}

/// The regions widened by `context` lines on each side (within their files) and merged where
/// they overlap or touch, in file and line order.
pub(super) fn widen(regions: &[Region], files: &BTreeMap<String, String>, context: usize) -> Vec<Region> {
    let mut wide: Vec<Region> = regions
        .iter()
        .map(|r| {
            let lines = files.get(&r.path).map_or(r.end_line, |c| line_count(c)).max(1);
            Region {
                start_line: r.start_line.saturating_sub(context).max(1),
                end_line: r.end_line.saturating_add(context).min(lines),
                ..r.clone()
            }
        })
        .collect();
    wide.sort_by(|a, b| (&a.path, a.start_line).cmp(&(&b.path, b.start_line)));
    let mut merged: Vec<Region> = Vec::new();
    for r in wide {
        match merged.last_mut() {
            Some(last) if last.path == r.path && r.start_line <= last.end_line + 1 => {
                last.end_line = last.end_line.max(r.end_line);
                if !last.label.split(", ").any(|l| l == r.label) {
                    last.label = format!("{}, {}", last.label, r.label);
                }
            }
            _ => merged.push(r),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, String> {
        let body: String = (1..=100).map(|i| format!("    x{i} = {i}\n")).collect();
        let py = format!("class A:\n    def run(self):\n        return 1\n\n\ndef helper():\n{body}");
        BTreeMap::from([("a.py".to_owned(), py)])
    }

    #[test]
    fn a_symbol_resolves_to_its_lines_and_unknown_paths_are_skipped() {
        let plan = Plan {
            regions: vec![
                RegionRef { path: "a.py".into(), symbol: Some("A.run".into()), ..RegionRef::default() },
                RegionRef { path: "nowhere.py".into(), symbol: Some("x".into()), ..RegionRef::default() },
            ],
            ..Plan::default()
        };
        let regions = resolve_regions(&plan, &files(), "");
        assert_eq!(regions.len(), 1);
        assert_eq!((regions[0].start_line, regions[0].end_line, regions[0].label.as_str()), (2, 3, "A.run"));
    }

    #[test]
    fn line_ranges_are_clamped_and_widened_regions_merge() {
        let plan = Plan {
            regions: vec![
                RegionRef { path: "a.py".into(), start_line: Some(50), end_line: Some(60), ..RegionRef::default() },
                RegionRef { path: "a.py".into(), start_line: Some(70), end_line: Some(999), ..RegionRef::default() },
            ],
            ..Plan::default()
        };
        let regions = resolve_regions(&plan, &files(), "");
        assert_eq!(regions[1].end_line, 106);
        let wide = widen(&regions, &files(), 5);
        assert_eq!(wide.len(), 1, "{wide:?}");
        assert_eq!((wide[0].start_line, wide[0].end_line), (45, 106));
        assert_eq!(wide[0].label, "lines 50-60, lines 70-106");
    }
}
