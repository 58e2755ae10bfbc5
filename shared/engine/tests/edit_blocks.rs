//! Edits as small models write them: parsed tolerantly, applied by exact then looser matches,
//! and explained back to the model when they do not apply.

use std::collections::BTreeMap;

use prfix_engine::edit::{
    BlockFailure, Edit, EditParseError, MatchKind, apply_edits, apply_search_replace, parse_edits, parse_edits_report,
    retry_feedback,
};

const THRESHOLD: u16 = prfix_engine::edit::DEFAULT_FUZZY_THRESHOLD_PERMILLE;

fn sr(path: &str, search: &str, replace: &str) -> Edit {
    Edit::SearchReplace { path: path.into(), search: search.into(), replace: replace.into() }
}

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

// ---- parsing ----

#[test]
fn the_canonical_form_parses_into_search_and_replace_lines() {
    let answer = "src/calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n";
    let edits = parse_edits(answer).expect("one block");
    assert_eq!(
        edits,
        vec![sr("src/calc.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")]
    );
}

#[test]
fn a_fenced_block_takes_its_path_from_the_line_before_the_fence() {
    let answer = "Here is the fix for the off-by-one error.\n\nsrc/util.rs\n```rust\n<<<<<<< SEARCH\n    for i in 0..=n {\n=======\n    for i in 0..n {\n>>>>>>> REPLACE\n```\n\nThis stops the loop at n - 1.\n";
    assert_eq!(parse_edits(answer), Ok(vec![sr("src/util.rs", "    for i in 0..=n {\n", "    for i in 0..n {\n")]));
}

#[test]
fn a_path_on_the_fence_info_string_is_used() {
    let answer = "```python app/main.py\n<<<<<<< SEARCH\nprint 'hi'\n=======\nprint('hi')\n>>>>>>> REPLACE\n```\n";
    assert_eq!(parse_edits(answer).expect("parses")[0].path(), "app/main.py");
}

#[test]
fn decorated_path_lines_are_understood() {
    for line in ["File: lib/a.go", "**lib/a.go**", "`lib/a.go`", "# lib/a.go", "### File: `lib/a.go`", "lib/a.go:"] {
        let answer = format!("{line}\n```go\n<<<<<<< SEARCH\nx := 1\n=======\nx := 2\n>>>>>>> REPLACE\n```\n");
        let edits = parse_edits(&answer).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(edits[0].path(), "lib/a.go", "{line}");
    }
}

#[test]
fn a_dot_slash_prefix_and_surrounding_spaces_are_stripped_from_the_path() {
    let answer = "  ./src/a.rs  \n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n";
    assert_eq!(parse_edits(answer).expect("parses")[0].path(), "src/a.rs");
}

#[test]
fn markers_of_five_to_nine_characters_in_any_case_and_spacing_are_read() {
    let answer = "a.txt\n<<<<< search\nold\n  =========  \nnew\n>>>>>>>>> Replace\n";
    assert_eq!(parse_edits(answer), Ok(vec![sr("a.txt", "old\n", "new\n")]));
}

#[test]
fn a_missing_final_replace_marker_takes_the_rest_up_to_the_closing_fence() {
    let answer = "a.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\ny = 3\n```\nLet me know if this helps!\n";
    assert_eq!(parse_edits(answer), Ok(vec![sr("a.py", "x = 1\n", "x = 2\ny = 3\n")]));
    let unfenced = "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n\n";
    assert_eq!(parse_edits(unfenced), Ok(vec![sr("a.py", "x = 1\n", "x = 2\n")]));
}

#[test]
fn later_blocks_without_a_path_reuse_the_previous_one_across_prose() {
    let answer = "src/lib.rs\n```rust\n<<<<<<< SEARCH\nfn a() {}\n=======\nfn a() { b() }\n>>>>>>> REPLACE\n```\n\nNow update the caller as well:\n\n```rust\n<<<<<<< SEARCH\na();\n=======\na();\nb();\n>>>>>>> REPLACE\n```\n\nThen in `src/main.rs`, change:\n```rust\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n```\n";
    let paths: Vec<String> = parse_edits(answer).expect("three blocks").iter().map(|e| e.path().to_string()).collect();
    assert_eq!(paths, vec!["src/lib.rs", "src/lib.rs", "src/main.rs"]);
}

