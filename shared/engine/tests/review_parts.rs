//! Review parts hold by construction: for random change sets (many files, huge hunks, very long
//! lines, binary files, renames, deletions) and contexts from 2,048 to 131,072 tokens, every part's
//! prompt with the answer and margin fits the context, and the parts together show every line of
//! every reviewable file's diff: once, or twice where a split hunk repeats lines as overlap.
//!
//! The budgets used are the agent's: answer = min(4096, context / 4), at least 256; margin =
//! min(512, context / 32), so a 2,048-token model keeps 64 tokens of margin (the system prompt and
//! schema alone take about 1,300 there) and a model of 16,384 tokens or more keeps 512.

use prfix_engine::diff::{FilePatch, FileStatus, file_patch};
use prfix_engine::prompt::Fence;
use prfix_engine::review::{self, OVERLAP_LINES, PartBudget, ReviewError, ReviewPart};
use prfix_engine::tokens::Estimator;
use proptest::prelude::*;

fn budget(context: usize, ratio: f64) -> PartBudget {
    PartBudget {
        context,
        answer: (context / 4).clamp(256, 4096),
        margin: (context / 32).min(512),
        estimator: Estimator::new(ratio),
    }
}

/// One file of a generated change.
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    lines: usize,
    /// Per line: 0 keep, 1 replace, 2 delete, 3 insert a line after it.
    ops: Vec<u8>,
    /// Length of one very long line placed in the change, if any.
    long: Option<usize>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..8,
        prop_oneof![4 => 0usize..60, 1 => 400usize..2500],
        any::<u64>(),
        prop::option::weighted(0.2, 200usize..40_000),
    )
        .prop_map(|(kind, lines, seed, long)| {
            // A cheap generator of edit patterns from one seed: runs of changes and untouched stretches.
            let mut state = seed | 1;
            let ops = (0..lines)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if state % 5 < 2 { (state >> 8) as u8 % 4 } else { 0 }
                })
                .collect();
            Spec { kind, lines, ops, long }
        })
}

/// A line's text: a unique name, then code-like filler; `long` makes it that many bytes.
fn text(file: usize, side: char, i: usize, long: Option<usize>) -> String {
    let head = format!("L{file}{side}{i} = compute(value_{i}, \"x\");  // note");
    match long {
        Some(len) => {
            let mut line = head;
            while line.len() < len {
                line.push_str(" items.iter().map(|x| x * 2).sum::<u64>() +");
            }
            line
        }
        None => head,
    }
}

fn patch(index: usize, spec: &Spec) -> FilePatch {
    let path = format!("src/dir{}/file_{index}.py", index % 3);
    let old: String = (0..spec.lines).map(|i| format!("{}\n", text(index, 'o', i, None))).collect();
    let mut new = String::new();
    for (i, op) in spec.ops.iter().enumerate() {
        match op {
            1 => new.push_str(&format!("{}\n", text(index, 'n', i, None))),
            2 => {}
            3 => new.push_str(&format!("{}\n{}\n", text(index, 'o', i, None), text(index, 'n', i, None))),
            _ => new.push_str(&format!("{}\n", text(index, 'o', i, None))),
        }
    }
    if spec.lines == 0 || spec.long.is_some() {
        new.push_str(&format!("{}\n", text(index, 'n', spec.lines, spec.long)));
    }
    let made = match spec.kind {
        0 => file_patch(&path, &path, None, Some(&new), 3),
        1 => file_patch(&path, &path, Some(&old), None, 3),
        2 => file_patch(&format!("old/{path}"), &path, Some(&old), Some(&new), 3),
        _ => file_patch(&path, &path, Some(&old), Some(&new), 3),
    };
    let binary = || FilePatch {
        old_path: Some(path.clone()),
        new_path: Some(path.clone()),
        status: FileStatus::Modified,
        old_mode: None,
        new_mode: None,
        similarity: None,
        binary: true,
        hunks: Vec::new(),
    };
    match (spec.kind, made) {
        (7, _) | (_, None) => binary(),
        (_, Some(made)) => made,
    }
}

