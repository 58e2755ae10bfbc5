//! Numbers as models write them (`+1`, `.5`, `5.`, `007`) rewritten as JSON numbers.

/// A number as JSON writes it (`+1` → `1`, `.5` → `0.5`, `5.` → `5.0`, `007` → `7`), or `None`.
pub(super) fn normalize_number(raw: &[u8]) -> Option<Vec<u8>> {
    let (negative, rest) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, raw),
    };
    let (mantissa, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], Some(&mantissa[at + 1..])),
        None => (mantissa, None),
    };
    let digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if !digits(int) || !frac.is_none_or(digits) || (int.is_empty() && frac.is_none_or(<[u8]>::is_empty)) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + 2);
    if negative {
        out.push(b'-');
    }
    let int = match int.iter().position(|&b| b != b'0') {
        Some(first) => &int[first..],
        None => b"0".as_slice(),
    };
    out.extend_from_slice(int);
    if let Some(frac) = frac {
        out.push(b'.');
        out.extend_from_slice(if frac.is_empty() { b"0" } else { frac });
    }
    if let Some(exponent) = exponent {
        let unsigned = exponent.strip_prefix(b"+").or_else(|| exponent.strip_prefix(b"-")).unwrap_or(exponent);
        if unsigned.is_empty() || !digits(unsigned) {
            return None;
        }
        out.push(rest.get(mantissa.len()).copied().unwrap_or(b'e'));
        out.extend_from_slice(exponent);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::normalize_number;

    fn normalized(raw: &str) -> Option<String> {
        normalize_number(raw.as_bytes()).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn valid_json_numbers_are_kept_as_written() {
        for raw in ["0", "-0", "12", "-3.25", "1e300", "1E-7", "6.02e+23", "0.5"] {
            assert_eq!(normalized(raw).as_deref(), Some(raw));
        }
    }

    #[test]
    fn loose_numbers_are_rewritten() {
        let cases = [("+1", "1"), (".5", "0.5"), ("-.5", "-0.5"), ("5.", "5.0"), ("007", "7"), ("-00.10", "-0.10")];
        for (raw, json) in cases {
            assert_eq!(normalized(raw).as_deref(), Some(json), "{raw}");
        }
    }

    #[test]
    fn text_that_is_no_number_is_refused() {
        for raw in ["-", "+", ".", "1.2.3", "1e", "1e+", "--1", "1-2", "e5", ""] {
            assert_eq!(normalized(raw), None, "{raw}");
        }
    }
}