#[test]
fn a_crlf_answer_parses_like_the_same_answer_with_lf() {
    let lf = "a.c\n<<<<<<< SEARCH\nint x;\n=======\nint y;\n>>>>>>> REPLACE\n";
    assert_eq!(parse_edits(&lf.replace('\n', "\r\n")), parse_edits(lf));
    assert_eq!(parse_edits(lf), Ok(vec![sr("a.c", "int x;\n", "int y;\n")]));
}

#[test]
fn a_divider_line_inside_the_replace_part_is_content() {
    let answer = "README.rst\n<<<<<<< SEARCH\nTitle\n=======\nTitle\n=======\n>>>>>>> REPLACE\n";
    assert_eq!(parse_edits(answer), Ok(vec![sr("README.rst", "Title\n", "Title\n=======\n")]));
}

#[test]
fn a_file_block_gives_the_whole_new_content() {
    let answer = "Makefile\n<<<<<<< FILE\nall:\n\tcc main.c\n>>>>>>> FILE\n";
    assert_eq!(
        parse_edits(answer),
        Ok(vec![Edit::WholeFile { path: "Makefile".into(), content: "all:\n\tcc main.c\n".into() }])
    );
}

#[test]
fn a_fenced_file_under_a_path_is_a_whole_file_when_the_answer_has_no_markers() {
    let answer = "Here is the corrected file:\n\n**config/settings.py**\n```python\nDEBUG = False\nPORT = 8080\n```\n\nI turned debug off.";
    assert_eq!(
        parse_edits(answer),
        Ok(vec![Edit::WholeFile { path: "config/settings.py".into(), content: "DEBUG = False\nPORT = 8080\n".into() }])
    );
}

#[test]
fn fenced_files_are_refused_when_a_path_has_two_or_the_fence_is_a_diff() {
    let twice = "a.py\n```python\nx = 1\n```\nOr better:\na.py\n```python\nx = 2\n```\n";
    assert_eq!(parse_edits(twice), Err(EditParseError::DuplicateWholeFile { path: "a.py".into(), count: 2 }));
    let diff = "a.py\n```diff\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n```\n";
    assert_eq!(parse_edits(diff), Err(EditParseError::DiffNotAccepted { path: "a.py".into() }));
}

#[test]
fn a_fenced_file_without_markers_is_ignored_when_the_answer_has_search_blocks() {
    let answer = "b.py\n```python\nwhole = True\n```\na.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n";
    assert_eq!(parse_edits(answer), Ok(vec![sr("a.py", "x\n", "y\n")]));
}

#[test]
fn a_block_without_a_divider_is_named_in_the_error() {
    let answer = "src/a.rs\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\nsrc/b.rs\n<<<<<<< SEARCH\nold\nnew\n>>>>>>> REPLACE\n";
    let report = parse_edits_report(answer);
    assert_eq!(report.edits, vec![sr("src/a.rs", "x\n", "y\n")]);
    let problem = EditParseError::MissingDivider { block: 2, path: "src/b.rs".into() };
    assert_eq!(
        problem.to_string(),
        "SEARCH block 2 for src/b.rs has no ======= divider between its SEARCH and REPLACE parts"
    );
    assert_eq!(report.problems, vec![problem.clone()]);
    assert_eq!(
        parse_edits("src/b.rs\n<<<<<<< SEARCH\nold\n>>>>>>> REPLACE\n"),
        Err(EditParseError::MissingDivider { block: 1, path: "src/b.rs".into() })
    );
}

#[test]
fn a_block_left_open_before_the_next_one_is_reported_and_the_next_one_still_parses() {
    let answer = "a.py\n<<<<<<< SEARCH\nx\n=======\ny\nb.py\n<<<<<<< SEARCH\np\n=======\nq\n>>>>>>> REPLACE\n";
    let report = parse_edits_report(answer);
    assert_eq!(report.edits, vec![sr("b.py", "p\n", "q\n")]);
    assert_eq!(report.problems, vec![EditParseError::MissingEnd { block: 1, path: "a.py".into() }]);
}

