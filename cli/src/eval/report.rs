//! The report of a run: per model and prompt variant, what was caught (or fixed) with its Wilson
//! interval, findings per review and the noise proxy, cost and failures. [`super::render`] prints it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cache::{FixEntry, FixOutcome, ReviewEntry};
use super::mine::{Introducing, Mined};
use super::score::{Totals, hits};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    /// A table for people.
    Terminal,
    /// Everything as JSON.
    Json,
    /// A Markdown report.
    Markdown,
}

/// What mining found, in the report.
#[derive(Debug, Clone, Serialize)]
pub struct MinedSummary {
    /// Commits whose message matches a fix pattern.
    pub fix_candidates: usize,
    /// Fix commits that changed existing lines of source files.
    pub fix_commits: usize,
    /// Fix candidates that changed no existing line of a source file.
    pub fixes_without_lines: usize,
    /// Bug-introducing commits kept.
    pub introducing_commits: usize,
    /// Changed lines left out as whitespace, comments or refactoring.
    pub lines_left_out: super::lines::LeftOut,
    /// Blamed commits older than the window.
    pub older_than_window: usize,
    /// Introducing commits dropped by `--max`.
    pub over_max: usize,
}

impl From<&Mined> for MinedSummary {
    fn from(m: &Mined) -> Self {
        Self {
            fix_candidates: m.candidates,
            fix_commits: m.fixes.len(),
            fixes_without_lines: m.fixes_without_lines,
            introducing_commits: m.introducing.len(),
            lines_left_out: m.left_out,
            older_than_window: m.older_than_window,
            over_max: m.over_max,
        }
    }
}

/// One introducing commit in the report: the answer key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCommit {
    /// Its sha.
    pub sha: String,
    /// Its subject.
    pub subject: String,
    /// The fixes that changed its lines.
    pub fixed_by: Vec<String>,
    /// The lines those fixes changed, per file.
    pub lines: BTreeMap<String, Vec<u32>>,
}

/// The report of `prfix eval review`.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewReport {
    /// The run's id (on its tasks and in the audit log).
    pub run_id: String,
    /// The window's start, if any.
    pub since: Option<String>,
    /// Lines between a finding and a fixed line that still count as a hit.
    pub distance: u32,
    /// What mining found.
    pub mined: MinedSummary,
    /// The answer key.
    pub introducing: Vec<KeyCommit>,
    /// One row per model and variant.
    pub results: Vec<Totals>,
    /// Whether every case has an outcome (no limit stopped the run).
    pub complete: bool,
}

/// Sums the entries of each model and variant (in the order given).
pub fn review_totals(
    entries: &[ReviewEntry],
    introducing: &[Introducing],
    pairs: &[(String, String)],
    pending: &[(String, String, String)],
    distance: u32,
) -> Vec<Totals> {
    let key: BTreeMap<&str, &Introducing> = introducing.iter().map(|c| (c.sha.as_str(), c)).collect();
    pairs
        .iter()
        .map(|(model, variant)| {
            let mut totals = Totals { model: model.clone(), variant: variant.clone(), ..Default::default() };
            for entry in entries.iter().filter(|e| &e.model == model && &e.variant == variant) {
                let Some(commit) = key.get(entry.commit.as_str()) else { continue };
                totals.cases += 1;
                totals.model_calls += entry.cost.model_calls;
                totals.prompt_tokens += entry.cost.prompt_tokens;
                totals.output_tokens += entry.cost.output_tokens;
                totals.wall_secs += entry.cost.wall_ms as f64 / 1000.0;
                if entry.error.is_some() {
                    totals.failed += 1;
                    continue;
                }
                let on_bug = entry.findings.iter().filter(|f| hits(f, &commit.lines, distance)).count();
                totals.findings += entry.findings.len();
                totals.noisy += entry.findings.len() - on_bug;
                totals.successes += usize::from(on_bug > 0);
            }
            totals.pending = pending.iter().filter(|(_, m, v)| m == model && v == variant).count();
            totals.finish()
        })
        .collect()
}

/// The answer key for the report.
pub fn key(introducing: &[Introducing]) -> Vec<KeyCommit> {
    introducing
        .iter()
        .map(|c| KeyCommit {
            sha: c.sha.clone(),
            subject: c.subject.clone(),
            fixed_by: c.fixed_by.clone(),
            lines: c.lines.iter().map(|(p, l)| (p.clone(), l.iter().copied().collect())).collect(),
        })
        .collect()
}

