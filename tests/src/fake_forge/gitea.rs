//! A fake Gitea/Forgejo (REST API v1 under `/api/v1`), checking the request shapes of its API
//! (Gitea's swagger: `CreatePullReviewOptions`, `CreatePullReviewComment`, `CreateIssueCommentOption`,
//! `EditIssueCommentOption`, `CreateStatusOption`) for the calls prfix makes:
//!
//! - `Authorization: token <t>` (or `Bearer <t>`);
//! - `GET /repos/{owner}/{repo}/pulls/{index}/reviews` (`page`, `limit`);
//! - `POST /repos/{owner}/{repo}/pulls/{index}/reviews`: `body`, `commit_id` (the head), `event`
//!   among Gitea's review states, `comments` each with `path`, `body` and exactly one of
//!   `new_position`/`old_position` non-zero, naming a line the diff shows on that side;
//! - `GET`/`POST /repos/{owner}/{repo}/issues/{index}/comments`, `PATCH .../issues/comments/{id}`;
//! - `POST /repos/{owner}/{repo}/statuses/{sha}` with `state` among Gitea's;
//! - for the service's own reviews: `GET /repos/{owner}/{repo}/pulls/{index}`, `GET .../pulls/{index}.diff`
//!   (the diff as text), `GET /repos/{owner}/{repo}/contents/{filepath}?ref=` (`ref` required) and
//!   `GET .../pulls/{index}/reviews/{id}/comments`, `GET /repos/{owner}/{repo}/compare/{base}...{head}`
//!   (no query; answered from [`FakeGitea::add_history`]).
//!
//! Unknown fields are refused (Gitea ignores them; a test should not).

use serde_json::{Map, Value, json};

use super::DiffLines;
use super::server::{Answer, Contract, FakeForge, ForgeRequest};

/// A fake Gitea or Forgejo.
pub type FakeGitea = FakeForge<GiteaState>;

/// What the fake holds: one repository with one pull request.
#[derive(Debug, Default)]
pub struct GiteaState {
    /// The token calls must carry.
    pub token: String,
    /// `owner/repo`.
    pub repository: String,
    /// The pull request's index.
    pub index: u64,
    /// Its head commit.
    pub head_sha: String,
    /// The lines its diff shows.
    pub diff: DiffLines,
    /// Reviews as received.
    pub reviews: Vec<Value>,
    /// Issue comments: (id, body).
    pub comments: Vec<(u64, String)>,
    /// Commit statuses as received.
    pub statuses: Vec<(String, Value)>,
    /// The diff as `git diff` printed it.
    pub diff_text: String,
    /// File contents by (ref, path).
    pub files: std::collections::BTreeMap<(String, String), String>,
    /// Commits the compare answers for.
    pub compares: Vec<super::Compare>,
    next_id: u64,
}

const REVIEW_EVENTS: &[&str] = &["APPROVED", "PENDING", "COMMENT", "REQUEST_CHANGES", "REQUEST_REVIEW"];
const STATES: &[&str] = &["pending", "success", "error", "failure", "warning"];

impl FakeGitea {
    /// A fake Gitea with pull request `index` of `repository` at `head_sha`, whose diff is `diff`.
    pub async fn start_gitea(token: &str, repository: &str, index: u64, head_sha: &str, diff: &str) -> Self {
        let state = GiteaState {
            token: token.to_owned(),
            repository: repository.to_owned(),
            index,
            head_sha: head_sha.to_owned(),
            diff: DiffLines::parse(diff),
            diff_text: diff.to_owned(),
            next_id: 70,
            ..Default::default()
        };
        FakeForge::start(state, "/api/v1").await
    }

    /// Makes `path` hold `content` at `git_ref` (a commit or a branch).
    pub fn add_file(&self, git_ref: &str, path: &str, content: &str) {
        self.with_mut(|s| s.files.insert((git_ref.to_owned(), path.to_owned()), content.to_owned()));
    }

    /// Pushes to the pull request: its head is now `head` and its diff `diff`.
    pub fn push(&self, head: &str, diff: &str) {
        self.with_mut(|s| {
            head.clone_into(&mut s.head_sha);
            s.diff = DiffLines::parse(diff);
            diff.clone_into(&mut s.diff_text);
        });
    }

    /// Lets the compare answer for any two of `commits` of `repo`.
    pub fn add_history(&self, repo: &crate::git::Repo, commits: &[&str]) {
        let compares = super::Compare::all(repo, commits);
        self.with_mut(|s| s.compares.extend(compares));
    }
}

type Refusal = (u16, String);

fn unprocessable(reason: impl Into<String>) -> Refusal {
    (422, reason.into())
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), Refusal> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(unprocessable(format!("`{key}` is not a field of {what}"))),
        None => Ok(()),
    }
}

