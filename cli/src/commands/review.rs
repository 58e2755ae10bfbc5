//! `prfix review` and `prfix describe`: collect the change with git, create the task, follow it, and
//! print the result.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use prfix_proto::agent::v1 as pb;

use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::git::{Checkout, Collected, DiffSpec};
use crate::interrupt::interruptible;
use crate::progress::Progress;
use crate::report::{self, Format, Review, ReviewStats};
use crate::session::Session;

/// What to review.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Base revision (default: the merge base with the default branch).
    pub base: Option<String>,
    /// Review the staged changes instead of the working tree.
    pub staged: bool,
    /// Limit to these paths.
    pub paths: Vec<String>,
}

/// `prfix review` options.
#[derive(Debug, Clone, Default)]
pub struct ReviewArgs {
    /// What to review.
    pub target: Target,
    /// Output format (default from the config).
    pub format: Option<Format>,
    /// Exit 1 when a finding is at least this severe (`none` never).
    pub fail_on: Option<String>,
    /// Model to use.
    pub model: Option<String>,
    /// Leave out findings below this severity.
    pub min_severity: Option<String>,
    /// Fail (exit 1) when a part of the review failed, even though the other parts' findings are
    /// printed.
    pub strict: bool,
    /// Post the review to the pull request of this CI job (`--post`).
    pub post: Option<crate::ci::CiJob>,
}

/// `info`/`minor`/`major`/`critical` as the API's number; `none` and empty as `None`.
pub fn parse_severity(word: &str, what: &str) -> CliResult<Option<pb::Severity>> {
    Ok(Some(match word.trim().to_ascii_lowercase().as_str() {
        "" | "none" => return Ok(None),
        "info" => pb::Severity::Info,
        "minor" => pb::Severity::Minor,
        "major" => pb::Severity::Major,
        "critical" => pb::Severity::Critical,
        other => {
            return Err(CliError::new(format!(
                "{what} `{other}` is not a severity: use info, minor, major, critical or none"
            )));
        }
    }))
}

/// Collects the change set of the checkout.
pub fn collect(checkout: &Checkout, target: &Target) -> CliResult<(Collected, pb::ChangeSet)> {
    let spec =
        DiffSpec { base: target.base.clone(), staged: target.staged, paths: target.paths.clone(), context_lines: 3 };
    let collected = checkout.collect(&spec)?;
    if collected.diff.trim().is_empty() {
        let against = target.base.clone().unwrap_or_else(|| "the merge base with the default branch".to_owned());
        return Err(CliError::new(format!("nothing to review: no changes against {against}")));
    }
    let change_set = pb::ChangeSet {
        diff: collected.diff.clone(),
        files: collected
            .files
            .iter()
            .map(|f| pb::ChangedFile { path: f.path.clone(), new_content: f.content.clone(), old_content: None })
            .collect(),
        context_files: Vec::new(),
        base_ref: collected.base.clone(),
        head_ref: collected.head.clone(),
        repository: checkout.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    Ok((collected, change_set))
}

/// Whether the terminal format is coloured: `NO_COLOR` wins, then `[output] color`, then whether
/// standard output is a terminal.
pub fn use_color(config: &Config) -> bool {
    if std::env::var_os("NO_COLOR").is_some() {
        return false;
    }
    match config.output.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal(),
    }
}

/// Reviews the change and prints the findings; exit 1 (as an error) when one reaches `fail_on`.
pub async fn review(config: &Config, checkout: &Checkout, args: ReviewArgs) -> CliResult {
    let format = match args.format {
        Some(f) => f,
        None => config.output.format,
    };
    let fail_on =
        parse_severity(args.fail_on.as_deref().or(config.review.fail_on.as_deref()).unwrap_or("none"), "--fail-on")?;
    let min_severity = parse_severity(
        args.min_severity.as_deref().or(config.review.min_severity.as_deref()).unwrap_or("none"),
        "--min-severity",
    )?;
    let (collected, change_set) = collect(checkout, &args.target)?;
    let session = Session::open(&config.gateway).await?;
    let options = pb::ReviewOptions {
        model: args.model.or_else(|| config.review.model.clone()).unwrap_or_default(),
        ignore_globs: config.review.ignore.clone(),
        min_severity: min_severity.map_or(0, |s| s as i32),
        max_findings: config.review.max_findings.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        extra_instructions: config.review.instructions.clone().unwrap_or_default(),
        eval_run_id: String::new(),
    };
    let progress = Progress::start("sending the change for review");
    let request = pb::CreateReviewRequest { change_set: Some(change_set), options: Some(options) };
    let task = interruptible(async {
        let created = session
            .call("review", |mut agent| {
                let request = request.clone();
                async move { agent.create_review(request).await }
            })
            .await?
            .task
            .ok_or_else(|| CliError::new("the gateway sent no task"))?;
        super::follow(&session, &created.task_id, &progress).await
    })
    .await?;
    progress.finish();
    let Some(pb::task_result::Result::Review(result)) = task.result.as_ref().and_then(|r| r.result.clone()) else {
        return Err(super::not_succeeded("the review", &task));
    };
    let files: BTreeMap<String, String> = collected.files.iter().map(|f| (f.path.clone(), f.content.clone())).collect();
    let report = review_report(&task.task_id, &result, &collected.diff, &files);
    let rendered = report::render(format, &report, format == Format::Terminal && use_color(config))?;
    print!("{rendered}");
    if !rendered.ends_with('\n') {
        println!();
    }
    if let Some(job) = &args.post {
        if collected.head != job.pull_request.head_sha {
            eprintln!(
                "prfix: warning: the checkout's HEAD is {} but the pull request's head is {}: comments may miss their \
                 lines; check out the pull request's head (actions/checkout with `ref: ${{{{ github.event.pull_request.head.sha }}}}`)",
                collected.head, job.pull_request.head_sha
            );
        }
        super::post::post(job, &report, super::post::conclusion(&result, fail_on)).await?;
    }
    verdict(&result, fail_on, args.strict)
}

