//! `/describe` in a pull request comment: the pull request is read as for a review, described by
//! the same pipeline as a describe created with a change set, and the description (title, summary,
//! a walkthrough line per file, labels) is posted as a reply comment. The pull request's own title
//! and body are left as their author wrote them.

use std::fmt::Write as _;

use prfix_proto::agent::v1 as pb;

use super::forge_fetch::{Fetched, fetch};
use super::{Job, RunError, describe};

/// The hidden first line of a description prfix posts.
const MARKER: &str = "<!-- prfix:describe -->";

/// Describes `request`'s pull request and replies with the description.
pub async fn run(job: &Job, request: pb::CreateForgeReviewRequest) -> Result<pb::DescribeResult, RunError> {
    let pb::CreateForgeReviewRequest { pull_request, full: _, model, command, coder_model: _ } = request;
    let Fetched { connection, pr, config, patches: _, change_set } = fetch(job, pull_request, command.as_ref()).await?;
    let options = pb::DescribeOptions { model, ignore_globs: config.ignore.clone() };
    let result =
        describe::run(job, pb::CreateDescribeRequest { change_set: Some(change_set), options: Some(options) }).await?;
    if !crate::forge::may_post(job).await? {
        return Ok(result);
    }
    job.progress("posting the description to the pull request", 0, 0).await?;
    connection.forge.reply(&pr, &markdown(&result, &pr.head_sha)).await?;
    job.progress(format!("posted the description to {}#{}", pr.repository, pr.number), 1, 1).await?;
    Ok(result)
}

/// One line, safe in Markdown prose and tables.
fn inline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|").replace('<', "&lt;")
}

/// The description as a comment.
fn markdown(result: &pb::DescribeResult, head_sha: &str) -> String {
    let mut out = format!("{MARKER}\n## {}\n\n{}\n", inline(&result.title), result.summary.trim().replace('<', "&lt;"));
    if !result.walkthrough.is_empty() {
        out.push_str("\n| File | What changes |\n|---|---|\n");
        for file in &result.walkthrough {
            let _ = writeln!(out, "| `{}` | {} |", inline(&file.path), inline(&file.summary));
        }
    }
    if !result.labels.is_empty() {
        let labels: Vec<String> = result.labels.iter().map(|l| format!("`{}`", inline(l))).collect();
        let _ = writeln!(out, "\nLabels: {}", labels.join(", "));
    }
    let short = head_sha.get(..12).unwrap_or(head_sha);
    let _ = write!(out, "\n<sub>Described commit {short}.</sub>\n");
    out
}
