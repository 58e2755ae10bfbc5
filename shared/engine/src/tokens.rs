//! Token estimates for prompts, without a model's tokenizer.
//!
//! Code models on Ollama use BPE vocabularies (Qwen, Llama, DeepSeek) that all spend about one
//! token on 3–4 characters of an identifier, one on most punctuation and one on a run of spaces.
//! The estimate counts that way and leans high, so a prompt sized by it fits the context window:
//! overestimating costs a little context, underestimating silently truncates the prompt.
//!
//! A model's tokenizer can still be denser than the estimate; [`Estimator`] scales the estimate by
//! a ratio the agent learns from the counts Ollama reports, and [`Estimator::prompt_tokens`] is the
//! one measure of a chat prompt that both the review packer and the agent's size check use.
//!
//! The estimate is subadditive: `estimate(a + b) <= estimate(a) + estimate(b)` for any two texts
//! (a word split across the seam costs at least as much in halves, and a run of blanks across it
//! counts once whole). Packers rely on this: the sum of the estimates of the pieces of a prompt
//! bounds the estimate of the prompt they assemble.

/// Estimated tokens of `text`.
pub fn estimate(text: &str) -> usize {
    let mut counter = Counter::default();
    counter.push_str(text);
    counter.total()
}

/// [`estimate`] one character at a time, for cutting text at a token budget in one pass.
///
/// The state after a `'\n'` is the starting state, so the estimate of a text that ends with a
/// newline followed by another text is exactly the sum of their estimates.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counter {
    tokens: usize,
    word: usize,
    in_space: bool,
}

impl Counter {
    /// Counts one more character.
    pub(crate) fn push(&mut self, c: char) {
        if c.is_ascii_alphanumeric() || c == '_' {
            self.word += 1;
            self.in_space = false;
            return;
        }
        self.tokens += self.word.div_ceil(3);
        self.word = 0;
        if c == '\n' {
            self.tokens += 1;
            self.in_space = false;
        } else if c.is_whitespace() {
            if !self.in_space {
                self.tokens += 1;
            }
            self.in_space = true;
        } else {
            self.tokens += 1;
            self.in_space = false;
        }
    }

    /// Counts each character of `text`.
    pub(crate) fn push_str(&mut self, text: &str) {
        text.chars().for_each(|c| self.push(c));
    }

    /// The estimate of everything pushed so far.
    pub(crate) fn total(&self) -> usize {
        self.tokens + self.word.div_ceil(3)
    }
}

/// Tokens a chat template adds around each message (role markers and separators).
pub const MESSAGE_OVERHEAD: usize = 4;

/// The estimate scaled for one model: `count = ceil(estimate × ratio)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimator {
    /// Counted tokens per estimated token for the model (1.0 until something is learned); always
    /// within [`Estimator::MIN_RATIO`]..=[`Estimator::MAX_RATIO`].
    pub ratio: f64,
}

impl Default for Estimator {
    fn default() -> Self {
        Self { ratio: 1.0 }
    }
}

impl Estimator {
    /// The smallest ratio used: a sparser tokenizer than this is not trusted.
    pub const MIN_RATIO: f64 = 0.5;
    /// The largest ratio used: a denser one is more likely a measuring error.
    pub const MAX_RATIO: f64 = 4.0;

    /// An estimator with `ratio` clamped to [`Self::MIN_RATIO`]..=[`Self::MAX_RATIO`]; a ratio
    /// that is not a positive number (NaN, zero, negative) gives 1.0.
    pub fn new(ratio: f64) -> Self {
        if ratio.is_nan() || ratio <= 0.0 {
            return Self::default();
        }
        Self { ratio: ratio.clamp(Self::MIN_RATIO, Self::MAX_RATIO) }
    }

    /// Counted tokens of `text`: its estimate scaled by the ratio, rounded up.
    pub fn count(&self, text: &str) -> usize {
        self.scale(estimate(text))
    }

    /// An estimate (from [`estimate`]) scaled by the ratio, rounded up; monotone in `estimate`
    /// and subadditive like it.
    pub fn scale(&self, estimate: usize) -> usize {
        let ratio = Self::new(self.ratio).ratio;
        // `as` saturates on overflow, which is what a size bound wants.
        (estimate as f64 * ratio).ceil() as usize
    }

