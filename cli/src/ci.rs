//! Which CI job `prfix review --post` runs in, and for which pull request: read from the variables
//! each CI sets.
//!
//! - GitHub Actions (`GITHUB_ACTIONS=true`): `GITHUB_REPOSITORY`, `GITHUB_EVENT_PATH` (the event,
//!   whose `pull_request` gives the number, the head and the base), `GITHUB_API_URL` (default
//!   `https://api.github.com`; `https://HOST/api/v3` on Enterprise Server), token `GITHUB_TOKEN`.
//! - Gitea and Forgejo Actions (`GITEA_ACTIONS=true` or `FORGEJO_ACTIONS=true`; they also set the
//!   GitHub variables, so they are recognised first): the same variables, `GITHUB_API_URL` required
//!   (else `GITHUB_SERVER_URL` + `/api/v1`), token `GITEA_TOKEN`, else `GITHUB_TOKEN`.
//! - GitLab CI (`GITLAB_CI=true`): `CI_API_V4_URL`, `CI_PROJECT_ID`, `CI_MERGE_REQUEST_IID` (merge
//!   request pipelines only), the head `CI_MERGE_REQUEST_SOURCE_BRANCH_SHA` (merged results
//!   pipelines) or `CI_COMMIT_SHA`, the base `CI_MERGE_REQUEST_DIFF_BASE_SHA`; token
//!   `PRFIX_GITLAB_TOKEN`, else `GITLAB_TOKEN` (a job's `CI_JOB_TOKEN` may not post notes).

use std::path::PathBuf;

use prfix_forge::{ForgeConfig, ForgeKind, PullRequest, RetryPolicy};
use secrecy::SecretString;

/// The CI job's pull request and how to reach its forge.
#[derive(Debug, Clone)]
pub struct CiJob {
    /// `GitHub Actions`, `GitLab CI`, `Gitea Actions`, `Forgejo Actions`.
    pub ci: &'static str,
    /// The forge's API and token.
    pub forge: ForgeConfig,
    /// The pull request the job runs for.
    pub pull_request: PullRequest,
    /// The commit the pull request's diff starts from, when the CI says it.
    pub base_sha: Option<String>,
}

