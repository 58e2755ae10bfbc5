//! Scoring: whether a review's finding lands on a line a later fix changed, the Wilson interval of a
//! proportion, and the totals of one model and prompt variant.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A finding as the cache keeps it: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spot {
    /// The file.
    pub path: String,
    /// First line (new side of the reviewed commit).
    pub line: u32,
    /// Last line (same as `line` for one line).
    pub end_line: u32,
    /// `critical`, `major`, `minor` or `info`.
    pub severity: String,
    /// The finding's title.
    pub title: String,
}

/// Whether `spot` covers, or comes within `distance` lines of, one of `bug_lines`.
pub fn hits(spot: &Spot, bug_lines: &BTreeMap<String, BTreeSet<u32>>, distance: u32) -> bool {
    let Some(lines) = bug_lines.get(&spot.path) else { return false };
    let start = spot.line.saturating_sub(distance);
    let end = spot.end_line.max(spot.line).saturating_add(distance);
    lines.range(start..=end).next().is_some()
}

/// The 95% Wilson score interval of `successes` out of `trials`; `None` for no trials.
///
/// Wilson rather than the normal approximation: it stays within [0, 1] and is honest for the small
/// counts and the proportions near 0 or 1 that evaluations on one team's history give.
pub fn wilson(successes: usize, trials: usize) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z * Z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// The totals of one model and prompt variant over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// The model (empty: the agent's default).
    pub model: String,
    /// The prompt variant.
    pub variant: String,
    /// Introducing commits (or fix commits, for `eval fix`) with an outcome: reviewed or failed.
    pub cases: usize,
    /// Of those, the ones caught (a finding on a fixed line) or fixed.
    pub successes: usize,
    /// `successes / cases` (failures count as misses).
    pub rate: Option<f64>,
    /// The 95% Wilson interval of `rate`.
    pub interval: Option<(f64, f64)>,
    /// Reviews (or fixes) that failed: the task failed or was refused.
    pub failed: usize,
    /// `failed / cases`.
    pub failure_rate: Option<f64>,
    /// Findings of the successful reviews.
    pub findings: usize,
    /// Findings per successful review.
    pub findings_per_review: Option<f64>,
    /// Findings on lines no later fix changed (nor within the distance of one).
    pub noisy: usize,
    /// `noisy / findings`: a proxy of noise (a finding may be right about a bug never fixed).
    pub noise_share: Option<f64>,
    /// Model calls the tasks made.
    pub model_calls: u64,
    /// Prompt tokens of those calls.
    pub prompt_tokens: u64,
    /// Output tokens of those calls.
    pub output_tokens: u64,
    /// Wall time of the reviews or fixes, in seconds.
    pub wall_secs: f64,
    /// Cases of the run not done yet (a limit stopped it).
    pub pending: usize,
}

impl Totals {
    /// Computes the ratios from the counts.
    pub fn finish(mut self) -> Self {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        self.rate = ratio(self.successes, self.cases);
        self.interval = wilson(self.successes, self.cases);
        self.failure_rate = ratio(self.failed, self.cases);
        self.findings_per_review = ratio(self.findings, self.cases - self.failed);
        self.noise_share = ratio(self.noisy, self.findings);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_published_formula() {
        let (low, high) = wilson(18, 30).expect("an interval");
        assert!((low - 0.4232).abs() < 1e-4 && (high - 0.7541).abs() < 1e-4, "{low} {high}");
        let (low, high) = wilson(0, 10).expect("an interval");
        assert!(low.abs() < 1e-12 && (high - 0.2775).abs() < 1e-4, "{low} {high}");
        let (low, high) = wilson(10, 10).expect("an interval");
        assert!((low - 0.7225).abs() < 1e-4 && (high - 1.0).abs() < 1e-12, "{low} {high}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn a_finding_hits_within_the_distance_of_a_fixed_line_in_the_same_file() {
        let bugs: BTreeMap<String, BTreeSet<u32>> = [("a.py".to_owned(), [10].into_iter().collect())].into();
        let spot = |path: &str, line, end_line| Spot {
            path: path.to_owned(),
            line,
            end_line,
            severity: "major".to_owned(),
            title: String::new(),
        };
        assert!(hits(&spot("a.py", 10, 10), &bugs, 0));
        assert!(hits(&spot("a.py", 13, 13), &bugs, 3) && !hits(&spot("a.py", 14, 14), &bugs, 3));
        assert!(hits(&spot("a.py", 2, 7), &bugs, 3) && !hits(&spot("a.py", 2, 6), &bugs, 3));
        assert!(!hits(&spot("b.py", 10, 10), &bugs, 3));
    }

    #[test]
    fn totals_count_failures_as_misses_and_noise_over_findings() {
        let totals =
            Totals { cases: 10, successes: 4, failed: 2, findings: 8, noisy: 2, ..Default::default() }.finish();
        assert_eq!(totals.rate, Some(0.4));
        assert_eq!(totals.failure_rate, Some(0.2));
        assert_eq!(totals.findings_per_review, Some(1.0));
        assert_eq!(totals.noise_share, Some(0.25));
    }
}
