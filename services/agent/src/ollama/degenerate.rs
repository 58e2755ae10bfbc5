//! Spotting an answer that has degenerated while it streams: small models under a JSON schema
//! often run on in whitespace, or repeat one short unit, until the output limit, which on a CPU
//! can take many minutes. Such a tail carries nothing; the call is stopped as soon as it shows.

/// Characters of whitespace, or of one repeated unit, at the end of an answer that make it
/// degenerate.
pub const DEGENERATE_TAIL: usize = 2_000;

/// Longest unit (in bytes) whose repetition is looked for.
pub const MAX_UNIT: usize = 64;

/// New bytes between two looks for repetition (the whitespace run is followed at every chunk).
const CHECK_EVERY: usize = 256;

/// How an answer degenerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degeneration {
    /// Only whitespace for the last [`DEGENERATE_TAIL`] characters.
    Whitespace,
    /// The same unit of up to [`MAX_UNIT`] bytes repeated over the last [`DEGENERATE_TAIL`] bytes.
    Repetition,
}

impl Degeneration {
    /// What the model did, for errors and retry prompts.
    pub fn describe(self) -> &'static str {
        match self {
            Degeneration::Whitespace => "ran on in whitespace",
            Degeneration::Repetition => "repeated the same text over and over",
        }
    }
}

/// Watches an answer as it grows.
#[derive(Debug, Default)]
pub struct Watch {
    /// Whitespace characters at the end of the answer so far.
    trailing_space: usize,
    /// Answer length at the last repetition look.
    checked_at: usize,
}

impl Watch {
    /// Looks at `content` after `added` was appended to it; the degeneration once it shows.
    pub fn feed(&mut self, content: &str, added: &str) -> Option<Degeneration> {
        if added.chars().all(char::is_whitespace) {
            self.trailing_space += added.chars().count();
        } else {
            self.trailing_space = added.chars().rev().take_while(|c| c.is_whitespace()).count();
        }
        if self.trailing_space >= DEGENERATE_TAIL {
            return Some(Degeneration::Whitespace);
        }
        if content.len() >= self.checked_at + CHECK_EVERY {
            self.checked_at = content.len();
            if repeats_at_tail(content.as_bytes()) {
                return Some(Degeneration::Repetition);
            }
        }
        None
    }
}

/// Whether the last [`DEGENERATE_TAIL`] bytes are one unit of at most [`MAX_UNIT`] bytes repeated.
fn repeats_at_tail(content: &[u8]) -> bool {
    if content.len() < DEGENERATE_TAIL + MAX_UNIT {
        return false;
    }
    let start = content.len() - DEGENERATE_TAIL;
    (1..=MAX_UNIT).any(|unit| (start..content.len()).all(|i| content[i] == content[i - unit]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&str]) -> Option<Degeneration> {
        let mut watch = Watch::default();
        let mut content = String::new();
        for piece in pieces {
            content.push_str(piece);
            if let Some(d) = watch.feed(&content, piece) {
                return Some(d);
            }
        }
        None
    }

    #[test]
    fn a_long_run_of_whitespace_is_degenerate_and_a_short_one_is_not() {
        let mut pieces = vec!["{\"findings\": ["];
        pieces.extend(std::iter::repeat_n("  \n\t ", 300));
        assert_eq!(feed_all(&pieces), None, "1,500 characters of whitespace are allowed");
        pieces.extend(std::iter::repeat_n("    \n", 200));
        assert_eq!(feed_all(&pieces), Some(Degeneration::Whitespace));
        let mut broken = pieces.clone();
        broken.insert(200, "x");
        broken.truncate(400);
        assert_eq!(feed_all(&broken), None, "a non-blank character restarts the run");
    }

    #[test]
    fn a_short_unit_repeated_to_fill_the_tail_is_degenerate() {
        let unit = "\"body\": \"the same again\", ";
        let mut pieces = vec!["{\"findings\": [{"];
        pieces.extend(std::iter::repeat_n(unit, 120));
        assert_eq!(feed_all(&pieces), Some(Degeneration::Repetition));
    }

    #[test]
    fn ordinary_json_findings_of_any_length_are_not_degenerate() {
        let findings: Vec<String> = (0..200)
            .map(|i| {
                format!("{{\"path\": \"src/m{i}.rs\", \"line\": {i}, \"title\": \"Check {i}\", \"body\": \"b{i}\"}}, ")
            })
            .collect();
        let pieces: Vec<&str> = findings.iter().map(String::as_str).collect();
        assert_eq!(feed_all(&pieces), None);
    }

    #[test]
    fn a_unit_longer_than_the_limit_is_not_taken_for_repetition() {
        let unit: String = (0..20).map(|i| format!("{i:03}")).chain(["abcdefghij\n".to_owned()]).collect();
        assert!(unit.len() > MAX_UNIT);
        let text = unit.repeat(40);
        assert!(!repeats_at_tail(text.as_bytes()));
        assert!(repeats_at_tail("ab".repeat(1100).as_bytes()));
    }
}