/// What a report needs of a finished review; `diff` and `files` may be empty (a stored review).
pub fn review_report<'a>(
    task_id: &'a str,
    result: &'a pb::ReviewResult,
    diff: &'a str,
    files: &'a BTreeMap<String, String>,
) -> Review<'a> {
    Review {
        findings: &result.findings,
        diff,
        files,
        task_id,
        stats: ReviewStats {
            reanchored: result.reanchored_findings,
            dropped: result.dropped_findings,
            redactions: result.redactions,
            chunks: result.chunks,
            dropped_suggestions: result.dropped_suggestions,
        },
        failed_parts: &result.failed_parts,
    }
}

/// The exit of a printed review: a warning on standard error for failed parts; exit 1 when a
/// finding reaches `fail_on`, or (with `strict`) when a part failed.
pub fn verdict(result: &pb::ReviewResult, fail_on: Option<pb::Severity>, strict: bool) -> CliResult {
    if let Some(warning) = report::failed_parts_warning(&result.failed_parts) {
        eprintln!("prfix: warning: {warning}:");
        for part in &result.failed_parts {
            eprintln!("prfix:   {}", report::printable(&report::failed_part_line(part)));
        }
    }
    if let Some(threshold) = fail_on {
        let over = result.findings.iter().filter(|f| f.severity >= threshold as i32).count();
        if over > 0 {
            let name = report::severity_name(threshold as i32);
            return Err(CliError::found(format!("{over} finding(s) at or above {name} (--fail-on {name})")));
        }
    }
    if strict && !result.failed_parts.is_empty() {
        let total = result.failed_parts.iter().map(|p| p.total).max().unwrap_or(0);
        return Err(CliError::found(format!(
            "{} of {total} parts of the review failed (--strict)",
            result.failed_parts.len()
        )));
    }
    Ok(())
}

/// `prfix describe` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DescribeFormat {
    /// Title, summary and walkthrough as text.
    Terminal,
    /// The result as JSON.
    Json,
    /// A pull-request body.
    Markdown,
}

/// Describes the change: a title, a summary, a line per file, labels.
pub async fn describe(config: &Config, checkout: &Checkout, target: Target, format: DescribeFormat) -> CliResult {
    let (_, change_set) = collect(checkout, &target)?;
    let session = Session::open(&config.gateway).await?;
    let options = pb::DescribeOptions {
        model: config.review.model.clone().unwrap_or_default(),
        ignore_globs: config.review.ignore.clone(),
    };
    let progress = Progress::start("sending the change to describe");
    let request = pb::CreateDescribeRequest { change_set: Some(change_set), options: Some(options) };
    let task = interruptible(async {
        let created = session
            .call("describe", |mut agent| {
                let request = request.clone();
                async move { agent.create_describe(request).await }
            })
            .await?
            .task
            .ok_or_else(|| CliError::new("the gateway sent no task"))?;
        super::follow(&session, &created.task_id, &progress).await
    })
    .await?;
    progress.finish();
    let Some(pb::task_result::Result::Describe(d)) = task.result.as_ref().and_then(|r| r.result.clone()) else {
        return Err(super::not_succeeded("the description", &task));
    };
    print_description(&task.task_id, &d, format);
    Ok(())
}

/// Prints a description in `format`.
pub fn print_description(task_id: &str, d: &pb::DescribeResult, format: DescribeFormat) {
    match format {
        DescribeFormat::Json => {
            let value = serde_json::json!({
                "task_id": task_id,
                "title": d.title,
                "summary": d.summary,
                "walkthrough": d.walkthrough.iter().map(|w| serde_json::json!({"path": w.path, "summary": w.summary})).collect::<Vec<_>>(),
                "labels": d.labels,
            });
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        }
        DescribeFormat::Markdown | DescribeFormat::Terminal => {
            // Model text on a terminal or in a PR body: nothing in it may act on the terminal.
            let p = report::printable;
            let pl = report::printable_lines;
            let (title, summary) = (p(&d.title), pl(&d.summary));
            let walkthrough: Vec<(String, String)> =
                d.walkthrough.iter().map(|w| (p(&w.path), p(&w.summary))).collect();
            let labels: Vec<String> = d.labels.iter().map(|l| p(l)).collect();
            if format == DescribeFormat::Markdown {
                println!("## {title}\n\n{summary}\n\n### Walkthrough\n");
                for (path, line) in &walkthrough {
                    println!("- `{path}`: {line}");
                }
                if !labels.is_empty() {
                    println!("\nLabels: {}", labels.join(", "));
                }
            } else {
                println!("{title}\n\n{summary}\n");
                for (path, line) in &walkthrough {
                    println!("  {path}: {line}");
                }
                if !labels.is_empty() {
                    println!("\nlabels: {}", labels.join(", "));
                }
            }
        }
    }
}
