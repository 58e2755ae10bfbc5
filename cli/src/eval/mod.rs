//! `prfix eval`: which model and prompt review and fix best, measured on the team's own history.
//!
//! - [`mine`]: bug fixes from commit messages and the commits that introduced their lines (SZZ),
//!   with [`lines`] telling which changed lines can hold a bug;
//! - [`replay`]: each introducing commit reviewed through the service, per model and variant;
//! - [`fix`]: each fix commit with a test replayed from its parent with `prfix fix --check`;
//! - [`score`], [`report`] and [`render`]: hits, the Wilson interval, the totals; the table, JSON
//!   and Markdown;
//! - [`cache`]: results per commit and model, so runs resume and never ask a model twice.

pub mod cache;
pub mod fix;
pub mod lines;
pub mod mine;
pub mod render;
pub mod replay;
pub mod report;
pub mod score;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::git::{Checkout, GitError};
use crate::interrupt::interruptible;
use crate::session::Session;

use cache::Cache;
use mine::MineOptions;
use replay::{Plan, Variant};
use report::{EvalFormat, ReviewReport};

/// What can stop an evaluation before it reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A fix pattern does not compile.
    #[error("fix pattern `{pattern}` is not a regular expression: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The parser's explanation.
        message: String,
    },
    /// An option has a value that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The cache cannot be read or written.
    #[error("{0}")]
    Cache(String),
    /// git's output cannot be used.
    #[error("{0}")]
    Git(String),
    /// A git command failed.
    #[error(transparent)]
    GitCommand(#[from] GitError),
}

impl From<EvalError> for CliError {
    fn from(e: EvalError) -> Self {
        CliError::new(e.to_string())
    }
}

/// What `prfix eval review` and `prfix eval fix` share.
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// Only history since this date (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// At most this many cases (the newest).
    pub max: Option<usize>,
    /// Models to compare (none: the configured one).
    pub models: Vec<String>,
    /// Output format.
    pub format: Option<EvalFormat>,
    /// Start no new case after this long (`90s`, `30m`, `2h`).
    pub time_limit: Option<String>,
    /// The run id (default: derived from the command, so a re-run resumes the same run).
    pub run_id: Option<String>,
    /// Where results are kept (default: `<git dir>/prfix/eval`).
    pub cache_dir: Option<PathBuf>,
    /// Do again the cases that failed last time.
    pub retry_failed: bool,
}

/// `prfix eval review` options.
#[derive(Debug, Clone, Default)]
pub struct ReviewArgs {
    /// Shared options.
    pub common: Common,
    /// Prompt variants: `default`, a name of `[eval.prompts]`, or `@FILE`.
    pub variants: Vec<String>,
    /// Lines between a finding and a fixed line that still count as a hit (default `[eval]
    /// distance`).
    pub distance: Option<u32>,
}

/// The longest run id the service takes.
const MAX_RUN_ID: usize = 64;

/// A run id the service will take: at most 64 characters of `A-Za-z0-9._:-`.
pub fn check_run_id(id: &str) -> Result<(), EvalError> {
    if id.is_empty()
        || id.len() > MAX_RUN_ID
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err(EvalError::Usage(format!("--run-id `{id}` must be 1 to {MAX_RUN_ID} characters of A-Za-z0-9._:-")));
    }
    Ok(())
}

/// The run id: the one given, else `eval-<kind>-<hash of HEAD and the options>`, the same for
/// the same command on the same history (a re-run continues the run).
pub fn run_id(kind: &str, given: Option<&str>, head: &str, parts: &[String]) -> Result<String, EvalError> {
    let id = match given {
        Some(id) => id.to_owned(),
        None => format!("eval-{kind}-{}", cache::hash8(&format!("{head}\n{}", parts.join("\n")))),
    };
    check_run_id(&id)?;
    Ok(id)
}

/// `90s`, `30m`, `2h` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, EvalError> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| EvalError::Usage(format!("--time-limit `{text}` is not a duration: use 90s, 30m or 2h")))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(EvalError::Usage(format!("--time-limit `{text}` is not a duration: use 90s, 30m or 2h"))),
    };
    Ok(Duration::from_secs(seconds))
}

/// The models to compare: those given, else the configured one (empty: the agent's default).
fn models(given: &[String], configured: Option<&String>) -> Vec<String> {
    if given.is_empty() { vec![configured.cloned().unwrap_or_default()] } else { given.to_vec() }
}

