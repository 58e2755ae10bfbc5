//! Cutting text to a number of tokens at line boundaries: the end of a check's output (where
//! failures are), the start of an answer quoted back.

use crate::tokens::Estimator;

/// `text` if it counts at most `max` tokens; else its last lines that fit, after a line saying
/// how many lines were cut (a last line longer than the room is cut to its end).
pub fn tail_within(text: &str, max: usize, estimator: &Estimator) -> String {
    if estimator.count(text) <= max {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let note = |cut: usize| format!("[… {cut} earlier lines cut …]\n");
    let room = max.saturating_sub(estimator.count(&note(lines.len())));
    let mut used = 0usize;
    let mut first = lines.len();
    while first > 0 {
        let cost = estimator.count(lines[first - 1]) + 1;
        if used + cost > room {
            break;
        }
        used += cost;
        first -= 1;
    }
    if first == lines.len() {
        let last = lines.last().copied().unwrap_or_default();
        return format!("{}{}", note(lines.len().saturating_sub(1)), chars_within(last, room, estimator, true));
    }
    format!("{}{}", note(first), lines[first..].join("\n"))
}

/// `text` if it counts at most `max` tokens; else its first lines that fit, and a line saying
/// how many lines were cut.
pub fn head_within(text: &str, max: usize, estimator: &Estimator) -> String {
    if estimator.count(text) <= max {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let note = |cut: usize| format!("\n[… {cut} more lines cut …]");
    let room = max.saturating_sub(estimator.count(&note(lines.len())));
    let mut used = 0usize;
    let mut end = 0usize;
    while end < lines.len() {
        let cost = estimator.count(lines[end]) + 1;
        if used + cost > room {
            break;
        }
        used += cost;
        end += 1;
    }
    if end == 0 {
        let first = lines.first().copied().unwrap_or_default();
        return format!("{}{}", chars_within(first, room, estimator, false), note(lines.len().saturating_sub(1)));
    }
    format!("{}{}", lines[..end].join("\n"), note(lines.len() - end))
}

/// The longest end (or start) of one line that counts at most `max` tokens.
fn chars_within(line: &str, max: usize, estimator: &Estimator, from_end: bool) -> String {
    let chars: Vec<char> = line.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    let take = |n: usize| -> String {
        if from_end { chars[chars.len() - n..].iter().collect() } else { chars[..n].iter().collect() }
    };
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if estimator.count(&take(mid)) <= max { lo = mid } else { hi = mid - 1 }
    }
    take(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_output_keeps_its_end_within_the_budget() {
        let text: String = (1..=500).map(|i| format!("line {i} of the test output\n")).collect();
        let e = Estimator::default();
        let cut = tail_within(&text, 200, &e);
        assert!(e.count(&cut) <= 200, "{}", e.count(&cut));
        assert!(cut.starts_with("[… ") && cut.ends_with("line 500 of the test output"), "{cut}");
        assert_eq!(tail_within("short", 200, &e), "short");
    }

    #[test]
    fn a_long_answer_keeps_its_start_within_the_budget() {
        let text: String = (1..=500).map(|i| format!("block {i}\n")).collect();
        let e = Estimator::new(1.6);
        let cut = head_within(&text, 100, &e);
        assert!(e.count(&cut) <= 100 && cut.starts_with("block 1\n"), "{cut}");
        let one_line = "x".repeat(10_000);
        assert!(e.count(&head_within(&one_line, 50, &e)) <= 50);
        assert!(e.count(&tail_within(&one_line, 50, &e)) <= 50);
    }
}