/// The report of `prfix eval fix`.
#[derive(Debug, Clone, Serialize)]
pub struct FixReport {
    /// The run's id.
    pub run_id: String,
    /// The window's start, if any.
    pub since: Option<String>,
    /// Fix commits that add or change a test and change source files.
    pub fix_commits_with_tests: usize,
    /// One row per model.
    pub results: Vec<FixTotals>,
    /// Whether every case has an outcome.
    pub complete: bool,
}

/// The row of one model in `prfix eval fix`.
#[derive(Debug, Clone, Serialize)]
pub struct FixTotals {
    /// Fixed (`successes`), failed, cost...
    #[serde(flatten)]
    pub totals: Totals,
    /// Fixes after which the test still failed.
    pub still_failing: usize,
    /// Fixes that edited the test (never a success).
    pub edited_test: usize,
    /// Commits left out because their test passed before any fix.
    pub passed_before: usize,
}

/// Sums the fix entries of each model.
pub fn fix_totals(entries: &[FixEntry], models: &[String], pending: &[(String, String)]) -> Vec<FixTotals> {
    models
        .iter()
        .map(|model| {
            let mut totals = Totals { model: model.clone(), variant: "default".to_owned(), ..Default::default() };
            let (mut still_failing, mut edited_test, mut passed_before) = (0, 0, 0);
            for entry in entries.iter().filter(|e| &e.model == model) {
                if entry.outcome == FixOutcome::PassedBefore {
                    passed_before += 1;
                    continue;
                }
                totals.cases += 1;
                totals.model_calls += entry.cost.model_calls;
                totals.prompt_tokens += entry.cost.prompt_tokens;
                totals.output_tokens += entry.cost.output_tokens;
                totals.wall_secs += entry.cost.wall_ms as f64 / 1000.0;
                match entry.outcome {
                    FixOutcome::Fixed => totals.successes += 1,
                    FixOutcome::StillFailing => still_failing += 1,
                    FixOutcome::EditedTest => edited_test += 1,
                    FixOutcome::Failed => totals.failed += 1,
                    FixOutcome::PassedBefore => {}
                }
            }
            totals.pending = pending.iter().filter(|(_, m)| m == model).count();
            FixTotals { totals: totals.finish(), still_failing, edited_test, passed_before }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::cache::Cost;
    use crate::eval::score::Spot;

    fn commit(sha: &str, line: u32) -> Introducing {
        Introducing {
            sha: sha.to_owned(),
            parent: None,
            subject: format!("add {sha}"),
            time: 0,
            lines: [("a.py".to_owned(), [line].into_iter().collect())].into(),
            fixed_by: vec!["f".to_owned()],
        }
    }

    fn entry(sha: &str, lines: &[u32], error: bool) -> ReviewEntry {
        ReviewEntry {
            commit: sha.to_owned(),
            model: "m".to_owned(),
            variant: "default".to_owned(),
            run_id: "r".to_owned(),
            task_id: "t".to_owned(),
            error: error.then(|| "failed".to_owned()),
            findings: lines
                .iter()
                .map(|&l| Spot {
                    path: "a.py".to_owned(),
                    line: l,
                    end_line: l,
                    severity: "major".to_owned(),
                    title: "t".to_owned(),
                })
                .collect(),
            cost: Cost { model_calls: 1, prompt_tokens: 100, output_tokens: 10, wall_ms: 500 },
        }
    }

    #[test]
    fn totals_count_hits_noise_failures_and_cost_per_model_and_variant() {
        let key = vec![commit("a", 3), commit("b", 3), commit("c", 3), commit("d", 3)];
        let entries =
            vec![entry("a", &[3, 20], false), entry("b", &[20], false), entry("c", &[], false), entry("d", &[], true)];
        let pairs = vec![("m".to_owned(), "default".to_owned())];
        let totals = review_totals(&entries, &key, &pairs, &[], 3);
        let t = &totals[0];
        assert_eq!((t.cases, t.successes, t.failed, t.findings, t.noisy), (4, 1, 1, 3, 2));
        assert_eq!((t.model_calls, t.prompt_tokens, t.output_tokens), (4, 400, 40));
        assert_eq!(t.findings_per_review, Some(1.0));
        assert_eq!(t.rate, Some(0.25));
        let rendered = super::super::render::review_table(&totals, false);
        assert!(rendered.contains("1/4") && rendered.contains("0.667 (2/3)"), "{rendered}");
        let markdown = super::super::render::review_table(&totals, true);
        assert!(markdown.starts_with("| model | variant |") && markdown.contains("\n| --- |"), "{markdown}");
    }
}