/// The prompt variants named: `default` (the `[review] instructions`), a name of `[eval.prompts]`,
/// or `@FILE` (named after the file).
fn variants(config: &Config, names: &[String]) -> Result<Vec<Variant>, EvalError> {
    let names = if names.is_empty() { vec!["default".to_owned()] } else { names.to_vec() };
    let mut out: Vec<Variant> = Vec::new();
    for name in names {
        let variant = if let Some(file) = name.strip_prefix('@') {
            let path = std::path::Path::new(file);
            let instructions = std::fs::read_to_string(path)
                .map_err(|e| EvalError::Usage(format!("--prompt-variant {name}: cannot read {file}: {e}")))?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| file.to_owned());
            Variant { name: stem, instructions }
        } else if let Some(text) = config.eval.prompts.get(&name) {
            Variant { name, instructions: text.clone() }
        } else if name == "default" {
            Variant { name, instructions: config.review.instructions.clone().unwrap_or_default() }
        } else {
            let known: Vec<&str> =
                std::iter::once("default").chain(config.eval.prompts.keys().map(String::as_str)).collect();
            return Err(EvalError::Usage(format!(
                "--prompt-variant `{name}` is not defined: use {} (from [eval.prompts]) or @FILE",
                known.join(", ")
            )));
        };
        if out.iter().any(|v| v.name == variant.name) {
            return Err(EvalError::Usage(format!("--prompt-variant `{}` is given twice", variant.name)));
        }
        out.push(variant);
    }
    Ok(out)
}

/// The cache: the directory given, else `<git dir>/prfix/eval`.
fn open_cache(checkout: &Checkout, given: Option<&PathBuf>) -> Result<Cache, EvalError> {
    let dir = match given {
        Some(dir) => dir.clone(),
        None => checkout.common_dir()?.join("prfix").join("eval"),
    };
    Cache::open(&dir)
}

/// `prfix eval review`: mine, replay, report.
pub async fn review(config: &Config, checkout: &Checkout, args: ReviewArgs) -> CliResult {
    let common = &args.common;
    let format = common.format.unwrap_or(EvalFormat::Terminal);
    let distance = args.distance.unwrap_or(config.eval.distance);
    let options =
        MineOptions { since: common.since.clone(), fix_patterns: config.eval.fix_patterns.clone(), max: common.max };
    let deadline = common.time_limit.as_deref().map(parse_duration).transpose()?.map(|d| Instant::now() + d);
    let models = models(&common.models, config.review.model.as_ref());
    let variants = variants(config, &args.variants)?;
    let mut parts = vec![format!("since={:?}", common.since), format!("max={:?}", common.max)];
    parts.extend(models.iter().map(|m| format!("model={m}")));
    parts.extend(variants.iter().map(|v| format!("variant={}:{}", v.name, cache::hash8(&v.instructions))));
    let run_id = run_id("review", common.run_id.as_deref(), &checkout.head()?, &parts)?;
    let cache = open_cache(checkout, common.cache_dir.as_ref())?;
    let mined = mine::mine(checkout, &options)?;
    eprintln!(
        "prfix: {} fix commits changed source lines ({} candidates); {} bug-introducing commits; run {run_id}, \
         results in {}",
        mined.fixes.len(),
        mined.candidates,
        mined.introducing.len(),
        cache.dir().display()
    );
    let plan = Plan {
        models: models.clone(),
        variants: variants.clone(),
        run_id: run_id.clone(),
        deadline,
        retry_failed: common.retry_failed,
        ignore_globs: config.review.ignore.clone(),
    };
    let replayed = if mined.introducing.is_empty() {
        replay::Replayed::default()
    } else {
        let session = Session::open(&config.gateway).await?;
        interruptible(replay::replay(&session, checkout, &cache, &mined.introducing, &plan)).await?
    };
    let pairs: Vec<(String, String)> =
        models.iter().flat_map(|m| variants.iter().map(move |v| (m.clone(), v.name.clone()))).collect();
    let results = report::review_totals(&replayed.entries, &mined.introducing, &pairs, &replayed.pending, distance);
    let report = ReviewReport {
        run_id,
        since: common.since.clone(),
        distance,
        mined: (&mined).into(),
        introducing: report::key(&mined.introducing),
        results,
        complete: replayed.pending.is_empty(),
    };
    print!("{}", render::render_review(&report, format));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90").expect("seconds"), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").expect("minutes"), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").expect("hours"), Duration::from_secs(7200));
        assert!(parse_duration("soon").is_err() && parse_duration("5d").is_err());
    }

    #[test]
    fn the_default_run_id_is_stable_for_the_same_command_and_valid_for_the_service() {
        let parts = vec!["model=m".to_owned()];
        let a = run_id("review", None, "abc", &parts).expect("an id");
        assert_eq!(a, run_id("review", None, "abc", &parts).expect("an id"));
        assert_ne!(a, run_id("review", None, "abd", &parts).expect("an id"));
        assert!(a.starts_with("eval-review-") && a.len() == "eval-review-".len() + 8, "{a}");
        assert!(run_id("review", Some("bad id"), "abc", &parts).is_err());
        assert!(run_id("review", Some(&"x".repeat(65)), "abc", &parts).is_err());
    }

    #[test]
    fn variants_come_from_the_configuration_and_an_unknown_one_is_named() {
        let mut config = Config::default();
        config.eval.prompts.insert("strict".to_owned(), "Only real bugs.".to_owned());
        let found = variants(&config, &["default".to_owned(), "strict".to_owned()]).expect("known");
        assert_eq!(found[1], Variant { name: "strict".to_owned(), instructions: "Only real bugs.".to_owned() });
        let error = variants(&config, &["loose".to_owned()]).expect_err("unknown");
        assert!(error.to_string().contains("`loose`") && error.to_string().contains("default, strict"), "{error}");
    }
}
