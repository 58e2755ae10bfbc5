//! GitHub's REST API (github.com, and Enterprise Server at `https://HOST/api/v3`):
//!
//! - `GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews`: whether the head has prfix's review;
//! - `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews`: one review, event `COMMENT`, with the
//!   comments on lines (`path`, `line`, `side: RIGHT`, and `start_line`/`start_side` for a range);
//! - `GET /repos/{owner}/{repo}/issues/{issue_number}/comments`, then
//!   `PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}` or
//!   `POST /repos/{owner}/{repo}/issues/{issue_number}/comments`: the summary comment;
//! - `POST /repos/{owner}/{repo}/check-runs` on the head commit. Check runs need a GitHub App's token
//!   (an Actions `GITHUB_TOKEN` with `checks: write` is one); a personal token is refused with 403,
//!   and then `POST /repos/{owner}/{repo}/statuses/{sha}` reports a commit status instead.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::ForgeError;
use crate::http::{Api, any_body_contains, text_of};
use crate::{CHECK_NAME, CheckReport, Conclusion, PostedCheck, PostedReview, PostedSummary, PullRequest, Review};

/// The longest check run summary GitHub accepts (`output.summary`, characters).
const SUMMARY_LIMIT: usize = 65_535;
/// The longest commit status description GitHub keeps.
const STATUS_DESCRIPTION_LIMIT: usize = 140;

/// A GitHub client.
#[derive(Debug, Clone)]
pub struct GitHub {
    api: Api,
}

impl GitHub {
    /// A client over `api`.
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    /// The API this client calls.
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// Whether a review of the pull request carries `marker`.
    pub async fn has_review(&self, pr: &PullRequest, marker: &str) -> Result<bool, ForgeError> {
        let path = format!("/repos/{}/pulls/{}/reviews", pr.repository, pr.number);
        let reviews = self.api.list_all("listing the pull request's reviews", &path).await?;
        Ok(any_body_contains(&reviews, marker))
    }

    /// One review with every comment on its line.
    pub async fn post_review(&self, pr: &PullRequest, review: &Review) -> Result<PostedReview, ForgeError> {
        let comments: Vec<Value> = review
            .comments
            .iter()
            .map(|c| {
                let mut comment = json!({"path": c.path, "line": c.line, "side": "RIGHT", "body": c.body});
                if let Some(start) = c.start_line.filter(|start| *start < c.line) {
                    comment["start_line"] = json!(start);
                    comment["start_side"] = json!("RIGHT");
                }
                comment
            })
            .collect();
        let body = json!({
            "commit_id": pr.head_sha,
            "body": review.body,
            "event": "COMMENT",
            "comments": comments,
        });
        let path = format!("/repos/{}/pulls/{}/reviews", pr.repository, pr.number);
        let what = "creating the review";
        match self.api.call(what, Method::POST, &path, &[], Some(&body)).await {
            Ok(reply) => Ok(PostedReview {
                url: text_of(&reply.body, "html_url"),
                comments: comments.len(),
                fallback: None,
                already: false,
            }),
            // GitHub refuses the whole review when one line is not in its diff of the pull request
            // (the checkout's diff was not the pull request's): the comments go into the body.
            Err(ForgeError::Status { status: 422, message, .. }) => {
                let body = json!({
                    "commit_id": pr.head_sha,
                    "body": crate::comments_in_body(review),
                    "event": "COMMENT",
                });
                let reply = self.api.call(what, Method::POST, &path, &[], Some(&body)).await?;
                let reason = format!(
                    "GitHub refused the comments on lines (HTTP 422: {message}); they are in the review's body"
                );
                Ok(PostedReview {
                    url: text_of(&reply.body, "html_url"),
                    comments: 0,
                    fallback: Some(reason),
                    already: false,
                })
            }
            Err(other) => Err(other),
        }
    }

    /// Creates the summary comment or edits the one found by its marker.
    pub async fn upsert_summary(&self, pr: &PullRequest, body: &str) -> Result<PostedSummary, ForgeError> {
        let list = format!("/repos/{}/issues/{}/comments", pr.repository, pr.number);
        let existing = self.api.list_all("listing the pull request's comments", &list).await?;
        let edit = |id| (Method::PATCH, format!("/repos/{}/issues/comments/{id}", pr.repository));
        self.api.upsert_summary("comment", &existing, edit, &list, body).await
    }

    /// A completed check run on the head commit, or a commit status when GitHub refuses check runs
    /// to this token.
    pub async fn report_check(&self, pr: &PullRequest, check: &CheckReport) -> Result<PostedCheck, ForgeError> {
        let conclusion = match check.conclusion {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
        };
        let mut body = json!({
            "name": CHECK_NAME,
            "head_sha": pr.head_sha,
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "output": {"title": check.title, "summary": crate::truncate(&check.summary, SUMMARY_LIMIT)},
        });
        if let Some(url) = &check.details_url {
            body["details_url"] = json!(url);
        }
        let path = format!("/repos/{}/check-runs", pr.repository);
        match self.api.call("creating the check run", Method::POST, &path, &[], Some(&body)).await {
            Ok(reply) => Ok(PostedCheck::CheckRun { url: text_of(&reply.body, "html_url") }),
            Err(ForgeError::Status { status: 403, message, .. }) => {
                let state = match check.conclusion {
                    Conclusion::Success | Conclusion::Neutral => "success",
                    Conclusion::Failure => "failure",
                };
                self.commit_status(pr, state, check).await?;
                let reason = format!(
                    "GitHub refused the check run (HTTP 403: {message}); check runs need a GitHub App token or an \
                     Actions GITHUB_TOKEN with `checks: write`, so a commit status was set instead"
                );
                Ok(PostedCheck::CommitStatus { fallback: Some(reason) })
            }
            Err(other) => Err(other),
        }
    }

    async fn commit_status(&self, pr: &PullRequest, state: &str, check: &CheckReport) -> Result<(), ForgeError> {
        let mut body = json!({
            "state": state,
            "context": CHECK_NAME,
            "description": crate::truncate(&check.title, STATUS_DESCRIPTION_LIMIT),
        });
        if let Some(url) = &check.details_url {
            body["target_url"] = json!(url);
        }
        let path = format!("/repos/{}/statuses/{}", pr.repository, pr.head_sha);
        self.api.call("setting the commit status", Method::POST, &path, &[], Some(&body)).await?;
        Ok(())
    }
}
