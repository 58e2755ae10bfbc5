//! The configuration of the command line, in layers, each overriding the one before:
//!
//! 1. defaults;
//! 2. the user's `config.toml`, in `$PRFIX_CONFIG_DIR`, else `$XDG_CONFIG_HOME/prfix`, else
//!    `$HOME/.config/prfix` ([`config_dir`]): `gateway`, `[output]`, `[review]`, `[fix]`, `[eval]`;
//! 3. the repository's `.prfix.toml` at the top of the checkout: `[review]`, `[fix]` and `[eval]` (a
//!    repository cannot choose the gateway your credentials are sent to);
//! 4. the environment:
//!    - `PRFIX_GATEWAY`: `gateway`;
//!    - `PRFIX_FORMAT`: `output.format`;
//!    - `PRFIX_COLOR`: `output.color`;
//!    - `PRFIX_REVIEW_MODEL`: `review.model`;
//!    - `PRFIX_FAIL_ON`: `review.fail_on`;
//!    - `PRFIX_FIX_CHECK`: `fix.check`.
//!
//!    An empty variable counts as unset. Command-line flags, applied by the caller, come last.
//!
//! The gateway a command talks to is [`resolve_gateway`]'s: `--gateway` or `PRFIX_GATEWAY` when
//! given, else the gateway of the saved login (of the `--profile` in use), else `gateway` of
//! `config.toml`, else [`DEFAULT_GATEWAY`].
//!
//! A later layer replaces a value (lists included) rather than merging with it. An unknown key, a
//! value of the wrong type or an unknown choice is an error naming the key and the file.
//!
//! ```toml
//! # ~/.config/prfix/config.toml
//! gateway = "https://prfix.example.com"
//! [output]
//! format = "terminal"   # terminal | json | sarif | markdown | github
//! color = "auto"        # auto | always | never
//!
//! # <repository>/.prfix.toml
//! [review]
//! ignore = ["vendor/**", "*.lock"]
//! model = "qwen2.5-coder:7b"
//! min_severity = "minor"   # info | minor | major | critical
//! fail_on = "major"        # info | minor | major | critical | none
//! instructions = "We use anyhow for errors in binaries."
//! max_findings = 30
//! [fix]
//! check = "cargo test"
//! max_rounds = 3
//! planner_model = "qwen2.5-coder:14b"
//! coder_model = "qwen2.5-coder:7b"
//! allow_new_files = false
//! [eval]
//! fix_patterns = ["\\bfix", "closes #\\d+"]   # regular expressions, case-insensitive
//! distance = 3            # lines between a finding and a fixed line that still count as a hit
//! test_check = "python3 -m pytest -q {tests}"
//! [eval.prompts]
//! strict = "Report only defects that change behaviour."
//! ```

mod file;
mod layer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::report::Format;
use file::{GlobalFile, RepoFile};

/// The gateway used when nothing else says: the one `prfix up` starts.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8080";

/// The severities, least severe first, as `min_severity` and `fail_on` take them.
pub const SEVERITIES: [&str; 4] = ["info", "minor", "major", "critical"];

/// What went wrong reading the configuration; each message is one line naming the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `PRFIX_CONFIG_DIR`, `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find the configuration directory: set HOME or PRFIX_CONFIG_DIR")]
    NoConfigDir,
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration file is not valid TOML.
    #[error("invalid TOML in {} at line {line}, column {column}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A configuration file has a key prfix does not know (often a typo).
    #[error("unknown key `{key}` in {} (known: {known})", path.display())]
    UnknownKey {
        /// The dotted key, e.g. `review.modle`.
        key: String,
        /// The file.
        path: PathBuf,
        /// The keys allowed where it is, comma-separated.
        known: String,
    },
    /// A key has a value of the wrong type or not among its choices.
    #[error("invalid value for `{key}` in {}: {message}", path.display())]
    InvalidValue {
        /// The dotted key, e.g. `output.format`.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong and what is expected.
        message: String,
    },
    /// An environment variable has a value prfix cannot use.
    #[error("invalid {var}=`{value}`: expected {expected}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What it may be.
        expected: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The gateway's base URL (`gateway`, `PRFIX_GATEWAY`).
    pub gateway: String,
    /// How reports are printed (`[output]`).
    pub output: Output,
    /// How changes are reviewed (`[review]`).
    pub review: ReviewConfig,
    /// How fixes are made (`[fix]`).
    pub fix: FixConfig,
    /// How `prfix eval` mines and scores the history (`[eval]`).
    pub eval: EvalConfig,
    /// The configuration files that were read, in the order they were applied.
    pub sources: Vec<PathBuf>,
}

