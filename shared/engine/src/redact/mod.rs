//! Secrets found and replaced by placeholders before any text reaches a model.
//!
//! A [`Redactor`] runs the built-in rule table (private keys, cloud and SaaS tokens, JWTs, URL
//! passwords, `Authorization` headers, and random-looking values assigned to secret-sounding names)
//! over a text and replaces each secret by a placeholder `PRFIX_REDACTED_<N>` issued by a per-task
//! [`Vault`]. Placeholders are identifiers, so a model copies them verbatim inside code, and the
//! vault restores the secrets in what the model writes back.
//!
//! Guarantees, for any text: no line break is added or removed (diff and file line numbers stay
//! valid), `vault.restore(&redacted)` gives the original back, and redacting an already redacted
//! text changes nothing.

mod filters;
mod pem;
mod rules;
#[doc(hidden)]
pub mod samples;
mod vault;

#[cfg(test)]
mod tests;

use std::ops::Range;

use regex::Captures;

pub use rules::Rule;
use rules::{COMPILED, Kind};
pub use vault::{PLACEHOLDER_PREFIX, Vault};

/// Why a text could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// The text holds a placeholder the vault never issued.
    #[error(
        "the text uses the placeholder {placeholder}, which this task's vault never issued, so no secret can be put back (the model invented or altered it)"
    )]
    UnknownPlaceholder {
        /// The placeholder as it appears in the text.
        placeholder: String,
    },
    /// The text puts a secret where its original did not have it.
    #[error(
        "the text uses the placeholder {placeholder}, whose secret was not in this file; putting it back would copy a secret where it never was"
    )]
    Misplaced {
        /// The placeholder as it appears in the text.
        placeholder: String,
    },
}

/// The compiled rule table; cheap to create and to copy.
#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    rules: &'static [Rule],
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

/// A secret found by one rule, before overlapping finds are merged.
#[derive(Debug, Clone)]
struct Find {
    range: Range<usize>,
    rule: usize,
}

impl Redactor {
    /// The redactor with the built-in rule table.
    pub fn new() -> Self {
        Self { rules: COMPILED.as_slice() }
    }

    /// The rules, in the order they are credited when two find the same secret.
    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// `text` with every secret replaced by its placeholder from `vault`.
    ///
    /// Replacing a secret can change what surrounds another (text glued together), so passes repeat
    /// until one finds nothing more: redacting the result again changes nothing.
    pub fn redact(&self, text: &str, vault: &mut Vault) -> String {
        vault.reserve_literals(text);
        let Some(mut current) = self.redact_once(text, vault) else {
            return text.to_owned();
        };
        for _ in 1..MAX_PASSES {
            match self.redact_once(&current, vault) {
                Some(next) => current = next,
                None => break,
            }
        }
        current
    }

    /// One pass over `text`: the redacted text, or `None` when it holds no secret.
    fn redact_once(&self, text: &str, vault: &mut Vault) -> Option<String> {
        let protected: Vec<Range<usize>> = vault::PLACEHOLDER.find_iter(text).map(|m| m.range()).collect();
        let mut finds = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.kind {
                Kind::KeyBlock => finds
                    .extend(pem::key_material(text, &rule.regex).into_iter().map(|range| Find { range, rule: index })),
                Kind::Token => {
                    for caps in rule.regex.captures_iter(text) {
                        if let Some(range) = judge(rule, text, &caps) {
                            finds.push(Find { range, rule: index });
                        }
                    }
                }
                Kind::Assignment => {
                    // A value may itself hold `name = value` (text glued together), so the search
                    // goes on from the value rather than after it, unless the value is long.
                    let mut at = 0;
                    while let Some(caps) = rule.regex.captures_at(text, at) {
                        if let Some(range) = judge(rule, text, &caps) {
                            finds.push(Find { range, rule: index });
                        }
                        let whole = caps.get(0).map_or(text.len(), |m| m.end());
                        at = match (rule.secret_group..caps.len()).find_map(|group| caps.get(group)) {
                            Some(value) if value.len() <= RESCAN_LIMIT => value.start(),
                            _ => whole,
                        };
                    }
                }
            }
        }
        let spans = merge(text, finds, &protected);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for span in spans {
            let (Some(before), Some(secret)) = (text.get(copied..span.range.start), text.get(span.range.clone()))
            else {
                continue;
            };
            out.push_str(before);
            out.push_str(&vault.placeholder_for(secret, self.rules[span.rule].name));
            copied = span.range.end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        Some(out)
    }
}

