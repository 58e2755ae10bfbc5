//! Reading a pull (merge) request from its forge, for a review the service starts by itself: who
//! opened it and on which commits, the changed files with their patches (put together into one
//! unified diff as `git diff` prints it), file contents at a commit, and the comments prfix left on
//! lines before (whose hidden fingerprints say which findings are already posted).
//!
//! - GitHub: `GET /repos/{o}/{r}/pulls/{n}`, `GET .../pulls/{n}/files` (each file's `patch`),
//!   `GET /repos/{o}/{r}/contents/{path}?ref=`, `GET .../pulls/{n}/comments`;
//! - GitLab: `GET /projects/:id/merge_requests/:iid`, `GET .../diffs`,
//!   `GET /projects/:id/repository/files/:path?ref=`, `GET .../discussions`;
//! - Gitea/Forgejo: `GET /repos/{o}/{r}/pulls/{n}`, `GET .../pulls/{n}.diff` (the diff as text),
//!   `GET /repos/{o}/{r}/contents/{path}?ref=`, `GET .../pulls/{n}/reviews/{id}/comments`.

use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;

use crate::error::ForgeError;
use crate::http::text_of;
use crate::{Forge, PullRequest};

/// A pull request as its forge describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInfo {
    /// Its head commit now.
    pub head_sha: String,
    /// The commit its diff starts from (the merge base GitHub and GitLab compare with).
    pub base_sha: String,
    /// The branch it merges into (`main`): `.prfix.toml` is read from there.
    pub base_ref: String,
    /// Marked as a draft (work in progress).
    pub draft: bool,
    /// Who opened it.
    pub author: String,
    /// Its title.
    pub title: String,
}

/// One changed file of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path in the head.
    pub path: String,
    /// The path in the base, when renamed.
    pub old_path: Option<String>,
    /// Added in the pull request.
    pub added: bool,
    /// Removed in the pull request.
    pub removed: bool,
    /// Its hunks (`@@ ... @@` onwards); `None` for a binary file or one too large for the forge to
    /// show.
    pub patch: Option<String>,
}

impl Forge {
    /// The pull request `number` of `repository`.
    pub async fn pull_info(&self, repository: &str, number: u64) -> Result<PullInfo, ForgeError> {
        let (api, path) = match self {
            Self::GitHub(f) => (f.api(), format!("/repos/{repository}/pulls/{number}")),
            Self::Gitea(f) => (f.api(), format!("/repos/{repository}/pulls/{number}")),
            Self::GitLab(f) => {
                let path = format!("/projects/{}/merge_requests/{number}", crate::gitlab::project_id(repository));
                let mr = f.api().call("reading the merge request", Method::GET, &path, &[], None).await?.body;
                let text = |pointer: &str| mr.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
                let draft = mr.get("draft").or(mr.get("work_in_progress")).and_then(Value::as_bool).unwrap_or(false);
                return Ok(PullInfo {
                    head_sha: text("/sha"),
                    base_sha: text("/diff_refs/base_sha"),
                    base_ref: text("/target_branch"),
                    draft,
                    author: text("/author/username"),
                    title: text("/title"),
                });
            }
        };
        let pull = api.call("reading the pull request", Method::GET, &path, &[], None).await?.body;
        let text = |pointer: &str| pull.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        let head_sha = text("/head/sha");
        if head_sha.is_empty() {
            return Err(ForgeError::Answer {
                call: format!("reading the pull request (GET {path})"),
                reason: "the answer has no head.sha".to_owned(),
            });
        }
        let mut author = text("/user/login");
        if author.is_empty() {
            author = text("/user/username");
        }
        Ok(PullInfo {
            head_sha,
            base_sha: text("/base/sha"),
            base_ref: text("/base/ref"),
            draft: pull.get("draft").and_then(Value::as_bool).unwrap_or(false),
            author,
            title: text("/title"),
        })
    }

    /// The unified diff of `pr` as `git diff` prints it, put together from the forge's per-file
    /// patches (Gitea: its diff as text), and the changed files.
    pub async fn pull_diff(&self, pr: &PullRequest) -> Result<(String, Vec<ChangedFile>), ForgeError> {
        let files = match self {
            Self::GitHub(f) => {
                let path = format!("/repos/{}/pulls/{}/files", pr.repository, pr.number);
                let listed = f.api().list_all("listing the pull request's files", &path).await?;
                listed.iter().map(github_file).collect::<Vec<_>>()
            }
            Self::GitLab(f) => {
                let path = format!(
                    "/projects/{}/merge_requests/{}/diffs",
                    crate::gitlab::project_id(&pr.repository),
                    pr.number
                );
                let listed = f.api().list_all("listing the merge request's diffs", &path).await?;
                listed.iter().map(gitlab_file).collect()
            }
            Self::Gitea(f) => {
                let path = format!("/repos/{}/pulls/{}.diff", pr.repository, pr.number);
                let diff = f.api().call_text("reading the pull request's diff", &path).await?;
                return Ok((diff, Vec::new()));
            }
        };
        Ok((unified(&files), files))
    }

