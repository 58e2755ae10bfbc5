//! The results of an evaluation, one JSON file per commit and model (and prompt variant), so an
//! interrupted or time-limited run goes on where it stopped and a finished commit never asks a
//! model again. Files are written whole (a temporary file renamed over), so a Ctrl-C leaves either
//! the old result or the new one.
//!
//! Layout, under the cache directory (default `<git dir>/prfix/eval`):
//! `review/<model>/<variant>-<hash of its instructions>/<sha>.json` and `fix/<model>/<sha>.json`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::EvalError;
use super::score::Spot;

/// What a review or a fix cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Model calls the task made.
    pub model_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Wall time, in milliseconds.
    pub wall_ms: u64,
}

impl Cost {
    /// Adds `other`.
    pub fn add(&mut self, other: Cost) {
        self.model_calls += other.model_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.output_tokens += other.output_tokens;
        self.wall_ms += other.wall_ms;
    }
}

/// The review of one introducing commit by one model and prompt variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewEntry {
    /// The reviewed commit.
    pub commit: String,
    /// The model (empty: the agent's default).
    pub model: String,
    /// The prompt variant.
    pub variant: String,
    /// The run that made it.
    pub run_id: String,
    /// The review task (empty when it was refused before one was made).
    pub task_id: String,
    /// The error, when the review failed.
    pub error: Option<String>,
    /// The findings, when it succeeded.
    pub findings: Vec<Spot>,
    /// What it cost.
    pub cost: Cost,
}

/// How a fix attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixOutcome {
    /// The test passes afterwards and was not edited.
    Fixed,
    /// The test still fails after the rounds.
    StillFailing,
    /// The patch changed the test: not a fix, whatever the check says.
    EditedTest,
    /// The test already passed before the fix: it is no failing check, and the commit is left out.
    PassedBefore,
    /// `prfix fix` stopped with an error (a refused or failed task, a patch that does not apply).
    Failed,
}

/// The fix of one fix commit by one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixEntry {
    /// The fix commit whose test is the check.
    pub commit: String,
    /// The model (empty: the agent's default).
    pub model: String,
    /// The run that made it.
    pub run_id: String,
    /// How it ended.
    pub outcome: FixOutcome,
    /// The test files taken from the fix commit.
    pub tests: Vec<String>,
    /// What `prfix fix` said last (its error or its verdict).
    pub detail: String,
    /// What it cost.
    pub cost: Cost,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// A name as a directory name: `A-Za-z0-9._-` kept, anything else `_`; `default` when empty.
pub fn slug(name: &str) -> String {
    if name.is_empty() {
        return "default".to_owned();
    }
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect()
}

/// The first 8 hex digits of the SHA-256 of `text`.
pub fn hash8(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// The cache in `dir`, created when missing.
    pub fn open(dir: &Path) -> Result<Self, EvalError> {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::Cache(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// Where it is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a review.
    pub fn review_path(&self, model: &str, variant: &str, instructions: &str, sha: &str) -> PathBuf {
        self.dir
            .join("review")
            .join(slug(model))
            .join(format!("{}-{}", slug(variant), hash8(instructions)))
            .join(format!("{sha}.json"))
    }

    /// The file of a fix.
    pub fn fix_path(&self, model: &str, sha: &str) -> PathBuf {
        self.dir.join("fix").join(slug(model)).join(format!("{sha}.json"))
    }

    /// The entry at `path`; `None` when there is none. An unreadable entry is an error naming it.
    pub fn load<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, EvalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EvalError::Cache(format!("cannot read {}: {e}", path.display()))),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            EvalError::Cache(format!(
                "{} is not a result prfix wrote ({e}); remove it to redo that case",
                path.display()
            ))
        })
    }

    /// Writes `value` at `path` whole: a temporary file renamed over it.
    pub fn store<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), EvalError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| EvalError::Cache(format!("cannot {what} {}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("create the directory of", &e))?;
        }
        let text = serde_json::to_string_pretty(value).map_err(|e| fail("encode", &e))?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, text).map_err(|e| fail("write", &e))?;
        std::fs::rename(&temporary, path).map_err(|e| fail("write", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_corrupt_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(&dir.path().join("c")).expect("cache");
        let path = cache.review_path("qwen2.5-coder:14b", "default", "", "abc");
        assert!(path.ends_with("review/qwen2.5-coder_14b/default-e3b0c442/abc.json"), "{}", path.display());
        assert_eq!(cache.load::<ReviewEntry>(&path).expect("no entry"), None);
        let entry = ReviewEntry {
            commit: "abc".into(),
            model: "m".into(),
            variant: "default".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            error: None,
            findings: Vec::new(),
            cost: Cost { model_calls: 1, prompt_tokens: 2, output_tokens: 3, wall_ms: 4 },
        };
        cache.store(&path, &entry).expect("stored");
        assert_eq!(cache.load::<ReviewEntry>(&path).expect("read"), Some(entry));
        std::fs::write(&path, "{").expect("corrupt it");
        let error = cache.load::<ReviewEntry>(&path).expect_err("corrupt");
        assert!(error.to_string().contains("abc.json") && error.to_string().contains("remove it"), "{error}");
    }
}
