//! What small models wrap their JSON in: `<think>` reasoning blocks and Markdown code fences.

use std::sync::LazyLock;

use regex::Regex;

/// A closed `<think>…</think>` (or `<thinking>…</thinking>`) block.
static CLOSED_THINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<think(?:ing)?>.*?</think(?:ing)?>").expect("the think-block pattern is a valid regex")
});

/// A closing tag left without its opening one (the chat template opened the block).
static CLOSE_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</think(?:ing)?>").expect("the closing-tag pattern is a valid regex"));

/// An opening tag never closed (the answer was cut while the model was still reasoning).
static OPEN_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<think(?:ing)?>").expect("the opening-tag pattern is a valid regex"));

/// The text without its reasoning blocks, or `None` when it has none.
pub(super) fn strip_think(text: &str) -> Option<String> {
    let closed = CLOSED_THINK.replace_all(text, "");
    let mut rest: &str = &closed;
    if let Some(last_close) = CLOSE_TAG.find_iter(rest).last() {
        rest = rest.get(last_close.end()..).unwrap_or_default();
    }
    if let Some(open) = OPEN_TAG.find(rest) {
        rest = rest.get(..open.start()).unwrap_or_default();
    }
    (rest.len() != text.len()).then(|| rest.to_owned())
}

/// One fenced code block of a Markdown answer, as byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fence {
    /// Where the content starts (after the opening fence and its language tag).
    pub start: usize,
    /// Where the content ends (at the next fence, or the end of the text when none follows).
    pub end: usize,
    /// Text before the opening fence is not blank.
    pub prose_before: bool,
}

/// The fence marker.
pub(super) const MARK: &str = "```";

/// The fenced blocks of `text` in order: an opening fence starts a line (after blanks), the block
/// ends at the next fence anywhere, and an unclosed last block runs to the end of the text.
pub(super) fn fences(text: &str) -> Vec<Fence> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(open) = text.get(from..).and_then(|rest| rest.find(MARK)).map(|at| from + at) {
        let line_start = text.get(..open).and_then(|before| before.rfind('\n')).map_or(0, |at| at + 1);
        if !text.get(line_start..open).unwrap_or_default().trim().is_empty() {
            // Not at the start of a line, so not an opening fence (a string may hold backticks).
            from = open + MARK.len();
            continue;
        }
        let after_mark = open + MARK.len();
        let tag_len = text
            .get(after_mark..)
            .unwrap_or_default()
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'))
            .count();
        let start = after_mark + tag_len;
        let (end, next) = match text.get(start..).and_then(|rest| rest.find(MARK)) {
            Some(at) => (start + at, start + at + MARK.len()),
            None => (text.len(), text.len()),
        };
        let prose_before = !text.get(..open).unwrap_or_default().trim().is_empty();
        blocks.push(Fence { start, end, prose_before });
        from = next;
        if next >= text.len() {
            break;
        }
    }
    blocks
}
