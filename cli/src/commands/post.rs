//! `prfix review --post`: a finished review posted to the pull request the CI job runs for, through
//! [`prfix_forge`]:
//!
//! 1. the summary comment (the Markdown report), edited in place when an earlier run left one;
//! 2. one review with a comment on a line of the diff per finding, placed as `--format github`
//!    places them (a review without such comments is not posted: the summary says everything; nor
//!    is a second review of the same head commit);
//! 3. a check on the head commit whose conclusion follows `--fail-on`, linking to the summary.

use prfix_engine::diff::{self, FilePatch};
use prfix_forge::{CheckReport, Conclusion, Forge, ForgeError, InlineComment, PostedCheck};

use crate::ci::CiJob;
use crate::error::{CliError, CliResult};
use crate::report::{self, Review};

/// Posts `review` for `job`'s pull request, with `conclusion` as the check's verdict. Says on
/// standard error what was posted where.
pub async fn post(job: &CiJob, review: &Review<'_>, conclusion: Conclusion) -> CliResult {
    let forge = Forge::new(job.forge.clone()).map_err(|e| failed(job, &e))?;
    let pr = &job.pull_request;
    let github = report::github_review(review)?;
    let comments = inline_comments(review.diff, github.comments)?;

    let short = pr.head_sha.get(..12).unwrap_or(&pr.head_sha);
    let summary = format!("{}\n<sub>Reviewed commit {short}.</sub>\n", report::markdown(review).trim_end());
    let posted = forge.upsert_summary(pr, &summary).await.map_err(|e| failed(job, &e))?;
    let verb = if posted.updated { "updated" } else { "posted" };
    eprintln!("prfix: {verb} the summary comment on #{}{}", pr.number, at(posted.url.as_deref()));

    let inline = prfix_forge::Review { body: github.body, comments };
    let placed = forge.post_review(pr, &inline).await.map_err(|e| failed(job, &e))?;
    if placed.already {
        eprintln!("prfix: commit {short} already has prfix's review; its comments were not posted again");
    }
    if placed.comments > 0 {
        eprintln!("prfix: posted a review with {} comment(s) on lines{}", placed.comments, at(placed.url.as_deref()));
    }
    if let Some(reason) = placed.fallback {
        eprintln!("prfix: warning: {reason}");
    }

    let check = CheckReport {
        conclusion,
        title: report::summary_line(review.findings),
        summary: summary.clone(),
        details_url: posted.url.clone(),
    };
    match forge.report_check(pr, &check).await.map_err(|e| failed(job, &e))? {
        PostedCheck::CheckRun { url } => {
            eprintln!("prfix: created the check run `{}`{}", prfix_forge::CHECK_NAME, at(url.as_deref()))
        }
        PostedCheck::CommitStatus { fallback: None } => {
            eprintln!("prfix: set the commit status `{}` on {short}", prfix_forge::CHECK_NAME);
        }
        PostedCheck::CommitStatus { fallback: Some(reason) } => eprintln!("prfix: warning: {reason}"),
    }
    Ok(())
}

/// The comments `--format github` placed, with what other forges need besides: the old path of a
/// renamed file, and the old line number of an unchanged line.
fn inline_comments(diff_text: &str, comments: Vec<report::GithubComment>) -> CliResult<Vec<InlineComment>> {
    let patches = diff::parse(diff_text).map_err(report::ReportError::from)?;
    Ok(comments
        .into_iter()
        .map(|c| {
            let patch = patches.iter().find(|p| p.path() == c.path);
            let old_path = patch.and_then(|p| p.old_path.clone()).filter(|old| *old != c.path);
            let old_line = patch.and_then(|p| old_line(p, c.line));
            InlineComment { path: c.path, old_path, line: c.line, start_line: c.start_line, old_line, body: c.body }
        })
        .collect())
}

/// The old line number of new line `line` when the diff shows it unchanged.
fn old_line(patch: &FilePatch, line: u32) -> Option<u32> {
    patch.hunks.iter().flat_map(|h| &h.lines).find(|l| l.new_line == Some(line)).and_then(|l| l.old_line)
}

fn at(url: Option<&str>) -> String {
    url.map(|u| format!(": {u}")).unwrap_or_default()
}

fn failed(job: &CiJob, error: &ForgeError) -> CliError {
    CliError::new(format!("posting to {} ({}): {error}", job.forge.kind.name(), job.ci))
}

/// The check's verdict: failure when a finding reaches `fail_on`, neutral when a part of the review
/// failed, else success.
pub fn conclusion(
    result: &prfix_proto::agent::v1::ReviewResult,
    fail_on: Option<prfix_proto::agent::v1::Severity>,
) -> Conclusion {
    if fail_on.is_some_and(|threshold| result.findings.iter().any(|f| f.severity >= threshold as i32)) {
        Conclusion::Failure
    } else if !result.failed_parts.is_empty() {
        Conclusion::Neutral
    } else {
        Conclusion::Success
    }
}
