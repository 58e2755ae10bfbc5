//! GitLab's REST API v4 (`https://HOST/api/v4`). GitLab has no review object: each comment is a
//! merge request discussion with a `position` on the diff version of the head commit.
//!
//! - `GET /projects/:id/merge_requests/:iid/versions`: the diff versions, whose base, start and head
//!   commits a position names (the merge request's `diff_refs` when the version list has none for
//!   the head yet);
//! - `GET /projects/:id/merge_requests/:iid/discussions`: whether the head has prfix's comments;
//! - `POST /projects/:id/merge_requests/:iid/discussions` with `position` (`position_type: text`,
//!   `new_path`, `old_path`, `new_line`, and `old_line` too for an unchanged line);
//! - `GET`, then `PUT /projects/:id/merge_requests/:iid/notes/:note_id` or `POST .../notes`: the
//!   summary note;
//! - `POST /projects/:id/statuses/:sha`: a commit status.
//!
//! A CI job token (`CI_JOB_TOKEN`) may not post notes or discussions: a project, group or personal
//! access token with the `api` scope is needed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::ForgeError;
use crate::http::{Api, text_of};
use crate::{CHECK_NAME, CheckReport, Conclusion, PostedCheck, PostedReview, PostedSummary, PullRequest, Review};

/// The longest commit status description GitLab keeps.
const STATUS_DESCRIPTION_LIMIT: usize = 255;

/// A GitLab client.
#[derive(Debug, Clone)]
pub struct GitLab {
    api: Api,
}

/// The three commits a diff position names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiffRefs {
    base_sha: String,
    start_sha: String,
    head_sha: String,
}

impl GitLab {
    /// A client over `api`.
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    /// The API this client calls.
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// `/projects/:id/merge_requests/:iid`, the project's path URL-encoded.
    fn merge_request(pr: &PullRequest) -> String {
        format!("/projects/{}/merge_requests/{}", project_id(&pr.repository), pr.number)
    }

    /// The diff version of the head commit.
    async fn diff_refs(&self, pr: &PullRequest) -> Result<(DiffRefs, Option<String>), ForgeError> {
        let mr = Self::merge_request(pr);
        let what = "reading the merge request";
        let merge_request = self.api.call(what, Method::GET, &mr, &[], None).await?.body;
        let web_url = text_of(&merge_request, "web_url");
        let versions =
            self.api.list_all("listing the merge request's diff versions", &format!("{mr}/versions")).await?;
        let from_version = versions.iter().find_map(|v| {
            let refs = DiffRefs {
                base_sha: text_of(v, "base_commit_sha")?,
                start_sha: text_of(v, "start_commit_sha")?,
                head_sha: text_of(v, "head_commit_sha")?,
            };
            (refs.head_sha == pr.head_sha).then_some(refs)
        });
        if let Some(refs) = from_version {
            return Ok((refs, web_url));
        }
        let current = merge_request.get("diff_refs").and_then(|r| {
            Some(DiffRefs {
                base_sha: text_of(r, "base_sha")?,
                start_sha: text_of(r, "start_sha")?,
                head_sha: text_of(r, "head_sha")?,
            })
        });
        match current {
            Some(refs) if refs.head_sha == pr.head_sha => Ok((refs, web_url)),
            Some(refs) => Err(ForgeError::Answer {
                call: format!("{what} (GET {mr})"),
                reason: format!(
                    "the merge request's head is {} and it has no diff version for {}: was it pushed to since?",
                    refs.head_sha, pr.head_sha
                ),
            }),
            None => Err(ForgeError::Answer {
                call: format!("{what} (GET {mr})"),
                reason: "the merge request has no diff_refs yet (its diff is still being prepared)".to_owned(),
            }),
        }
    }

