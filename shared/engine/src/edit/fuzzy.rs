//! Finding the windows of a file most similar to a SEARCH block.
//!
//! A cheap score first ranks every window of every allowed size: the Dice coefficient of the
//! character bigrams of the trimmed lines (plus one bigram across each line break, so the order
//! of lines counts), slid over the file in one pass per size. The best windows of a few
//! non-overlapping regions are then scored precisely, so a near miss and its best competitor can
//! be compared: the trimmed lines are diffed as lines, and the lines of each changed hunk are
//! paired in order and compared by character ratio, so the cost grows with the lines, not with
//! the square of the whole text.

use std::collections::HashMap;

use similar::{Algorithm, DiffOp, TextDiff, capture_diff_slices};

/// How many distinct regions of the file are scored precisely.
const REGIONS: usize = 4;
/// At most this many windows around each region (the best by the cheap score) are scored precisely.
const REFINED_PER_REGION: usize = 6;
/// Longer pairs of lines are compared by their bigrams rather than by a character diff.
const MAX_LINE_PAIR_CHARS: usize = 2_000;

/// A run of file lines and its similarity to the SEARCH lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// The first line, from 0.
    pub(super) start: usize,
    /// How many lines.
    pub(super) len: usize,
    /// Similarity, 0 to 1000.
    pub(super) score: u16,
}

impl Window {
    /// Whether the two windows share a line.
    pub(super) fn overlaps(&self, other: &Window) -> bool {
        overlaps((self.start, self.len), (other.start, other.len))
    }
}

/// The best window of each of a few distinct regions of `file`, most similar first.
pub(super) fn ranked_windows(file: &[&str], search: &[String]) -> Vec<Window> {
    let (n, total) = (search.len(), file.len());
    if n == 0 || total == 0 {
        return Vec::new();
    }
    let spread = n / 10;
    let lo = n.saturating_sub(spread).clamp(1, total);
    let hi = n.saturating_add(spread).clamp(lo, total);
    let table = DiceTable::new(file, search, lo, hi);
    let search_trimmed: Vec<&str> = search.iter().map(|l| l.trim()).collect();
    let mut seeds: Vec<(usize, usize)> = Vec::new();
    let mut regions: Vec<Window> = Vec::new();
    for _ in 0..REGIONS {
        let free = |start: usize, len: usize| !seeds.iter().any(|seed| overlaps(*seed, (start, len)));
        let Some((start, len)) = table.best(0, usize::MAX, free) else { break };
        let lowest = start.saturating_sub(spread + 1);
        let highest = start.saturating_add(spread + 1);
        let mut candidates: Vec<(u32, usize, usize)> = (lo..=hi)
            .flat_map(|len| (lowest..=highest.min(total - len)).map(move |start| (start, len)))
            .filter(|&(start, len)| free(start, len))
            .map(|(start, len)| (table.score(start, len), start, len))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.abs_diff(n).cmp(&b.2.abs_diff(n))).then(a.1.cmp(&b.1)));
        let best = candidates
            .iter()
            .take(REFINED_PER_REGION)
            .map(|&(_, start, len)| Window {
                start,
                len,
                score: precise_score(&file[start..start + len], &search_trimmed),
            })
            .fold(None, |best: Option<Window>, w| match best {
                Some(b) if b.score >= w.score => Some(b),
                _ => Some(w),
            });
        seeds.push((start, len));
        regions.extend(best);
    }
    regions.sort_by_key(|w| std::cmp::Reverse(w.score));
    regions
}

/// Whether `(start, len)` runs `a` and `b` share a line.
fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// How alike the window is to the (trimmed) SEARCH lines, 0 to 1000: each line weighs its
/// characters plus one; equal lines match fully, lines paired in a changed hunk match by their
/// character ratio, added or dropped lines not at all.
fn precise_score(window: &[&str], search: &[&str]) -> u16 {
    let window: Vec<&str> = window.iter().map(|l| l.trim()).collect();
    let weight = |line: &str| line.chars().count().saturating_add(1) as f64;
    let total: f64 = window.iter().chain(search).map(|l| weight(l)).sum();
    let mut matched = 0.0;
    for op in capture_diff_slices(Algorithm::Myers, &window, search) {
        match op {
            DiffOp::Equal { old_index, len, .. } => {
                matched += 2.0 * window[old_index..old_index + len].iter().map(|l| weight(l)).sum::<f64>();
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                for k in 0..old_len.min(new_len) {
                    let (a, b) = (window[old_index + k], search[new_index + k]);
                    matched += line_ratio(a, b) * (weight(a) + weight(b));
                }
            }
            DiffOp::Delete { .. } | DiffOp::Insert { .. } => {}
        }
    }
    if total <= 0.0 {
        return 0;
    }
    (matched / total * 1000.0).round().clamp(0.0, 1000.0) as u16
}