    /// The text of `path` at `git_ref` (a commit or a branch); `None` when there is no such file,
    /// it is not text, or the forge does not send its content (over its size limit).
    pub async fn file_at(&self, repository: &str, path: &str, git_ref: &str) -> Result<Option<String>, ForgeError> {
        let what = "reading a file";
        let query = [("ref", git_ref.to_owned())];
        let (api, url) = match self {
            Self::GitHub(f) => (f.api(), format!("/repos/{repository}/contents/{}", encode_path(path))),
            Self::Gitea(f) => (f.api(), format!("/repos/{repository}/contents/{}", encode_path(path))),
            Self::GitLab(f) => (
                f.api(),
                format!(
                    "/projects/{}/repository/files/{}",
                    crate::gitlab::project_id(repository),
                    crate::gitlab::project_id(path)
                ),
            ),
        };
        let body = match api.call(what, Method::GET, &url, &query, None).await {
            Ok(reply) => reply.body,
            Err(ForgeError::Status { status: 404, .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        if body.get("encoding").and_then(Value::as_str) != Some("base64") {
            return Ok(None);
        }
        let packed: String = text_of(&body, "content").unwrap_or_default().split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(packed).map_err(|e| ForgeError::Answer {
            call: format!("{what} (GET {url})"),
            reason: format!("the content is not base64: {e}"),
        })?;
        Ok(String::from_utf8(bytes).ok())
    }

    /// The bodies of the comments on lines of `pr` (every author's; prfix's carry its fingerprints).
    pub async fn line_comment_bodies(&self, pr: &PullRequest) -> Result<Vec<String>, ForgeError> {
        let bodies = |items: &[Value]| -> Vec<String> { items.iter().filter_map(|c| text_of(c, "body")).collect() };
        match self {
            Self::GitHub(f) => {
                let path = format!("/repos/{}/pulls/{}/comments", pr.repository, pr.number);
                Ok(bodies(&f.api().list_all("listing the pull request's review comments", &path).await?))
            }
            Self::GitLab(f) => {
                let path = format!(
                    "/projects/{}/merge_requests/{}/discussions",
                    crate::gitlab::project_id(&pr.repository),
                    pr.number
                );
                let discussions = f.api().list_all("listing the merge request's discussions", &path).await?;
                Ok(discussions
                    .iter()
                    .flat_map(|d| d.get("notes").and_then(Value::as_array).cloned().unwrap_or_default())
                    .filter_map(|n| text_of(&n, "body"))
                    .collect())
            }
            Self::Gitea(f) => {
                let path = format!("/repos/{}/pulls/{}/reviews", pr.repository, pr.number);
                let reviews = f.api().get_array("listing the pull request's reviews", &path, &[]).await?;
                let mut out = Vec::new();
                for review in &reviews {
                    let Some(id) = review.get("id").and_then(Value::as_u64) else { continue };
                    let comments = format!("{path}/{id}/comments");
                    out.extend(bodies(&f.api().get_array("listing a review's comments", &comments, &[]).await?));
                }
                Ok(out)
            }
        }
    }
}

/// The unified diff of `files` as `git diff` prints it, from each file's patch (files without one,
/// binary or too large, are left out).
pub(crate) fn unified(files: &[ChangedFile]) -> String {
    let mut diff = String::new();
    for file in files {
        let Some(patch) = &file.patch else { continue };
        let old = file.old_path.as_deref().unwrap_or(&file.path);
        diff.push_str(&format!("diff --git a/{old} b/{}\n", file.path));
        let from = if file.added { "/dev/null".to_owned() } else { format!("a/{old}") };
        let to = if file.removed { "/dev/null".to_owned() } else { format!("b/{}", file.path) };
        diff.push_str(&format!("--- {from}\n+++ {to}\n{}", patch.trim_end_matches('\n')));
        diff.push('\n');
    }
    diff
}

/// A GitHub file entry (`pulls/list-files`, `repos/compare-commits`) as a changed file.
pub(crate) fn github_file(file: &Value) -> ChangedFile {
    let status = text_of(file, "status").unwrap_or_default();
    ChangedFile {
        path: text_of(file, "filename").unwrap_or_default(),
        old_path: text_of(file, "previous_filename"),
        added: status == "added",
        removed: status == "removed",
        patch: text_of(file, "patch"),
    }
}

/// A GitLab diff entry (merge request diffs, repository compare) as a changed file.
pub(crate) fn gitlab_file(file: &Value) -> ChangedFile {
    let flag = |key: &str| file.get(key).and_then(Value::as_bool).unwrap_or(false);
    let path = text_of(file, "new_path").unwrap_or_default();
    let old = text_of(file, "old_path").filter(|old| *old != path);
    ChangedFile {
        path,
        old_path: old,
        added: flag("new_file"),
        removed: flag("deleted_file"),
        patch: text_of(file, "diff").filter(|d| !d.trim().is_empty()),
    }
}

/// A repository path as URL path segments: each segment percent-encoded, the slashes kept.
fn encode_path(path: &str) -> String {
    path.split('/').map(crate::gitlab::project_id).collect::<Vec<_>>().join("/")
}
