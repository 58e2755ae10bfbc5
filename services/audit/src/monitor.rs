//! A monitor's memory: the newest checkpoint it verified, kept in a state file, so that a later
//! export that lost events (a truncated log) or rewrote them (a fork) is caught even when the
//! checkpoints that covered them were deleted too.
//!
//! The file is JSON, written to a temporary file beside it and renamed into place (a crash leaves
//! the old state or the new one, never half of one), and advanced only after a verification that
//! found nothing wrong. A file that cannot be read or parsed is an error, never a fresh start: a
//! fresh start would accept a truncated log.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::VerifierKey;
use crate::export::{ExportLine, Report};
use crate::verify::{TrustedCheckpoint, VerifyOptions, verify_with};

/// What the monitor remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    /// The log's origin line.
    pub origin: String,
    /// Events the checkpoint covers.
    pub tree_size: u64,
    /// Its Merkle root, hex.
    pub root_hash: String,
    /// The checkpoint as signed (so the state can be checked against the key again).
    pub signed_note: String,
    /// When the monitor verified it (RFC 3339, UTC).
    pub verified_at: String,
}

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but cannot be read.
    #[error("monitor state {path}: cannot be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a state this monitor wrote, or does not hold together.
    #[error(
        "monitor state {path} is corrupt ({why}); it is never reset by itself: restore it from a copy, or remove it deliberately to start monitoring afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The new state could not be written.
    #[error("monitor state {path}: cannot be written: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl MonitorState {
    /// Reads the state at `path`; `None` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<Self>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: path.to_owned(), source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt { path: path.to_owned(), why: e.to_string() })
    }

    /// The remembered checkpoint, after checking that one of `keys` signed it and that it says
    /// what the state says (a state edited by hand is refused).
    pub fn trusted(&self, path: &Path, keys: &[VerifierKey]) -> Result<TrustedCheckpoint, StateError> {
        let corrupt = |why: String| StateError::Corrupt { path: path.to_owned(), why };
        let described_as = format!("when last verified ({})", self.verified_at);
        let trusted = TrustedCheckpoint::from_note(&self.signed_note, keys, described_as)
            .map_err(|why| corrupt(format!("its checkpoint: {why}")))?;
        if trusted.origin != self.origin
            || trusted.size != self.tree_size
            || hex::encode(trusted.root) != self.root_hash.to_ascii_lowercase()
        {
            return Err(corrupt("its origin, size or root differ from its signed checkpoint".to_owned()));
        }
        Ok(trusted)
    }

    /// Writes the state atomically: a temporary file in the same directory, flushed to disk, then
    /// renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let failed = |source| StateError::Write { path: path.to_owned(), source };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
        let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(|e| failed(std::io::Error::other(e)))?;
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(failed(e));
        }
        // The rename is durable once the directory is; not every platform lets a directory be
        // opened for that, and the new state is in place either way.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// What one monitoring run found and what it remembers now.
#[derive(Debug)]
pub struct Monitored {
    /// The verification, including the comparison with the remembered checkpoint.
    pub report: Report,
    /// The state before the run.
    pub before: Option<MonitorState>,
    /// The state written by this run (`None`: left as it was).
    pub advanced: Option<MonitorState>,
}

/// Verifies `lines` against the checkpoint remembered in `state_file` (if any) and, when nothing
/// is wrong, remembers the export's newest checkpoint there. `options.trusted` is set from the
/// state; the rest of `options` (keys, and what else a verification takes) is used as given.
pub fn monitor(
    lines: &[ExportLine],
    options: &VerifyOptions,
    state_file: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Monitored, StateError> {
    monitor_with(options, state_file, now, |options| Ok(verify_with(lines, options)))
}

/// [`monitor`] of an export that `verify` reads itself (a file streamed through a
/// [`crate::verifier::Verifier`], never held whole) with the options it is given.
pub fn monitor_with<E: From<StateError>>(
    options: &VerifyOptions,
    state_file: &Path,
    now: chrono::DateTime<chrono::Utc>,
    verify: impl FnOnce(&VerifyOptions) -> Result<Report, E>,
) -> Result<Monitored, E> {
    let before = MonitorState::load(state_file)?;
    let trusted = before.as_ref().map(|s| s.trusted(state_file, &options.keys)).transpose()?;
    let report = verify(&VerifyOptions { trusted, ..options.clone() })?;
    let remembered = before.as_ref().map_or(0, |s| s.tree_size);
    let advanced = match &report.newest {
        // Never backwards: a newest checkpoint below the remembered size leaves the state alone.
        Some(newest) if report.ok() && newest.size >= remembered && newest.size > 0 => {
            let state = MonitorState {
                origin: newest.origin.clone(),
                tree_size: newest.size,
                root_hash: hex::encode(newest.root),
                signed_note: newest.signed_note.clone(),
                verified_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            state.save(state_file)?;
            Some(state)
        }
        _ => None,
    };
    Ok(Monitored { report, before, advanced })
}
