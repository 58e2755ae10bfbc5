//! Review parts whose prompts fit the model's context by construction.
//!
//! Every piece of a part's user message is costed as the text it becomes: the heading (reserved at
//! its widest, since "part i of n" grows with n), each file's fence and label, hunk headers,
//! numbered lines, and the closing instruction. Rendered lines end with a newline and the estimate
//! restarts after one, so the cost of a part is exactly the sum of its pieces (see
//! [`crate::tokens`]); the part is then assembled and measured as assembled with
//! [`Estimator::prompt_tokens`], the measure the agent's size check uses.
//!
//! Files go whole into a part when they fit; a file too big for a part is split at hunk
//! boundaries; a hunk too big is split at line boundaries, each continuation repeating the hunk
//! header (`@@ … @@ (continued)`) and the last [`OVERLAP_LINES`] whole lines before it; a line too
//! long for a part is cut into pieces (continuations start with `…`), and pieces of a cut line are
//! never repeated as overlap (a fragment of a line is no context, and repeating one would make the
//! boundary between repeated and new text ambiguous). Nothing is dropped or refused for
//! its size: the only error is a context too small for the fixed parts of a prompt.

use super::ReviewError;
use super::prompt::{PART_CLOSING, findings_schema, part_heading};
use super::render::{hunk_header, line_prefix, line_text};
use crate::diff::{FilePatch, Hunk};
use crate::prompt::Fence;
use crate::tokens::{Counter, Estimator, estimate};

/// Lines of a split hunk repeated at the start of its next piece, so a problem that straddles the
/// cut is seen whole in one part.
pub const OVERLAP_LINES: usize = 3;

/// What a part may spend of a model's context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartBudget {
    /// The model's context window, in tokens.
    pub context: usize,
    /// Tokens kept for the answer (`num_predict`).
    pub answer: usize,
    /// Tokens kept free for the estimate's error and the chat template.
    pub margin: usize,
    /// How the model's tokens are counted.
    pub estimator: Estimator,
}

/// One model call of a review: its user message, what it covers and what the whole prompt costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPart {
    /// Position among the parts, 0-based.
    pub index: usize,
    /// How many parts the review has.
    pub total: usize,
    /// The files this part shows (all or some of their hunks), in diff order.
    pub paths: Vec<String>,
    /// The user message, to send after the system prompt.
    pub user_prompt: String,
    /// `estimator.prompt_tokens(&[system, user_prompt], Some(&frame.schema))`; with the budget's
    /// answer and margin it is at most the context.
    pub prompt_tokens: usize,
}

/// What wraps the fenced diff of every part: the heading, the text after the files and the schema
/// sent as `format`. A review's parts have [`PartFrame::review`]; a describe shows its first part
/// in its own frame.
#[derive(Debug, Clone)]
pub struct PartFrame {
    /// The heading of part `index` (0-based) of `total`; it must end with a newline, so the
    /// estimate of the assembled message is the sum of its pieces.
    pub heading: fn(usize, usize) -> String,
    /// The text after the fenced files.
    pub closing: String,
    /// The schema sent as `format` with each part (counted in every part's prompt).
    pub schema: serde_json::Value,
}

impl PartFrame {
    /// A review part: "Review part i of n", the closing instruction and the findings schema.
    pub fn review() -> Self {
        Self { heading: part_heading, closing: PART_CLOSING.to_owned(), schema: findings_schema() }
    }
}

/// Packs `files` into review parts whose assembled prompt (with `system` and the findings schema),
/// answer and margin fit `budget.context`: [`plan_framed`] with [`PartFrame::review`].
pub fn plan_parts(
    files: &[FilePatch],
    fence: &Fence,
    system: &str,
    budget: &PartBudget,
) -> Result<Vec<ReviewPart>, ReviewError> {
    plan_framed(files, fence, system, budget, &PartFrame::review())
}

/// Packs `files` into parts whose user message (the frame's heading, the fenced diffs and its
/// closing), with `system`, the frame's schema, the answer and the margin, fits `budget.context`.
/// Fails only when the system prompt, schema, frame, answer, margin and the smallest piece of diff
/// with its wrapping cannot fit together.
pub fn plan_framed(
    files: &[FilePatch],
    fence: &Fence,
    system: &str,
    budget: &PartBudget,
    frame: &PartFrame,
) -> Result<Vec<ReviewPart>, ReviewError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let schema = &frame.schema;
    let estimator = budget.estimator;
    let fixed = estimator.prompt_tokens(&[system, ""], Some(schema));
    let reserved = fixed.saturating_add(budget.answer).saturating_add(budget.margin);
    let room = estimator.fits(budget.context.saturating_sub(reserved));
    // The heading is reserved at its widest: "part i of n" grows with n, unknown until the end.
    let frame_cost = estimate(&(frame.heading)(usize::MAX - 1, usize::MAX)) + estimate(&frame.closing);
    let mut packer = Packer { fence, room, frame: frame_cost, parts: Vec::new() };
    let smallest = frame_cost + files.iter().map(|file| packer.smallest_piece(file)).max().unwrap_or(0);
    if smallest > room {
        return Err(ReviewError::ContextTooSmall {
            context: budget.context,
            fixed,
            answer: budget.answer,
            margin: budget.margin,
            smallest_piece: estimator.scale(smallest),
        });
    }
    for file in files {
        packer.file(file);
    }
    Ok(assemble(packer.parts, fence, system, frame, estimator))
}

