//! What a retry after an unusable answer tells the model: what was wrong and a short excerpt of
//! the answer, never the answer itself (a 1 MB garbage answer once made a retry prompt of over a
//! million tokens). The note is a user message after the original ones, so the prompt's prefix
//! (and Ollama's cache of it) stays the same, and it is bounded, so a part sized for its first
//! call still fits with the note.

use prfix_engine::prompt::Fence;
use prfix_engine::tokens::{Estimator, MESSAGE_OVERHEAD, estimate};

/// Estimated tokens (ratio 1.0) a retry note may take.
pub const NOTE_ESTIMATE: usize = 320;

/// Characters of the bad answer quoted at most.
pub const EXCERPT_CHARS: usize = 400;

/// Characters of the problem's description kept at most.
const PROBLEM_CHARS: usize = 300;

/// Tokens of a model's context to keep free for a retry note, as `estimator` counts them.
pub fn note_reserve(estimator: &Estimator) -> usize {
    estimator.scale(NOTE_ESTIMATE) + MESSAGE_OVERHEAD
}

/// The note for a retry: `problem` (what was wrong), the start of `answer` (when there is one:
/// a call stopped early has none) fenced as data, and `ask` (what to answer instead, a short
/// constant); at most [`NOTE_ESTIMATE`] estimated tokens, the excerpt shortened or left out (and
/// then the problem's description shortened) to fit.
pub fn retry_note(fence: &Fence, problem: &str, answer: Option<&str>, ask: &str) -> String {
    let mut problem = cut(problem, PROBLEM_CHARS);
    let mut excerpt_chars = EXCERPT_CHARS;
    loop {
        let note = compose(fence, &problem, answer, excerpt_chars, ask);
        if estimate(&note) <= NOTE_ESTIMATE || (excerpt_chars == 0 && problem.is_empty()) {
            return note;
        }
        if excerpt_chars > 0 {
            excerpt_chars /= 2;
        } else {
            problem = cut(&problem, problem.chars().count() / 2);
        }
    }
}

fn compose(fence: &Fence, problem: &str, answer: Option<&str>, excerpt_chars: usize, ask: &str) -> String {
    let mut note = format!("Your previous answer to this request could not be used: {problem}.");
    let Some(answer) = answer else {
        note.push('\n');
        note.push_str(ask);
        return note;
    };
    if answer.trim().is_empty() {
        note.push_str(" It held only whitespace.");
    } else if excerpt_chars > 0 {
        let excerpt = cut(answer.trim_start(), excerpt_chars);
        let total = answer.chars().count();
        note.push_str(&format!(" Its first {} of {total} characters were:\n", excerpt.chars().count()));
        note.push_str(&fence.wrap("the start of your previous answer", &excerpt));
    } else {
        note.push_str(&format!(" It was {} characters long.", answer.chars().count()));
    }
    note.push('\n');
    note.push_str(ask);
    note
}

/// The first `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_bad_answer_is_quoted_by_a_short_excerpt_within_the_note_budget() {
        let fence = Fence::new();
        let garbage = "{\"findings\": [".to_owned() + &"!?".repeat(500_000);
        let note = retry_note(&fence, "it is not JSON", Some(&garbage), "Answer again with JSON.");
        assert!(estimate(&note) <= NOTE_ESTIMATE, "{note}");
        assert!(note.len() < 1_500, "{}", note.len());
        assert!(note.contains("it is not JSON") && note.ends_with("Answer again with JSON."));
        assert!(note.contains("of 1000014 characters") && note.contains("{\"findings\": [!?"), "{note}");
        for ratio in [1.0, 1.6, 4.0] {
            let estimator = Estimator::new(ratio);
            assert!(estimator.count(&note) + MESSAGE_OVERHEAD <= note_reserve(&estimator), "ratio {ratio}");
        }
        let long_problem = "x y ".repeat(1_000);
        let note = retry_note(&fence, &long_problem, Some(&garbage), "Again.");
        assert!(estimate(&note) <= NOTE_ESTIMATE, "{note}");
    }

    #[test]
    fn a_whitespace_answer_is_described_not_quoted() {
        let note = retry_note(&Fence::new(), "it was cut off", Some(&" \n".repeat(5_000)), "Again.");
        assert!(note.contains("only whitespace") && !note.contains("<<<DATA"), "{note}");
    }

    #[test]
    fn a_short_answer_is_quoted_whole_inside_a_fence() {
        let fence = Fence::new();
        let note = retry_note(&fence, "no findings list", Some("Sure! Here you go."), "Again.");
        assert!(note.contains(&format!("<<<DATA {}", fence.nonce())) && note.contains("Sure! Here you go."));
    }
}
