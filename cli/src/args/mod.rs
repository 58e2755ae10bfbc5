//! The subcommands that have subcommands of their own, each beside the code that runs it: the
//! arguments (clap) and a `run` that calls the library (`prfix_cli`). `main.rs` keeps the
//! top-level command and hands these over.

pub mod admin;
pub mod audit;
pub mod context;
pub mod eval;
pub mod tasks;