/// `[output]`: how reports are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The report format (`format`, `PRFIX_FORMAT`); default terminal.
    pub format: Format,
    /// When to use color (`color`, `PRFIX_COLOR`); default auto.
    pub color: ColorChoice,
}

/// When reports use color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// When printing to a terminal.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// The name as written in the configuration: `auto`, `always` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    /// The choice called `name`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Self::Auto, Self::Always, Self::Never].into_iter().find(|choice| choice.as_str() == name)
    }
}

/// `[review]`: how changes are reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewConfig {
    /// Globs of paths left out of reviews (`ignore`).
    pub ignore: Vec<String>,
    /// The reviewing model (`model`, `PRFIX_REVIEW_MODEL`); `None`: the agent's default.
    pub model: Option<String>,
    /// The least severe findings reported (`min_severity`): one of [`SEVERITIES`]; `None`: all.
    pub min_severity: Option<String>,
    /// The severity from which `prfix review` exits with failure (`fail_on`, `PRFIX_FAIL_ON`): one of
    /// [`SEVERITIES`] or `none`; `None`: the command's default.
    pub fail_on: Option<String>,
    /// Extra instructions for the reviewer (`instructions`).
    pub instructions: Option<String>,
    /// The most findings reported (`max_findings`); `None`: the agent's limit.
    pub max_findings: Option<u32>,
}

/// `[fix]`: how fixes are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixConfig {
    /// The command that checks a fix, run by the shell at the top of the checkout (`check`,
    /// `PRFIX_FIX_CHECK`); `None`: no check.
    pub check: Option<String>,
    /// Rounds of fix and check before giving up (`max_rounds`, at least 1); default 3.
    pub max_rounds: u32,
    /// The model that plans fixes (`planner_model`); `None`: the agent's default.
    pub planner_model: Option<String>,
    /// The model that writes fixes (`coder_model`); `None`: the agent's default.
    pub coder_model: Option<String>,
    /// Whether a fix may create files (`allow_new_files`); default false.
    pub allow_new_files: bool,
}

/// `[eval]`: how `prfix eval` finds bug fixes and scores reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalConfig {
    /// Regular expressions (case-insensitive) a commit message must match to count as a bug fix
    /// (`fix_patterns`); default [`DEFAULT_FIX_PATTERNS`].
    pub fix_patterns: Vec<String>,
    /// How many lines away from a line the fix changed a finding still counts as a hit
    /// (`distance`); default 3.
    pub distance: u32,
    /// Prompt variants by name: extra instructions for the reviewer (`prompts`); `default` is the
    /// `[review] instructions`.
    pub prompts: std::collections::BTreeMap<String, String>,
    /// The command that runs a fix commit's tests for `prfix eval fix`, `{tests}` standing for the
    /// test files (`test_check`); `None`: `--check` must say.
    pub test_check: Option<String>,
}

/// Messages of bug fixes: a fix word, a bug word, or an issue closed by a keyword.
pub const DEFAULT_FIX_PATTERNS: [&str; 3] = [
    r"\b(fix|fixes|fixed|fixing|bugfix|hotfix)\b",
    r"\b(bug|regression|defect|crash|panic)\b",
    r"\b(close[sd]?|resolve[sd]?)\s+(#|[a-z][a-z0-9_.-]*/[a-z0-9_.-]+#|[a-z][a-z0-9]+-)\d+",
];

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            fix_patterns: DEFAULT_FIX_PATTERNS.iter().map(|p| (*p).to_owned()).collect(),
            distance: 3,
            prompts: std::collections::BTreeMap::new(),
            test_check: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gateway: DEFAULT_GATEWAY.to_owned(),
            output: Output { format: Format::Terminal, color: ColorChoice::Auto },
            review: ReviewConfig::default(),
            fix: FixConfig::default(),
            eval: EvalConfig::default(),
            sources: Vec::new(),
        }
    }
}

