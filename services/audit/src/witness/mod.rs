//! Witnessing (c2sp.org/tlog-witness): a witness remembers the newest checkpoint it cosigned for each
//! log and cosigns a new one only when a consistency proof shows it extends that one, so a log that
//! drops or rewrites events it already showed a witness cannot get that witness's cosignature again.
//!
//! - [`note`]: signed notes read generically (text, signature lines, verifier keys of any type).
//! - [`cosignature`]: `cosignature/v1` signing and verification, and the offline quorum check.
//! - [`protocol`]: the `add-checkpoint` request body.
//! - [`state`]: the witness's state file (written atomically before any cosignature leaves).
//! - [`server`]: the witness (`prfix audit witness`).
//! - [`client`]: the audit service's side: submitting checkpoints and checking what comes back.
//! - [`cosigning`]: when the audit service asks its witnesses, and storing their cosignatures.

pub mod client;
pub mod cosignature;
pub mod cosigning;
pub mod note;
pub mod protocol;
pub mod server;
pub mod state;