/// The fenced segments of a part: (path, lines of the body).
fn segments<'a>(part: &'a ReviewPart, fence: &Fence) -> Vec<(&'a str, Vec<&'a str>)> {
    let open = format!("<<<DATA {} diff of ", fence.nonce());
    let close = format!("<<<END DATA {}>>>", fence.nonce());
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut current: Option<(&str, Vec<&str>)> = None;
    for line in part.user_prompt.lines() {
        if let Some(rest) = line.strip_prefix(open.as_str()) {
            current = Some((rest.strip_suffix(">>>").unwrap_or(rest), Vec::new()));
        } else if line == close {
            out.extend(current.take());
        } else if let Some((_, body)) = current.as_mut() {
            body.push(line);
        }
    }
    assert!(current.is_none(), "a fence is left open in part {}", part.index);
    out
}

/// Every line of every part's diff for `path`, in order, with the repeated overlap lines and the
/// continuation headers of split hunks taken out and the pieces of cut lines joined: it must equal
/// the file's rendered hunks.
fn reassembled(parts: &[ReviewPart], fence: &Fence, path: &str) -> Vec<String> {
    // Lines as shown (pieces of cut lines apart), for recognising overlap; and lines joined.
    let mut shown: Vec<&str> = Vec::new();
    let mut joined: Vec<String> = Vec::new();
    for part in parts {
        for (_, body) in segments(part, fence).into_iter().filter(|(p, _)| *p == path) {
            let mut lines = body.into_iter();
            while let Some(line) = lines.next() {
                if line.starts_with("@@") && line.ends_with(" (continued)") {
                    // The repeated lines are the last ones shown before, at most OVERLAP_LINES, and
                    // whole lines only: no piece of a cut line (a continuation, or a line followed
                    // by one) is repeated, so pieces that happen to read the same are not taken
                    // for overlap.
                    let next: Vec<&str> = lines.clone().take(OVERLAP_LINES + 1).collect();
                    let whole = |i: usize| !is_piece(next[i]) && next.get(i + 1).is_none_or(|n| !is_piece(n));
                    let overlap = (1..=next.len().min(OVERLAP_LINES).min(shown.len()))
                        .rev()
                        .find(|&k| shown[shown.len() - k..] == next[..k] && (0..k).all(whole))
                        .unwrap_or(0);
                    if overlap > 0 {
                        lines.nth(overlap - 1);
                    }
                    continue;
                }
                shown.push(line);
                match continuation(line) {
                    Some(rest) => match joined.last_mut() {
                        Some(previous) => previous.push_str(rest),
                        None => panic!("a continuation piece with nothing before it: {line}"),
                    },
                    None => joined.push(line.to_owned()),
                }
            }
        }
    }
    joined
}

/// The text of a cut line's continuation piece (after its line number, kind and `…`), if it is one.
fn continuation(line: &str) -> Option<&str> {
    line.get(8..).and_then(|rest| rest.strip_prefix('…'))
}

fn is_piece(line: &str) -> bool {
    continuation(line).is_some()
}