/// A line (or piece of one) as rendered, with its estimate.
struct Item {
    text: String,
    cost: usize,
    /// Bytes of `text` before the line's own text (its number and kind).
    prefix: usize,
    /// False for a piece of a line cut because it was too long for a part.
    whole: bool,
}

impl Item {
    fn new(text: String, prefix: usize) -> Self {
        let cost = estimate(&text);
        Self { text, cost, prefix, whole: true }
    }
}

/// A hunk rendered: its header, its continuation header and its lines.
struct Rendered {
    header: Item,
    continued: Item,
    lines: Vec<Item>,
}

impl Rendered {
    fn of(hunk: &Hunk) -> Self {
        let lines = hunk.lines.iter().map(|line| {
            let prefix = line_prefix(line);
            let at = prefix.len();
            Item::new(format!("{prefix}{}\n", line_text(line)), at)
        });
        Self {
            header: Item::new(hunk_header(hunk, false), 0),
            continued: Item::new(hunk_header(hunk, true), 0),
            lines: lines.collect(),
        }
    }

    fn cost(&self) -> usize {
        self.header.cost + self.lines.iter().map(|line| line.cost).sum::<usize>()
    }

    /// The larger estimate of a hunk's two headers.
    fn header_costs(hunk: &Hunk) -> usize {
        estimate(&hunk_header(hunk, false)).max(estimate(&hunk_header(hunk, true)))
    }
}

/// A part being filled: its fenced segments (path and body) and the estimate of its user message.
struct Draft {
    segments: Vec<(String, String)>,
    cost: usize,
}

struct Packer<'a> {
    fence: &'a Fence,
    /// Estimate a user message may reach.
    room: usize,
    /// Estimate of the heading (at its widest) and the closing instruction.
    frame: usize,
    parts: Vec<Draft>,
}

fn label(path: &str) -> String {
    format!("diff of {path}")
}

/// The widest prefix of a cut line's piece, with one character and the newline.
fn smallest_line_piece() -> usize {
    estimate(&format!("{:>5} + …x\n", u32::MAX))
}

