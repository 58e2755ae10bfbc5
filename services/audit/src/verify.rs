//! Verifying an export with only the checkpoint key, and against a checkpoint remembered from an
//! earlier verification (a monitor's state, or a caller's trusted checkpoint).
//!
//! A log that was tampered with is read as it is: every missing or foreign sequence number is
//! named (ranges collapsed), the first event whose hashes break is named with the count of later
//! events that no longer chain from it (one problem, not one per event), and each checkpoint that
//! no longer matches says so once.

use crate::checkpoint::VerifierKey;
use crate::export::{ExportLine, Report};
use crate::merkle::Hash;
pub use crate::verifier::{CheckedEvent, Verifier};

/// What a verification trusts and compares against. Witness cosignatures (`verify --witness`) are
/// to be added here as another field, checked after the rest.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys trusted to have signed checkpoints (several after a key rotation); each checkpoint must
    /// verify with one.
    pub keys: Vec<VerifierKey>,
    /// A checkpoint verified before (remembered by a monitor, or given by a caller): the log must
    /// still hold every event it covered and reproduce its root.
    pub trusted: Option<TrustedCheckpoint>,
}

/// A checkpoint known to have been good once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// Events it covered.
    pub size: u64,
    /// Its Merkle root.
    pub root: Hash,
    /// How problems name it, after "the log was at N ": e.g. "when last verified (2026-…)".
    pub described_as: String,
}

impl TrustedCheckpoint {
    /// The checkpoint of a signed note that one of `keys` signed; `described_as` names it in
    /// problems.
    pub fn from_note(note: &str, keys: &[VerifierKey], described_as: String) -> Result<Self, String> {
        let (origin, size, root) = verify_note(note, keys)?;
        Ok(Self { origin, size, root, described_as })
    }
}

/// The newest checkpoint an export carries whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// Origin line.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Merkle root.
    pub root: Hash,
    /// The signed note as exported.
    pub signed_note: String,
}

/// Verifies an export with `keys` only (see [`verify_with`]).
pub fn verify(lines: &[ExportLine], keys: &[VerifierKey]) -> Report {
    verify_with(lines, &VerifyOptions { keys: keys.to_vec(), trusted: None })
}

/// Verifies an export: each event's leaf hash against its content, the chain, the sequence (every
/// missing or foreign number, ranges collapsed), each checkpoint's signature and root over the
/// recomputed leaves, consistency between checkpoints, that every event is covered, and, with
/// `options.trusted`, that the log still extends the trusted checkpoint. The lines go through the
/// same one-pass [`Verifier`] as an export read from a file, with the checkpoints' sizes asked for
/// before the events are read (a checkpoint out of place in `lines` is still checked).
pub fn verify_with(lines: &[ExportLine], options: &VerifyOptions) -> Report {
    let sizes = lines.iter().filter_map(|line| match line {
        ExportLine::Checkpoint { signed_note } => note_size(signed_note),
        ExportLine::Event(_) => None,
    });
    let mut verifier = Verifier::wanting(options.clone(), sizes);
    for line in lines {
        verifier.push(line);
    }
    verifier.finish()
}

/// The tree size a signed note claims (its second line), before its signature is checked: a size
/// asked for in vain costs nothing.
pub fn note_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.trim().parse().ok()
}

/// Sorted, distinct numbers as inclusive runs.
pub fn ranges(numbers: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, to)) if *to + 1 == n => *to = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// `17` or `30..34`.
pub fn range_text(from: i64, to: i64) -> String {
    if from == to { from.to_string() } else { format!("{from}..{to}") }
}

/// The note's origin, size and root when one of `keys` signed it; else why not (a malformed note is
/// said as such, a signature by none of the keys names them all).
pub fn verify_note(note: &str, keys: &[VerifierKey]) -> Result<(String, u64, Hash), String> {
    let mut first_error = None;
    for key in keys {
        match key.verify(note) {
            Ok(found) => return Ok(found),
            Err(e @ crate::checkpoint::NoteError::Malformed(_)) => return Err(e.to_string()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (keys.len(), first_error) {
        (1, Some(e)) => Err(e.to_string()),
        _ => Err(format!(
            "checkpoint signature does not verify with any of the keys {}",
            keys.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
