//! The per-task map between placeholders and the secrets they stand for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::RedactError;

/// What every placeholder starts with; the secret's number in its vault follows.
pub const PLACEHOLDER_PREFIX: &str = "PRFIX_REDACTED_";

/// Any placeholder-shaped token, issued by a vault or not.
pub(super) static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"PRFIX_REDACTED_([0-9]+)").expect("the placeholder pattern is a valid regex"));

/// One redacted secret.
#[derive(Clone)]
struct Entry {
    secret: String,
    rule: &'static str,
}

/// Placeholders and the secrets they replaced, for one task: the same secret always gets the same
/// placeholder, so a file and its diff stay consistent and [`Vault::restore`] is exact.
///
/// Its `Debug` output shows counts only, never a secret.
#[derive(Default, Clone)]
pub struct Vault {
    numbers: HashMap<String, u64>,
    entries: BTreeMap<u64, Entry>,
    /// Numbers of placeholder-shaped text found in originals: never issued, never restored.
    reserved: BTreeSet<u64>,
    last: u64,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("count", &self.count()).field("by_rule", &self.by_rule()).finish()
    }
}

impl Vault {
    /// How many distinct secrets were redacted so far.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Whether no secret was redacted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many distinct secrets each rule found (rules that found none are absent).
    pub fn by_rule(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.entries.values() {
            *counts.entry(entry.rule).or_default() += 1;
        }
        counts
    }

    /// `text` with every placeholder this vault issued replaced by its secret; other text, including
    /// placeholder-shaped text it never issued, is left as it is.
    pub fn restore(&self, text: &str) -> String {
        PLACEHOLDER
            .replace_all(text, |caps: &Captures<'_>| match self.entry(caps) {
                Some(entry) => entry.secret.clone(),
                None => caps[0].to_owned(),
            })
            .into_owned()
    }

    /// Like [`Vault::restore`], but fails when `text` holds a placeholder this vault never issued
    /// (a model invented or altered one), which would otherwise be written into the code as is.
    pub fn restore_checked(&self, text: &str) -> Result<String, RedactError> {
        for caps in PLACEHOLDER.captures_iter(text) {
            let known = self.entry(&caps).is_some() || number(&caps).is_some_and(|n| self.reserved.contains(&n));
            if !known {
                return Err(RedactError::UnknownPlaceholder { placeholder: caps[0].to_owned() });
            }
        }
        Ok(self.restore(text))
    }

    /// Like [`Vault::restore_checked`], for an edited version of a text whose redacted original is
    /// `original`: only placeholders that were in `original` are put back, so an edit cannot copy a
    /// secret from elsewhere in the task (another file, a log) into this text. Placeholder-shaped
    /// text the original itself held is kept as it is.
    pub fn restore_within(&self, text: &str, original: &str) -> Result<String, RedactError> {
        let in_original: std::collections::HashSet<u64> =
            PLACEHOLDER.captures_iter(original).filter_map(|caps| number(&caps)).collect();
        for caps in PLACEHOLDER.captures_iter(text) {
            let placeholder = caps[0].to_owned();
            match number(&caps) {
                Some(n) if in_original.contains(&n) => {}
                Some(n) if self.entries.contains_key(&n) => return Err(RedactError::Misplaced { placeholder }),
                _ => return Err(RedactError::UnknownPlaceholder { placeholder }),
            }
        }
        Ok(self.restore(text))
    }

    /// Reserves the numbers of placeholder-shaped text in `text` before anything is redacted, so
    /// that no placeholder issued for a secret collides with literal text of any input of the task.
    pub fn reserve(&mut self, text: &str) {
        self.reserve_literals(text);
    }

    /// Whether `text` holds a placeholder this vault issued.
    pub fn contains_placeholder(&self, text: &str) -> bool {
        PLACEHOLDER.captures_iter(text).any(|caps| self.entry(&caps).is_some())
    }

    /// Whether `text` holds one of the secrets this vault redacted, verbatim (a last check before
    /// text leaves the process).
    pub fn contains_secret(&self, text: &str) -> bool {
        self.entries.values().any(|entry| text.contains(entry.secret.as_str()))
    }

    fn entry(&self, caps: &Captures<'_>) -> Option<&Entry> {
        number(caps).and_then(|n| self.entries.get(&n))
    }

    /// Marks the numbers of placeholder-shaped text in an original as never to be issued.
    pub(super) fn reserve_literals(&mut self, text: &str) {
        for caps in PLACEHOLDER.captures_iter(text) {
            if let Some(n) = number(&caps)
                && !self.entries.contains_key(&n)
            {
                self.reserved.insert(n);
            }
        }
    }

    /// The placeholder for `secret`, issuing a new one (credited to `rule`) the first time.
    pub(super) fn placeholder_for(&mut self, secret: &str, rule: &'static str) -> String {
        if let Some(n) = self.numbers.get(secret) {
            return format!("{PLACEHOLDER_PREFIX}{n}");
        }
        let mut n = self.last.saturating_add(1);
        while self.reserved.contains(&n) || self.entries.contains_key(&n) {
            n = n.saturating_add(1);
        }
        self.last = n;
        self.numbers.insert(secret.to_owned(), n);
        self.entries.insert(n, Entry { secret: secret.to_owned(), rule });
        format!("{PLACEHOLDER_PREFIX}{n}")
    }
}

fn number(caps: &Captures<'_>) -> Option<u64> {
    caps.get(1).and_then(|digits| digits.as_str().parse().ok())
}

#[cfg(test)]
mod restore_within_tests {
    use crate::redact::{RedactError, Redactor, Vault};

    #[test]
    fn an_edit_gets_back_only_the_secrets_its_own_file_had() {
        let redactor = Redactor::new();
        let mut vault = Vault::default();
        let token = format!("ghp_{}", "aB3dE5fG7h".repeat(4));
        let password_url = format!("postgres://app:{}@db/app", "S3cr3t-Pa55w0rd");
        let file_a = redactor.redact(&format!("TOKEN = \"{token}\"\n"), &mut vault);
        let log = redactor.redact(&format!("connecting to {password_url}\n"), &mut vault);
        let own = file_a.replace("TOKEN", "GITHUB_TOKEN");
        assert_eq!(
            vault.restore_within(&own, &file_a).expect("its own secret"),
            format!("GITHUB_TOKEN = \"{token}\"\n")
        );
        // The log's placeholder copied into the file is refused, not turned into the password.
        let placeholder = log.split_whitespace().nth(2).expect("a url").to_owned();
        let copied = format!("{file_a}DB = \"{placeholder}\"\n");
        assert!(matches!(vault.restore_within(&copied, &file_a), Err(RedactError::Misplaced { .. })), "{copied}");
        let invented = format!("{file_a}KEY = \"PRFIX_REDACTED_99\"\n");
        assert!(matches!(vault.restore_within(&invented, &file_a), Err(RedactError::UnknownPlaceholder { .. })));
    }

    #[test]
    fn literal_placeholder_text_reserved_up_front_is_never_issued_for_a_secret() {
        let redactor = Redactor::new();
        let mut vault = Vault::default();
        let docs = "Secrets show up as PRFIX_REDACTED_1 in prompts.\n";
        vault.reserve(docs);
        let redacted = redactor.redact(&format!("TOKEN = \"ghp_{}\"\n", "aB3dE5fG7h".repeat(4)), &mut vault);
        assert!(!redacted.contains("PRFIX_REDACTED_1\""), "{redacted}");
        assert_eq!(vault.restore_within(docs, docs).expect("unchanged"), docs);
    }
}
