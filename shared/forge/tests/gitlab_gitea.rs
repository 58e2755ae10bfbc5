//! The GitLab and Gitea/Forgejo clients against fakes that check the documented request shapes:
//! positions on the diff version, the summary edited in place, commit statuses.

mod support;

use prfix_forge::{CheckReport, Conclusion, Forge, ForgeKind, PostedCheck};
use prfix_tests::fake_forge::{Answer, FakeGitLab, FakeGitea};
use support::{BASE, DIFF, HEAD, TOKEN, config, pull, review};

fn check() -> CheckReport {
    CheckReport {
        conclusion: Conclusion::Failure,
        title: "1 finding: 1 critical".to_owned(),
        summary: String::new(),
        details_url: None,
    }
}

#[tokio::test]
async fn gitlab_discussions_sit_on_the_head_diff_version_with_both_line_numbers_where_needed() {
    let fake = FakeGitLab::start_gitlab(TOKEN, ("42", "group/app"), 5, (BASE, BASE, HEAD), DIFF).await;
    // Named by its path, which must travel as one encoded segment.
    let forge = Forge::new(config(ForgeKind::GitLab, fake.api_url(), 3)).expect("a client");
    let mr = pull("group/app", 5);
    let posted = forge.post_review(&mr, &review()).await.expect("discussions");
    assert_eq!(posted.comments, 3);
    assert!(posted.url.as_deref().is_some_and(|u| u.contains("/-/merge_requests/5#note_")), "{posted:?}");
    assert_eq!(fake.violations(), Vec::<String>::new());
    let discussions = fake.with(|s| s.discussions.clone());
    let positions: Vec<(u64, Option<u64>)> = discussions
        .iter()
        .map(|d| (d["position"]["new_line"].as_u64().unwrap_or(0), d["position"]["old_line"].as_u64()))
        .collect();
    assert_eq!(positions, [(7, None), (5, None), (2, Some(2))]);
    let first = discussions[0]["body"].as_str().unwrap_or_default();
    assert!(first.contains("```suggestion:-1+0\n"), "a range's suggestion covers its lines on GitLab: {first}");

    let first = forge.upsert_summary(&mr, "first").await.expect("a note");
    let second = forge.upsert_summary(&mr, "second").await.expect("the note edited");
    assert!(!first.updated && second.updated && first.id == second.id);
    assert_eq!(fake.with(|s| s.notes.len()), 1);
    let posted = forge.report_check(&mr, &check()).await.expect("a status");
    assert_eq!(posted, PostedCheck::CommitStatus { fallback: None });
    let statuses = fake.with(|s| s.statuses.clone());
    assert_eq!(statuses[0].1["state"], "failed");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_position_gitlab_refuses_becomes_a_note_saying_where_the_comment_belongs() {
    let fake = FakeGitLab::start_gitlab(TOKEN, ("42", "group/app"), 5, (BASE, BASE, HEAD), DIFF).await;
    let forge = Forge::new(config(ForgeKind::GitLab, fake.api_url(), 3)).expect("a client");
    let mut review = review();
    // An unchanged line without its old number: GitLab finds no such line in its diff.
    review.comments[2].old_line = None;
    let posted = forge.post_review(&pull("42", 5), &review).await.expect("posted");
    assert_eq!(posted.comments, 2);
    let fallback = posted.fallback.unwrap_or_default();
    assert!(fallback.contains("refused 1 comment(s)") && fallback.contains("old_line must be Some(2)"), "{fallback}");
    let notes = fake.with(|s| s.notes.clone());
    assert_eq!(notes.len(), 1);
    assert!(notes[0].1.starts_with("**`app/db.py:2`**") && notes[0].1.contains(&prfix_forge::review_marker(HEAD)));
    let again = forge.post_review(&pull("42", 5), &review).await.expect("nothing to post");
    assert!(again.already, "the head has prfix's comments");
}

#[tokio::test]
async fn comments_gitea_cannot_place_go_into_the_reviews_body() {
    let fake = FakeGitea::start_gitea(TOKEN, "octo/app", 3, HEAD, DIFF).await;
    let forge = Forge::new(config(ForgeKind::Gitea, fake.api_url(), 3)).expect("a client");
    let mut review = review();
    review.comments[1].line = 40;
    let posted = forge.post_review(&pull("octo/app", 3), &review).await.expect("posted without line comments");
    assert_eq!(posted.comments, 0);
    assert!(posted.fallback.as_deref().is_some_and(|f| f.contains("HTTP 422")), "{posted:?}");
    let reviews = fake.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1);
    assert!(reviews[0]["body"].as_str().is_some_and(|b| b.contains("`app/db.py:40`")), "{}", reviews[0]);
}

#[tokio::test]
async fn gitlab_rate_limit_headers_are_respected() {
    let fake = FakeGitLab::start_gitlab(TOKEN, ("42", "group/app"), 5, (BASE, BASE, HEAD), DIFF).await;
    let forge = Forge::new(config(ForgeKind::GitLab, fake.api_url(), 3)).expect("a client");
    let now = chrono::Utc::now().timestamp().to_string();
    let limited = Answer::message(429, "Retry later")
        .with_header("ratelimit-remaining", "0")
        .with_header("ratelimit-reset", &now);
    fake.push_answer("create-note", limited);
    forge.upsert_summary(&pull("42", 5), "summary").await.expect("created on the second try");
    let statuses: Vec<u16> = fake.calls("create-note").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 201]);
}

#[tokio::test]
async fn gitea_reviews_put_comments_on_new_lines_and_edit_one_summary() {
    let fake = FakeGitea::start_gitea(TOKEN, "octo/app", 3, HEAD, DIFF).await;
    let forge = Forge::new(config(ForgeKind::Gitea, fake.api_url(), 3)).expect("a client");
    let pr = pull("octo/app", 3);
    let posted = forge.post_review(&pr, &review()).await.expect("a review");
    assert_eq!(posted.comments, 3);
    let first = forge.upsert_summary(&pr, "first").await.expect("a comment");
    let second = forge.upsert_summary(&pr, "second").await.expect("the comment edited");
    assert!(!first.updated && second.updated && first.id == second.id);
    let posted = forge.report_check(&pr, &check()).await.expect("a status");
    assert_eq!(posted, PostedCheck::CommitStatus { fallback: None });
    assert_eq!(fake.violations(), Vec::<String>::new());
    let reviews = fake.with(|s| s.reviews.clone());
    let lines: Vec<u64> =
        reviews[0]["comments"].as_array().into_iter().flatten().filter_map(|c| c["new_position"].as_u64()).collect();
    assert_eq!(lines, [7, 5, 2]);
    assert_eq!(reviews[0]["event"], "COMMENT");
    assert_eq!(fake.with(|s| s.comments.len()), 1);
    assert_eq!(fake.with(|s| s.statuses[0].1["state"].clone()), "failure");
}