impl GiteaState {
    fn check_review(&self, body: &Value) -> Result<(), Refusal> {
        let object = body.as_object().ok_or_else(|| unprocessable("the body is not an object"))?;
        only_keys(object, &["body", "comments", "commit_id", "event"], "CreatePullReviewOptions")?;
        if let Some(commit) = body["commit_id"].as_str()
            && commit != self.head_sha
        {
            return Err(unprocessable(format!("commit_id {commit} is not the head {}", self.head_sha)));
        }
        if !body["event"].as_str().is_some_and(|e| REVIEW_EVENTS.contains(&e)) {
            return Err(unprocessable(format!("event {} is not one of {REVIEW_EVENTS:?}", body["event"])));
        }
        for (i, comment) in body["comments"].as_array().into_iter().flatten().enumerate() {
            let object = comment.as_object().ok_or_else(|| unprocessable(format!("comments[{i}] is not an object")))?;
            only_keys(object, &["path", "body", "new_position", "old_position"], "CreatePullReviewComment")?;
            let path =
                comment["path"].as_str().ok_or_else(|| unprocessable(format!("comments[{i}].path is missing")))?;
            if comment["body"].as_str().is_none_or(|b| b.trim().is_empty()) {
                return Err(unprocessable(format!("comments[{i}].body is missing")));
            }
            let position = |key: &str| comment.get(key).map_or(Some(0), Value::as_u64);
            let (Some(new), Some(old)) = (position("new_position"), position("old_position")) else {
                return Err(unprocessable(format!("comments[{i}]: positions must be integers")));
            };
            let shown = match (new, old) {
                (0, 0) | (1.., 1..) => {
                    return Err(unprocessable(format!("comments[{i}]: exactly one of new_position and old_position")));
                }
                (n, 0) => u32::try_from(n).ok().and_then(|n| self.diff.new_line(path, n)),
                (0, o) => u32::try_from(o).ok().and_then(|o| self.diff.old_line(path, o)),
            };
            if shown.is_none() {
                return Err(unprocessable(format!("comments[{i}]: {path} line {new}/{old} is not in the diff")));
            }
        }
        Ok(())
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn comment_json(&self, base: &str, id: u64, body: &str) -> Value {
        json!({
            "id": id,
            "body": body,
            "html_url": format!("{base}/{}/pulls/{}#issuecomment-{id}", self.repository, self.index),
            "user": {"login": "gitea-actions"},
        })
    }
}

impl Contract for GiteaState {
    fn check(&self, request: &ForgeRequest) -> Result<String, Refusal> {
        let authorization = request.header("authorization").unwrap_or_default();
        let token = authorization.strip_prefix("token ").or_else(|| authorization.strip_prefix("Bearer "));
        if token != Some(self.token.as_str()) {
            return Err((401, "token is required".to_owned()));
        }
        let s = request.segments();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        let repository = s.get(1..3).map(|r| r.join("/")).unwrap_or_default();
        if s.first() != Some(&"repos") || repository != self.repository {
            return Err((404, format!("The target couldn't be found: {}", request.path)));
        }
        let index = self.index.to_string();
        let body = request.json();
        let diff_name = format!("{index}.diff");
        let operation = match (request.method.as_str(), &s[3..]) {
            ("GET", ["pulls", i]) if *i == index => "get-pull",
            ("GET", ["pulls", i]) if *i == diff_name => "get-pull-diff",
            ("GET", ["contents", ..]) if s.len() > 4 => {
                if !request.query.iter().any(|(k, v)| k == "ref" && !v.is_empty()) {
                    return Err(unprocessable("ref is required here"));
                }
                "get-contents"
            }
            ("GET", ["compare", basehead]) => {
                // Gitea's swagger (repoCompareDiff): the path's `basehead` only, `base...head`.
                if let Some((key, _)) = request.query.first() {
                    return Err(unprocessable(format!("`{key}` is not a parameter of the compare")));
                }
                if !basehead.split_once("...").is_some_and(|(b, h)| !b.is_empty() && !h.is_empty()) {
                    return Err((404, format!("basehead {basehead} is not base...head")));
                }
                "compare"
            }
            ("GET", ["pulls", i, "reviews", _, "comments"]) if *i == index => "list-review-comments",
            ("GET", ["pulls", i, "reviews"]) if *i == index => "list-reviews",
            ("POST", ["pulls", i, "reviews"]) if *i == index => {
                self.check_review(&body)?;
                "create-review"
            }
            ("GET", ["issues", i, "comments"]) if *i == index => "list-comments",
            ("POST", ["issues", i, "comments"]) if *i == index => "create-comment",
            ("PATCH", ["issues", "comments", _]) => "edit-comment",
            ("POST", ["statuses", sha]) => {
                if *sha != self.head_sha {
                    return Err((404, format!("commit {sha} not found")));
                }
                let object = body.as_object().ok_or_else(|| unprocessable("the body is not an object"))?;
                only_keys(object, &["state", "target_url", "description", "context"], "CreateStatusOption")?;
                if !body["state"].as_str().is_some_and(|st| STATES.contains(&st)) {
                    return Err(unprocessable(format!("state {} is not one of {STATES:?}", body["state"])));
                }
                "create-status"
            }
            _ => return Err((404, format!("404 page not found: {} {}", request.method, request.path))),
        };
        if matches!(operation, "create-comment" | "edit-comment") {
            let object = body.as_object().ok_or_else(|| unprocessable("the body is not an object"))?;
            only_keys(object, &["body"], "CreateIssueCommentOption")?;
            if !body["body"].is_string() {
                return Err(unprocessable("body is required"));
            }
        }
        Ok(operation.to_owned())
    }