/// The secret's byte range when this match of `rule` is a secret, `None` when it is not.
fn judge(rule: &Rule, text: &str, caps: &Captures<'_>) -> Option<Range<usize>> {
    let secret = (rule.secret_group..caps.len()).find_map(|group| caps.get(group))?;
    let value = secret.as_str();
    if value.chars().count() < rule.min_len || filters::is_placeholder(value) {
        return None;
    }
    if rule.needs_digit && !filters::has_letter_and_digit(value) {
        return None;
    }
    if rule.min_entropy.is_some_and(|threshold| !filters::random_enough(value, threshold)) {
        return None;
    }
    if rule.kind == Kind::Assignment && !assignment_is_secret(text, caps, secret.range()) {
        return None;
    }
    Some(secret.range())
}

/// For `name = value`: the name says secret, and the value is a literal, not code or a name.
fn assignment_is_secret(text: &str, caps: &Captures<'_>, value: Range<usize>) -> bool {
    let Some(name) = caps.get(1) else {
        return false;
    };
    if !filters::names_a_secret(name.as_str()) {
        return false;
    }
    let value_text = text.get(value.clone()).unwrap_or_default();
    let quoted = text.get(..value.start).is_some_and(|before| before.ends_with(['"', '\'', '`']));
    if quoted {
        return !filters::is_a_name(value_text);
    }
    let line_start = text.get(..name.start()).and_then(|before| before.rfind('\n')).map_or(0, |at| at + 1);
    let line_end = text.get(value.end..).and_then(|after| after.find('\n')).map_or(text.len(), |at| value.end + at);
    let separator = text.get(name.end()..value.start).unwrap_or_default();
    let lead = text.get(line_start..name.start()).unwrap_or_default();
    let lead = lead.strip_prefix(['+', '-', ' ']).unwrap_or(lead).trim_start();
    let lead = lead.strip_prefix("export ").unwrap_or(lead).trim();
    let rest = text.get(value.end..line_end).unwrap_or_default().trim();
    if rest.starts_with(['(', '[']) || separator == ":" {
        // A call or an index; or `user:password` in a URL, which no YAML or code writes unspaced.
        return false;
    }
    let env_line = lead.is_empty() && separator == "=";
    let yaml_line = separator.trim() == ":" && (rest.is_empty() || rest.starts_with('#'));
    env_line || yaml_line || !filters::is_code_reference(value_text)
}

/// At most this many passes of the rules over one text (each pass only turns text into
/// placeholders, so passes beyond the second are rare).
const MAX_PASSES: usize = 8;

/// Values of `name = value` up to this many bytes are searched again for assignments inside them
/// (longer ones are skipped over, which bounds the work on huge lines).
const RESCAN_LIMIT: usize = 256;

/// Pieces of a secret cut apart by placeholder text shorter than this are left alone.
const MIN_PIECE: usize = 4;

/// Sorts the finds, cuts placeholder-shaped text out of them, drops those that touch a line break,
/// extends each over digits that follow it (so a placeholder's number never runs into the text
/// after it), and merges overlapping ones; the earliest, then first-listed rule is credited.
fn merge(text: &str, finds: Vec<Find>, protected: &[Range<usize>]) -> Vec<Find> {
    let bytes = text.as_bytes();
    let mut finds: Vec<Find> = finds.into_iter().flat_map(|find| clip(find, protected)).collect();
    for find in &mut finds {
        while bytes.get(find.range.end).is_some_and(u8::is_ascii_digit) {
            find.range.end += 1;
        }
    }
    finds.retain(|find| {
        text.get(find.range.clone()).is_some_and(|secret| !secret.is_empty() && !secret.contains(['\n', '\r']))
    });
    finds.sort_by(|a, b| a.range.start.cmp(&b.range.start).then(a.rule.cmp(&b.rule)));
    let mut merged: Vec<Find> = Vec::new();
    for find in finds {
        match merged.last_mut() {
            Some(last) if find.range.start < last.range.end => last.range.end = last.range.end.max(find.range.end),
            _ => merged.push(find),
        }
    }
    merged
}

/// `find` without the placeholder-shaped spans it overlaps (`protected` is sorted): a secret glued
/// to a placeholder is still redacted, and a placeholder is never redacted again.
fn clip(find: Find, protected: &[Range<usize>]) -> Vec<Find> {
    let overlapping = protected.iter().filter(|p| p.start < find.range.end && find.range.start < p.end);
    let mut pieces = Vec::new();
    let mut start = find.range.start;
    let mut clipped = false;
    for p in overlapping {
        clipped = true;
        if p.start > start {
            pieces.push(start..p.start);
        }
        start = start.max(p.end);
    }
    if start < find.range.end {
        pieces.push(start..find.range.end);
    }
    pieces
        .into_iter()
        .filter(|piece| !clipped || piece.len() >= MIN_PIECE)
        .map(|range| Find { range, rule: find.rule })
        .collect()
}