#[test]
fn answers_without_edits_say_why() {
    assert_eq!(parse_edits("I think the code is fine as it is."), Err(EditParseError::NoEdits));
    assert_eq!(parse_edits(""), Err(EditParseError::NoEdits));
    assert_eq!(
        parse_edits("Sure!\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n"),
        Err(EditParseError::MissingPath { block: 1 })
    );
    assert_eq!(parse_edits("x.py\nold\n=======\nnew\n>>>>>>> REPLACE\n"), Err(EditParseError::MissingOpenMarker));
}

#[test]
fn rendering_writes_the_canonical_form() {
    assert_eq!(sr("a.rs", "x", "y\n").render(), "a.rs\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n");
    let whole = Edit::WholeFile { path: "b.md".into(), content: "# B\n".into() };
    assert_eq!(whole.render(), "b.md\n<<<<<<< FILE\n# B\n>>>>>>> FILE\n");
}

// ---- matching ----

const PY: &str = "class Cart:\n    def total(self):\n        s = 0\n        for item in self.items:\n            s += item.price\n        return s\n\n    def count(self):\n        return len(self.items)\n";

#[test]
fn an_exact_search_replaces_only_its_lines() {
    let (out, kind) =
        apply_search_replace(PY, "        return s\n", "        return round(s, 2)\n", THRESHOLD).expect("applies");
    assert_eq!(kind, MatchKind::Exact);
    assert_eq!(out, PY.replace("        return s\n", "        return round(s, 2)\n"));
}

#[test]
fn a_search_with_lost_indentation_is_found_and_the_replacement_reindented() {
    let search = "for item in self.items:\n    s += item.price\n";
    let replace = "for item in self.items:\n    if item.price is not None:\n        s += item.price\n";
    let (out, kind) = apply_search_replace(PY, search, replace, THRESHOLD).expect("applies");
    assert_eq!(kind, MatchKind::IgnoringIndentation);
    assert!(
        out.contains("        for item in self.items:\n            if item.price is not None:\n                s += item.price\n        return s\n"),
        "{out}"
    );
}

#[test]
fn spaces_from_the_model_become_tabs_in_a_tab_indented_file() {
    let go = "func sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs {\n\t\tt += x\n\t}\n\treturn t\n}\n";
    let search = "    for _, x := range xs {\n        t += x\n    }\n";
    let replace = "    for _, x := range xs {\n        if x > 0 {\n            t += x\n        }\n    }\n";
    let (out, kind) = apply_search_replace(go, search, replace, THRESHOLD).expect("applies");
    assert_eq!(kind, MatchKind::IgnoringIndentation);
    assert_eq!(
        out,
        "func sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs {\n\t\tif x > 0 {\n\t\t\tt += x\n\t\t}\n\t}\n\treturn t\n}\n"
    );
}

#[test]
fn a_near_miss_with_a_typo_is_applied_by_the_fuzzy_match() {
    let search = "    def count(self):\n        return len(self.itmes)\n";
    let replace = "    def count(self):\n        return sum(1 for _ in self.items)\n";
    let (out, kind) = apply_search_replace(PY, search, replace, THRESHOLD).expect("applies");
    assert!(matches!(kind, MatchKind::Fuzzy { score_permille } if score_permille >= THRESHOLD), "{kind:?}");
    assert!(out.ends_with("    def count(self):\n        return sum(1 for _ in self.items)\n"), "{out}");
    assert!(out.starts_with("class Cart:\n    def total(self):\n"));
}

#[test]
fn a_search_matching_two_places_is_refused() {
    let content = "if a:\n    log()\n    retry()\nif b:\n    log()\n    retry()\n";
    assert_eq!(
        apply_search_replace(content, "    log()\n    retry()\n", "    retry()\n", THRESHOLD),
        Err(BlockFailure::Ambiguous { matches: 2 })
    );
}

