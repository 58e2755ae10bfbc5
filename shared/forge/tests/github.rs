//! The GitHub client against the fake GitHub, which validates every request against GitHub's
//! OpenAPI description: reviews, the summary comment, check runs and their fallback, rate limits,
//! and errors that name the call.

mod support;

use prfix_forge::{CheckReport, Conclusion, Forge, ForgeError, ForgeKind, PostedCheck};
use prfix_tests::fake_forge::{Answer, FakeGitHub};
use support::{DIFF, HEAD, TOKEN, config, pull, review};

async fn github(enterprise: bool) -> (FakeGitHub, Forge) {
    let fake =
        if enterprise { FakeGitHub::start_enterprise(TOKEN).await } else { FakeGitHub::start_github(TOKEN).await };
    fake.add_pull("octo/app", 7, HEAD, DIFF);
    let forge = Forge::new(config(ForgeKind::GitHub, fake.api_url(), 3)).expect("a client");
    (fake, forge)
}

fn check(conclusion: Conclusion) -> CheckReport {
    CheckReport {
        conclusion,
        title: "2 findings: 1 critical, 1 minor".to_owned(),
        summary: "## prfix review".to_owned(),
        details_url: Some("https://github.example/octo/app/pull/7#issuecomment-1".to_owned()),
    }
}

#[tokio::test]
async fn a_review_summary_and_check_run_are_requests_github_accepts() {
    for enterprise in [false, true] {
        let (fake, forge) = github(enterprise).await;
        let pr = pull("octo/app", 7);
        let posted = forge.post_review(&pr, &review()).await.expect("the review is posted");
        assert_eq!((posted.comments, posted.fallback, posted.already), (3, None, false));
        let again = forge.post_review(&pr, &review()).await.expect("nothing to post");
        assert_eq!((again.comments, again.already), (0, true), "the same head is reviewed once");
        let first = forge.upsert_summary(&pr, "first").await.expect("the summary is created");
        let second = forge.upsert_summary(&pr, "second").await.expect("the summary is edited");
        assert!(!first.updated && second.updated && first.id == second.id, "{first:?} {second:?}");
        let posted = forge.report_check(&pr, &check(Conclusion::Failure)).await.expect("a check run");
        assert!(matches!(posted, PostedCheck::CheckRun { url: Some(_) }), "{posted:?}");

        assert_eq!(fake.violations(), Vec::<String>::new(), "every request is valid against the description");
        let reviews = fake.with(|s| s.reviews.clone());
        assert_eq!(reviews.len(), 1);
        let comments = reviews[0].1["comments"].as_array().cloned().unwrap_or_default();
        assert_eq!(comments[0]["start_line"], 6);
        assert_eq!(comments[0]["line"], 7);
        assert_eq!(reviews[0].1["commit_id"], HEAD);
        let stored = fake.with(|s| s.comments.clone());
        assert_eq!(stored.len(), 1, "one summary comment, edited: {stored:?}");
        assert_eq!(stored[0].2, format!("{}\nsecond", prfix_forge::SUMMARY_MARKER));
        let runs = fake.with(|s| s.check_runs.clone());
        assert_eq!((runs[0]["head_sha"].as_str(), runs[0]["conclusion"].as_str()), (Some(HEAD), Some("failure")));
        let operations: Vec<String> = fake.requests().into_iter().filter_map(|r| r.operation).collect();
        assert_eq!(
            operations,
            [
                "pulls/list-reviews",
                "pulls/create-review",
                "pulls/list-reviews",
                "issues/list-comments",
                "issues/create-comment",
                "issues/list-comments",
                "issues/update-comment",
                "checks/create"
            ]
        );
    }
}

