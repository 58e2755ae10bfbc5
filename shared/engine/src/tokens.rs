//! Token estimates for prompts, without a model's tokenizer.
//!
//! Code models on Ollama use BPE vocabularies (Qwen, Llama, DeepSeek) that all spend about one
//! token on 3–4 characters of an identifier, one on most punctuation and one on a run of spaces.
//! The estimate counts that way and leans high, so a prompt sized by it fits the context window:
//! overestimating costs a little context, underestimating silently truncates the prompt.

/// Estimated tokens of `text`.
pub fn estimate(text: &str) -> usize {
    let mut tokens = 0usize;
    let mut word = 0usize;
    let mut in_space = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word += 1;
            in_space = false;
            continue;
        }
        tokens += word.div_ceil(3);
        word = 0;
        if c == '\n' {
            tokens += 1;
            in_space = false;
        } else if c.is_whitespace() {
            if !in_space {
                tokens += 1;
            }
            in_space = true;
        } else {
            tokens += 1;
            in_space = false;
        }
    }
    tokens + word.div_ceil(3)
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
}
