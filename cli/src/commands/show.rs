//! `prfix tasks show ID --format ...`: a finished task's stored result rendered again, as the
//! command that made it printed it, with no model call. A review has every report format; a
//! description and a fix have the formats that mean something for them.

use std::collections::BTreeMap;

use prfix_proto::agent::v1 as pb;

use super::review::{DescribeFormat, print_description, review_report, verdict};
use crate::error::{CliError, CliResult};
use crate::report::{self, Format};

/// Prints `task`'s result in `format`; `color` for the terminal format. A task without a result
/// (queued, running, failed, cancelled) is an error that says why.
pub fn print(task: &pb::Task, format: Format, color: bool) -> CliResult {
    let Some(result) = task.result.as_ref().and_then(|r| r.result.as_ref()) else {
        return Err(no_result(task));
    };
    match result {
        pb::task_result::Result::Review(review) => {
            // The stored review has neither the diff nor the files: the findings keep the lines
            // the server anchored them on, without code lines.
            let files = BTreeMap::new();
            let rendered = report::render(format, &review_report(&task.task_id, review, "", &files), color)?;
            print!("{rendered}");
            if !rendered.ends_with('\n') {
                println!();
            }
            verdict(review, None, false)
        }
        pb::task_result::Result::Describe(description) => {
            let format = match format {
                Format::Terminal => DescribeFormat::Terminal,
                Format::Json => DescribeFormat::Json,
                Format::Markdown => DescribeFormat::Markdown,
                Format::Sarif | Format::Github => return Err(unavailable("a description", format)),
            };
            print_description(&task.task_id, description, format);
            Ok(())
        }
        pb::task_result::Result::Fix(fix) => {
            print!("{}", fix_text(&task.task_id, fix, format)?);
            Ok(())
        }
        pb::task_result::Result::Ask(ask) => {
            println!("> {}\n\n{}", ask.question.trim().replace('\n', "\n> "), ask.answer.trim());
            Ok(())
        }
    }
}

/// A fix in `format`: the explanation and the patch as text, JSON or a Markdown comment.
fn fix_text(task_id: &str, fix: &pb::FixResult, format: Format) -> CliResult<String> {
    let files: Vec<serde_json::Value> = fix
        .files
        .iter()
        .map(|f| {
            let change = pb::FileChangeKind::try_from(f.change)
                .map(|c| c.as_str_name().trim_start_matches("FILE_CHANGE_KIND_").to_lowercase())
                .unwrap_or_default();
            serde_json::json!({"path": f.path, "change": change, "additions": f.additions, "deletions": f.deletions})
        })
        .collect();
    Ok(match format {
        Format::Json => {
            let value = serde_json::json!({
                "task_id": task_id,
                "explanation": fix.explanation,
                "patch": fix.patch,
                "files": files,
                "attempts": fix.attempts,
            });
            format!("{}\n", serde_json::to_string_pretty(&value).map_err(report::ReportError::from)?)
        }
        Format::Terminal => {
            let mut text = format!("{}\n\n", report::printable_lines(fix.explanation.trim()));
            text.push_str(&report::printable_lines(&fix.patch));
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
        Format::Markdown => {
            let fence = "`".repeat(fix.patch.split(|c| c != '`').map(str::len).max().unwrap_or(0).max(2) + 1);
            format!(
                "## prfix fix\n\n{}\n\n{fence}diff\n{}\n{fence}\n",
                report::printable_lines(fix.explanation.trim()),
                fix.patch.trim_end_matches('\n')
            )
        }
        Format::Sarif | Format::Github => return Err(unavailable("a fix", format)),
    })
}

fn unavailable(what: &str, format: Format) -> CliError {
    let name = match format {
        Format::Sarif => "sarif",
        Format::Github => "github",
        Format::Terminal => "terminal",
        Format::Json => "json",
        Format::Markdown => "markdown",
    };
    CliError::new(format!("{what} has no {name} form: use --format terminal, json or markdown"))
}

/// Why a task has no result to show.
fn no_result(task: &pb::Task) -> CliError {
    let id = &task.task_id;
    match pb::TaskState::try_from(task.state) {
        Ok(pb::TaskState::Queued | pb::TaskState::Running) => CliError::new(format!(
            "task {id} is {} and has no result yet: `prfix tasks watch {id}` follows it",
            super::state_name(task.state)
        )),
        _ => super::not_succeeded(&format!("the {}", super::kind_name(task.kind)), task),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix() -> pb::FixResult {
        pb::FixResult {
            patch: "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n".to_owned(),
            explanation: "Use b.".to_owned(),
            files: vec![pb::FileStat {
                path: "x.py".to_owned(),
                change: pb::FileChangeKind::Modified as i32,
                additions: 1,
                deletions: 1,
            }],
            attempts: 2,
        }
    }

    #[test]
    fn a_stored_fix_renders_as_json_and_markdown_but_not_as_sarif() {
        let json: serde_json::Value =
            serde_json::from_str(&fix_text("t", &fix(), Format::Json).expect("json")).expect("JSON");
        assert_eq!(
            json["files"][0],
            serde_json::json!({"path": "x.py", "change": "modified", "additions": 1, "deletions": 1})
        );
        assert_eq!(json["attempts"], 2);
        let markdown = fix_text("t", &fix(), Format::Markdown).expect("markdown");
        assert!(markdown.starts_with("## prfix fix\n\nUse b.\n\n```diff\n--- a/x.py\n"), "{markdown}");
        assert!(markdown.ends_with("+b\n```\n"), "{markdown}");
        let error = fix_text("t", &fix(), Format::Sarif).expect_err("no sarif");
        assert_eq!(error.message, "a fix has no sarif form: use --format terminal, json or markdown");
    }

    #[test]
    fn a_running_task_has_no_result_and_says_how_to_follow_it() {
        let task = pb::Task { task_id: "abcd".to_owned(), state: pb::TaskState::Running as i32, ..Default::default() };
        let error = print(&task, Format::Json, false).expect_err("no result");
        assert_eq!(error.message, "task abcd is running and has no result yet: `prfix tasks watch abcd` follows it");
        let failed = pb::Task {
            state: pb::TaskState::Failed as i32,
            kind: pb::TaskKind::Review as i32,
            error: "model gone".to_owned(),
            ..task
        };
        assert_eq!(
            print(&failed, Format::Json, false).expect_err("failed").message,
            "the review failed: model gone (task abcd)"
        );
    }
}
