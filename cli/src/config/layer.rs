//! Applying one layer of configuration (a file or the environment) over the ones before, checking
//! every value on the way.

use std::path::Path;

use clap::ValueEnum;

use super::file::{EvalFile, FixFile, GlobalFile, OutputFile, RepoFile, ReviewFile};
use super::{ColorChoice, Config, ConfigError, EvalConfig, FixConfig, Output, ReviewConfig, SEVERITIES};
use crate::report::Format;

/// Applies the user's `config.toml` (read from `path`).
pub(super) fn global(config: &mut Config, file: GlobalFile, path: &Path) -> Result<(), ConfigError> {
    if let Some(gateway) = file.gateway {
        config.gateway = gateway_url(&gateway).ok_or_else(|| invalid(path, "gateway", &gateway, URL))?;
    }
    if let Some(file) = file.output {
        output(&mut config.output, file, path)?;
    }
    review(&mut config.review, file.review, path)?;
    fix(&mut config.fix, file.fix, path)?;
    eval(&mut config.eval, file.eval, path)
}

/// Applies a repository's `.prfix.toml` (read from `path`).
pub(super) fn repo(config: &mut Config, file: RepoFile, path: &Path) -> Result<(), ConfigError> {
    review(&mut config.review, file.review, path)?;
    fix(&mut config.fix, file.fix, path)?;
    eval(&mut config.eval, file.eval, path)
}

/// What a gateway URL must look like.
const URL: &str = "an http:// or https:// URL";

/// Applies `[output]`.
fn output(output: &mut Output, file: OutputFile, path: &Path) -> Result<(), ConfigError> {
    if let Some(format) = file.format {
        output.format = format_named(&format).ok_or_else(|| invalid(path, "output.format", &format, &formats()))?;
    }
    if let Some(color) = file.color {
        output.color = ColorChoice::from_name(&color).ok_or_else(|| invalid(path, "output.color", &color, COLORS))?;
    }
    Ok(())
}

/// Applies `[review]`.
fn review(review: &mut ReviewConfig, file: Option<ReviewFile>, path: &Path) -> Result<(), ConfigError> {
    let Some(file) = file else { return Ok(()) };
    if let Some(severity) = file.min_severity {
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(invalid(path, "review.min_severity", &severity, &SEVERITIES.join(", ")));
        }
        review.min_severity = Some(severity);
    }
    if let Some(severity) = file.fail_on {
        review.fail_on =
            Some(fail_on(&severity).ok_or_else(|| invalid(path, "review.fail_on", &severity, &fail_ons()))?);
    }
    replace(&mut review.ignore, file.ignore);
    replace_some(&mut review.model, file.model);
    replace_some(&mut review.instructions, file.instructions);
    replace_some(&mut review.max_findings, file.max_findings);
    Ok(())
}

/// Applies `[fix]`.
fn fix(fix: &mut FixConfig, file: Option<FixFile>, path: &Path) -> Result<(), ConfigError> {
    let Some(file) = file else { return Ok(()) };
    if let Some(rounds) = file.max_rounds {
        if rounds == 0 {
            return Err(ConfigError::InvalidValue {
                key: "fix.max_rounds".to_owned(),
                path: path.to_path_buf(),
                message: "0: expected 1 or more".to_owned(),
            });
        }
        fix.max_rounds = rounds;
    }
    replace_some(&mut fix.check, file.check);
    replace_some(&mut fix.planner_model, file.planner_model);
    replace_some(&mut fix.coder_model, file.coder_model);
    replace(&mut fix.allow_new_files, file.allow_new_files);
    Ok(())
}

/// Applies `[eval]`: each fix pattern must be a regular expression.
fn eval(eval: &mut EvalConfig, file: Option<EvalFile>, path: &Path) -> Result<(), ConfigError> {
    let Some(file) = file else { return Ok(()) };
    if let Some(patterns) = &file.fix_patterns {
        for pattern in patterns {
            regex::RegexBuilder::new(pattern).case_insensitive(true).build().map_err(|e| {
                ConfigError::InvalidValue {
                    key: "eval.fix_patterns".to_owned(),
                    path: path.to_path_buf(),
                    message: format!("`{pattern}` is not a regular expression: {}", e.to_string().replace('\n', " ")),
                }
            })?;
        }
    }
    replace(&mut eval.fix_patterns, file.fix_patterns);
    replace(&mut eval.distance, file.distance);
    replace(&mut eval.prompts, file.prompts);
    replace_some(&mut eval.test_check, file.test_check);
    Ok(())
}

/// Applies the `PRFIX_*` variables read through `env`.
pub(super) fn env(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let bad = |var: &str, value: &str, expected: &str| ConfigError::Env {
        var: var.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    };
    if let Some(value) = set("PRFIX_GATEWAY") {
        config.gateway = gateway_url(&value).ok_or_else(|| bad("PRFIX_GATEWAY", &value, URL))?;
    }
    if let Some(value) = set("PRFIX_FORMAT") {
        config.output.format = format_named(&value).ok_or_else(|| bad("PRFIX_FORMAT", &value, &formats()))?;
    }
    if let Some(value) = set("PRFIX_COLOR") {
        config.output.color = ColorChoice::from_name(&value).ok_or_else(|| bad("PRFIX_COLOR", &value, COLORS))?;
    }
    if let Some(value) = set("PRFIX_REVIEW_MODEL") {
        config.review.model = Some(value);
    }
    if let Some(value) = set("PRFIX_FAIL_ON") {
        config.review.fail_on = Some(fail_on(&value).ok_or_else(|| bad("PRFIX_FAIL_ON", &value, &fail_ons()))?);
    }
    if let Some(value) = set("PRFIX_FIX_CHECK") {
        config.fix.check = Some(value);
    }
    Ok(())
}

/// The color choices, for messages.
const COLORS: &str = "one of auto, always, never";

/// The report format called `name` (as `--format` spells it).
fn format_named(name: &str) -> Option<Format> {
    Format::from_str(name, false).ok()
}

/// The report formats, for messages.
fn formats() -> String {
    let names: Vec<String> = Format::value_variants()
        .iter()
        .filter_map(|format| format.to_possible_value())
        .map(|value| value.get_name().to_owned())
        .collect();
    format!("one of {}", names.join(", "))
}

/// `value` when it is a severity or `none`.
fn fail_on(value: &str) -> Option<String> {
    (value == "none" || SEVERITIES.contains(&value)).then(|| value.to_owned())
}

/// The `fail_on` choices, for messages.
fn fail_ons() -> String {
    format!("one of {}, none", SEVERITIES.join(", "))
}

/// `value` without a trailing `/` when it is an http(s) URL with a host.
fn gateway_url(value: &str) -> Option<String> {
    let rest = value.strip_prefix("http://").or_else(|| value.strip_prefix("https://"))?;
    let host_given = !rest.is_empty() && !rest.starts_with('/');
    (host_given && !value.chars().any(char::is_whitespace)).then(|| value.trim_end_matches('/').to_owned())
}

/// The error for a `key` of the file `path` whose `value` is not what is `expected`.
fn invalid(path: &Path, key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        path: path.to_path_buf(),
        message: format!("`{value}`: expected {expected}"),
    }
}

/// Puts `value` in `slot` when there is one.
fn replace<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Puts `value` in `slot` when it is `Some`.
fn replace_some<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}
