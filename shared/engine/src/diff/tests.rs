//! Unit and property tests of the diff module as a whole.

use proptest::prelude::*;

use super::*;

const TWO_HUNKS: &str = "\
diff --git a/src/lib.rs b/src/lib.rs
index 3b18e51..a1b2c3d 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,4 +1,5 @@ mod top
 one
-two
+TWO
+two and a half
 three

@@ -10 +11,2 @@ fn tail()
 ten
+eleven
";

#[test]
fn a_modified_file_reads_with_hunks_counts_and_line_numbers() {
    let files = parse(TWO_HUNKS).expect("valid diff");
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(file.status, FileStatus::Modified);
    assert_eq!((file.old_path.as_deref(), file.new_path.as_deref()), (Some("src/lib.rs"), Some("src/lib.rs")));
    assert_eq!((file.old_mode, file.new_mode), (None, None));
    assert_eq!((file.additions(), file.deletions()), (3, 1));
    let first = &file.hunks[0];
    assert_eq!((first.old_start, first.old_count, first.new_start, first.new_count), (1, 4, 1, 5));
    assert_eq!(first.section, "mod top");
    // The stripped empty context line counts as a context line with empty text.
    assert_eq!(
        first.lines[5],
        Line {
            kind: LineKind::Context,
            text: String::new(),
            old_line: Some(4),
            new_line: Some(5),
            no_newline_at_end: false
        }
    );
    let second = &file.hunks[1];
    assert_eq!((second.old_start, second.old_count, second.new_start, second.new_count), (10, 1, 11, 2));
    assert_eq!(file.changed_new_lines(), vec![2, 3, 12]);
    assert_eq!(file.new_lines_in_diff(), vec![1, 2, 3, 4, 5, 11, 12]);
}

#[test]
fn writing_a_parsed_diff_reads_back_the_same() {
    let files = parse(TWO_HUNKS).expect("valid diff");
    assert_eq!(parse(&write(&files)).expect("written diff parses"), files);
}

#[test]
fn missing_newline_markers_attach_to_the_line_before() {
    let diff =
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n\\ No newline at end of file\n+new\n\\ No newline at end of file\n";
    let file = &parse(diff).expect("valid diff")[0];
    assert!(file.hunks[0].lines.iter().all(|line| line.no_newline_at_end));
    assert_eq!(apply(Some("old"), file).expect("applies"), Some("new".to_owned()));
}

#[test]
fn crlf_content_keeps_its_carriage_returns() {
    let diff = "diff --git a/w.txt b/w.txt\n--- a/w.txt\n+++ b/w.txt\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\r\n";
    let file = &parse(diff).expect("valid diff")[0];
    assert_eq!(file.hunks[0].lines[0].text, "a\r");
    assert_eq!(apply(Some("a\r\nb\r\n"), file).expect("applies"), Some("a\r\nc\r\n".to_owned()));
}

#[test]
fn a_plain_diff_u_with_timestamps_reads() {
    let diff = "--- old.txt\t2024-01-01 10:00:00.000000000 +0100\n+++ new.txt\t2024-01-02 10:00:00.000000000 +0100\n\
                @@ -1 +1 @@\n-a\n+b\n";
    let file = &parse(diff).expect("valid diff")[0];
    assert_eq!((file.old_path.as_deref(), file.new_path.as_deref()), (Some("old.txt"), Some("new.txt")));
    assert_eq!(file.status, FileStatus::Modified);
}

#[test]
fn quoted_names_and_no_prefix_headers_give_true_paths() {
    let quoted =
        "diff --git \"a/t\\303\\251st \\\"q\\\".txt\" \"b/t\\303\\251st \\\"q\\\".txt\"\nnew file mode 100644\n";
    let file = &parse(quoted).expect("valid diff")[0];
    assert_eq!(file.new_path.as_deref(), Some("tést \"q\".txt"));
    assert_eq!(file.status, FileStatus::Added);
    assert_eq!(file.new_mode, Some(MODE_FILE));
    assert_eq!(write(std::slice::from_ref(file)), quoted);

    let no_prefix = "diff --git dir/my file dir/my file\nold mode 100644\nnew mode 100755\n";
    let file = &parse(no_prefix).expect("valid diff")[0];
    assert_eq!(file.path(), "dir/my file");
    assert_eq!((file.old_mode, file.new_mode), (Some(MODE_FILE), Some(MODE_EXECUTABLE)));
}

