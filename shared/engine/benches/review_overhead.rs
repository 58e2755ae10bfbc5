//! The agent's own time per review, outside model time: redaction, diff parsing, file selection,
//! chunking, prompt building, parsing the answers, anchoring and finalising, for a 5,000-line diff.
//! Prints figures; run with `cargo bench -p prfix-engine --bench review_overhead`.

use std::time::{Duration, Instant};

use prfix_engine::diff;
use prfix_engine::prompt::Fence;
use prfix_engine::redact::{Redactor, Vault};
use prfix_engine::review;

/// A diff of `files` files with `lines_per_file` changed lines each (half added, half context).
fn make_diff(files: usize, lines_per_file: usize) -> String {
    let mut out = String::new();
    for f in 0..files {
        let old: String =
            (0..lines_per_file).map(|l| format!("    let value_{l} = compute(input, {l}); // file {f}\n")).collect();
        let new: String = (0..lines_per_file)
            .map(|l| {
                if l % 2 == 0 {
                    format!("    let value_{l} = compute_checked(input, {l})?; // file {f}\n")
                } else {
                    format!("    let value_{l} = compute(input, {l}); // file {f}\n")
                }
            })
            .collect();
        let path = format!("src/module_{f}/handler.rs");
        out.push_str(&diff::unified_diff(&path, &path, Some(&old), Some(&new), 3));
    }
    out
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let text = make_diff(50, 67);
    let diff_lines = text.lines().count();
    let redactor = Redactor::new();
    let context_tokens = 32_768usize;
    let rounds = 30;
    let before = peak_rss_kib();
    let mut timings: Vec<Duration> = Vec::with_capacity(rounds);
    let mut chunks_seen = 0;
    let mut findings_seen = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let mut vault = Vault::default();
        let redacted = redactor.redact(&text, &mut vault);
        let patches = diff::parse(&redacted).expect("the generated diff parses");
        let selection = review::select(patches, &[]).expect("default globs");
        let fence = Fence::new();
        let system = review::system_prompt(&fence, "");
        let chunks = review::chunk(&selection.files, context_tokens - 6_000);
        let mut all = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let prompt = review::chunk_prompt(&fence, chunk, i, chunks.len());
            std::hint::black_box((&system, &prompt));
            // What a model answers: prose, a fence, a finding per file with a line off the diff.
            let answer = format!(
                "Here you go:\n```json\n{{\"findings\": [{}]}}\n```",
                chunk
                    .paths
                    .iter()
                    .map(|p| format!(
                        r#"{{"path": "{p}", "line": 9999, "severity": "major", "title": "Unchecked", "body": "b", }}"#
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let raw = review::parse_findings(&answer).expect("findings parse");
            all.extend(review::anchor(raw, &selection.files).findings);
        }
        let findings = review::finalize(all, None, 50);
        timings.push(started.elapsed());
        chunks_seen = chunks.len();
        findings_seen = findings.len();
    }
    timings.sort();
    let after = peak_rss_kib();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("review overhead for a {diff_lines}-line diff (50 files), {rounds} rounds:");
    println!("  chunks per review: {chunks_seen}; findings kept: {findings_seen}");
    println!(
        "  time per review: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        ms(timings[0]),
        ms(timings[rounds / 2]),
        ms(timings[rounds - 1])
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "  peak RSS: {:.1} MiB (before the reviews {:.1} MiB; diff text {:.2} MiB)",
            a as f64 / 1024.0,
            b as f64 / 1024.0,
            text.len() as f64 / 1_048_576.0
        );
    }
}
