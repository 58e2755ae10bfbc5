//! The judgement calls: does a value look random, like a placeholder, like code; does a name say
//! it holds a secret.

use std::collections::HashMap;

/// Shannon entropy of `text` in bits per character (0 for empty text).
pub(super) fn shannon_entropy(text: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0usize;
    for c in text.chars() {
        *counts.entry(c).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether `text` reaches `threshold` bits per character. A string of `n` characters cannot exceed
/// log2(n) bits, and a random one rarely gets that close, so for short values the threshold is
/// lowered to 85% of log2(n): a random 12-character password passes, `changeme`-like words do not.
pub(super) fn random_enough(text: &str, threshold: f64) -> bool {
    let len = text.chars().count() as f64;
    let reachable = 0.85 * len.max(1.0).log2();
    shannon_entropy(text) >= threshold.min(reachable)
}

/// Words that are documentation placeholders or language literals when they are the whole value.
const PLACEHOLDER_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "none",
    "null",
    "nil",
    "undefined",
    "true",
    "false",
    "redacted",
    "hidden",
    "masked",
    "empty",
    "default",
    "required",
    "string",
    "todo",
    "tbd",
    "test",
    "foo",
    "bar",
    "baz",
    "admin",
];

/// Fragments that mark a documentation placeholder anywhere in the value.
const PLACEHOLDER_FRAGMENTS: &[&str] =
    &["example", "placeholder", "changeme", "change_me", "change-me", "replace_me", "replace-me", "dummy"];

/// Whether `value` is a documentation placeholder, a template or a variable reference rather than
/// a secret: `${DB_PASSWORD}`, `<your-token>`, `{{ secrets.X }}`, `%(pw)s`, `xxxxxxxx`, `****`,
/// `changeme`, `AKIA…EXAMPLE`, `your_api_key`.
pub(super) fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let trimmed = lower.trim();
    if trimmed.is_empty() || PLACEHOLDER_WORDS.contains(&trimmed) {
        return true;
    }
    if trimmed.starts_with(['$', '%', '{', '<', '[', '(', '*']) || trimmed.ends_with('>') || trimmed.ends_with('}') {
        return true;
    }
    if ["${", "{{", "%(", "$(", "<your", "your_", "your-", "yourpassword", "yourtoken"]
        .iter()
        .any(|f| trimmed.contains(f))
    {
        return true;
    }
    if trimmed.starts_with("your") || PLACEHOLDER_FRAGMENTS.iter().any(|f| trimmed.contains(f)) {
        return true;
    }
    has_run(trimmed, 5)
}

/// Whether some character repeats `len` times in a row (`xxxxx`, `00000`, `*****`).
fn has_run(text: &str, len: usize) -> bool {
    let mut previous = None;
    let mut run = 0;
    for c in text.chars() {
        run = if Some(c) == previous { run + 1 } else { 1 };
        if run >= len {
            return true;
        }
        previous = Some(c);
    }
    false
}

/// Whether `value` holds both an ASCII letter and an ASCII digit.
pub(super) fn has_letter_and_digit(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_alphabetic()) && value.bytes().any(|b| b.is_ascii_digit())
}

/// Single words of a name that say it holds a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "secrets",
    "token",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "secretkey",
    "accesskey",
    "authkey",
];

/// Adjacent word pairs of a name that say it holds a secret (`api_key`, `accessKey`).
const SECRET_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("auth", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("master", "key"),
    ("client", "secret"),
    ("session", "key"),
];

/// Last words that make a name describe a secret rather than hold one (`token_url`,
/// `password_min_length`, `secret_name`).
const NOT_A_SECRET_SUFFIXES: &[&str] = &[
    "url",
    "uri",
    "endpoint",
    "path",
    "file",
    "filename",
    "dir",
    "name",
    "type",
    "id",
    "length",
    "len",
    "count",
    "size",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "timeout",
    "header",
    "field",
    "env",
    "var",
    "prefix",
    "suffix",
    "format",
    "algorithm",
    "alg",
    "method",
    "mode",
    "kind",
    "policy",
    "regex",
    "pattern",
    "label",
    "hint",
    "enabled",
    "required",
    "min",
    "max",
    "limit",
    "version",
    "location",
    "provider",
    "source",
    "arn",
];