#[test]
fn malformed_diffs_name_the_line_and_the_problem() {
    type IsExpected = fn(&DiffError) -> bool;
    let cases: [(&str, usize, IsExpected); 8] = [
        ("@@ -1 +1 @@\n-a\n+b\n", 1, |e| matches!(e, DiffError::HunkOutsideFile { .. })),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n-a\n+b\n", 6, |e| matches!(e, DiffError::ShortHunk { .. })),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n-b\n+b\n", 5, |e| matches!(e, DiffError::CountMismatch { .. })),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n", 6, |e| matches!(e, DiffError::CountMismatch { .. })),
        ("hello world\n", 1, |e| matches!(e, DiffError::Garbage { .. })),
        ("--- a/x\n+++ b/x\n@@ -x +1 @@\n", 3, |e| matches!(e, DiffError::BadHunkHeader { .. })),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n\\ No newline at end of file\n", 4, |e| {
            matches!(e, DiffError::StrayNoNewline { .. })
        }),
        ("diff --cc x\n", 1, |e| matches!(e, DiffError::Combined { .. })),
    ];
    for (diff, line, is_expected) in cases {
        let error = parse(diff).expect_err("malformed diff is refused");
        assert_eq!(error.line(), line, "{diff:?}: {error}");
        assert!(is_expected(&error), "{diff:?}: {error:?}");
        assert!(error.to_string().starts_with(&format!("diff line {line}:")), "{error}");
    }
}

#[test]
fn hunks_without_a_file_header_read_alone() {
    let hunks = parse_hunks("@@ -1,2 +1,2 @@ fn main()\n a\n-b\n+c\n@@ -9 +9,0 @@\n-z\n").expect("valid hunks");
    assert_eq!(hunks.len(), 2);
    assert_eq!((hunks[1].old_start, hunks[1].old_count, hunks[1].new_count), (9, 1, 0));
    assert_eq!(parse_hunks("@@ -1 +1 @@\n-a\n+b\ntrailing\n").expect_err("garbage after").line(), 4);
}

#[test]
fn a_hunk_is_found_at_an_offset_nearest_first() {
    let diff = unified_diff("f", "f", Some("a\nb\nc\nd\ne\n"), Some("a\nb\nC\nd\ne\n"), 1);
    let file = &parse(&diff).expect("valid diff")[0];
    let shifted = "0\n1\na\nb\nc\nd\ne\n";
    assert_eq!(apply(Some(shifted), file).expect("applies at offset"), Some("0\n1\na\nb\nC\nd\ne\n".to_owned()));
}

#[test]
fn a_hunk_that_does_not_match_names_the_hunk_and_line() {
    let diff = unified_diff("f", "f", Some("a\nb\nc\n"), Some("a\nB\nc\n"), 1);
    let file = &parse(&diff).expect("valid diff")[0];
    let error = apply(Some("a\nx\nc\n"), file).expect_err("context differs");
    match &error {
        ApplyError::HunkMismatch { hunk, line, expected, found, .. } => {
            assert_eq!((*hunk, *line), (1, 2));
            assert_eq!((expected.as_str(), found.as_str()), ("\"b\"", "\"x\""));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "f: hunk 1 (@@ -1,3 +1,3 @@) does not apply: at line 2 the patch expects \"b\" but the file has \"x\""
    );
}

#[test]
fn creating_and_deleting_files_check_existence() {
    let added = &parse(&unified_diff("n", "n", None, Some("x\n"), 3)).expect("valid diff")[0];
    assert_eq!(apply(None, added).expect("creates"), Some("x\n".to_owned()));
    assert!(matches!(apply(Some("y\n"), added), Err(ApplyError::AlreadyExists { .. })));
    let deleted = &parse(&unified_diff("n", "n", Some("x\n"), None, 3)).expect("valid diff")[0];
    assert_eq!(apply(Some("x\n"), deleted).expect("deletes"), None);
    assert!(matches!(apply(None, deleted), Err(ApplyError::MissingFile { .. })));
    assert!(matches!(apply(Some("x\ny\n"), deleted), Err(ApplyError::DeletionLeavesContent { remaining: 1, .. })));
}

#[test]
fn a_line_without_newline_left_in_the_middle_is_refused() {
    let diff = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+x\n\\ No newline at end of file\n";
    let file = &parse(diff).expect("valid diff")[0];
    assert!(matches!(apply(Some("a\nb\n"), file), Err(ApplyError::NewlineInMiddle { hunk: 1, .. })));
}

#[test]
fn unchanged_text_gives_an_empty_diff_and_a_pure_rename_gives_rename_lines() {
    assert_eq!(unified_diff("a", "a", Some("x\n"), Some("x\n"), 3), "");
    assert_eq!(unified_diff("a", "a", None, None, 3), "");
    assert_eq!(
        unified_diff("old name", "new", Some("x\n"), Some("x\n"), 3),
        "diff --git a/old name b/new\nsimilarity index 100%\nrename from old name\nrename to new\n"
    );
    assert_eq!(unified_diff("e", "e", None, Some(""), 3), "diff --git a/e b/e\nnew file mode 100644\n");
}

#[test]
fn changes_closer_than_twice_the_context_share_a_hunk() {
    let old: String = (1..=20).map(|n| format!("{n}\n")).collect();
    // Six unchanged lines between changes (twice the context) still make one hunk, seven make two.
    let joined = old.replace("\n5\n", "\nfive\n").replace("\n12\n", "\ntwelve\n");
    let split = old.replace("\n5\n", "\nfive\n").replace("\n13\n", "\nthirteen\n");
    assert_eq!(parse(&unified_diff("f", "f", Some(&old), Some(&joined), 3)).expect("valid")[0].hunks.len(), 1);
    assert_eq!(parse(&unified_diff("f", "f", Some(&old), Some(&split), 3)).expect("valid")[0].hunks.len(), 2);
}

/// Texts of lines from a small alphabet (with empty and CRLF lines), maybe without final newline.
fn text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "", "a\r", "-x", " y", "\\z"]), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline)| {
            let mut text = lines.join("\n");
            if final_newline && !lines.is_empty() {
                text.push('\n');
            }
            text
        })
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["f.txt", "dir/with space.rs", "tést \"q\".txt", "x\ty", "日本/語"])
        .prop_map(str::to_owned)
}

