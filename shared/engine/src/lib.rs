//! The pure parts of the agent's engine: nothing here touches the network, a database or a clock,
//! so each piece is tested alone (unit, property and real-`git` tests).
//!
//! - [`diff`]: parse unified diffs as git writes them, write them, and apply them in memory.
//! - [`edit`]: SEARCH/REPLACE blocks and whole-file edits from a model, applied by exact then
//!   looser matches.
//! - [`redact`]: secrets found and replaced by placeholders before text reaches a model.
//! - [`json`]: tolerant parsing of JSON a small model wrapped in prose, fences or cut short.
//! - [`review`], [`describe`], [`fix`]: prompts and the handling of answers for each task kind;
//!   [`prompt`] fences untrusted text, [`tokens`] estimates prompt sizes, [`paths`] checks paths.

#![forbid(unsafe_code)]

pub mod describe;
pub mod diff;
pub mod edit;
pub mod fix;
pub mod json;
pub mod outline;
pub mod paths;
pub mod prompt;
pub mod redact;
pub mod review;
pub mod tokens;