impl Default for FixConfig {
    fn default() -> Self {
        Self { check: None, max_rounds: 3, planner_model: None, coder_model: None, allow_new_files: false }
    }
}

/// The gateway a command talks to: `explicit` (`--gateway`, `PRFIX_GATEWAY`) wins, then the gateway
/// of the saved login `saved` (so `prfix login --gateway URL` once is enough), then `configured`
/// (`config.toml`'s `gateway`, else the default).
pub fn resolve_gateway(explicit: Option<&str>, saved: Option<&str>, configured: &str) -> String {
    explicit.filter(|g| !g.trim().is_empty()).or(saved).unwrap_or(configured).to_owned()
}

/// The user's configuration directory: `$PRFIX_CONFIG_DIR`, else `$XDG_CONFIG_HOME/prfix`, else
/// `$HOME/.config/prfix`.
pub fn config_dir() -> Result<PathBuf, ConfigError> {
    config_dir_with(&process_env)
}

/// [`config_dir`] with the environment read through `env`.
pub fn config_dir_with(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(dir) = set("PRFIX_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    // The XDG specification says to ignore a relative XDG_CONFIG_HOME.
    if let Some(dir) = set("XDG_CONFIG_HOME").map(PathBuf::from).filter(|dir| dir.is_absolute()) {
        return Ok(dir.join("prfix"));
    }
    set("HOME").map(|home| PathBuf::from(home).join(".config").join("prfix")).ok_or(ConfigError::NoConfigDir)
}

/// The configuration for a checkout whose top is `repo_root` (or for no checkout): defaults, then
/// the user's `config.toml`, then the repository's `.prfix.toml`, then the environment.
pub fn load(repo_root: Option<&Path>) -> Result<Config, ConfigError> {
    // Without a home there is no user file, which is no reason to refuse to run.
    let global = config_dir().ok().map(|dir| dir.join("config.toml"));
    let repo = repo_root.map(|root| root.join(".prfix.toml"));
    load_from(global.as_deref(), repo.as_deref(), &process_env)
}

/// [`load`] from explicit files (a missing file is skipped) and an environment read through `env`.
pub fn load_from(
    global: Option<&Path>,
    repo: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    if let Some(path) = global
        && let Some(file) = file::read::<GlobalFile>(path)?
    {
        layer::global(&mut config, file, path)?;
        config.sources.push(path.to_path_buf());
    }
    if let Some(path) = repo
        && let Some(file) = file::read::<RepoFile>(path)?
    {
        layer::repo(&mut config, file, path)?;
        config.sources.push(path.to_path_buf());
    }
    layer::env(&mut config, env)?;
    Ok(config)
}

/// [`load`] with the repository's settings given as text (its `.prfix.toml` as of the base of the
/// change, so a change cannot loosen its own review), named `shown_as` in errors.
pub fn load_with_repo_text(repo: Option<(&str, &Path)>) -> Result<Config, ConfigError> {
    let global = config_dir().ok().map(|dir| dir.join("config.toml"));
    let mut config = Config::default();
    if let Some(path) = global.as_deref()
        && let Some(file) = file::read::<GlobalFile>(path)?
    {
        layer::global(&mut config, file, path)?;
        config.sources.push(path.to_path_buf());
    }
    if let Some((text, shown_as)) = repo {
        let file: RepoFile = file::parse(text, shown_as)?;
        layer::repo(&mut config, file, shown_as)?;
        config.sources.push(shown_as.to_path_buf());
    }
    layer::env(&mut config, &process_env)?;
    Ok(config)
}

/// The process environment, as [`load_from`] reads it.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