/// The character ratio of two lines, 0 to 1 (their bigram Dice coefficient when they are long).
fn line_ratio(a: &str, b: &str) -> f64 {
    if a.len().saturating_add(b.len()) <= MAX_LINE_PAIR_CHARS {
        return f64::from(TextDiff::from_chars(a, b).ratio());
    }
    let mut counts: HashMap<u64, i64> = HashMap::new();
    let (grams_a, grams_b) = (bigrams(a), bigrams(b));
    grams_a.iter().for_each(|g| *counts.entry(*g).or_default() += 1);
    let common = grams_b
        .iter()
        .filter(|g| {
            let left = counts.entry(**g).or_default();
            *left -= 1;
            *left >= 0
        })
        .count();
    (2 * common) as f64 / (grams_a.len() + grams_b.len()) as f64
}

/// Dice scores (in millionths) of every window of every size from `lo` to `hi` lines.
struct DiceTable {
    /// The smallest window size.
    lo: usize,
    /// The SEARCH's line count, preferred on ties.
    n: usize,
    /// `scores[len - lo][start]`.
    scores: Vec<Vec<u32>>,
}

impl DiceTable {
    /// Scores every window of `file` against `search`.
    fn new(file: &[&str], search: &[String], lo: usize, hi: usize) -> Self {
        // Bigrams get dense ids in the order the SEARCH has them; the file's other bigrams only count.
        let mut ids: HashMap<u64, usize> = HashMap::new();
        let mut wanted: Vec<u32> = Vec::new();
        let search_joins = search.windows(2).map(|pair| join(&pair[0], &pair[1]));
        for gram in search.iter().flat_map(|l| bigrams(l)).chain(search_joins) {
            let id = *ids.entry(gram).or_insert_with(|| {
                wanted.push(0);
                wanted.len() - 1
            });
            wanted[id] += 1;
        }
        let known = |grams: Vec<u64>| Grams {
            total: grams.len(),
            ids: grams.iter().filter_map(|g| ids.get(g).copied()).collect(),
        };
        let lines: Vec<Grams> = file.iter().map(|l| known(bigrams(l))).collect();
        let joins: Vec<Grams> = file.windows(2).map(|pair| known(vec![join(pair[0], pair[1])])).collect();
        let wanted_total: usize = wanted.iter().map(|c| *c as usize).sum();
        let mut scores = Vec::new();
        for len in lo..=hi.min(file.len()) {
            let mut bag = Bag { wanted: &wanted, have: vec![0; wanted.len()], common: 0, total: 0 };
            lines[..len].iter().chain(&joins[..len - 1]).for_each(|g| bag.add(g));
            let mut row = vec![bag.dice(wanted_total)];
            for start in 1..=file.len() - len {
                // A window of `len` lines holds the `len - 1` breaks between them.
                let (left, entered) =
                    if len > 1 { (joins.get(start - 1), joins.get(start + len - 2)) } else { (None, None) };
                std::iter::once(&lines[start - 1]).chain(left).for_each(|g| bag.remove(g));
                std::iter::once(&lines[start + len - 1]).chain(entered).for_each(|g| bag.add(g));
                row.push(bag.dice(wanted_total));
            }
            scores.push(row);
        }
        DiceTable { lo, n: search.len(), scores }
    }

    /// The score of the window, 0 if there is no such window.
    fn score(&self, start: usize, len: usize) -> u32 {
        len.checked_sub(self.lo)
            .and_then(|row| self.scores.get(row))
            .and_then(|row| row.get(start))
            .copied()
            .unwrap_or(0)
    }

    /// The best window starting in `lowest..=highest` that `allowed` accepts.
    fn best(&self, lowest: usize, highest: usize, allowed: impl Fn(usize, usize) -> bool) -> Option<(usize, usize)> {
        (0..self.scores.len())
            .filter_map(|row| self.best_of_len(self.lo + row, lowest, highest, &allowed))
            .max_by(|a, b| self.rank(*a).cmp(&self.rank(*b)))
    }

