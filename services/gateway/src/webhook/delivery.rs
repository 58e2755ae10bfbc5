//! What a delivery says: its id and event from the forge's headers (known before the body is
//! trusted, so refusals can be audited with them), then, once the signature holds, its repository,
//! sender and pull request from the payload.

use http::HeaderMap;
use serde_json::Value;

use crate::settings::ForgeKind;

/// Longest header or payload value kept for the audit log and the database.
const MAX_VALUE_CHARS: usize = 200;

/// A value from outside, cut to [`MAX_VALUE_CHARS`].
fn bounded(value: &str) -> String {
    value.chars().take(MAX_VALUE_CHARS).collect()
}

/// The first of `names` present in `headers`, as text.
fn header(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| headers.get(*name)).and_then(|v| v.to_str().ok()).map(bounded)
}

/// The header naming the delivery's id for `kind`.
pub fn delivery_id_headers(kind: ForgeKind) -> &'static [&'static str] {
    match kind {
        ForgeKind::GitHub => &["X-GitHub-Delivery"],
        ForgeKind::GitLab => &["X-Gitlab-Event-UUID"],
        ForgeKind::Gitea => &["X-Gitea-Delivery", "X-Forgejo-Delivery"],
        ForgeKind::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
    }
}

/// The delivery's id, as the forge's header says (not yet trusted).
pub fn delivery_id(kind: ForgeKind, headers: &HeaderMap) -> Option<String> {
    header(headers, delivery_id_headers(kind)).filter(|id| !id.is_empty())
}

/// The delivery's event (`pull_request`, `Merge Request Hook`), as the forge's header says.
pub fn event(kind: ForgeKind, headers: &HeaderMap) -> String {
    let names: &[&str] = match kind {
        ForgeKind::GitHub => &["X-GitHub-Event"],
        ForgeKind::GitLab => &["X-Gitlab-Event"],
        ForgeKind::Gitea => &["X-Gitea-Event", "X-Forgejo-Event"],
        ForgeKind::Forgejo => &["X-Forgejo-Event", "X-Gitea-Event"],
    };
    header(headers, names).unwrap_or_default()
}

/// A pull (merge) request a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number (GitLab's `iid`).
    pub number: u64,
    /// The head commit.
    pub head_sha: String,
    /// What happened: `opened`, `synchronize`, GitLab's `open`, `update`.
    pub action: String,
}

/// What the payload of a verified delivery says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// `owner/name` (GitLab: the project's full path).
    pub repository: String,
    /// Who caused the delivery (login or user name).
    pub sender: String,
    /// The pull request, for pull (merge) request events.
    pub pull_request: Option<PullRequest>,
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).map(bounded).unwrap_or_default()
}

/// Reads the payload of a `kind` forge's delivery.
pub fn read(kind: ForgeKind, payload: &Value) -> Payload {
    match kind {
        ForgeKind::GitLab => {
            let attributes = payload.get("object_attributes");
            let pull_request =
                (text(payload, "/object_kind") == "merge_request").then_some(attributes).flatten().and_then(|a| {
                    Some(PullRequest {
                        number: a.get("iid")?.as_u64()?,
                        head_sha: text(a, "/last_commit/id"),
                        action: text(a, "/action"),
                    })
                });
            Payload {
                repository: text(payload, "/project/path_with_namespace"),
                sender: text(payload, "/user/username"),
                pull_request,
            }
        }
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => {
            let pull_request = payload.get("pull_request").and_then(|pull| {
                Some(PullRequest {
                    number: pull.get("number")?.as_u64()?,
                    head_sha: text(pull, "/head/sha"),
                    action: text(payload, "/action"),
                })
            });
            let mut sender = text(payload, "/sender/login");
            if sender.is_empty() {
                sender = text(payload, "/sender/username");
            }
            Payload { repository: text(payload, "/repository/full_name"), sender, pull_request }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gitlab_merge_request_hook_names_project_user_and_merge_request() {
        let payload = serde_json::json!({
            "object_kind": "merge_request",
            "user": { "username": "root" },
            "project": { "path_with_namespace": "group/sub/app" },
            "object_attributes": { "iid": 3, "action": "open", "last_commit": { "id": "abc" } }
        });
        let read = read(ForgeKind::GitLab, &payload);
        assert_eq!(read.repository, "group/sub/app");
        assert_eq!(read.sender, "root");
        assert_eq!(
            read.pull_request,
            Some(PullRequest { number: 3, head_sha: "abc".to_owned(), action: "open".to_owned() })
        );
    }

    #[test]
    fn values_from_outside_are_bounded() {
        let long = "x".repeat(10_000);
        let payload = serde_json::json!({ "repository": { "full_name": long } });
        assert_eq!(read(ForgeKind::GitHub, &payload).repository.len(), MAX_VALUE_CHARS);
    }
}
