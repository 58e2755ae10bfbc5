//! A tolerant scanner that turns one JSON-ish object or array written by a model into strict JSON
//! text, which `serde_json` then parses (so numbers and strings mean exactly what they mean there).
//!
//! It walks the bytes once with an explicit stack (no recursion, so deep input cannot overflow the
//! stack), copies what is already valid, rewrites the usual slips of small models, and when the text
//! ends before the value closes it cuts back to the last complete member and closes what is open.

use super::Repairs;
use super::number::normalize_number;

/// Why a candidate could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// Byte offset in the scanned text where the scanner gave up.
    pub at: usize,
    /// What the scanner expected there.
    pub reason: &'static str,
}

/// Strict JSON text for one value, and where that value ended in the scanned text.
#[derive(Debug)]
pub(super) struct Repaired {
    /// The value as strict JSON.
    pub json: String,
    /// Byte offset just past the value (the text's length when it was cut short).
    pub end: usize,
}

/// Scans the object or array starting at byte `start` of `text` (which must hold `{` or `[`).
pub(super) fn repair_value(text: &str, start: usize, repairs: &mut Repairs) -> Result<Repaired, Failure> {
    let mut scanner = Scanner { bytes: text.as_bytes(), pos: start, out: Vec::new(), stack: Vec::new(), repairs };
    scanner.run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Key,
    Colon,
    Value,
    CommaOrClose,
}

/// One open object or array.
#[derive(Debug)]
struct Frame {
    kind: Kind,
    expect: Expect,
    /// Complete members or elements written so far.
    members: usize,
    /// Output length just after the last complete member (or the opening bracket).
    complete_len: usize,
    /// A comma was read and no member has started since.
    after_comma: bool,
}

/// Why a step stopped early.
enum Stop {
    /// The text ended inside a token or value.
    Truncated,
    /// The text is not JSON we know how to repair.
    Fail(&'static str),
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    stack: Vec<Frame>,
    repairs: &'a mut Repairs,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn is_key_byte(b: u8) -> bool {
    is_word_byte(b) || b == b'-' || b == b'.' || b >= 0x80
}

fn is_value_start(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'{' | b'[' | b'-' | b'+' | b'.') || b.is_ascii_alphanumeric()
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

impl Scanner<'_> {
    fn run(&mut self) -> Result<Repaired, Failure> {
        match self.bytes.get(self.pos) {
            Some(b'{') => self.open(Kind::Object),
            Some(b'[') => self.open(Kind::Array),
            _ => return Err(self.fail("expected '{' or '[' where the value starts")),
        }
        loop {
            let step = self.step();
            match step {
                Ok(true) => return self.finish(self.pos),
                Ok(false) => {}
                Err(Stop::Truncated) => return self.finish_truncated(),
                Err(Stop::Fail(reason)) => return Err(self.fail(reason)),
            }
        }
    }

    fn fail(&self, reason: &'static str) -> Failure {
        Failure { at: self.pos, reason }
    }

    fn finish(&mut self, end: usize) -> Result<Repaired, Failure> {
        let out = std::mem::take(&mut self.out);
        match String::from_utf8(out) {
            Ok(json) => Ok(Repaired { json, end }),
            Err(_) => Err(Failure { at: end, reason: "the repaired text is not valid UTF-8" }),
        }
    }

    /// One token; `Ok(true)` once the outermost value has closed.
    fn step(&mut self) -> Result<bool, Stop> {
        self.skip_space_and_comments()?;
        let Some(&byte) = self.bytes.get(self.pos) else {
            return Err(Stop::Truncated);
        };
        let Some(top) = self.stack.last() else {
            return Ok(true);
        };
        let (kind, expect) = (top.kind, top.expect);
        match expect {
            Expect::Key => match byte {
                b'"' | b'\'' => {
                    self.begin_member();
                    self.string(byte)?;
                    self.set_expect(Expect::Colon);
                }
                b'}' => return self.close(Kind::Object),
                b if is_key_byte(b) => {
                    self.begin_member();
                    self.unquoted_key()?;
                    self.set_expect(Expect::Colon);
                }
                _ => return Err(Stop::Fail("expected a key or '}'")),
            },
            Expect::Colon => {
                if byte != b':' {
                    return Err(Stop::Fail("expected ':' after a key"));
                }
                self.pos += 1;
                self.out.push(b':');
                self.set_expect(Expect::Value);
            }
            Expect::Value => {
                if byte == b']' && kind == Kind::Array {
                    return self.close(Kind::Array);
                }
                if kind == Kind::Array {
                    self.begin_member();
                }
                match byte {
                    b'"' | b'\'' => {
                        self.string(byte)?;
                        self.complete_value();
                    }
                    b'{' => self.open(Kind::Object),
                    b'[' => self.open(Kind::Array),
                    b'-' | b'+' | b'.' | b'0'..=b'9' => {
                        self.number()?;
                        self.complete_value();
                    }
                    b if b.is_ascii_alphabetic() || b == b'_' => {
                        self.word()?;
                        self.complete_value();
                    }
                    _ => return Err(Stop::Fail("expected a value")),
                }
            }
            Expect::CommaOrClose => match byte {
                b',' => {
                    self.pos += 1;
                    if let Some(top) = self.stack.last_mut() {
                        top.after_comma = true;
                        top.expect = if kind == Kind::Object { Expect::Key } else { Expect::Value };
                    }
                }
                b'}' if kind == Kind::Object => return self.close(Kind::Object),
                b']' if kind == Kind::Array => return self.close(Kind::Array),
                b if is_value_start(b) => {
                    self.repairs.missing_commas += 1;
                    self.set_expect(if kind == Kind::Object { Expect::Key } else { Expect::Value });
                }
                _ => return Err(Stop::Fail("expected ',' or a closing bracket")),
            },
        }
        Ok(false)
    }

