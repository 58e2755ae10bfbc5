//! What changed between two commits of a pull request, for an incremental review: whether the
//! earlier head is an ancestor of the new one (a push added commits) or not (a force push rewrote
//! the branch), and the diff from the earlier head to the new one.
//!
//! - GitHub: `GET /repos/{owner}/{repo}/compare/{base}...{head}`: `status` `ahead` (or `identical`)
//!   means `base` is an ancestor of `head`; `files` carry each file's patch.
//! - GitLab: `GET /projects/:id/repository/compare?from=&to=`: the commits reachable from `to` and
//!   not from `from`, and the diffs from their merge base. Asked the other way round (`from` the new
//!   head, `to` the earlier one), no commits means the earlier head is an ancestor.
//! - Gitea/Forgejo: `GET /repos/{owner}/{repo}/compare/{basehead}` lists the commits of `head` that
//!   `base` has not, with the files each touches, but no patches: asked the other way round, no
//!   commits means the earlier head is an ancestor; the caller diffs the files' contents.

use reqwest::Method;
use serde_json::Value;

use crate::Forge;
use crate::error::ForgeError;
use crate::fetch::{github_file, gitlab_file, unified};
use crate::http::text_of;

/// Two commits compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The earlier head is an ancestor of the new one: the unified diff between them (as `git diff
    /// base head` prints it).
    Ahead {
        /// The diff.
        diff: String,
    },
    /// The earlier head is an ancestor of the new one and the forge names the files its later
    /// commits touch, but gives no diff (Gitea, Forgejo): the caller diffs their contents at the two
    /// heads.
    Files {
        /// The paths, sorted.
        paths: Vec<String>,
    },
    /// The earlier head is not an ancestor of the new one (a force push), or the forge cannot say:
    /// why, in words for the summary.
    Unrelated(String),
}

impl Forge {
    /// Compares `base` (an earlier head) with `head` in `repository`.
    pub async fn compare(&self, repository: &str, base: &str, head: &str) -> Result<Comparison, ForgeError> {
        let force_push = || {
            Comparison::Unrelated(format!(
                "{} is not an ancestor of {} (the branch was force-pushed)",
                short(base),
                short(head)
            ))
        };
        match self {
            Self::GitHub(f) => {
                let path = format!("/repos/{repository}/compare/{base}...{head}");
                let what = "comparing the reviewed head with the new one";
                let answer = f.api().call(what, Method::GET, &path, &[], None).await?.body;
                match text_of(&answer, "status").as_deref() {
                    Some("ahead" | "identical") => {}
                    Some(_) => return Ok(force_push()),
                    None => {
                        return Err(ForgeError::Answer {
                            call: format!("{what} (GET {path})"),
                            reason: "the answer has no status".to_owned(),
                        });
                    }
                }
                let files: Vec<_> =
                    answer.get("files").and_then(Value::as_array).into_iter().flatten().map(github_file).collect();
                Ok(Comparison::Ahead { diff: unified(&files) })
            }
            Self::GitLab(f) => {
                let path = format!("/projects/{}/repository/compare", crate::gitlab::project_id(repository));
                let what = "comparing the reviewed head with the new one";
                let ask = |from: &str, to: &str| [("from", from.to_owned()), ("to", to.to_owned())];
                let back = f.api().call(what, Method::GET, &path, &ask(head, base), None).await?.body;
                let behind = back.get("commits").and_then(Value::as_array).map_or(0, Vec::len);
                if behind > 0 {
                    return Ok(force_push());
                }
                let forward = f.api().call(what, Method::GET, &path, &ask(base, head), None).await?.body;
                let files: Vec<_> =
                    forward.get("diffs").and_then(Value::as_array).into_iter().flatten().map(gitlab_file).collect();
                Ok(Comparison::Ahead { diff: unified(&files) })
            }
            Self::Gitea(f) => {
                let path = |from: &str, to: &str| format!("/repos/{repository}/compare/{from}...{to}");
                let what = "comparing the reviewed head with the new one";
                let back = f.api().call(what, Method::GET, &path(head, base), &[], None).await?.body;
                if commits_of(&back).next().is_some() {
                    return Ok(force_push());
                }
                let forward = f.api().call(what, Method::GET, &path(base, head), &[], None).await?.body;
                let mut paths: Vec<String> = commits_of(&forward)
                    .flat_map(|c| c.get("files").and_then(Value::as_array).cloned().unwrap_or_default())
                    .filter_map(|file| text_of(&file, "filename"))
                    .collect();
                paths.sort();
                paths.dedup();
                Ok(Comparison::Files { paths })
            }
        }
    }
}

/// The commits of a Gitea compare answer.
fn commits_of(answer: &Value) -> impl Iterator<Item = &Value> {
    answer.get("commits").and_then(Value::as_array).into_iter().flatten()
}

/// The first 12 characters of a commit id.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
