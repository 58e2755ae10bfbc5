//! A run's report as a terminal table, JSON or Markdown.

use super::mine::short;
use super::report::{EvalFormat, FixReport, FixTotals, ReviewReport};
use super::score::Totals;
use crate::report::printable;

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn interval(value: Option<(f64, f64)>) -> String {
    value.map_or_else(|| "-".to_owned(), |(l, h)| format!("{l:.3}-{h:.3}"))
}

fn model_name(model: &str) -> String {
    if model.is_empty() { "(default)".to_owned() } else { printable(model) }
}

/// The rows of a table: header, then one row per totals.
fn review_rows(results: &[Totals]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "model",
            "variant",
            "caught",
            "recall",
            "95% CI",
            "findings/review",
            "noise",
            "calls",
            "tokens in/out",
            "time",
            "failed",
            "pending",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for t in results {
        rows.push(vec![
            model_name(&t.model),
            printable(&t.variant),
            format!("{}/{}", t.successes, t.cases),
            ratio(t.rate),
            interval(t.interval),
            t.findings_per_review.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            format!("{} ({}/{})", ratio(t.noise_share), t.noisy, t.findings),
            t.model_calls.to_string(),
            format!("{}/{}", t.prompt_tokens, t.output_tokens),
            format!("{:.1}s", t.wall_secs),
            format!("{}/{} ({})", t.failed, t.cases, ratio(t.failure_rate)),
            t.pending.to_string(),
        ]);
    }
    rows
}

fn fix_rows(results: &[FixTotals]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "model",
            "fixed",
            "rate",
            "95% CI",
            "still failing",
            "edited test",
            "calls",
            "tokens in/out",
            "time",
            "failed",
            "left out",
            "pending",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for f in results {
        let t = &f.totals;
        rows.push(vec![
            model_name(&t.model),
            format!("{}/{}", t.successes, t.cases),
            ratio(t.rate),
            interval(t.interval),
            f.still_failing.to_string(),
            f.edited_test.to_string(),
            t.model_calls.to_string(),
            format!("{}/{}", t.prompt_tokens, t.output_tokens),
            format!("{:.1}s", t.wall_secs),
            format!("{}/{} ({})", t.failed, t.cases, ratio(t.failure_rate)),
            f.passed_before.to_string(),
            t.pending.to_string(),
        ]);
    }
    rows
}

/// Aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A Markdown table.
fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", " --- |".repeat(row.len())));
        }
    }
    out
}

fn window(since: &Option<String>) -> String {
    since.as_ref().map_or_else(|| "all history".to_owned(), |s| format!("since {s}"))
}

/// Renders a review report.
pub fn render_review(report: &ReviewReport, format: EvalFormat) -> String {
    let m = &report.mined;
    let incomplete = if report.complete {
        String::new()
    } else {
        "\nThe run stopped at its time limit: run the same command again to go on from the cache.\n".to_owned()
    };
    match format {
        EvalFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        EvalFormat::Terminal => format!(
            "run {} ({}): {} fix candidates, {} fix commits, {} bug-introducing commits \
             ({} fixes without source lines, {} older commits, {} over --max)\n\
             hit: a finding within {} lines of a line a later fix changed\n\n{}{}",
            report.run_id,
            window(&report.since),
            m.fix_candidates,
            m.fix_commits,
            m.introducing_commits,
            m.fixes_without_lines,
            m.older_than_window,
            m.over_max,
            report.distance,
            table(&review_rows(&report.results)),
            incomplete
        ),
        EvalFormat::Markdown => {
            let mut out = format!(
                "# prfix eval review: {}\n\n\
                 Bug fixes mined from {}: {} commits match the fix patterns, {} changed existing lines of source \
                 files, and `git blame` on their parents names {} bug-introducing commits (left out: {} whitespace, \
                 {} comment and {} refactoring lines; {} blamed commits older than the window; {} over `--max`).\n\n\
                 A bug counts as caught when a finding lands within {} lines of a line its fix changed. Recall \
                 counts failed reviews as misses; the interval is the 95% Wilson score interval; noise is the \
                 share of findings on lines no later fix changed.\n\n{}{}",
                report.run_id,
                window(&report.since),
                m.fix_candidates,
                m.fix_commits,
                m.introducing_commits,
                m.lines_left_out.whitespace,
                m.lines_left_out.comment,
                m.lines_left_out.refactoring,
                m.older_than_window,
                m.over_max,
                report.distance,
                markdown_table(&review_rows(&report.results)),
                incomplete
            );
            out.push_str(
                "\n## Answer key\n\n| introducing commit | subject | fixed by | lines |\n| --- | --- | --- | --- |\n",
            );
            for c in &report.introducing {
                let lines: Vec<String> = c
                    .lines
                    .iter()
                    .map(|(p, l)| format!("{}:{}", p, l.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
                    .collect();
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    short(&c.sha),
                    printable(&c.subject).replace('|', "\\|"),
                    c.fixed_by.iter().map(|s| format!("`{}`", short(s))).collect::<Vec<_>>().join(" "),
                    printable(&lines.join(" ")).replace('|', "\\|")
                ));
            }
            out
        }
    }
}

/// Renders a fix report.
pub fn render_fix(report: &FixReport, format: EvalFormat) -> String {
    let incomplete = if report.complete {
        ""
    } else {
        "\nThe run stopped at its time limit: run the same command again to go on from the cache.\n"
    };
    match format {
        EvalFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        EvalFormat::Terminal => format!(
            "run {} ({}): {} fix commits with tests\nfixed: the new test passes after `prfix fix`, the test untouched\n\n{}{}",
            report.run_id,
            window(&report.since),
            report.fix_commits_with_tests,
            table(&fix_rows(&report.results)),
            incomplete
        ),
        EvalFormat::Markdown => format!(
            "# prfix eval fix: {}\n\nFix commits from {} that add or change a test: {}. Each is replayed from its \
             parent with the new test as the failing check; a fix counts when the test passes afterwards and was \
             not edited. Failed runs count as misses; the interval is the 95% Wilson score interval.\n\n{}{}",
            report.run_id,
            window(&report.since),
            report.fix_commits_with_tests,
            markdown_table(&fix_rows(&report.results)),
            incomplete
        ),
    }
}

/// The review rows as a table: Markdown, or aligned columns (for tests).
#[cfg(test)]
pub(super) fn review_table(results: &[Totals], markdown: bool) -> String {
    if markdown { markdown_table(&review_rows(results)) } else { table(&review_rows(results)) }
}
