//! Feature flags for the prfix services: kill switches (`agent.fix` off refuses new fixes) and
//! variants (`agent.model.reasoning` chooses the model for 10% of repositories), evaluated for a
//! [`Context`] (user, roles, repository, forge, model).
//!
//! Without Unleash, flags come from the `[flags]` settings (file and environment), re-read on
//! SIGHUP. With Unleash (`flags.unleash_url`), they are fetched with the Unleash client protocol and
//! evaluated here with the standard strategies, checked against the client specification's tests;
//! the last flags fetched are kept on disk so a restart during an outage serves them, and the
//! settings serve when nothing was ever fetched.

#![forbid(unsafe_code)]

pub mod constraints;
pub mod context;
pub mod evaluate;
mod flags;
pub mod known;
pub mod model;
pub mod murmur;
mod refresh;
pub mod settings;
pub mod unleash;
pub mod variants;

pub use context::Context;
pub use flags::{ChangeSink, Evaluation, FlagChange, Flags, Source};
pub use refresh::Reload;
pub use settings::{FlagSettings, FlagValue, OnDisable};