#[tokio::test]
async fn a_refused_check_run_becomes_a_commit_status_and_says_why() {
    let (fake, forge) = github(false).await;
    fake.with_mut(|s| s.refuse_check_runs = true);
    let posted = forge.report_check(&pull("octo/app", 7), &check(Conclusion::Success)).await.expect("a status");
    let PostedCheck::CommitStatus { fallback: Some(reason) } = posted else { panic!("{posted:?}") };
    assert!(reason.contains("HTTP 403") && reason.contains("GitHub App"), "{reason}");
    let statuses = fake.with(|s| s.statuses.clone());
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].0.as_str(), statuses[0].1["state"].as_str()), (HEAD, Some("success")));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_and_the_call_tried_again() {
    let (fake, forge) = github(false).await;
    let limited = Answer::message(
        403,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    )
    .with_header("retry-after", "0");
    fake.push_answer("pulls/create-review", limited);
    fake.push_answer(
        "issues/list-comments",
        Answer::message(429, "API rate limit exceeded").with_header("retry-after", "0"),
    );
    let pr = pull("octo/app", 7);
    forge.post_review(&pr, &review()).await.expect("posted on the second try");
    forge.upsert_summary(&pr, "summary").await.expect("listed on the second try");
    let statuses: Vec<u16> = fake.calls("pulls/create-review").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200]);
    assert_eq!(fake.with(|s| s.reviews.len()), 1);
    assert_eq!(fake.with(|s| s.comments.len()), 1);
}

#[tokio::test]
async fn rate_limits_on_every_try_give_up_naming_the_call_and_the_limit() {
    let (fake, forge) = github(false).await;
    for _ in 0..3 {
        fake.push_answer(
            "checks/create",
            Answer::message(429, "API rate limit exceeded").with_header("retry-after", "0"),
        );
    }
    let error = forge.report_check(&pull("octo/app", 7), &check(Conclusion::Success)).await.expect_err("gives up");
    assert!(matches!(error, ForgeError::GaveUp { tries: 3, .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("creating the check run (POST /repos/octo/app/check-runs)")
            && text.contains("rate-limited (HTTP 429: API rate limit exceeded)")
            && text.contains("3 tries"),
        "{text}"
    );
    assert_eq!(fake.calls("checks/create").len(), 3);
}

#[tokio::test]
async fn a_wait_longer_than_allowed_fails_at_once() {
    let (fake, forge) = github(false).await;
    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
    fake.push_answer(
        "pulls/create-review",
        Answer::message(403, "API rate limit exceeded for installation")
            .with_header("x-ratelimit-remaining", "0")
            .with_header("x-ratelimit-reset", &reset),
    );
    let error = forge.post_review(&pull("octo/app", 7), &review()).await.expect_err("too long a wait");
    assert!(matches!(error, ForgeError::WaitTooLong { seconds, .. } if seconds > 3000), "{error:?}");
    assert_eq!(fake.calls("pulls/create-review").len(), 1);
}

#[tokio::test]
async fn errors_name_the_call_the_status_and_githubs_message() {
    let (fake, _) = github(false).await;
    let mut wrong = config(ForgeKind::GitHub, fake.api_url(), 3);
    wrong.token = "not-the-token".to_owned().into();
    let forge = Forge::new(wrong).expect("a client");
    let error = forge.report_check(&pull("octo/app", 7), &check(Conclusion::Success)).await.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "creating the check run (POST /repos/octo/app/check-runs) failed: HTTP 401: Bad credentials"
    );
}

#[tokio::test]
async fn comments_github_cannot_place_go_into_the_reviews_body() {
    let (fake, forge) = github(false).await;
    let mut review = review();
    review.comments[1].line = 40;
    let posted = forge.post_review(&pull("octo/app", 7), &review).await.expect("posted without line comments");
    assert_eq!(posted.comments, 0);
    assert!(posted.fallback.as_deref().is_some_and(|f| f.contains("HTTP 422")), "{posted:?}");
    let reviews = fake.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1);
    assert!(reviews[0].1.get("comments").is_none());
    let body = reviews[0].1["body"].as_str().unwrap_or_default();
    assert!(body.contains("`app/db.py:40`") && body.contains("`app/db.py:6-7`"), "{body}");
    let refused = fake.violations();
    assert!(refused.len() == 1 && refused[0].contains("must be part of the diff"), "{refused:?}");
}

#[test]
fn a_url_without_a_host_is_refused_before_any_call() {
    let error = Forge::new(config(ForgeKind::GitHub, "api.github.com".to_owned(), 1)).expect_err("no scheme");
    assert!(error.to_string().contains("`api.github.com` is not usable"), "{error}");
}
