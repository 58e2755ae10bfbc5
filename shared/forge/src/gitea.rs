//! Gitea's and Forgejo's REST API v1 (`https://HOST/api/v1`):
//!
//! - `GET /repos/{owner}/{repo}/pulls/{index}/reviews`: whether the head has prfix's review;
//! - `POST /repos/{owner}/{repo}/pulls/{index}/reviews`: one review, event `COMMENT`, with comments
//!   on new-file lines (`path`, `new_position`: the line number in the new file, `old_position` 0);
//! - `GET /repos/{owner}/{repo}/issues/{index}/comments`, then
//!   `PATCH /repos/{owner}/{repo}/issues/comments/{id}` or `POST .../issues/{index}/comments`: the
//!   summary comment;
//! - `POST /repos/{owner}/{repo}/statuses/{sha}`: a commit status.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::ForgeError;
use crate::http::{Api, any_body_contains, text_of};
use crate::{CHECK_NAME, CheckReport, Conclusion, PostedCheck, PostedReview, PostedSummary, PullRequest, Review};

/// A Gitea or Forgejo client.
#[derive(Debug, Clone)]
pub struct Gitea {
    api: Api,
}

impl Gitea {
    /// A client over `api`.
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    /// The API this client calls.
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// Whether a review of the pull request carries `marker` (Gitea lists them in pages of `limit`).
    pub async fn has_review(&self, pr: &PullRequest, marker: &str) -> Result<bool, ForgeError> {
        let path = format!("/repos/{}/pulls/{}/reviews", pr.repository, pr.number);
        let what = "listing the pull request's reviews";
        const LIMIT: usize = 50;
        for page in 1..=100 {
            let query = [("page", page.to_string()), ("limit", LIMIT.to_string())];
            let reviews = self.api.get_array(what, &path, &query).await?;
            if any_body_contains(&reviews, marker) {
                return Ok(true);
            }
            if reviews.len() < LIMIT {
                break;
            }
        }
        Ok(false)
    }

    /// One review with every comment on its line (Gitea has no ranges: the comment sits on the
    /// last line of its range).
    pub async fn post_review(&self, pr: &PullRequest, review: &Review) -> Result<PostedReview, ForgeError> {
        let comments: Vec<Value> = review
            .comments
            .iter()
            .map(|c| json!({"path": c.path, "body": c.body, "new_position": c.line, "old_position": 0}))
            .collect();
        let body = json!({
            "commit_id": pr.head_sha,
            "body": review.body,
            "event": "COMMENT",
            "comments": comments,
        });
        let path = format!("/repos/{}/pulls/{}/reviews", pr.repository, pr.number);
        let what = "creating the review";
        let (reply, comments, fallback) = match self.api.call(what, Method::POST, &path, &[], Some(&body)).await {
            Ok(reply) => (reply, comments.len(), None),
            // A line Gitea does not find in its diff refuses the whole review: the comments go into
            // the body.
            Err(ForgeError::Status { status: 422, message, .. }) => {
                let body =
                    json!({"commit_id": pr.head_sha, "body": crate::comments_in_body(review), "event": "COMMENT"});
                let reply = self.api.call(what, Method::POST, &path, &[], Some(&body)).await?;
                let reason =
                    format!("Gitea refused the comments on lines (HTTP 422: {message}); they are in the review's body");
                (reply, 0, Some(reason))
            }
            Err(other) => return Err(other),
        };
        Ok(PostedReview { url: text_of(&reply.body, "html_url"), comments, fallback, already: false })
    }

    /// Creates the summary comment or edits the one found by its marker. Gitea lists an issue's
    /// comments in one answer (no pages).
    pub async fn upsert_summary(&self, pr: &PullRequest, body: &str) -> Result<PostedSummary, ForgeError> {
        let list = format!("/repos/{}/issues/{}/comments", pr.repository, pr.number);
        let existing = self.api.get_array("listing the pull request's comments", &list, &[]).await?;
        let edit = |id| (Method::PATCH, format!("/repos/{}/issues/comments/{id}", pr.repository));
        self.api.upsert_summary("comment", &existing, edit, &list, body).await
    }

    /// A commit status on the head commit.
    pub async fn report_check(&self, pr: &PullRequest, check: &CheckReport) -> Result<PostedCheck, ForgeError> {
        let state = match check.conclusion {
            Conclusion::Success => "success",
            Conclusion::Neutral => "warning",
            Conclusion::Failure => "failure",
        };
        let mut body = json!({"state": state, "context": CHECK_NAME, "description": check.title});
        if let Some(url) = &check.details_url {
            body["target_url"] = json!(url);
        }
        let path = format!("/repos/{}/statuses/{}", pr.repository, pr.head_sha);
        self.api.call("setting the commit status", Method::POST, &path, &[], Some(&body)).await?;
        Ok(PostedCheck::CommitStatus { fallback: None })
    }
}
