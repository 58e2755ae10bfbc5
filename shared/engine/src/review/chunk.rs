//! The first packer of review parts, kept until the agent uses [`super::plan_parts`]: it budgets
//! the diff pieces but not the fences and headings wrapped around them.

use super::render_hunks;
use crate::diff::FilePatch;
use crate::prompt::Fence;
use crate::tokens;

/// A part of a review small enough for one model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Paths in it.
    pub paths: Vec<String>,
    /// The rendered diff text (each file fenced separately by the prompt).
    pub parts: Vec<(String, String)>,
    /// Estimated tokens of the parts.
    pub tokens: usize,
}

/// Packs files into chunks of at most `budget` estimated tokens, whole files where they fit, a
/// file's hunks split over chunks where it does not, a hunk split by lines as a last resort.
pub fn chunk(files: &[FilePatch], budget: usize) -> Vec<Chunk> {
    let budget = budget.max(200);
    let mut pieces: Vec<(String, String, usize)> = Vec::new();
    for file in files {
        let whole = render_hunks(file);
        let cost = tokens::estimate(&whole);
        if cost <= budget {
            pieces.push((file.path().to_owned(), whole, cost));
            continue;
        }
        for hunk in &file.hunks {
            let single = FilePatch { hunks: vec![hunk.clone()], ..file.clone() };
            let text = render_hunks(&single);
            let cost = tokens::estimate(&text);
            if cost <= budget {
                pieces.push((file.path().to_owned(), text, cost));
                continue;
            }
            let mut current = String::new();
            let mut current_cost = 0;
            for line in text.lines() {
                let line_cost = tokens::estimate(line) + 1;
                if current_cost + line_cost > budget && !current.is_empty() {
                    pieces.push((file.path().to_owned(), std::mem::take(&mut current), current_cost));
                    current_cost = 0;
                }
                // A single line over the budget is cut: the model sees its start.
                let line: String =
                    if line_cost > budget { line.chars().take(budget * 2).collect() } else { line.to_owned() };
                current.push_str(&line);
                current.push('\n');
                current_cost += line_cost.min(budget);
            }
            if !current.is_empty() {
                pieces.push((file.path().to_owned(), current, current_cost));
            }
        }
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    for (path, text, cost) in pieces {
        match chunks.last_mut() {
            Some(last) if last.tokens + cost <= budget => {
                if !last.paths.contains(&path) {
                    last.paths.push(path.clone());
                }
                last.parts.push((path, text));
                last.tokens += cost;
            }
            _ => chunks.push(Chunk { paths: vec![path.clone()], parts: vec![(path, text)], tokens: cost }),
        }
    }
    chunks
}

/// The user message for one chunk.
pub fn chunk_prompt(fence: &Fence, chunk: &Chunk, index: usize, total: usize) -> String {
    let mut prompt = super::prompt::part_heading(index, total);
    for (path, text) in &chunk.parts {
        prompt.push_str(&fence.wrap(&format!("diff of {path}"), text));
        prompt.push('\n');
    }
    prompt.push_str(super::prompt::PART_CLOSING);
    prompt
}
