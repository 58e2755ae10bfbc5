//! The two configuration files as TOML, and TOML's errors turned into one line that names the key
//! and the file.

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// `config.toml` in the user's configuration directory: everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GlobalFile {
    pub gateway: Option<String>,
    pub output: Option<OutputFile>,
    pub review: Option<ReviewFile>,
    pub fix: Option<FixFile>,
    pub eval: Option<EvalFile>,
}

/// `.prfix.toml` at the top of a repository: how to review and fix it, never where to send it
/// (a cloned repository must not redirect the user's credentials to another gateway).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepoFile {
    pub review: Option<ReviewFile>,
    pub fix: Option<FixFile>,
    pub eval: Option<EvalFile>,
}

/// `[output]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputFile {
    pub format: Option<String>,
    pub color: Option<String>,
}

/// `[review]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewFile {
    pub ignore: Option<Vec<String>>,
    pub model: Option<String>,
    pub min_severity: Option<String>,
    pub fail_on: Option<String>,
    pub instructions: Option<String>,
    pub max_findings: Option<u32>,
}

/// `[fix]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FixFile {
    pub check: Option<String>,
    pub max_rounds: Option<u32>,
    pub planner_model: Option<String>,
    pub coder_model: Option<String>,
    pub allow_new_files: Option<bool>,
}

/// `[eval]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvalFile {
    pub fix_patterns: Option<Vec<String>>,
    pub distance: Option<u32>,
    pub prompts: Option<std::collections::BTreeMap<String, String>>,
    pub test_check: Option<String>,
}

/// Reads and parses the file at `path`; `None` when it does not exist.
pub(super) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
    };
    parse(&text, path).map(Some)
}

/// Parses `text`, the content of `path`.
pub(super) fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let document = DeTable::parse(text).map_err(|error| syntax(text, path, &error))?;
    toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let Some(key) = key_at(document.get_ref(), "", &span) else {
            return syntax(text, path, &error);
        };
        let message = one_line(error.message());
        if let Some(names) = message.strip_prefix("unknown field ") {
            let mut quoted = names.split('`').skip(1).step_by(2);
            quoted.next();
            let known: Vec<&str> = quoted.collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            ConfigError::UnknownKey { key, path: path.to_path_buf(), known }
        } else {
            ConfigError::InvalidValue { key, path: path.to_path_buf(), message: plain_types(&message) }
        }
    })
}

/// A syntax error (or one that names no key) with its line and column.
fn syntax(text: &str, path: &Path, error: &toml::de::Error) -> ConfigError {
    let start = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    ConfigError::Syntax { path: path.to_path_buf(), line, column, message: one_line(error.message()) }
}

/// The dotted path of the key at `span` (an unknown key) or of the value holding `span` (a value of
/// the wrong type), searched from `table` whose own path is `prefix`.
fn key_at(table: &DeTable<'_>, prefix: &str, span: &std::ops::Range<usize>) -> Option<String> {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        if key.span() == *span {
            return Some(path);
        }
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(found) = key_at(inner, &path, span)
        {
            return Some(found);
        }
        let holder = value.span();
        if holder.start <= span.start && span.end <= holder.end && !matches!(value.get_ref(), DeValue::Table(_)) {
            return Some(path);
        }
    }
    None
}

/// serde's type names in words a user of a TOML file knows.
fn plain_types(message: &str) -> String {
    let message = match message.find("expected struct ") {
        Some(at) => format!("{}expected a table", &message[..at]),
        None => message.to_owned(),
    };
    message
        .replace("expected u32", "expected a whole number of 0 or more")
        .replace("expected a sequence", "expected an array")
        .replace("expected a boolean", "expected true or false")
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