/// Why the CI job cannot be used for `--post`; each names the variable or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    /// No recognised CI.
    #[error(
        "--post posts to the pull request a CI job runs for, and this is not a CI job prfix knows: none of \
         GITHUB_ACTIONS, GITEA_ACTIONS, FORGEJO_ACTIONS or GITLAB_CI is `true` (run it in GitHub Actions, GitLab CI \
         or Gitea/Forgejo Actions, or use --format github and post it yourself)"
    )]
    NotCi,
    /// A variable the CI sets is missing.
    #[error("--post in {ci}: {variable} is not set{hint}")]
    Missing {
        /// The CI.
        ci: &'static str,
        /// The variable.
        variable: &'static str,
        /// What to do, starting with `: ` or empty.
        hint: &'static str,
    },
    /// A variable holds something unusable.
    #[error("--post in {ci}: {variable}=`{value}` is not {expected}")]
    Invalid {
        /// The CI.
        ci: &'static str,
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The event file cannot be read or is not a pull request's.
    #[error("--post in {ci}: the event file {} {reason}", path.display())]
    Event {
        /// The CI.
        ci: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The CI job described by the environment `env` reads.
pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Result<CiJob, CiError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let on = |name: &str| set(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if on("GITEA_ACTIONS") || on("FORGEJO_ACTIONS") {
        let ci = if on("FORGEJO_ACTIONS") { "Forgejo Actions" } else { "Gitea Actions" };
        let api_url = match set("GITHUB_API_URL") {
            Some(url) => url,
            None => match set("GITHUB_SERVER_URL") {
                Some(server) => format!("{}/api/v1", server.trim_end_matches('/')),
                None => return Err(missing(ci, "GITHUB_API_URL", "")),
            },
        };
        let token = set("GITEA_TOKEN").or_else(|| set("GITHUB_TOKEN")).ok_or_else(|| {
            missing(ci, "GITEA_TOKEN", " (nor GITHUB_TOKEN): pass `env: GITEA_TOKEN: ${{ secrets.GITEA_TOKEN }}`, or the job's token as GITHUB_TOKEN")
        })?;
        return actions_job(ci, ForgeKind::Gitea, api_url, token, &set);
    }
    if on("GITHUB_ACTIONS") {
        let ci = "GitHub Actions";
        let api_url = set("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned());
        let token = set("GITHUB_TOKEN").ok_or_else(|| {
            missing(ci, "GITHUB_TOKEN", ": pass the job's token with `env: GITHUB_TOKEN: ${{ github.token }}`")
        })?;
        return actions_job(ci, ForgeKind::GitHub, api_url, token, &set);
    }
    if on("GITLAB_CI") {
        return gitlab_job(&set);
    }
    Err(CiError::NotCi)
}

/// A forge call waiting to be tried again, said on standard error.
fn say_retry(line: &str) {
    eprintln!("prfix: {line}");
}

fn missing(ci: &'static str, variable: &'static str, hint: &'static str) -> CiError {
    CiError::Missing { ci, variable, hint }
}

/// GitHub or Gitea/Forgejo Actions: the pull request from the event file.
fn actions_job(
    ci: &'static str,
    kind: ForgeKind,
    api_url: String,
    token: String,
    set: &dyn Fn(&str) -> Option<String>,
) -> Result<CiJob, CiError> {
    let repository = set("GITHUB_REPOSITORY").ok_or_else(|| missing(ci, "GITHUB_REPOSITORY", ""))?;
    if repository.split('/').count() != 2 || repository.split('/').any(str::is_empty) {
        return Err(CiError::Invalid {
            ci,
            variable: "GITHUB_REPOSITORY",
            value: repository,
            expected: "`owner/name`",
        });
    }
    let path = PathBuf::from(set("GITHUB_EVENT_PATH").ok_or_else(|| missing(ci, "GITHUB_EVENT_PATH", ""))?);
    let event_error = |reason: String| CiError::Event { ci, path: path.clone(), reason };
    let text = std::fs::read_to_string(&path).map_err(|e| event_error(format!("cannot be read: {e}")))?;
    let event: serde_json::Value = serde_json::from_str(&text).map_err(|e| event_error(format!("is not JSON: {e}")))?;
    let Some(pull_request) = event.get("pull_request").filter(|p| p.is_object()) else {
        let name = set("GITHUB_EVENT_NAME").unwrap_or_else(|| "unknown".to_owned());
        return Err(event_error(format!(
            "is not a pull request's (the event is `{name}`): run the job `on: pull_request` (or pull_request_target)"
        )));
    };
    let number = pull_request
        .get("number")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| event_error("has no pull_request.number".to_owned()))?;
    let head_sha = pull_request
        .pointer("/head/sha")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| event_error("has no pull_request.head.sha".to_owned()))?
        .to_owned();
    let base_sha = pull_request.pointer("/base/sha").and_then(serde_json::Value::as_str).map(str::to_owned);
    Ok(CiJob {
        ci,
        forge: ForgeConfig {
            kind,
            api_url,
            token: SecretString::from(token),
            retry: RetryPolicy::default(),
            on_retry: Some(say_retry),
            github_app: None,
        },
        pull_request: PullRequest { repository, number, head_sha },
        base_sha,
    })
}

/// GitLab CI: a merge request pipeline.
fn gitlab_job(set: &dyn Fn(&str) -> Option<String>) -> Result<CiJob, CiError> {
    let ci = "GitLab CI";
    let api_url = set("CI_API_V4_URL").ok_or_else(|| missing(ci, "CI_API_V4_URL", ""))?;
    let project = set("CI_PROJECT_ID").ok_or_else(|| missing(ci, "CI_PROJECT_ID", ""))?;
    let iid = set("CI_MERGE_REQUEST_IID").ok_or_else(|| {
        missing(
            ci,
            "CI_MERGE_REQUEST_IID",
            ": this is not a merge request pipeline; run the job with `rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"`",
        )
    })?;
    let number = iid.trim().parse::<u64>().map_err(|_| CiError::Invalid {
        ci,
        variable: "CI_MERGE_REQUEST_IID",
        value: iid.clone(),
        expected: "a number",
    })?;
    let head_sha = set("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
        .or_else(|| set("CI_COMMIT_SHA"))
        .ok_or_else(|| missing(ci, "CI_COMMIT_SHA", ""))?;
    let token = set("PRFIX_GITLAB_TOKEN").or_else(|| set("GITLAB_TOKEN")).ok_or_else(|| {
        missing(
            ci,
            "PRFIX_GITLAB_TOKEN",
            " (nor GITLAB_TOKEN): set a project access token with the `api` scope as a masked CI/CD variable; the \
             job's CI_JOB_TOKEN may not post merge request notes",
        )
    })?;
    Ok(CiJob {
        ci,
        forge: ForgeConfig {
            kind: ForgeKind::GitLab,
            api_url,
            token: SecretString::from(token),
            retry: RetryPolicy::default(),
            on_retry: Some(say_retry),
            github_app: None,
        },
        pull_request: PullRequest { repository: project, number, head_sha },
        base_sha: set("CI_MERGE_REQUEST_DIFF_BASE_SHA"),
    })
}

#[cfg(test)]
#[path = "ci_tests.rs"]
mod tests;
