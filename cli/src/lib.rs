//! The `prfix` command line as a library: the binary (`main.rs`) parses arguments and calls in here,
//! and tests call the same code.
//!
//! - [`config`]: `~/.config/prfix/config.toml`, the repository's `.prfix.toml`, `PRFIX_*` overrides.
//! - [`credentials`]: tokens kept in the user's config directory (0600).
//! - [`eval`]: `prfix eval`, models and prompts measured on the checkout's own history.
//! - [`git`]: the change set of a checkout, collected with git.
//! - [`report`]: findings as a terminal view, JSON, SARIF 2.1.0, Markdown or GitHub review comments.

#![forbid(unsafe_code)]

pub mod audit;
pub mod ci;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod error;
pub mod eval;
pub mod git;
pub mod interrupt;
pub mod progress;
pub mod report;
pub mod session;
pub mod up;
pub mod witness;
