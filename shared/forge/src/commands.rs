//! What answering a command in a pull request comment (`/review`) needs from the forge: whether the
//! commenter may write to the repository, a reaction that acknowledges the command, and a reply.
//!
//! - GitHub: `GET /repos/{o}/{r}/collaborators/{username}/permission` (`admin`, `maintain` and `write`
//!   may), `POST /repos/{o}/{r}/issues/comments/{id}/reactions` (`eyes`),
//!   `POST /repos/{o}/{r}/issues/{n}/comments`;
//! - GitLab: `GET /projects/:id/members/all?query=` (access level 30, Developer, or more),
//!   `POST .../merge_requests/:iid/notes/:note_id/award_emoji` (`eyes`), `POST .../notes`;
//! - Gitea/Forgejo: `GET /repos/{o}/{r}/collaborators/{username}/permission` (`owner`, `admin`, `write`),
//!   `POST /repos/{o}/{r}/issues/comments/{id}/reactions`, `POST /repos/{o}/{r}/issues/{n}/comments`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::error::ForgeError;
use crate::http::text_of;
use crate::{Forge, PullRequest};

/// GitLab's Developer access level: members at or above it may push.
const GITLAB_DEVELOPER: u64 = 30;

impl Forge {
    /// Whether `username` may write to `repository` (a user the forge does not know may not).
    pub async fn can_write(&self, repository: &str, username: &str) -> Result<bool, ForgeError> {
        let user = crate::gitlab::project_id(username);
        match self {
            Self::GitHub(f) => {
                let path = format!("/repos/{repository}/collaborators/{user}/permission");
                let what = "reading the commenter's permission";
                let answer = match f.api().call(what, Method::GET, &path, &[], None).await {
                    Ok(reply) => reply.body,
                    Err(ForgeError::Status { status: 404, .. }) => return Ok(false),
                    Err(other) => return Err(other),
                };
                Ok(matches!(text_of(&answer, "permission").as_deref(), Some("admin" | "maintain" | "write")))
            }
            Self::Gitea(f) => {
                let path = format!("/repos/{repository}/collaborators/{user}/permission");
                let what = "reading the commenter's permission";
                let answer = match f.api().call(what, Method::GET, &path, &[], None).await {
                    Ok(reply) => reply.body,
                    Err(ForgeError::Status { status: 403 | 404, .. }) => return Ok(false),
                    Err(other) => return Err(other),
                };
                Ok(matches!(text_of(&answer, "permission").as_deref(), Some("owner" | "admin" | "write")))
            }
            Self::GitLab(f) => {
                let path = format!("/projects/{}/members/all", crate::gitlab::project_id(repository));
                let query = [("query", username.to_owned())];
                let members = f.api().get_array("listing the project's members", &path, &query).await?;
                Ok(members.iter().any(|m| {
                    m.get("username").and_then(Value::as_str) == Some(username)
                        && m.get("access_level").and_then(Value::as_u64).is_some_and(|l| l >= GITLAB_DEVELOPER)
                }))
            }
        }
    }

    /// Reacts with 👀 to the comment `comment_id` of `pr`, acknowledging its command.
    pub async fn acknowledge(&self, pr: &PullRequest, comment_id: u64) -> Result<(), ForgeError> {
        let what = "reacting to the command's comment";
        match self {
            Self::GitHub(f) => {
                let path = format!("/repos/{}/issues/comments/{comment_id}/reactions", pr.repository);
                f.api().call(what, Method::POST, &path, &[], Some(&json!({"content": "eyes"}))).await?;
            }
            Self::Gitea(f) => {
                let path = format!("/repos/{}/issues/comments/{comment_id}/reactions", pr.repository);
                f.api().call(what, Method::POST, &path, &[], Some(&json!({"content": "eyes"}))).await?;
            }
            Self::GitLab(f) => {
                let path = format!(
                    "/projects/{}/merge_requests/{}/notes/{comment_id}/award_emoji",
                    crate::gitlab::project_id(&pr.repository),
                    pr.number
                );
                f.api().call(what, Method::POST, &path, &[], Some(&json!({"name": "eyes"}))).await?;
            }
        }
        Ok(())
    }

    /// Posts `body` as a new comment on `pr` (a reply to a command).
    pub async fn reply(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError> {
        let what = "replying to the command";
        let path = match self {
            Self::GitHub(_) | Self::Gitea(_) => format!("/repos/{}/issues/{}/comments", pr.repository, pr.number),
            Self::GitLab(_) => {
                format!("/projects/{}/merge_requests/{}/notes", crate::gitlab::project_id(&pr.repository), pr.number)
            }
        };
        let api = match self {
            Self::GitHub(f) => f.api(),
            Self::Gitea(f) => f.api(),
            Self::GitLab(f) => f.api(),
        };
        api.call(what, Method::POST, &path, &[], Some(&json!({ "body": body }))).await?;
        Ok(())
    }
}