fn check(files: &[FilePatch], context: usize, ratio: f64) {
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let selection = review::select(files.to_vec(), &[]).expect("default globs");
    let budget = budget(context, ratio);
    let parts = match review::plan_parts(&selection.files, &fence, &system, &budget) {
        Ok(parts) => parts,
        Err(ReviewError::ContextTooSmall { context: c, fixed, answer, margin, smallest_piece }) => {
            assert_eq!(c, context);
            assert!(fixed + answer + margin + smallest_piece > context, "refused a context that fits");
            assert!(ratio > 1.0, "refused {context} tokens with the plain estimate");
            return;
        }
        Err(other) => panic!("unexpected error: {other}"),
    };
    assert_eq!(parts.is_empty(), selection.files.is_empty());
    for part in &parts {
        assert_eq!(part.total, parts.len());
        assert!(part.user_prompt.starts_with(&format!("Review part {} of {} ", part.index + 1, parts.len())));
        let measured = budget.estimator.prompt_tokens(&[&system, &part.user_prompt], Some(&review::findings_schema()));
        assert_eq!(part.prompt_tokens, measured);
        assert!(
            measured + budget.answer + budget.margin <= context,
            "part {} of {}: {measured} + {} + {} > {context}",
            part.index + 1,
            parts.len(),
            budget.answer,
            budget.margin
        );
    }
    for file in &selection.files {
        let expected: Vec<String> = review::render_hunks(file).lines().map(str::to_owned).collect();
        assert_eq!(reassembled(&parts, &fence, file.path()), expected, "{}", file.path());
        assert!(parts.iter().any(|p| p.paths.iter().any(|q| q == file.path())));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_part_fits_its_context_and_every_diff_line_is_shown_once_or_in_an_overlap(
        specs in prop::collection::vec(spec(), 1..9),
        context in prop_oneof![Just(2048usize), Just(4096), Just(8192), Just(32_768), Just(131_072), 2048usize..=131_072],
        ratio in prop_oneof![Just(1.0f64), 0.5f64..1.6],
    ) {
        let files: Vec<FilePatch> = specs.iter().enumerate().map(|(i, s)| patch(i, s)).collect();
        check(&files, context, ratio);
    }
}

#[test]
fn a_single_huge_hunk_at_the_smallest_context_is_split_with_overlap_and_repeated_header() {
    let spec = Spec { kind: 3, lines: 3000, ops: vec![1; 3000], long: None };
    let files = vec![patch(0, &spec)];
    check(&files, 2048, 1.0);
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let selection = review::select(files, &[]).expect("default globs");
    let parts = review::plan_parts(&selection.files, &fence, &system, &budget(2048, 1.0)).expect("fits");
    assert!(parts.len() > 10, "{} parts", parts.len());
    assert!(parts[1].user_prompt.contains("@@ (continued)"));
}

#[test]
fn a_line_longer_than_a_part_is_cut_into_pieces_and_nothing_is_lost() {
    let files = vec![patch(0, &Spec { kind: 0, lines: 0, ops: Vec::new(), long: Some(200_000) })];
    check(&files, 2048, 1.0);
    check(&files, 8192, 1.6);
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let parts = review::plan_parts(&files, &fence, &system, &budget(8192, 1.6)).expect("fits");
    assert!(parts.len() > 5, "{} parts", parts.len());
    assert!(parts[1].user_prompt.contains("    1 + …"));
}

/// The filler of a long line repeats every 44 bytes, so the pieces of a cut line often read the
/// same; a proptest case found an overlap of such pieces taken for new text. Pieces are never
/// repeated as overlap, and this sweep of contexts (each cutting the line at another phase, beside
/// whole lines that are repeated) reassembles every time.
#[test]
fn pieces_of_a_periodic_line_are_never_repeated_as_overlap_at_any_context() {
    let ops: Vec<u8> = (0..60).map(|i| [1, 0, 3, 1, 2][i % 5]).collect();
    let files = vec![
        patch(0, &Spec { kind: 0, lines: 0, ops: Vec::new(), long: Some(40_000) }),
        patch(1, &Spec { kind: 3, lines: 60, ops, long: Some(12_000) }),
    ];
    for context in (2048..=12_288).step_by(211) {
        check(&files, context, 1.0);
        check(&files, context, 1.37);
    }
}

#[test]
fn small_files_share_a_part() {
    let files: Vec<FilePatch> = (0..20)
        .map(|i| patch(i, &Spec { kind: 3, lines: 10, ops: vec![0, 1, 0, 3, 0, 0, 2, 0, 0, 1], long: None }))
        .collect();
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let parts = review::plan_parts(&files, &fence, &system, &budget(32_768, 1.0)).expect("fits");
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].paths.len(), 20);
}

#[test]
fn a_context_too_small_for_the_system_prompt_says_what_it_needs_and_what_to_raise() {
    let fence = Fence::new();
    let system = review::system_prompt(&fence, "");
    let files = vec![patch(0, &Spec { kind: 0, lines: 3, ops: vec![0; 3], long: None })];
    let error = review::plan_parts(&files, &fence, &system, &budget(1024, 1.0)).expect_err("too small");
    let message = error.to_string();
    assert!(matches!(error, ReviewError::ContextTooSmall { context: 1024, .. }), "{error:?}");
    assert!(message.contains("context is 1024") && message.contains("larger context"), "{message}");
}