#[test]
fn a_near_miss_equally_close_to_two_places_is_refused() {
    let content = "fn a() {\n    let value = load(1);\n    save(value);\n}\nfn b() {\n    let value = load(2);\n    save(value);\n}\n";
    let search = "    let valu = load(3);\n    save(value);\n";
    assert!(matches!(apply_search_replace(content, search, "x\n", THRESHOLD), Err(BlockFailure::Ambiguous { .. })));
}

#[test]
fn a_search_not_in_the_file_reports_the_closest_lines() {
    let search = "    def count(self, kind):\n        return len([i for i in self.items if i.kind == kind])\n";
    let Err(BlockFailure::NotFound { closest: Some(closest) }) = apply_search_replace(PY, search, "x\n", THRESHOLD)
    else {
        panic!("expected NotFound with a closest window");
    };
    assert_eq!(closest.start_line, 8);
    assert_eq!(closest.text, "    def count(self):\n        return len(self.items)");
    assert!(closest.score_permille < THRESHOLD);
}

#[test]
fn a_crlf_file_stays_crlf_and_keeps_its_missing_final_newline() {
    let content = "line one\r\nline two\r\nline three";
    let (out, kind) = apply_search_replace(content, "line two\nline three\n", "line 2\nline 3\nline 4\n", THRESHOLD)
        .expect("applies");
    assert_eq!(kind, MatchKind::Exact);
    assert_eq!(out, "line one\r\nline 2\r\nline 3\r\nline 4");
}

// ---- applying lists ----

#[test]
fn blocks_apply_in_order_each_on_the_result_of_the_previous() {
    let given = files(&[("a.py", "x = 1\ny = 2\n")]);
    let edits = vec![sr("a.py", "x = 1\n", "x = 10\n"), sr("a.py", "x = 10\ny = 2\n", "x = 10\ny = 20\n")];
    let outcome = apply_edits(&given, &edits, THRESHOLD);
    assert_eq!(outcome.files["a.py"], "x = 10\ny = 20\n");
    assert_eq!(outcome.applied, vec![(0, MatchKind::Exact), (1, MatchKind::Exact)]);
    assert!(outcome.failed.is_empty() && outcome.created.is_empty());
}

#[test]
fn a_failed_block_leaves_its_file_unchanged_and_later_blocks_still_apply() {
    let given = files(&[("a.py", "x = 1\ny = 2\n")]);
    let edits = vec![sr("a.py", "zzz = 99\n", "nothing\n"), sr("a.py", "y = 2\n", "y = 3\n")];
    let outcome = apply_edits(&given, &edits, THRESHOLD);
    assert_eq!(outcome.files["a.py"], "x = 1\ny = 3\n");
    assert_eq!(outcome.applied, vec![(1, MatchKind::Exact)]);
    assert!(matches!(outcome.failed.as_slice(), [(0, BlockFailure::NotFound { .. })]));
}

#[test]
fn whole_files_replace_existing_files_and_create_missing_ones() {
    let given = files(&[("win.txt", "old\r\nlines\r\n")]);
    let edits = vec![
        Edit::WholeFile { path: "win.txt".into(), content: "new\nlines\n".into() },
        Edit::WholeFile { path: "docs/new.md".into(), content: "# New\n".into() },
    ];
    let outcome = apply_edits(&given, &edits, THRESHOLD);
    assert_eq!(outcome.files["win.txt"], "new\r\nlines\r\n");
    assert_eq!(outcome.files["docs/new.md"], "# New\n");
    assert_eq!(outcome.created, vec!["docs/new.md".to_string()]);
    assert_eq!(outcome.applied.len(), 2);
}

#[test]
fn an_empty_search_creates_a_missing_file_but_not_over_an_existing_one() {
    let given = files(&[("a.py", "x = 1\n"), ("empty.py", "")]);
    let edits = vec![
        sr("new.py", "", "print('new')\n"),
        sr("a.py", "", "y = 2\n"),
        sr("empty.py", "", "z = 3\n"),
        sr("gone.py", "a\n", "b\n"),
    ];
    let outcome = apply_edits(&given, &edits, THRESHOLD);
    assert_eq!(outcome.files["new.py"], "print('new')\n");
    assert_eq!(outcome.files["empty.py"], "z = 3\n");
    assert_eq!(outcome.files["a.py"], "x = 1\n");
    assert_eq!(outcome.created, vec!["new.py".to_string()]);
    assert_eq!(outcome.failed, vec![(1, BlockFailure::FileExists), (3, BlockFailure::UnknownFile)]);
}

