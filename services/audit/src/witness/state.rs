//! The witness's memory: for each log (by origin), the size and root of the newest checkpoint it
//! cosigned, and that checkpoint with its cosignature. Kept in one JSON file, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory), so a crash
//! leaves either the old state or the new one, never a mix and never nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the witness last cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Tree size of the newest cosigned checkpoint.
    pub size: u64,
    /// Its root hash, base64.
    pub root: String,
    /// The checkpoint with the log's signature and this witness's cosignature (served to monitors).
    pub checkpoint: String,
}

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessState {
    /// By origin line.
    pub logs: BTreeMap<String, LogState>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("witness state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a witness state.
    #[error("witness state {path} is not valid: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl WitnessState {
    /// Reads the state at `path`; a missing file is the empty state (a new witness).
    pub fn load(path: &Path) -> Result<Self, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StateError::Invalid { path: path.to_owned(), source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StateError::Io { path: path.to_owned(), source }),
        }
    }

    /// Replaces the state at `path` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_reload_and_a_missing_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("prfix-witness-state-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.json");
        assert_eq!(WitnessState::load(&path).expect("missing is empty"), WitnessState::default());
        let mut state = WitnessState::default();
        state.logs.insert("o".into(), LogState { size: 3, root: "cm9vdA==".into(), checkpoint: "c".into() });
        state.save(&path).expect("saves");
        state.logs.get_mut("o").expect("o").size = 4;
        state.save(&path).expect("saves again");
        assert_eq!(WitnessState::load(&path).expect("loads"), state);
        let leftovers = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(WitnessState::load(&path), Err(StateError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
