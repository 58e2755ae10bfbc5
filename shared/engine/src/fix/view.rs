//! The edit step's prompt: the regions the plan named with context lines around them (the
//! whole files when they fit in half the room), cut to fit by narrowing the context.

use std::collections::BTreeMap;

use super::prompts::{plan_text, problem_text};
use super::regions::{Region, widen};
use super::{Budget, FixError, Plan, Problem};
use crate::outline::line_count;
use crate::prompt::Fence;

/// Context lines tried around each region, widest first: enough for a SEARCH block to be
/// unique, narrowed only when the regions would not fit otherwise.
const CONTEXT_STEPS: [usize; 4] = [15, 8, 3, 0];

/// The coder's first user message and what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditView {
    /// The message.
    pub prompt: String,
    /// The files shown whole and small enough to be rewritten whole.
    pub whole_files: Vec<String>,
    /// What is shown of each file, in file and line order.
    pub shown: Vec<Region>,
}

/// The coder's message for `problem` and `plan`, showing `regions` of `files` within `budget`:
/// the regions' files whole when that takes at most half the budget (those of at most
/// `whole_file_max_lines` lines may be rewritten whole), else each region with up to 15 lines
/// around it, fewer when they do not fit. A region that cannot fit even without context is
/// [`FixError::TooLarge`], naming its file and lines.
pub fn edit_prompt(
    fence: &Fence,
    problem: &Problem,
    plan: &Plan,
    files: &BTreeMap<String, String>,
    regions: &[Region],
    whole_file_max_lines: usize,
    budget: &Budget,
) -> Result<EditView, FixError> {
    let problem_part = problem_text(fence, problem, budget.tokens / 4, &budget.estimator);
    let plan_part = plan_text(plan);
    let frame = |shown: &str| {
        format!(
            "The problem:\n{problem_part}\nThe plan:\n{plan_part}\nThe code to change:\n{shown}\nWrite the edits now."
        )
    };
    let mut paths: Vec<&str> = regions.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let whole: Vec<Region> = paths
        .iter()
        .filter_map(|p| files.get(*p).map(|c| (p, c)))
        .map(|(p, c)| Region {
            path: (*p).to_owned(),
            start_line: 1,
            end_line: line_count(c).max(1),
            label: "whole file".to_owned(),
        })
        .collect();
    let text = frame(&render(fence, files, &whole, true));
    if budget.count(&text) <= budget.tokens / 2 {
        let small = whole.iter().filter(|r| r.end_line <= whole_file_max_lines).map(|r| r.path.clone()).collect();
        return Ok(EditView { prompt: text, whole_files: small, shown: whole });
    }
    for context in CONTEXT_STEPS {
        let shown = widen(regions, files, context);
        let text = frame(&render(fence, files, &shown, false));
        if budget.count(&text) <= budget.tokens {
            return Ok(EditView { prompt: text, whole_files: Vec::new(), shown });
        }
    }
    let advice = "name a smaller region (a function or a few dozen lines), or use a model with a larger context";
    let mut largest: Option<(usize, &Region)> = None;
    for region in regions {
        let tokens = budget.count(&frame(&render(fence, files, std::slice::from_ref(region), false)));
        if tokens > budget.tokens {
            return Err(FixError::TooLarge {
                what: region.describe(),
                tokens,
                budget: budget.tokens,
                advice: advice.into(),
            });
        }
        if largest.is_none_or(|(t, _)| tokens > t) {
            largest = Some((tokens, region));
        }
    }
    let all = widen(regions, files, 0);
    Err(FixError::TooLarge {
        what: format!(
            "the {} regions the plan names together ({}; the largest {})",
            all.len(),
            all.iter().map(Region::describe).collect::<Vec<_>>().join("; "),
            largest.map(|(_, r)| r.describe()).unwrap_or_default()
        ),
        tokens: budget.count(&frame(&render(fence, files, &all, false))),
        budget: budget.tokens,
        advice: advice.into(),
    })
}

/// The shown regions, each fenced under its file, lines and label.
fn render(fence: &Fence, files: &BTreeMap<String, String>, shown: &[Region], whole: bool) -> String {
    let mut out = String::new();
    for region in shown {
        let Some(content) = files.get(&region.path) else { continue };
        if whole {
            out.push_str(&fence.wrap(&format!("file {}", region.path), content));
            continue;
        }
        let lines = line_count(content);
        let text: String = content
            .split_inclusive('\n')
            .skip(region.start_line.saturating_sub(1))
            .take(region.end_line + 1 - region.start_line.min(region.end_line + 1))
            .collect();
        let label = format!(
            "file {}, lines {}-{} of {lines} ({})",
            region.path, region.start_line, region.end_line, region.label
        );
        out.push_str(&fence.wrap(&label, &text));
    }
    out
}