/// Lines a diff is made of, to reach deep into the parser with random input.
fn diffish() -> impl Strategy<Value = String> {
    let pieces = vec![
        "diff --git a/x b/x",
        "diff --git \"a/\\303\" b/y",
        "--- a/x",
        "+++ b/x",
        "--- /dev/null",
        "+++ /dev/null",
        "@@ -1 +1 @@",
        "@@ -0,0 +1,2 @@ s",
        "@@ -4294967295,1 +1 @@",
        "@@ -1,2 +1,0 @@",
        " a",
        "-a",
        "+b",
        "",
        "\\ No newline at end of file",
        "new file mode 100644",
        "deleted file mode 100755",
        "rename from x",
        "rename to \"y",
        "similarity index 300%",
        "GIT binary patch",
        "literal 3",
        "Binary files a/x and b/x differ",
        "é\r",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..30).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parser(input in any::<String>()) {
        let _ = parse(&input);
    }

    #[test]
    fn diff_like_text_never_panics_and_what_parses_round_trips(input in diffish()) {
        let _ = parse_hunks(&input);
        if let Ok(files) = parse(&input) {
            prop_assert_eq!(parse(&write(&files)).expect("written diff parses"), files);
        }
    }

    #[test]
    fn applying_our_diff_gives_the_new_text(old in text(), new in text(), context in 0usize..4) {
        let diff = unified_diff("f", "f", Some(&old), Some(&new), context);
        if old == new {
            prop_assert_eq!(diff, "");
        } else {
            let files = parse(&diff).expect("our diff parses");
            prop_assert_eq!(files.len(), 1);
            prop_assert_eq!(apply(Some(&old), &files[0]).expect("our diff applies"), Some(new));
        }
    }

    #[test]
    fn created_and_deleted_files_apply(content in text()) {
        let created = parse(&unified_diff("f", "f", None, Some(&content), 3)).expect("parses");
        prop_assert_eq!(apply(None, &created[0]).expect("creates"), Some(content.clone()));
        let deleted = parse(&unified_diff("f", "f", Some(&content), None, 3)).expect("parses");
        prop_assert_eq!(apply(Some(&content), &deleted[0]).expect("deletes"), None);
    }

    #[test]
    fn write_and_parse_round_trip(old in text(), new in text(), old_path in path(), new_path in path()) {
        let diff = unified_diff(&old_path, &new_path, Some(&old), Some(&new), 3);
        let files = parse(&diff).expect("our diff parses");
        prop_assert_eq!(write(&files), diff);
        if let Some(file) = files.first() {
            prop_assert_eq!(file.old_path.as_deref(), Some(old_path.as_str()));
            prop_assert_eq!(file.new_path.as_deref(), Some(new_path.as_str()));
        }
    }
}