    /// The best window of `len` lines starting in `lowest..=highest` that `allowed` accepts.
    fn best_of_len(
        &self,
        len: usize,
        lowest: usize,
        highest: usize,
        allowed: impl Fn(usize, usize) -> bool,
    ) -> Option<(usize, usize)> {
        let row = self.scores.get(len.checked_sub(self.lo)?)?;
        let highest = highest.min(row.len().checked_sub(1)?);
        (lowest..=highest)
            .filter(|&start| allowed(start, len))
            .map(|start| (start, len))
            .max_by(|a, b| self.rank(*a).cmp(&self.rank(*b)))
    }

    /// Orders windows: higher score, then size closer to the SEARCH's, then earlier.
    fn rank(&self, (start, len): (usize, usize)) -> (u32, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        (self.score(start, len), std::cmp::Reverse(len.abs_diff(self.n)), std::cmp::Reverse(start))
    }
}

/// The bigrams of a line (or line break): how many, and the ids of those the SEARCH has.
struct Grams {
    /// How many bigrams.
    total: usize,
    /// The ids of the ones the SEARCH has too.
    ids: Vec<usize>,
}

/// A sliding multiset of bigrams and its overlap with the SEARCH's.
struct Bag<'a> {
    /// The SEARCH's count of each bigram id.
    wanted: &'a [u32],
    /// The window's count of each bigram id.
    have: Vec<u32>,
    /// The size of the multiset intersection.
    common: usize,
    /// The window's bigram count.
    total: usize,
}

impl Bag<'_> {
    /// Adds a line's bigrams to the window.
    fn add(&mut self, grams: &Grams) {
        for &id in &grams.ids {
            if let (Some(have), Some(wanted)) = (self.have.get_mut(id), self.wanted.get(id)) {
                if *have < *wanted {
                    self.common += 1;
                }
                *have += 1;
            }
        }
        self.total += grams.total;
    }

    /// Removes a line's bigrams (added before) from the window.
    fn remove(&mut self, grams: &Grams) {
        for &id in &grams.ids {
            if let (Some(have), Some(wanted)) = (self.have.get_mut(id), self.wanted.get(id)) {
                *have = have.saturating_sub(1);
                if *have < *wanted {
                    self.common = self.common.saturating_sub(1);
                }
            }
        }
        self.total = self.total.saturating_sub(grams.total);
    }

    /// The Dice coefficient in millionths.
    fn dice(&self, wanted_total: usize) -> u32 {
        let sum = self.total.saturating_add(wanted_total) as u64;
        if sum == 0 {
            return 0;
        }
        u32::try_from((self.common as u64).saturating_mul(2_000_000) / sum).unwrap_or(u32::MAX)
    }
}

/// The bigram across a line break: the last character of one trimmed line and the first of the
/// next, tagged so it never equals a bigram inside a line.
fn join(line: &str, next: &str) -> u64 {
    const EMPTY: u64 = 0x11_0002;
    let last = line.trim().chars().next_back().map_or(EMPTY, u64::from);
    let first = next.trim().chars().next().map_or(EMPTY, u64::from);
    (1 << 42) | (last << 21) | first
}

/// The character bigrams of the trimmed line, with start and end sentinels so short lines count.
fn bigrams(line: &str) -> Vec<u64> {
    const START: u64 = 0x11_0000;
    const END: u64 = 0x11_0001;
    let chars: Vec<u64> =
        std::iter::once(START).chain(line.trim().chars().map(u64::from)).chain(std::iter::once(END)).collect();
    chars.windows(2).map(|pair| (pair[0] << 21) | pair[1]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_search_with_a_typo_ranks_its_window_first() {
        let file = ["fn a() {", "    let x = 1;", "}", "fn b() {", "    let total = compute(x);", "}"];
        let search = lines("fn b() {\n    let totl = compute(x);\n}");
        let ranked = ranked_windows(&file, &search);
        assert_eq!((ranked[0].start, ranked[0].len), (3, 3));
        assert!(ranked[0].score > 950, "score {}", ranked[0].score);
        assert!(ranked.iter().skip(1).all(|w| w.score < ranked[0].score));
    }

    #[test]
    fn a_search_longer_than_the_file_is_compared_with_the_whole_file() {
        let ranked = ranked_windows(&["a"], &lines("a\nb\nc"));
        assert_eq!((ranked[0].start, ranked[0].len), (0, 1));
    }
}