/// The lowercase words of an identifier: split at `_`, `-`, `.` and camelCase humps.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a variable, key or setting name says it holds a secret (`DB_PASSWORD`, `apiKey`,
/// `client_secret`, `self.token`), and not something about one (`token_url`, `max_tokens`,
/// `tokenizer`, `password_min_length`).
pub(super) fn names_a_secret(name: &str) -> bool {
    let words = words(name);
    let Some(last) = words.last() else {
        return false;
    };
    if NOT_A_SECRET_SUFFIXES.contains(&last.as_str()) {
        return false;
    }
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words.windows(2).any(|pair| SECRET_PAIRS.iter().any(|&(a, b)| pair[0] == a && pair[1] == b))
}

/// Whether an unquoted value is code rather than a literal: a dotted path (`os.environ`,
/// `process.env.TOKEN`, `settings.SECRET_KEY`) or a plain identifier without a digit (`token`,
/// `getToken`, `DEFAULT_SECRET`).
pub(super) fn is_code_reference(value: &str) -> bool {
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    let parts: Vec<&str> = value.split('.').collect();
    if parts.iter().all(|part| identifier(part)) {
        return parts.len() > 1 || !value.bytes().any(|b| b.is_ascii_digit());
    }
    false
}

/// Whether a quoted value names something instead of being a secret: an environment variable
/// name (`GITHUB_APP_PRIVATE_KEY`) or a lowercase resource name of words (`db-password`,
/// `prod/api_token`).
pub(super) fn is_a_name(value: &str) -> bool {
    let upper_snake = value.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    let lower_words = value.bytes().all(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'-' | b'/' | b'.'))
        && value.bytes().any(|b| matches!(b, b'_' | b'-' | b'/' | b'.'));
    upper_snake || lower_words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_counts_bits_per_character() {
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert_eq!(shannon_entropy(""), 0.0);
    }

    #[test]
    fn short_random_values_pass_and_words_do_not() {
        assert!(random_enough("k7Qm2Xv9Lp4R", 3.5));
        assert!(!random_enough("changemechangeme", 3.5));
        assert!(!random_enough("aaaaaaaaaaaaaaaaaaaa", 3.5));
    }

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(words("accessTokenV2"), ["access", "token", "v2"]);
        assert_eq!(words("AWS_SECRET_ACCESS_KEY"), ["aws", "secret", "access", "key"]);
        assert_eq!(words("self.api-key"), ["self", "api", "key"]);
    }

    #[test]
    fn secret_names_are_told_from_names_about_secrets() {
        for name in ["DB_PASSWORD", "apiKey", "client_secret", "self.token", "GITHUB_TOKEN", "private_key", "passwd"] {
            assert!(names_a_secret(name), "{name}");
        }
        for name in ["token_url", "max_tokens", "tokenizer", "password_min_length", "secret_name", "key", "monkey"] {
            assert!(!names_a_secret(name), "{name}");
        }
    }

    #[test]
    fn placeholders_templates_and_code_are_recognized() {
        for value in ["${DB_PASSWORD}", "<your-token>", "{{ secrets.X }}", "xxxxxxxx", "****", "changeme", "None", ""] {
            assert!(is_placeholder(value), "{value}");
        }
        assert!(!is_placeholder("k7Qm2Xv9Lp4Rt8Wz"));
        assert!(is_code_reference("process.env.TOKEN") && is_code_reference("getToken"));
        assert!(!is_code_reference("k7Qm2Xv9Lp4Rt8Wz") && !is_code_reference("a/b+c"));
        assert!(is_a_name("GITHUB_APP_PRIVATE_KEY") && is_a_name("prod/db-password"));
        assert!(!is_a_name("k7Qm2Xv9Lp4Rt8Wz"));
    }
}