    /// The largest estimate whose scaled count is at most `tokens` (the inverse of [`Self::scale`]).
    pub fn fits(&self, tokens: usize) -> usize {
        let ratio = Self::new(self.ratio).ratio;
        let mut estimate = (tokens as f64 / ratio).floor() as usize;
        // Rounding of the division may land one off either way; settle on the exact answer.
        while estimate > 0 && self.scale(estimate) > tokens {
            estimate -= 1;
        }
        while self.scale(estimate + 1) <= tokens {
            estimate += 1;
        }
        estimate
    }

    /// The size of a chat prompt: each message counted plus [`MESSAGE_OVERHEAD`], and the `format`
    /// schema as serialized (Ollama puts the schema's grammar in front of the model as well).
    pub fn prompt_tokens(&self, messages: &[&str], format: Option<&serde_json::Value>) -> usize {
        let messages: usize = messages.iter().map(|m| self.count(m) + MESSAGE_OVERHEAD).sum();
        messages + format.map_or(0, |schema| self.count(&schema.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_lean_high_for_code() {
        // Real tokenizers give about 20 tokens for this line.
        let line = "    let total = items.iter().map(|i| i.price).sum::<u64>();\n";
        let n = estimate(line);
        assert!((20..=40).contains(&n), "estimate {n}");
        assert_eq!(estimate(""), 0);
        assert!(estimate(&"x".repeat(3000)) >= 750);
    }

    #[test]
    fn ratios_are_clamped_and_nonsense_ratios_mean_one() {
        assert_eq!(Estimator::new(f64::NAN).ratio, 1.0);
        assert_eq!(Estimator::new(0.0).ratio, 1.0);
        assert_eq!(Estimator::new(-2.0).ratio, 1.0);
        assert_eq!(Estimator::new(0.1).ratio, 0.5);
        assert_eq!(Estimator::new(f64::INFINITY).ratio, 4.0);
        assert_eq!(Estimator::new(1.6).ratio, 1.6);
        assert_eq!(Estimator::default().ratio, 1.0);
    }

    #[test]
    fn a_count_is_the_estimate_scaled_and_rounded_up() {
        let text = "fn main() { println!(\"hi\"); }";
        let e = estimate(text);
        assert_eq!(Estimator::default().count(text), e);
        assert_eq!(Estimator::new(1.6).count(text), (e as f64 * 1.6).ceil() as usize);
    }

    #[test]
    fn fits_is_the_largest_estimate_within_a_count() {
        for ratio in [0.5, 0.7, 1.0, 1.3, 1.6, 3.3, 4.0] {
            let estimator = Estimator::new(ratio);
            for tokens in [0, 1, 2, 7, 100, 4095, 131_072] {
                let e = estimator.fits(tokens);
                assert!(estimator.scale(e) <= tokens, "ratio {ratio} tokens {tokens}");
                assert!(estimator.scale(e + 1) > tokens, "ratio {ratio} tokens {tokens}");
            }
        }
    }

    #[test]
    fn a_chat_prompt_counts_each_message_its_overhead_and_the_schema() {
        let schema = serde_json::json!({"type": "object"});
        let estimator = Estimator::new(2.0);
        let n = estimator.prompt_tokens(&["system text", "user text"], Some(&schema));
        assert_eq!(
            n,
            estimator.count("system text") + estimator.count("user text") + 8 + estimator.count(&schema.to_string())
        );
        assert_eq!(estimator.prompt_tokens(&[], None), 0);
    }

    #[test]
    fn the_estimate_of_joined_texts_never_exceeds_the_sum_of_their_estimates() {
        let samples = ["", " ", "ab", "c  ", "  d", "\n", "x_1", "+", "   12 + let", "é  ", "abc"];
        for a in samples {
            for b in samples {
                assert!(estimate(&format!("{a}{b}")) <= estimate(a) + estimate(b), "{a:?} + {b:?}");
            }
        }
    }
}
