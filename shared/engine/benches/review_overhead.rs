//! The agent's own time and memory per review, outside model time, for a change of about 50,000
//! diff lines in 500 files: redaction, diff parsing, file selection, planning the parts (assembled
//! and measured prompts), parsing an answer per part, anchoring and finalising; at model contexts
//! of 8,192 and 32,768 tokens. Figures are also given as ratios to a reference measured in the same
//! run (rendering every file's hunks once, the least any review must do), so they compare across
//! machines. Prints figures, asserts nothing; run with
//! `cargo bench -p prfix-engine --bench review_overhead`. The goal is under 0.5 s and 200 MB.

use std::time::{Duration, Instant};

use prfix_engine::diff;
use prfix_engine::prompt::Fence;
use prfix_engine::redact::{Redactor, Vault};
use prfix_engine::review::{self, PartBudget};
use prfix_engine::tokens::Estimator;

const FILES: usize = 500;
/// Lines of each file; every third is changed, which gives about 100 diff lines a file.
const LINES_PER_FILE: usize = 75;
const ROUNDS: usize = 7;

/// A diff of `FILES` files, every third line of each changed.
fn make_diff() -> String {
    let mut out = String::new();
    for f in 0..FILES {
        let old: String = (0..LINES_PER_FILE)
            .map(|l| format!("    let value_{l} = compute(input, {l}); // file {f} keeps a comment here\n"))
            .collect();
        let new: String = (0..LINES_PER_FILE)
            .map(|l| {
                if l % 3 == 0 {
                    format!("    let value_{l} = compute_checked(input, {l})?; // file {f} changed this line\n")
                } else {
                    format!("    let value_{l} = compute(input, {l}); // file {f} keeps a comment here\n")
                }
            })
            .collect();
        let path = format!("src/module_{}/handler_{f}.rs", f % 40);
        out.push_str(&diff::unified_diff(&path, &path, Some(&old), Some(&new), 3));
    }
    out
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn budget(context: usize) -> PartBudget {
    PartBudget {
        context,
        answer: (context / 4).clamp(256, 4096),
        margin: (context / 32).min(512),
        estimator: Estimator::default(),
    }
}

/// What a model answers for a part: prose, a fence, a finding per file with a line off the diff.
fn answer(paths: &[String]) -> String {
    let findings: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                r#"{{"path": "{p}", "line": 9999, "severity": "major", "title": "Unchecked {p}", "body": "b", "suggestion": "    x\n"}}"#
            )
        })
        .collect();
    format!("Here you go:\n```json\n{{\"findings\": [{}]}}\n```", findings.join(","))
}

struct Run {
    parts: usize,
    findings: usize,
}

/// One whole review of `text` at `context`, without the model.
fn review(text: &str, redactor: &Redactor, context: usize) -> Run {
    let mut vault = Vault::default();
    let redacted = redactor.redact(text, &mut vault);
    let patches = diff::parse(&redacted).expect("the generated diff parses");
    let selection = review::select(patches, &[]).expect("default globs");
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let parts = review::plan_parts(&selection.files, &fence, &system, &budget(context)).expect("the context fits");
    let lines = review::DiffLines::new(&selection.files);
    let mut all = Vec::new();
    for part in &parts {
        std::hint::black_box(&part.user_prompt);
        let raw = review::parse_findings(&answer(&part.paths)).expect("findings parse");
        all.extend(lines.anchor(raw).findings);
    }
    let findings = review::finalize(all, None, 50);
    Run { parts: parts.len(), findings: findings.len() }
}

fn median(mut timings: Vec<Duration>) -> Duration {
    timings.sort();
    timings[timings.len() / 2]
}

fn main() {
    let text = make_diff();
    let redactor = Redactor::new();
    let diff_lines = text.lines().count();
    let patches = diff::parse(&text).expect("the generated diff parses");
    println!(
        "review overhead for a {diff_lines}-line diff of {FILES} files ({:.2} MiB), median of {ROUNDS} rounds:",
        text.len() as f64 / 1_048_576.0
    );
    println!("  peak RSS before any review: {:.1} MiB", peak_rss_mib().unwrap_or(f64::NAN));

    let reference = median(
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                let rendered: usize = patches.iter().map(|p| review::render_hunks(p).len()).sum();
                std::hint::black_box(rendered);
                started.elapsed()
            })
            .collect(),
    );
    let copy = median(
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(text.clone());
                started.elapsed()
            })
            .collect(),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  reference: render every file's hunks {:.2} ms; copy the diff text {:.3} ms", ms(reference), ms(copy));

    for context in [8_192usize, 32_768] {
        let mut timings = Vec::with_capacity(ROUNDS);
        let mut last = Run { parts: 0, findings: 0 };
        for _ in 0..ROUNDS {
            let started = Instant::now();
            last = review(&text, &redactor, context);
            timings.push(started.elapsed());
        }
        let time = median(timings);
        println!(
            "  context {context}: {} parts, {} findings kept; {:.1} ms a review ({:.1}x the render reference); \
             peak RSS so far {:.1} MiB",
            last.parts,
            last.findings,
            ms(time),
            time.as_secs_f64() / reference.as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
}