    /// Whether a discussion of the merge request carries `marker`.
    pub async fn has_review(&self, pr: &PullRequest, marker: &str) -> Result<bool, ForgeError> {
        let path = format!("{}/discussions", Self::merge_request(pr));
        let discussions = self.api.list_all("listing the merge request's discussions", &path).await?;
        Ok(discussions
            .iter()
            .flat_map(|d| d.get("notes").and_then(Value::as_array).into_iter().flatten())
            .any(|n| n.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(marker))))
    }

    /// One discussion per comment, positioned on the head's diff version, each ending with `marker`
    /// (GitLab has no review whose body could carry it).
    pub async fn post_review(
        &self,
        pr: &PullRequest,
        review: &Review,
        marker: &str,
    ) -> Result<PostedReview, ForgeError> {
        let (refs, web_url) = self.diff_refs(pr).await?;
        let path = format!("{}/discussions", Self::merge_request(pr));
        let (mut first, mut placed, mut refused) = (None, 0, Vec::new());
        for comment in &review.comments {
            let mut position = json!({
                "base_sha": refs.base_sha,
                "start_sha": refs.start_sha,
                "head_sha": refs.head_sha,
                "position_type": "text",
                "new_path": comment.path,
                "old_path": comment.old_path.as_deref().unwrap_or(&comment.path),
                "new_line": comment.line,
            });
            if let Some(old_line) = comment.old_line {
                position["old_line"] = json!(old_line);
            }
            let above = comment.start_line.map_or(0, |start| comment.line.saturating_sub(start));
            let body = json!({
                "body": format!("{}\n\n{marker}", crate::suggestion::for_gitlab(&comment.body, above)),
                "position": position,
            });
            match self.api.call("creating a discussion on a line", Method::POST, &path, &[], Some(&body)).await {
                Ok(reply) => {
                    placed += 1;
                    let note = reply.body.pointer("/notes/0/id").and_then(Value::as_u64);
                    first = first.or(note);
                }
                // GitLab refuses a position that is not on its diff version (the checkout's diff was
                // not the merge request's): the comment becomes a plain note saying where it belongs.
                Err(ForgeError::Status { status: 400, message, .. }) => {
                    let place = crate::place(comment);
                    let note = json!({"body": format!("**`{place}`**\n\n{}\n\n{marker}", comment.body.trim_end())});
                    let notes = format!("{}/notes", Self::merge_request(pr));
                    self.api.call("creating a note for a comment", Method::POST, &notes, &[], Some(&note)).await?;
                    refused.push(format!("{place} ({message})"));
                }
                Err(other) => return Err(other),
            }
        }
        let url = match (web_url, first) {
            (Some(url), Some(note)) => Some(format!("{url}#note_{note}")),
            (url, _) => url,
        };
        let fallback = (!refused.is_empty()).then(|| {
            format!(
                "GitLab refused {} comment(s) on lines (HTTP 400): {}; they were posted as notes",
                refused.len(),
                refused.join("; ")
            )
        });
        Ok(PostedReview { url, comments: placed, fallback, already: false })
    }

    /// Creates the summary note or edits the one found by its marker.
    pub async fn upsert_summary(&self, pr: &PullRequest, body: &str) -> Result<PostedSummary, ForgeError> {
        let notes = format!("{}/notes", Self::merge_request(pr));
        let existing = self.api.list_all("listing the merge request's notes", &notes).await?;
        let edit = |id| (Method::PUT, format!("{notes}/{id}"));
        self.api.upsert_summary("note", &existing, edit, &notes, body).await
    }

    /// A commit status on the head commit.
    pub async fn report_check(&self, pr: &PullRequest, check: &CheckReport) -> Result<PostedCheck, ForgeError> {
        let state = match check.conclusion {
            Conclusion::Success | Conclusion::Neutral => "success",
            Conclusion::Failure => "failed",
        };
        let mut body = json!({
            "state": state,
            "name": CHECK_NAME,
            "description": crate::truncate(&check.title, STATUS_DESCRIPTION_LIMIT),
        });
        if let Some(url) = &check.details_url {
            body["target_url"] = json!(url);
        }
        let path = format!("/projects/{}/statuses/{}", project_id(&pr.repository), pr.head_sha);
        self.api.call("setting the commit status", Method::POST, &path, &[], Some(&body)).await?;
        Ok(PostedCheck::CommitStatus { fallback: None })
    }
}

/// A project's id as a path segment: a number as it is, a `group/project` path URL-encoded.
pub fn project_id(project: &str) -> String {
    let mut out = String::with_capacity(project.len());
    for byte in project.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_project_path_is_one_encoded_segment() {
        assert_eq!(super::project_id("42"), "42");
        assert_eq!(super::project_id("group/sub/my.project"), "group%2Fsub%2Fmy.project");
    }
}
