//! Reviews: which files to look at, parts that fit a model's context, the prompt, and turning a
//! model's findings into findings anchored to lines that exist in the diff.
//!
//! In the order a review runs: [`select`] the files, [`plan_parts`] packs them into parts whose
//! assembled prompts fit the model's context, each part is sent with [`system_prompt`] and
//! [`findings_schema`], [`parse_findings`] reads an answer, [`anchor`] ties its findings to diff
//! lines and [`finalize`] deduplicates and orders them; [`suggestions`] checks what a finding's
//! suggestion would do to the file.

mod anchor;
mod findings;
mod plan;
mod prompt;
mod render;
mod select;
pub mod suggestions;

pub use anchor::{Anchored, DiffLines, Finding, anchor, finalize};
pub use findings::{RawFinding, parse_findings};
pub use plan::{OVERLAP_LINES, PartBudget, PartFrame, ReviewPart, plan_framed, plan_parts};
pub use prompt::{PROMPT_VERSIONS, findings_format, findings_schema, system_prompt, system_prompt_version};
pub use render::render_hunks;
pub use select::{DEFAULT_IGNORE_GLOBS, Selection, select};
pub use suggestions::{SuggestionCheck, apply_suggestion, check_suggestion};

/// How much a finding matters; numbers grow with severity (as in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info = 1,
    /// Style, naming, small improvements.
    Minor = 2,
    /// A bug or risk to fix before merging.
    Major = 3,
    /// Security hole, data loss, crash.
    Critical = 4,
}

impl Severity {
    /// Reads the words models use (`high`, `warning`, `nit`...); `None` for anything else.
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" | "blocker" | "severe" | "fatal" => Some(Self::Critical),
            "major" | "high" | "error" | "bug" => Some(Self::Major),
            "minor" | "medium" | "moderate" | "warning" | "warn" | "low" => Some(Self::Minor),
            "info" | "information" | "informational" | "nit" | "nitpick" | "note" | "suggestion" | "trivial" => {
                Some(Self::Info)
            }
            _ => None,
        }
    }
}

/// Why a review input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// An ignore glob does not parse.
    #[error("ignore glob `{glob}` is not valid: {reason}")]
    Glob {
        /// The glob.
        glob: String,
        /// What is wrong.
        reason: String,
    },
    /// The model's context cannot hold even the smallest part: the system prompt, the answer
    /// schema, the answer, the margin and one piece of diff with its wrapping.
    #[error(
        "a review part needs at least {needed} tokens but the model's context is {context}: {fixed} for the \
         system prompt and answer schema, {answer} for the answer, {margin} of margin and {smallest_piece} for the \
         smallest piece of diff; use a model with a larger context (or raise its num_ctx) or lower the answer \
         budget (max_output_tokens)",
        needed = fixed + answer + margin + smallest_piece
    )]
    ContextTooSmall {
        /// The model's context, in tokens.
        context: usize,
        /// Tokens of the system prompt and schema with their message overhead.
        fixed: usize,
        /// Tokens kept for the answer.
        answer: usize,
        /// Tokens kept as margin.
        margin: usize,
        /// Tokens of the smallest user message a part can have.
        smallest_piece: usize,
    },
    /// The model's answer holds no findings list.
    #[error("the model's answer holds no findings list: {0}")]
    NoFindings(String),
}