// ---- feedback ----

#[test]
fn retry_feedback_names_applied_blocks_and_shows_the_closest_lines_of_failed_ones() {
    let given = files(&[("cart.py", PY)]);
    let edits = vec![
        sr("cart.py", "        return s\n", "        return round(s, 2)\n"),
        sr(
            "cart.py",
            "    def count(self, kind):\n        return len([i for i in self.items if i.kind == kind])\n",
            "x\n",
        ),
        sr("other.py", "a\n", "b\n"),
    ];
    let outcome = apply_edits(&given, &edits, THRESHOLD);
    let feedback = retry_feedback(&edits, &outcome);
    assert!(feedback.contains("do not send them again: 1 (cart.py)"), "{feedback}");
    assert!(
        feedback.contains("Block 2 (cart.py, SEARCH starting `def count(self, kind):`) did not apply"),
        "{feedback}"
    );
    assert!(feedback.contains("8 |     def count(self):\n9 |         return len(self.items)\n"), "{feedback}");
    assert!(feedback.contains("Block 3 (other.py"), "{feedback}");
    assert!(feedback.contains("copy the file's current lines exactly"), "{feedback}");
    assert!(!feedback.contains("round(s, 2)"), "the applied block is not resent: {feedback}");
}

#[test]
fn retry_feedback_shows_at_most_thirty_closest_lines() {
    let content: String = (0..100).map(|i| format!("value_{i} = compute({i})\n")).collect();
    let search: String = (0..40).map(|i| format!("other_{i} = different(\"{i}\")\n")).collect();
    let edits = vec![sr("big.py", &search, "x\n")];
    let outcome = apply_edits(&files(&[("big.py", &content)]), &edits, THRESHOLD);
    let feedback = retry_feedback(&edits, &outcome);
    let numbered = feedback.lines().filter(|l| l.contains(" | ")).count();
    assert_eq!(numbered, 30, "{feedback}");
    assert!(feedback.contains("more lines)"), "{feedback}");
}

#[test]
fn retry_feedback_after_full_success_says_so() {
    let edits = vec![sr("a", "x\n", "y\n")];
    let outcome = apply_edits(&files(&[("a", "x\n")]), &edits, THRESHOLD);
    assert_eq!(retry_feedback(&edits, &outcome), "All blocks applied (1).\n");
}

#[test]
fn huge_lines_and_non_ascii_text_are_matched_without_trouble() {
    let long_line = "é".repeat(200_000);
    let content = format!("début\n{long_line}\nfin\n");
    let search = format!("{}x\n", "é".repeat(199_999));
    let (out, kind) = apply_search_replace(&content, &search, "court\n", THRESHOLD).expect("near-identical line");
    assert!(matches!(kind, MatchKind::Fuzzy { .. }), "{kind:?}");
    assert_eq!(out, "début\ncourt\nfin\n");
    assert!(matches!(
        apply_search_replace(&content, &"ü".repeat(150_000), "x", THRESHOLD),
        Err(BlockFailure::NotFound { .. })
    ));
}

// ---- edits matched with their indentation ignored ----

const COMPOSE: &str = "services:\n  web:\n    image: nginx:1.25\n    ports:\n      - \"80:80\"\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: example   \n";

