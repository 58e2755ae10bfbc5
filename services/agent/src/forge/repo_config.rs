//! The `[review]` section of a repository's `.prfix.toml`, read from the pull request's base branch
//! (never its head: a pull request must not change how it is reviewed), as `prfix review` reads it
//! in a checkout. Other sections (`[fix]`, `[eval]`) are the CLI's and are left alone here.

use prfix_proto::agent::v1 as pb;
use serde::Deserialize;

/// The file's name at the top of the repository.
pub const FILE: &str = ".prfix.toml";

/// The severities, least severe first.
const SEVERITIES: [&str; 4] = ["info", "minor", "major", "critical"];

/// How a repository asks to be reviewed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoConfig {
    /// Globs of paths left out.
    pub ignore: Vec<String>,
    /// Findings below this severity are not reported.
    pub min_severity: Option<pb::Severity>,
    /// The check fails from this severity on; `None`: never (`fail_on = "none"`, or unset).
    pub fail_on: Option<pb::Severity>,
    /// Extra instructions for the reviewer.
    pub instructions: String,
    /// Most findings.
    pub max_findings: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    review: Option<Review>,
}

#[derive(Debug, Default, Deserialize)]
struct Review {
    ignore: Option<Vec<String>>,
    min_severity: Option<String>,
    fail_on: Option<String>,
    instructions: Option<String>,
    max_findings: Option<u32>,
    // Read so that a file the CLI accepts is accepted here; the service's model is the operator's.
    #[allow(dead_code)]
    model: Option<String>,
}

fn severity(key: &str, value: &str) -> Result<pb::Severity, String> {
    match value {
        "info" => Ok(pb::Severity::Info),
        "minor" => Ok(pb::Severity::Minor),
        "major" => Ok(pb::Severity::Major),
        "critical" => Ok(pb::Severity::Critical),
        other => Err(format!("{FILE}: review.{key} is `{other}`, not one of {}", SEVERITIES.join(", "))),
    }
}

/// Reads the file's text; an error names the key and what is wrong, for the task's error.
pub fn parse(text: &str) -> Result<RepoConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("{FILE} does not parse: {}", e.message()))?;
    let Some(review) = file.review else { return Ok(RepoConfig::default()) };
    Ok(RepoConfig {
        ignore: review.ignore.unwrap_or_default(),
        min_severity: review.min_severity.as_deref().map(|v| severity("min_severity", v)).transpose()?,
        fail_on: match review.fail_on.as_deref() {
            None | Some("none") => None,
            Some(value) => Some(severity("fail_on", value)?),
        },
        instructions: review.instructions.unwrap_or_default(),
        max_findings: review.max_findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_section_is_read_and_bad_values_are_named() {
        let config = parse("[review]\nfail_on = \"major\"\nignore = [\"vendor/**\"]\n[fix]\ncheck = \"make\"\n");
        let config = config.unwrap_or_default();
        assert_eq!(config.fail_on, Some(pb::Severity::Major));
        assert_eq!(config.ignore, ["vendor/**"]);
        assert_eq!(parse("").map(|c| c.fail_on), Ok(None));
        let error = parse("[review]\nfail_on = \"sometimes\"\n").err().unwrap_or_default();
        assert!(error.contains("review.fail_on") && error.contains("sometimes"), "{error}");
    }
}
