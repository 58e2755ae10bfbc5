//! The plan step's prompt: the whole files when everything fits in half the room, else a map of
//! the change (the problem, the diff's hunks, and each file's outline), cut to fit.

use std::collections::BTreeMap;

use super::prompts::problem_text;
use super::text::{head_within, tail_within};
use super::{Budget, FixError, Problem};

/// A first hunk is cut to fit only when at least this many tokens of it can be shown.
const MIN_CUT_HUNK: usize = 40;
use crate::diff::{self, FilePatch, Hunk, LineKind};
use crate::outline::{Outline, Symbol, SymbolKind, outline};
use crate::prompt::Fence;

/// The planner's user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPrompt {
    /// The message.
    pub text: String,
    /// Whether it holds the whole files (rather than their outlines).
    pub whole_files: bool,
}

/// The planner's user message for `problem`, the editable `files` and the change's `diff_text`,
/// within `budget`: the whole files when all of it takes at most half the budget; otherwise the
/// problem (check output cut to its end, at most a quarter), the diff's hunks (at most two
/// fifths, every file's first hunks before any file's later ones) and each file's outline with
/// the symbols the change touches marked (shallower levels only, then cut, when they do not fit).
pub fn plan_prompt(
    fence: &Fence,
    problem: &Problem,
    files: &BTreeMap<String, String>,
    diff_text: &str,
    budget: &Budget,
) -> Result<PlanPrompt, FixError> {
    let e = &budget.estimator;
    let whole = format!(
        "The problem:\n{}\nThe change that introduced it:\n{}\nThe files:\n{}\nAnswer with the JSON plan only.",
        problem_text(fence, problem, usize::MAX, e),
        fence.wrap("diff of the change", diff_text),
        files.iter().map(|(path, content)| fence.wrap(&format!("file {path}"), content)).collect::<String>()
    );
    if budget.count(&whole) <= budget.tokens / 2 {
        return Ok(PlanPrompt { text: whole, whole_files: true });
    }
    let problem_part = problem_text(fence, problem, budget.tokens / 4, e);
    let patches = diff::parse(diff_text).unwrap_or_default();
    let diff_part = if patches.is_empty() && !diff_text.trim().is_empty() {
        fence.wrap("diff of the change", &head_within(diff_text, budget.tokens * 2 / 5, e))
    } else {
        hunks_text(fence, &patches, budget.tokens * 2 / 5, budget)
    };
    let frame = |outlines: &str| {
        format!(
            "The problem:\n{problem_part}\nThe change that introduced it, as diff hunks:\n{diff_part}\n\
             The files are too large to show whole; here is each one's outline (symbols with their line ranges; \
             [changed] marks the symbols the change touches, [in the check output] those the check's output names):\n{outlines}\nAnswer with the JSON plan only; name \
             the regions to change by symbol or by lines."
        )
    };
    let room = budget.tokens.saturating_sub(budget.count(&frame("")));
    // The symbols worth keeping are those the output the model sees names.
    let output = tail_within(&problem.check_output, budget.tokens / 4, e);
    let outlines = outlines_text(fence, files, &patches, &output, room, budget);
    let text = frame(&outlines);
    let tokens = budget.count(&text);
    if tokens > budget.tokens {
        return Err(FixError::TooLarge {
            what: format!("the map of the change ({} files: problem, diff hunks and outlines)", files.len()),
            tokens,
            budget: budget.tokens,
            advice: "name fewer paths (`prfix fix PATH…`) or use a model with a larger context".to_owned(),
        });
    }
    Ok(PlanPrompt { text, whole_files: false })
}

/// A hunk as diff text.
fn hunk_text(hunk: &Hunk) -> String {
    let mut out = format!(
        "@@ -{},{} +{},{} @@ {}\n",
        hunk.old_start,
        hunk.old_count,
        hunk.new_start,
        hunk.new_count,
        hunk.section.trim()
    );
    for line in &hunk.lines {
        let prefix = match line.kind {
            LineKind::Context => ' ',
            LineKind::Added => '+',
            LineKind::Removed => '-',
        };
        out.push(prefix);
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}

/// The diff's hunks that fit `room`, taken round-robin (each file's first hunk before any file's
/// second), fenced per file, with a line for the hunks left out.
fn hunks_text(fence: &Fence, patches: &[FilePatch], room: usize, budget: &Budget) -> String {
    let texts: Vec<Vec<String>> = patches.iter().map(|p| p.hunks.iter().map(hunk_text).collect()).collect();
    let mut chosen: Vec<Vec<Option<String>>> = texts.iter().map(|t| vec![None; t.len()]).collect();
    let frames: usize = patches.iter().map(|p| budget.count(&fence.wrap(&format!("diff of {}", p.path()), ""))).sum();
    let mut used = frames;
    let share = room / patches.len().max(1);
    let rounds = texts.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for (hunks, picks) in texts.iter().zip(chosen.iter_mut()) {
            let (Some(text), Some(pick)) = (hunks.get(round), picks.get_mut(round)) else { continue };
            let cost = budget.count(text) + 1;
            if used + cost <= room {
                *pick = Some(text.clone());
                used += cost;
            } else if round == 0 && room.saturating_sub(used).min(share) > MIN_CUT_HUNK {
                // A first hunk too large for the room is cut to the file's share rather than left out.
                let cut = head_within(text, room.saturating_sub(used).min(share), &budget.estimator);
                used += budget.count(&cut) + 1;
                *pick = Some(cut);
            }
        }
    }
    let mut out = String::new();
    for (file, patch) in patches.iter().enumerate() {
        let shown: String = chosen[file].iter().flatten().cloned().collect();
        let left: Vec<String> = patch
            .hunks
            .iter()
            .zip(&chosen[file])
            .filter(|(_, c)| c.is_none())
            .map(|(h, _)| format!("{}-{}", h.new_start, h.new_start + h.new_count.saturating_sub(1)))
            .collect();
        let status = if patch.binary { " (binary)" } else { "" };
        out.push_str(&fence.wrap(&format!("diff of {}{status}", patch.path()), &shown));
        if !left.is_empty() {
            out.push_str(&format!(
                "({} more hunks of {} not shown, at new lines {})\n",
                left.len(),
                patch.path(),
                left.join(", ")
            ));
        }
    }
    out
}

