//! Path names in diff headers: git's C-style quoting (`core.quotePath=true`: a name with a control
//! character, a `"`, a `\` or any non-ASCII byte is written in double quotes with backslash and
//! octal escapes), and the split of `diff --git <old> <new>` into its two names and their prefixes.

/// Quotes `name` the way git does in diff headers, or returns it unchanged when it needs no quotes.
/// Spaces alone do not cause quoting.
pub fn quote_path(name: &str) -> String {
    if !name.bytes().any(must_quote) {
        return name.to_owned();
    }
    let mut quoted = String::with_capacity(name.len() + 8);
    quoted.push('"');
    for byte in name.bytes() {
        match byte {
            0x07 => quoted.push_str("\\a"),
            0x08 => quoted.push_str("\\b"),
            b'\t' => quoted.push_str("\\t"),
            b'\n' => quoted.push_str("\\n"),
            0x0b => quoted.push_str("\\v"),
            0x0c => quoted.push_str("\\f"),
            b'\r' => quoted.push_str("\\r"),
            b'"' => quoted.push_str("\\\""),
            b'\\' => quoted.push_str("\\\\"),
            byte if must_quote(byte) => quoted.push_str(&format!("\\{byte:03o}")),
            byte => quoted.push(char::from(byte)),
        }
    }
    quoted.push('"');
    quoted
}

/// Reads a C-quoted name at the start of `text` (which must begin with `"`): returns the decoded
/// name (octal escapes are bytes of UTF-8; invalid UTF-8 is replaced) and the text after the closing
/// quote, or `None` when the quotes are not closed or an escape is unknown.
pub fn unquote_path(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' => {
                let rest = body.get(index + 1..)?;
                return Some((String::from_utf8_lossy(&decoded).into_owned(), rest));
            }
            b'\\' => {
                let escape = *bytes.get(index + 1)?;
                index += 2;
                let value = match escape {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 0x0b,
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'"' | b'\\' => escape,
                    b'0'..=b'3' => {
                        let digits = bytes.get(index..index + 2)?;
                        index += 2;
                        // At most \377: the first digit is 0 to 3, so the value fits in a byte.
                        digits.iter().try_fold(escape - b'0', |value, &digit| {
                            (b'0'..=b'7').contains(&digit).then(|| value * 8 + (digit - b'0'))
                        })?
                    }
                    _ => return None,
                };
                decoded.push(value);
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    None
}

/// Splits the names of `diff --git <old> <new>` and their prefixes. Unquoted names with spaces are
/// ambiguous; like git, the split where both names are the same wins.
pub(super) fn split_git_header(rest: &str) -> Option<((String, String), (String, String))> {
    let (old, new) = if rest.starts_with('"') {
        let (old, after) = unquote_path(rest)?;
        let after = after.strip_prefix(' ')?;
        let new = if after.starts_with('"') { unquote_path(after)?.0 } else { after.to_owned() };
        (old, new)
    } else if rest.ends_with('"') {
        rest.match_indices(" \"").find_map(|(at, _)| {
            let (new, tail) = unquote_path(rest.get(at + 1..)?)?;
            tail.is_empty().then(|| (rest.get(..at).unwrap_or_default().to_owned(), new))
        })?
    } else {
        let splits: Vec<(&str, &str)> =
            rest.match_indices(' ').filter_map(|(at, _)| Some((rest.get(..at)?, rest.get(at + 1..)?))).collect();
        let same = splits.iter().find(|(old, new)| old == new);
        let same_after_prefix = || {
            splits.iter().find(|(old, new)| {
                matches!((split_prefix(old), split_prefix(new)), ((_, o), (_, n)) if !o.is_empty() && o == n)
            })
        };
        let fallback = || splits.iter().find(|(old, new)| old.starts_with("a/") && new.starts_with("b/"));
        let (old, new) = same.or_else(same_after_prefix).or_else(fallback).or(splits.first())?;
        ((*old).to_owned(), (*new).to_owned())
    };
    Some(assign_prefixes(old, new))
}

/// Decides whether the two names carry prefixes (`a/` `b/`, or another pair of one-component
/// prefixes under which the names agree) and splits them off.
fn assign_prefixes(old: String, new: String) -> ((String, String), (String, String)) {
    if old == new {
        return ((String::new(), old), (String::new(), new));
    }
    let (old_prefix, old_rest) = split_prefix(&old);
    let (new_prefix, new_rest) = split_prefix(&new);
    let conventional = old.starts_with("a/") && new.starts_with("b/");
    if conventional || (!old_rest.is_empty() && old_rest == new_rest) {
        let split = |prefix: &str, rest: &str| (prefix.to_owned(), rest.to_owned());
        return (split(old_prefix, old_rest), split(new_prefix, new_rest));
    }
    ((String::new(), old), (String::new(), new))
}

/// `("a/", "x/y")` for `"a/x/y"`; `("", name)` when there is no directory part.
pub(super) fn split_prefix(name: &str) -> (&str, &str) {
    match name.find('/') {
        Some(at) => (name.get(..=at).unwrap_or_default(), name.get(at + 1..).unwrap_or_default()),
        None => ("", name),
    }
}

fn must_quote(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\' || byte >= 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_and_quotes_are_escaped_like_git() {
        assert_eq!(quote_path("a/tést \"q\".txt"), r#""a/t\303\251st \"q\".txt""#);
        assert_eq!(quote_path("a/plain name.txt"), "a/plain name.txt");
        assert_eq!(quote_path("tab\there"), r#""tab\there""#);
    }

    #[test]
    fn quoted_names_decode_to_utf8_and_leave_the_rest() {
        let (name, rest) = unquote_path(r#""a/t\303\251st \"q\".txt" "b/x""#).expect("valid quoted name");
        assert_eq!(name, "a/tést \"q\".txt");
        assert_eq!(rest, r#" "b/x""#);
    }

    #[test]
    fn broken_quoting_is_refused() {
        assert_eq!(unquote_path(r#""open"#), None);
        assert_eq!(unquote_path(r#""bad \q escape""#), None);
        assert_eq!(unquote_path(r#""short \30""#), None);
        assert_eq!(unquote_path(r#""\"#), None);
        assert_eq!(unquote_path("plain"), None);
    }

    #[test]
    fn quoting_round_trips() {
        for name in ["a/x", "a/é ü", "a/\u{1}\u{7f}\\\"", "a/日本語.rs"] {
            let quoted = quote_path(name);
            if quoted.starts_with('"') {
                assert_eq!(unquote_path(&quoted), Some((name.to_owned(), "")));
            } else {
                assert_eq!(quoted, name);
            }
        }
    }
}