    fn answer(&mut self, operation: &str, request: &ForgeRequest, base: &str) -> Answer {
        let body = request.json();
        match operation {
            "create-review" => {
                let id = self.id();
                self.reviews.push(body.clone());
                Answer::json(
                    200,
                    json!({
                        "id": id, "body": body["body"], "state": "COMMENT", "commit_id": body["commit_id"],
                        "html_url": format!("{base}/{}/pulls/{}#issuecomment-{id}", self.repository, self.index),
                    }),
                )
            }
            "list-reviews" => {
                let listed: Vec<Value> = self
                    .reviews
                    .iter()
                    .enumerate()
                    .map(|(i, r)| json!({"id": i + 1, "body": r["body"], "state": "COMMENT", "commit_id": r["commit_id"]}))
                    .collect();
                Answer::json(200, Value::Array(request.page(listed, "limit", 50)))
            }
            "list-comments" => {
                let listed: Vec<Value> = self.comments.iter().map(|(id, b)| self.comment_json(base, *id, b)).collect();
                Answer::json(200, Value::Array(listed))
            }
            "create-comment" => {
                let id = self.id();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                self.comments.push((id, text.clone()));
                Answer::json(201, self.comment_json(base, id, &text))
            }
            "edit-comment" => {
                let id = request.segments().get(5).and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                match self.comments.iter_mut().find(|(i, _)| *i == id) {
                    Some(comment) => {
                        comment.1 = text.clone();
                        Answer::json(200, self.comment_json(base, id, &text))
                    }
                    None => Answer::message(404, "comment not found"),
                }
            }
            "get-pull" => Answer::json(
                200,
                json!({
                    "number": self.index, "title": "A change", "draft": false,
                    "user": {"login": "gitea-user", "username": "gitea-user"},
                    "head": {"sha": self.head_sha, "ref": "feature"},
                    "base": {"sha": "", "ref": "main"},
                }),
            ),
            "get-pull-diff" => Answer::text(200, &self.diff_text),
            "compare" => {
                let basehead = request.segments().get(4).cloned().unwrap_or_default();
                let (from, to) = basehead.split_once("...").unwrap_or_default();
                let Some(compare) = self.compares.iter().find(|c| c.base == from && c.head == to) else {
                    return Answer::message(404, "GetRefCommitID");
                };
                let commits: Vec<Value> = compare
                    .ahead
                    .iter()
                    .zip(&compare.touched)
                    .rev()
                    .map(|(sha, files)| {
                        let files: Vec<Value> =
                            files.iter().map(|f| json!({"filename": f, "status": "modified"})).collect();
                        json!({"sha": sha, "files": files})
                    })
                    .collect();
                Answer::json(200, json!({"total_commits": commits.len(), "commits": commits}))
            }
            "get-contents" => {
                let path = request.segments().get(4..).map(|s| s.join("/")).unwrap_or_default();
                let git_ref =
                    request.query.iter().find(|(k, _)| k == "ref").map(|(_, v)| v.clone()).unwrap_or_default();
                match self.files.get(&(git_ref, path.clone())) {
                    Some(content) => {
                        use base64::Engine as _;
                        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
                        Answer::json(
                            200,
                            json!({"type": "file", "path": path, "encoding": "base64", "content": encoded}),
                        )
                    }
                    None => Answer::message(404, "GetContentsOrList"),
                }
            }
            "list-review-comments" => {
                let review = request.segments().get(6).and_then(|s| s.parse::<usize>().ok()).unwrap_or_default();
                let comments: Vec<Value> = self
                    .reviews
                    .get(review.saturating_sub(1))
                    .and_then(|r| r["comments"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .map(|c| json!({"id": self.next_id, "path": c["path"], "body": c["body"], "position": c["new_position"]}))
                    .collect();
                Answer::json(200, Value::Array(comments))
            }
            "create-status" => {
                let sha = request.segments().get(4).cloned().unwrap_or_default();
                self.statuses.push((sha, body.clone()));
                Answer::json(201, json!({"id": self.id(), "status": body["state"], "context": body["context"]}))
            }
            other => Answer::message(501, &format!("the fake Gitea does not answer {other}")),
        }
    }
}