/// Each file's outline within `room`: every level if it fits, then down to methods, then only
/// the top level; then only the symbols the change touches with a few neighbours (the runs in
/// between collapsed into one line each), then the touched ones alone; then cut to equal shares.
fn outlines_text(
    fence: &Fence,
    files: &BTreeMap<String, String>,
    patches: &[FilePatch],
    check_output: &str,
    room: usize,
    budget: &Budget,
) -> String {
    // A symbol the check output names (a failing test, a function in a traceback) is kept like
    // a changed one; short names are left out, they match by accident.
    let named = |s: &Symbol| s.kind != SymbolKind::Lines && s.name.len() >= 4 && mentions(check_output, &s.name);
    let changed: BTreeMap<&str, Vec<u32>> = patches.iter().map(|p| (p.path(), p.changed_new_lines())).collect();
    let outlines: Vec<(&String, Outline)> = files.iter().map(|(path, text)| (path, outline(path, text))).collect();
    let render = |max_depth: usize, neighbours: Option<usize>, share: Option<usize>| -> String {
        let mut out = String::new();
        for (path, o) in &outlines {
            let lines = changed.get(path.as_str()).map(Vec::as_slice).unwrap_or_default();
            let symbols: Vec<&Symbol> = o.symbols.iter().filter(|s| s.depth() <= max_depth).collect();
            let touched: Vec<bool> = symbols
                .iter()
                .map(|s| lines.iter().any(|&l| (s.start_line..=s.end_line).contains(&(l as usize))))
                .collect();
            let in_output: Vec<bool> = symbols.iter().map(|s| named(s)).collect();
            let keep = |i: usize| match neighbours {
                None => true,
                Some(n) => (i.saturating_sub(n)..=i + n)
                    .any(|j| touched.get(j).copied().unwrap_or(false) || in_output.get(j).copied().unwrap_or(false)),
            };
            let mut body = String::new();
            let mut skipped: Vec<&Symbol> = Vec::new();
            for (i, symbol) in symbols.iter().enumerate() {
                if !keep(i) {
                    skipped.push(symbol);
                    continue;
                }
                collapse(&mut body, &mut skipped);
                body.push_str(&"  ".repeat(symbol.depth()));
                body.push_str(&symbol.to_string());
                body.push_str(match (touched[i], in_output[i]) {
                    (true, _) => " [changed]\n",
                    (false, true) => " [in the check output]\n",
                    (false, false) => "\n",
                });
            }
            collapse(&mut body, &mut skipped);
            if let Some(share) = share {
                body = head_within(&body, share, &budget.estimator);
            }
            out.push_str(&fence.wrap(&format!("outline of {path} ({} lines)", o.lines), &body));
        }
        out
    };
    for (depth, neighbours) in [(usize::MAX, None), (1, None), (0, None), (1, Some(3)), (1, Some(0)), (0, Some(0))] {
        let text = render(depth, neighbours, None);
        if budget.count(&text) <= room {
            return text;
        }
    }
    let frames: usize = outlines
        .iter()
        .map(|(path, o)| budget.count(&fence.wrap(&format!("outline of {path} ({} lines)", o.lines), "")))
        .sum();
    let share = room.saturating_sub(frames) / outlines.len().max(1);
    render(0, Some(0), Some(share))
}

/// Whether `text` holds `name` as a whole word (`metric_2` is not in `metric_21`).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(name)
        .any(|(at, _)| !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next()))
}

/// One line for a run of symbols left out of an outline, if any.
fn collapse(body: &mut String, skipped: &mut Vec<&Symbol>) {
    if let (Some(first), Some(last)) = (skipped.first(), skipped.last()) {
        body.push_str(&format!(
            "… {} more symbols in lines {}-{} ({} … {})\n",
            skipped.len(),
            first.start_line,
            skipped.iter().map(|s| s.end_line).max().unwrap_or(last.end_line),
            first.qualified_name(),
            last.qualified_name()
        ));
    }
    skipped.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_mentioned_only_as_a_whole_word() {
        assert!(mentions("FAILED test_metric_217 - x", "test_metric_217"));
        assert!(mentions("in metric_21()", "metric_21"));
        assert!(!mentions("in metric_217()", "metric_21"));
        assert!(!mentions("test_metric_21", "metric_21"));
    }
}