    fn set_expect(&mut self, expect: Expect) {
        if let Some(top) = self.stack.last_mut() {
            top.expect = expect;
        }
    }

    fn open(&mut self, kind: Kind) {
        self.pos += 1;
        self.out.push(if kind == Kind::Object { b'{' } else { b'[' });
        let expect = if kind == Kind::Object { Expect::Key } else { Expect::Value };
        self.stack.push(Frame { kind, expect, members: 0, complete_len: self.out.len(), after_comma: false });
    }

    /// Writes the comma before a new member when one came before it.
    fn begin_member(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            top.after_comma = false;
            if top.members > 0 {
                self.out.push(b',');
            }
        }
    }

    fn complete_value(&mut self) {
        let len = self.out.len();
        if let Some(top) = self.stack.last_mut() {
            top.members += 1;
            top.complete_len = len;
            top.expect = Expect::CommaOrClose;
            top.after_comma = false;
        }
    }

    fn close(&mut self, kind: Kind) -> Result<bool, Stop> {
        self.pos += 1;
        if let Some(frame) = self.stack.pop()
            && frame.after_comma
        {
            self.repairs.trailing_commas += 1;
        }
        self.out.push(if kind == Kind::Object { b'}' } else { b']' });
        if self.stack.is_empty() {
            return Ok(true);
        }
        self.complete_value();
        Ok(false)
    }

    /// The text ended with values open: keep every complete member, drop the incomplete one, and
    /// drop an incomplete object or array outright when it is an element of an array (a list never
    /// holds a partial item), then close what remains.
    fn finish_truncated(&mut self) -> Result<Repaired, Failure> {
        self.repairs.truncated = true;
        let first_in_array = (1..self.stack.len()).find(|&k| self.stack[k - 1].kind == Kind::Array);
        let keep = match first_in_array {
            Some(k) => k - 1,
            None => self.stack.len().saturating_sub(1),
        };
        let Some(frame) = self.stack.get(keep) else {
            return Err(self.fail("the text ended before any value started"));
        };
        if self.out.len() > frame.complete_len || self.stack.len() > keep + 1 {
            self.repairs.dropped_incomplete = true;
        }
        self.out.truncate(frame.complete_len);
        for frame in self.stack[..=keep].iter().rev() {
            self.out.push(if frame.kind == Kind::Object { b'}' } else { b']' });
        }
        self.stack.clear();
        self.finish(self.bytes.len())
    }

    fn skip_space_and_comments(&mut self) -> Result<(), Stop> {
        loop {
            match self.bytes.get(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'/') => match self.bytes.get(self.pos + 1) {
                    Some(b'/') => {
                        self.repairs.comments += 1;
                        while let Some(&b) = self.bytes.get(self.pos) {
                            if b == b'\n' {
                                break;
                            }
                            self.pos += 1;
                        }
                    }
                    Some(b'*') => {
                        self.repairs.comments += 1;
                        let rest = self.bytes.get(self.pos + 2..).unwrap_or_default();
                        match rest.windows(2).position(|w| w == b"*/") {
                            Some(offset) => self.pos += offset + 4,
                            None => {
                                self.pos = self.bytes.len();
                                return Err(Stop::Truncated);
                            }
                        }
                    }
                    None => return Err(Stop::Truncated),
                    Some(_) => return Err(Stop::Fail("expected a comment after '/'")),
                },
                _ => return Ok(()),
            }
        }
    }

    /// A string quoted by `quote` (`"` or `'`), written as a strict JSON string.
    fn string(&mut self, quote: u8) -> Result<(), Stop> {
        if quote == b'\'' {
            self.repairs.single_quoted_strings += 1;
        }
        self.pos += 1;
        self.out.push(b'"');
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(Stop::Truncated);
            };
            match byte {
                b if b == quote => {
                    self.pos += 1;
                    self.out.push(b'"');
                    return Ok(());
                }
                b'\\' => self.escape(quote)?,
                b'"' => {
                    self.pos += 1;
                    self.out.extend_from_slice(b"\\\"");
                }
                b if b < 0x20 => {
                    self.pos += 1;
                    self.repairs.escaped_control_chars += 1;
                    match b {
                        b'\n' => self.out.extend_from_slice(b"\\n"),
                        b'\r' => self.out.extend_from_slice(b"\\r"),
                        b'\t' => self.out.extend_from_slice(b"\\t"),
                        _ => self.out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                    }
                }
                _ => {
                    self.pos += 1;
                    self.out.push(byte);
                }
            }
        }
    }

    /// A backslash inside a string: valid escapes are copied, others are made valid.
    fn escape(&mut self, quote: u8) -> Result<(), Stop> {
        let Some(&next) = self.bytes.get(self.pos + 1) else {
            return Err(Stop::Truncated);
        };
        match next {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.out.extend_from_slice(&[b'\\', next]);
                self.pos += 2;
            }
            b'\'' => {
                if quote != b'\'' {
                    self.repairs.invalid_escapes += 1;
                }
                self.out.push(b'\'');
                self.pos += 2;
            }
            b'\n' => {
                self.repairs.invalid_escapes += 1;
                self.out.extend_from_slice(b"\\n");
                self.pos += 2;
            }
            b'u' => self.unicode_escape()?,
            _ => {
                self.repairs.invalid_escapes += 1;
                self.out.extend_from_slice(b"\\\\");
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// Reads `\uXXXX` at `at`: `Ok(Some(code))`, `Ok(None)` when it is not one, or truncated.
    fn hex4(&self, at: usize) -> Result<Option<u32>, Stop> {
        let Some(rest) = self.bytes.get(at..) else {
            return Err(Stop::Truncated);
        };
        let wanted = [b'\\', b'u'];
        for (i, &b) in rest.iter().take(6).enumerate() {
            let ok = if i < 2 { b == wanted[i] } else { is_hex(b) };
            if !ok {
                return Ok(None);
            }
        }
        if rest.len() < 6 {
            return Err(Stop::Truncated);
        }
        let mut code = 0u32;
        for &b in &rest[2..6] {
            code = code * 16 + char::from(b).to_digit(16).unwrap_or(0);
        }
        Ok(Some(code))
    }

    fn unicode_escape(&mut self) -> Result<(), Stop> {
        let Some(code) = self.hex4(self.pos)? else {
            self.repairs.invalid_escapes += 1;
            self.out.extend_from_slice(b"\\\\");
            self.pos += 1;
            return Ok(());
        };
        let copy_len = if (0xD800..0xDC00).contains(&code) {
            match self.hex4(self.pos + 6) {
                Ok(Some(low)) if (0xDC00..0xE000).contains(&low) => 12,
                Ok(_) => 0,
                Err(stop) => return Err(stop),
            }
        } else if (0xDC00..0xE000).contains(&code) {
            0
        } else {
            6
        };
        if copy_len == 0 {
            self.repairs.invalid_escapes += 1;
            self.out.extend_from_slice(b"\\ufffd");
            self.pos += 6;
        } else {
            let end = self.pos + copy_len;
            self.out.extend_from_slice(self.bytes.get(self.pos..end).unwrap_or_default());
            self.pos = end;
        }
        Ok(())
    }

    fn unquoted_key(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(|&b| is_key_byte(b)) {
            self.pos += 1;
        }
        if self.pos >= self.bytes.len() {
            return Err(Stop::Truncated);
        }
        self.repairs.unquoted_keys += 1;
        self.out.push(b'"');
        self.out.extend_from_slice(self.bytes.get(start..self.pos).unwrap_or_default());
        self.out.push(b'"');
        Ok(())
    }

    /// A bare word in value position: JSON, Python and JavaScript literals.
    fn word(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(|&b| is_word_byte(b)) {
            self.pos += 1;
        }
        let word = self.bytes.get(start..self.pos).unwrap_or_default();
        let (literal, rewritten): (&[u8], bool) = match word {
            b"true" | b"false" | b"null" => (word, false),
            b"True" => (b"true", true),
            b"False" => (b"false", true),
            b"None" | b"NaN" | b"Infinity" | b"undefined" => (b"null", true),
            _ if self.pos >= self.bytes.len() => return Err(Stop::Truncated),
            _ => return Err(Stop::Fail("expected a value, found a bare word")),
        };
        if rewritten {
            self.repairs.python_literals += 1;
        }
        self.out.extend_from_slice(literal);
        Ok(())
    }

    fn number(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        if self.pos >= self.bytes.len() {
            return Err(Stop::Truncated);
        }
        let raw = self.bytes.get(start..self.pos).unwrap_or_default();
        if (raw == b"-" || raw == b"+") && self.bytes.get(self.pos) == Some(&b'I') {
            self.word()?;
            return Ok(());
        }
        let Some(number) = normalize_number(raw) else {
            return Err(Stop::Fail("expected a number"));
        };
        if number.as_slice() != raw {
            self.repairs.normalized_numbers += 1;
        }
        self.out.extend_from_slice(&number);
        Ok(())
    }
}