#[test]
fn a_flattened_yaml_edit_either_gives_the_intended_file_byte_for_byte_or_is_refused() {
    // Each case: the flattened SEARCH and REPLACE a model wrote, and the file it meant.
    let cases = [
        (
            "web:\nimage: nginx:1.25\nports:\n",
            "web:\nimage: nginx:1.27\nports:\n",
            COMPOSE.replace("nginx:1.25", "nginx:1.27"),
        ),
        (
            "db:\nimage: postgres:16\nenvironment:\nPOSTGRES_PASSWORD: example\n",
            "db:\nimage: postgres:17\nenvironment:\nPOSTGRES_PASSWORD: example\n",
            COMPOSE.replace("postgres:16", "postgres:17"),
        ),
        (
            "web:\nimage: nginx:1.25\nports:\n",
            "web:\nimage: nginx:1.25\nrestart: always\nports:\n",
            COMPOSE.replace("    image: nginx:1.25\n", "    image: nginx:1.25\n    restart: always\n"),
        ),
        (
            "ports:\n- \"80:80\"\ndb:\n",
            "ports:\n- \"80:80\"\n- \"443:443\"\ndb:\n",
            COMPOSE.replace("      - \"80:80\"\n", "      - \"80:80\"\n      - \"443:443\"\n"),
        ),
    ];
    let mut applied = 0;
    for (search, replace, intended) in cases {
        match apply_search_replace(COMPOSE, search, replace, THRESHOLD) {
            Ok((out, kind)) => {
                assert_eq!(kind, MatchKind::IgnoringIndentation, "{search}");
                assert_eq!(out, intended, "a flattened edit that applies must give the intended file");
                applied += 1;
            }
            Err(BlockFailure::IndentationUnclear { closest, reason }) => {
                assert!(!reason.is_empty());
                assert!(closest.text.contains("  "), "the refusal shows the real indentation: {}", closest.text);
            }
            Err(other) => panic!("{search}: unexpected failure {other}"),
        }
    }
    assert!(applied >= 2, "one-for-one changes of a value are derivable and applied");
}

#[test]
fn a_flattened_yaml_insertion_whose_nesting_cannot_be_derived_is_refused_with_the_real_lines() {
    let edits = vec![sr(
        "compose.yaml",
        "web:\nimage: nginx:1.25\nports:\n",
        "web:\nimage: nginx:1.25\nrestart: always\nports:\n",
    )];
    let outcome = apply_edits(&files(&[("compose.yaml", COMPOSE)]), &edits, THRESHOLD);
    assert_eq!(outcome.files["compose.yaml"], COMPOSE, "a refused edit leaves the file as it was");
    assert!(
        matches!(outcome.failed.as_slice(), [(0, BlockFailure::IndentationUnclear { .. })]),
        "{:?}",
        outcome.failed
    );
    let feedback = retry_feedback(&edits, &outcome);
    assert!(feedback.contains("indentation ignored") && feedback.contains("|     image: nginx:1.25"), "{feedback}");
}

#[test]
fn a_python_edit_with_lost_indentation_gives_the_intended_file_exactly() {
    let module = "import math\n\n\nclass Shape:\n    def area(self):\n        raise NotImplementedError  \n\n\nclass Circle(Shape):\n    def __init__(self, r):\n        self.r = r\n\n    def area(self):\n        # pi r squared\n        return math.pi * self.r * 2\n";
    let search = "def area(self):\n    # pi r squared\n    return math.pi * self.r * 2\n";
    let replace = "def area(self):\n    # pi r squared\n    if self.r < 0:\n        raise ValueError(\"negative radius\")\n    return math.pi * self.r ** 2\n";
    let intended = module.replace(
        "        return math.pi * self.r * 2\n",
        "        if self.r < 0:\n            raise ValueError(\"negative radius\")\n        return math.pi * self.r ** 2\n",
    );
    let (out, kind) = apply_search_replace(module, search, replace, THRESHOLD).expect("applies");
    assert_eq!(kind, MatchKind::IgnoringIndentation);
    assert_eq!(out, intended);
}

#[test]
fn lines_the_edit_does_not_change_keep_their_odd_whitespace() {
    // The file's trailing spaces and a tab-and-space indent survive an edit matched by re-indentation.
    let content = "def f():\n\t x = 1   \n\t return x\n";
    let (out, kind) =
        apply_search_replace(content, "x = 1\nreturn x\n", "x = 1\nreturn x + 1\n", THRESHOLD).expect("applies");
    assert_eq!(kind, MatchKind::IgnoringIndentation);
    assert_eq!(out, "def f():\n\t x = 1   \n\t return x + 1\n");
}
