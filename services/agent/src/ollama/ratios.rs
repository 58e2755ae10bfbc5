//! Learned token ratios: how many prompt tokens a model's tokenizer counts per token of the agent's
//! estimate, from the `prompt_eval_count` Ollama reports with every answer.
//!
//! One ratio per model (canonical name), shared by every task of the process and kept in memory
//! only: a restart starts again from 1.0 and relearns on its first answers.
//!
//! Which ratio: the largest of the model's last [`WINDOW`] samples. Ollama counts only the prompt
//! tokens it evaluated, so an answer whose prompt prefix (the shared system prompt) was still in
//! the model's cache reports fewer tokens than the prompt has, and a prompt Ollama had to truncate
//! to `num_ctx` reports at most `num_ctx`: both make a sample low, never high. So:
//! - a sample from a call whose system prompt is the one of the model's previous call (the parts
//!   of one review share theirs; each review's differs, as its fence nonce is in it) may be low
//!   from the cache: it is taken only when it raises the ratio;
//! - the maximum of the recent samples ignores the low ones while one full count is among them and
//!   follows a denser tokenizer at once, while a sparser one is still learned once the window
//!   agrees, so a model's context is used fully;
//! - a sample outside the plausible range ([`Estimator::MIN_RATIO`]..=[`Estimator::MAX_RATIO`]) is
//!   a measuring error (a mostly cached prompt, a proxy's made-up count), and prompts too small to
//!   measure (under [`MIN_ESTIMATE`] tokens) are no samples.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use prfix_engine::tokens::Estimator;

use super::canonical_model;

/// Samples a ratio is taken over.
pub const WINDOW: usize = 8;

/// Smallest estimated prompt, in tokens, whose count makes a sample.
pub const MIN_ESTIMATE: usize = 64;

/// What is known of one model's tokenizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedRatio {
    /// Counted tokens per estimated token (the largest recent sample); 0 when nothing is learned.
    pub ratio: f64,
    /// Answers learned from since the process started.
    pub samples: u64,
}

#[derive(Default)]
struct ModelSamples {
    recent: VecDeque<f64>,
    total: u64,
    /// Fingerprint of the system prompt of the model's last call.
    last_prefix: Option<u64>,
}

/// The ratios of every model seen, cheap to clone (one shared table).
#[derive(Clone, Default)]
pub struct TokenRatios {
    models: Arc<Mutex<HashMap<String, ModelSamples>>>,
}

impl TokenRatios {
    /// Records one answer: Ollama counted `counted` prompt tokens where the agent estimated
    /// `estimated` (both for the same prompt, the estimate at ratio 1.0); `system` is the prompt's
    /// first message, which Ollama may have had cached.
    pub fn learn(&self, model: &str, system: &str, estimated: usize, counted: u32) {
        let mut models = self.lock();
        let entry = models.entry(canonical_model(model)).or_default();
        let prefix = fingerprint(system);
        let maybe_cached = entry.last_prefix.replace(prefix) == Some(prefix);
        if estimated < MIN_ESTIMATE || counted == 0 {
            return;
        }
        let sample = f64::from(counted) / estimated as f64;
        if !(Estimator::MIN_RATIO..=Estimator::MAX_RATIO).contains(&sample) {
            return;
        }
        let current = entry.recent.iter().copied().fold(0.0, f64::max);
        if maybe_cached && sample <= current {
            return;
        }
        if entry.recent.len() == WINDOW {
            entry.recent.pop_front();
        }
        entry.recent.push_back(sample);
        entry.total += 1;
    }

    /// The learned ratio of `model`.
    pub fn learned(&self, model: &str) -> LearnedRatio {
        let models = self.lock();
        match models.get(&canonical_model(model)) {
            Some(m) => LearnedRatio { ratio: m.recent.iter().copied().fold(0.0, f64::max), samples: m.total },
            None => LearnedRatio { ratio: 0.0, samples: 0 },
        }
    }

    /// The estimator to size `model`'s prompts with (ratio 1.0 until something is learned; the
    /// engine clamps what was learned to a sane range).
    pub fn estimator(&self, model: &str) -> Estimator {
        let learned = self.learned(model);
        if learned.samples == 0 { Estimator::default() } else { Estimator::new(learned.ratio) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ModelSamples>> {
        self.models.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_never_answered_is_sized_at_one_and_reports_no_samples() {
        let ratios = TokenRatios::default();
        assert_eq!(ratios.learned("m"), LearnedRatio { ratio: 0.0, samples: 0 });
        assert_eq!(ratios.estimator("m").ratio, 1.0);
    }

    #[test]
    fn a_denser_tokenizer_is_followed_at_once_and_cached_prefixes_do_not_pull_the_ratio_down() {
        let ratios = TokenRatios::default();
        ratios.learn("m", "review 1", 1000, 1600);
        // The next part of the same review, its system prompt cached: fewer tokens evaluated.
        ratios.learn("m:latest", "review 1", 1000, 900);
        let learned = ratios.learned("m");
        assert_eq!(learned.samples, 1);
        assert!((learned.ratio - 1.6).abs() < 1e-9, "{learned:?}");
        assert!((ratios.estimator("m").ratio - 1.6).abs() < 1e-9);
        // A cached call that counts more still raises the ratio.
        ratios.learn("m", "review 1", 1000, 1700);
        assert!((ratios.learned("m").ratio - 1.7).abs() < 1e-9);
    }

    #[test]
    fn a_sparser_tokenizer_is_learned_once_the_window_agrees_and_implausible_counts_are_no_samples() {
        let ratios = TokenRatios::default();
        ratios.learn("m", "a", 1000, 1500);
        ratios.learn("m", "b", 10, 40);
        ratios.learn("m", "c", 1000, 0);
        ratios.learn("m", "d", 1000, 321);
        ratios.learn("m", "e", 1000, 4500);
        assert_eq!(ratios.learned("m").samples, 1);
        for i in 0..WINDOW {
            ratios.learn("m", &format!("review {i}"), 1000, 700);
        }
        let learned = ratios.learned("m");
        assert!((learned.ratio - 0.7).abs() < 1e-9, "{learned:?}");
        assert_eq!(learned.samples, 1 + WINDOW as u64);
    }
}