impl Packer<'_> {
    /// Estimate of a file's fence and the blank line after it. The fence's opening line ends with
    /// a newline, so this is exact for any body that ends with one.
    fn wrapper(&self, path: &str) -> usize {
        estimate(&self.fence.wrap(&label(path), ""))
    }

    /// The smallest piece of `file` a part must be able to hold: the fence, a continuation header
    /// and one character of a line.
    fn smallest_piece(&self, file: &FilePatch) -> usize {
        let header = file.hunks.iter().map(Rendered::header_costs).max().unwrap_or(0);
        self.wrapper(file.path()) + header + smallest_line_piece()
    }

    /// Estimate a body for `path` may still take in the current part (0 when there is none).
    fn space(&self, path: &str) -> usize {
        let Some(last) = self.parts.last() else { return 0 };
        let open = last.segments.last().is_some_and(|(p, _)| p == path);
        let wrapper = if open { 0 } else { self.wrapper(path) };
        self.room.saturating_sub(last.cost + wrapper)
    }

    /// Estimate a body for `path` may take in a new part.
    fn empty_space(&self, path: &str) -> usize {
        self.room.saturating_sub(self.frame + self.wrapper(path))
    }

    fn new_part(&mut self) {
        self.parts.push(Draft { segments: Vec::new(), cost: self.frame });
    }

    /// Adds `text` to the current part, in the open fence of `path` or a new one.
    fn push(&mut self, path: &str, text: &str, cost: usize) {
        if self.parts.is_empty() {
            self.new_part();
        }
        let wrapper = self.wrapper(path);
        let Some(last) = self.parts.last_mut() else { return };
        match last.segments.last_mut() {
            Some((open, body)) if open == path => body.push_str(text),
            _ => {
                last.segments.push((path.to_owned(), text.to_owned()));
                last.cost += wrapper;
            }
        }
        last.cost += cost;
    }

    /// Places a whole body: in the current part when it fits there, else in a new one.
    fn place(&mut self, path: &str, text: &str, cost: usize) {
        if cost > self.space(path) {
            self.new_part();
        }
        self.push(path, text, cost);
    }

    fn file(&mut self, file: &FilePatch) {
        let path = file.path();
        let hunks: Vec<Rendered> = file.hunks.iter().map(Rendered::of).collect();
        let cost: usize = hunks.iter().map(Rendered::cost).sum();
        if cost <= self.empty_space(path) {
            let mut text = String::new();
            for hunk in &hunks {
                text.push_str(&hunk.header.text);
                hunk.lines.iter().for_each(|line| text.push_str(&line.text));
            }
            self.place(path, &text, cost);
            return;
        }
        for hunk in hunks {
            let cost = hunk.cost();
            if cost <= self.empty_space(path) {
                let mut text = hunk.header.text.clone();
                hunk.lines.iter().for_each(|line| text.push_str(&line.text));
                self.place(path, &text, cost);
            } else {
                self.split(path, hunk);
            }
        }
    }

    /// Spreads a hunk too big for one part over several, at line boundaries.
    fn split(&mut self, path: &str, hunk: Rendered) {
        let max_item = self.empty_space(path).saturating_sub(hunk.header.cost.max(hunk.continued.cost));
        let items: Vec<Item> = hunk.lines.into_iter().flat_map(|line| cut(line, max_item)).collect();
        let mut start = 0;
        let mut previous_start = 0;
        while start < items.len() {
            let first = start == 0;
            let header = if first { &hunk.header } else { &hunk.continued };
            let mut overlap = 0;
            if first {
                if header.cost + items[start].cost > self.space(path) {
                    self.new_part();
                }
            } else {
                // The previous piece filled its part. Repeat only whole lines that were new in it,
                // so no line is shown more than twice, and fewer when they would leave no room.
                self.new_part();
                overlap = items[previous_start..start].iter().rev().take_while(|i| i.whole).count();
                overlap = overlap.min(OVERLAP_LINES);
                while overlap > 0
                    && header.cost + items[start - overlap..=start].iter().map(|i| i.cost).sum::<usize>()
                        > self.space(path)
                {
                    overlap -= 1;
                }
            }
            let available = self.space(path);
            let mut text = header.text.clone();
            let mut cost = header.cost;
            for item in &items[start - overlap..start] {
                text.push_str(&item.text);
                cost += item.cost;
            }
            let mut end = start;
            // The first line always goes in: it fits by the sizes checked above, and the loop
            // must advance whatever happens.
            while end < items.len() && (end == start || cost + items[end].cost <= available) {
                text.push_str(&items[end].text);
                cost += items[end].cost;
                end += 1;
            }
            self.push(path, &text, cost);
            previous_start = start;
            start = end;
        }
    }
}

/// A rendered line as pieces of at most `max` estimated tokens each (the line itself when it fits):
/// each piece has the line's prefix, continuations start with `…`, no character is lost.
fn cut(line: Item, max: usize) -> Vec<Item> {
    if line.cost <= max {
        return vec![line];
    }
    let (prefix, rest) = line.text.split_at(line.prefix.min(line.text.len()));
    let rest = rest.strip_suffix('\n').unwrap_or(rest);
    let mut pieces = Vec::new();
    let mut chars = rest.chars().peekable();
    while chars.peek().is_some() {
        let mut text = prefix.to_owned();
        if !pieces.is_empty() {
            text.push('…');
        }
        let mut counter = Counter::default();
        counter.push_str(&text);
        let mut taken = false;
        while let Some(&c) = chars.peek() {
            let mut trial = counter;
            trial.push(c);
            // `+ 1` for the newline that ends the piece.
            if taken && trial.total() + 1 > max {
                break;
            }
            counter = trial;
            text.push(c);
            chars.next();
            taken = true;
        }
        text.push('\n');
        pieces.push(Item { cost: counter.total() + 1, text, prefix: line.prefix, whole: false });
    }
    pieces
}

/// The parts' user messages, numbered now that their count is known, and measured as sent.
fn assemble(
    drafts: Vec<Draft>,
    fence: &Fence,
    system: &str,
    frame: &PartFrame,
    estimator: Estimator,
) -> Vec<ReviewPart> {
    let total = drafts.len();
    drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            let mut user_prompt = (frame.heading)(index, total);
            let mut paths: Vec<String> = Vec::new();
            for (path, body) in &draft.segments {
                user_prompt.push_str(&fence.wrap(&label(path), body));
                user_prompt.push('\n');
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
            user_prompt.push_str(&frame.closing);
            let prompt_tokens = estimator.prompt_tokens(&[system, &user_prompt], Some(&frame.schema));
            ReviewPart { index, total, paths, user_prompt, prompt_tokens }
        })
        .collect()
}
