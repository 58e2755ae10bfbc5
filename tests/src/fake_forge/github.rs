//! A fake GitHub (github.com at `/`, or Enterprise Server under `/api/v3`): every request is checked
//! against GitHub's OpenAPI description ([`super::openapi`]) and against what GitHub checks beyond
//! the schema for the calls prfix makes:
//!
//! - the token (`Authorization: Bearer|token`) and a `User-Agent`, which GitHub requires;
//! - a review's pull request exists, its `commit_id` is the head, `body` is present for `COMMENT`,
//!   every comment's `line` (and `start_line`, in the same hunk, before it) is shown by the pull
//!   request's diff on its `side`;
//! - a check run's head is a known commit; check runs can be refused as to a token that is not a
//!   GitHub App's ([`GitHubState::refuse_check_runs`]).
//!
//! It keeps issue comments, reviews, check runs and commit statuses, and answers with their ids and
//! `html_url`s as GitHub does. For the service's own reviews it also serves a pull request
//! (`pulls/get`), its files with their patches (`pulls/list-files`, cut from the pull request's
//! diff), file contents at a commit or branch (`repos/get-content`, from [`FakeGitHub::add_file`]),
//! and the comments of the reviews posted (`pulls/list-review-comments`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::DiffLines;
use super::openapi;
use super::server::{Answer, Contract, FakeForge, ForgeRequest};

/// A fake GitHub.
pub type FakeGitHub = FakeForge<GitHubState>;

/// One pull request the fake knows.
#[derive(Debug, Clone)]
pub struct Pull {
    /// Its head commit.
    pub head_sha: String,
    /// The lines its diff shows.
    pub diff: DiffLines,
    /// Its diff as `git diff` printed it.
    pub diff_text: String,
    /// The commit its diff starts from.
    pub base_sha: String,
    /// The branch it merges into.
    pub base_ref: String,
    /// Who opened it.
    pub author: String,
    /// Whether it is a draft.
    pub draft: bool,
}

/// A GitHub App the fake knows: its id, its installation, and its public key.
#[derive(Debug, Clone)]
pub struct App {
    /// The app's id, the JWT's `iss`.
    pub app_id: String,
    /// The installation tokens are made for.
    pub installation_id: u64,
    /// The public key's modulus and exponent (base64url), as a JWK has them.
    pub n: String,
    /// The exponent.
    pub e: String,
    /// How long an installation token lasts (GitHub: an hour).
    pub token_ttl_secs: i64,
}

/// What the fake GitHub holds.
#[derive(Debug, Default)]
pub struct GitHubState {
    /// The token calls must carry.
    pub token: String,
    /// Pull requests by `owner/repo#number`.
    pub pulls: BTreeMap<String, Pull>,
    /// Issue comments: (id, `owner/repo#number`, body).
    pub comments: Vec<(u64, String, String)>,
    /// Reviews as received, by `owner/repo#number`.
    pub reviews: Vec<(String, Value)>,
    /// Check runs as received.
    pub check_runs: Vec<Value>,
    /// Commit statuses as received, with their sha.
    pub statuses: Vec<(String, Value)>,
    /// Answer check runs with 403 as GitHub does to a token that is not a GitHub App's.
    pub refuse_check_runs: bool,
    /// File contents by (`owner/repo`, ref, path); a ref is a commit or a branch.
    pub files: BTreeMap<(String, String, String), String>,
    /// Comments of the reviews posted: (id, `owner/repo#number`, the comment as sent).
    pub review_comments: Vec<(u64, String, Value)>,
    /// Each user's permission on the repositories (`admin`, `write`, `read`); others have `none`.
    pub permissions: BTreeMap<String, String>,
    /// Reactions created: (comment id, content).
    pub reactions: Vec<(u64, String)>,
    /// A GitHub App whose installation tokens the fake issues ([`FakeGitHub::add_app`]).
    pub app: Option<App>,
    /// Installation tokens issued, with their expiry (Unix seconds).
    pub installation_tokens: Vec<(String, i64)>,
    /// Commits compared (`repos/compare-commits`), with their repository.
    pub compares: Vec<(String, super::Compare)>,
    next_id: u64,
}

impl FakeGitHub {
    /// A fake github.com serving its API at the root, accepting `token`. Reads GitHub's OpenAPI
    /// description first, so a test without it fails here, saying how to install it.
    pub async fn start_github(token: &str) -> Self {
        openapi::github();
        FakeForge::start(GitHubState { token: token.to_owned(), next_id: 1000, ..Default::default() }, "").await
    }

    /// A fake Enterprise Server serving its API under `/api/v3`.
    pub async fn start_enterprise(token: &str) -> Self {
        openapi::github();
        FakeForge::start(GitHubState { token: token.to_owned(), next_id: 1000, ..Default::default() }, "/api/v3").await
    }

    /// Makes pull request `number` of `repository` exist, with `head_sha` and the lines of `diff`.
    pub fn add_pull(&self, repository: &str, number: u64, head_sha: &str, diff: &str) {
        let pull = Pull {
            head_sha: head_sha.to_owned(),
            diff: DiffLines::parse(diff),
            diff_text: diff.to_owned(),
            base_sha: "0000000000000000000000000000000000000000".to_owned(),
            base_ref: "main".to_owned(),
            author: "octocat".to_owned(),
            draft: false,
        };
        self.with_mut(|s| s.pulls.insert(format!("{repository}#{number}"), pull));
    }

    /// Pushes to pull request `number`: its head is now `head_sha` and its diff `diff`.
    pub fn push(&self, repository: &str, number: u64, head_sha: &str, diff: &str) {
        self.with_mut(|s| {
            if let Some(pull) = s.pulls.get_mut(&format!("{repository}#{number}")) {
                pull.head_sha = head_sha.to_owned();
                pull.diff = DiffLines::parse(diff);
                diff.clone_into(&mut pull.diff_text);
            }
        });
    }

    /// Knows the GitHub App `app`: its JWTs are checked against its key, and its installation tokens
    /// are accepted like the fake's token.
    pub fn add_app(&self, app: App) {
        self.with_mut(|s| s.app = Some(app));
    }

    /// Gives `user` `permission` (`admin`, `write`, `read`) on the repositories.
    pub fn set_permission(&self, user: &str, permission: &str) {
        self.with_mut(|s| s.permissions.insert(user.to_owned(), permission.to_owned()));
    }

    /// Lets `repos/compare-commits` compare any two of `commits` of `repo` in `repository`.
    pub fn add_history(&self, repository: &str, repo: &crate::git::Repo, commits: &[&str]) {
        let compares = super::Compare::all(repo, commits);
        self.with_mut(|s| s.compares.extend(compares.into_iter().map(|c| (repository.to_owned(), c))));
    }

    /// Makes `path` of `repository` hold `content` at `git_ref` (a commit or a branch).
    pub fn add_file(&self, repository: &str, git_ref: &str, path: &str, content: &str) {
        self.with_mut(|s| {
            s.files.insert((repository.to_owned(), git_ref.to_owned(), path.to_owned()), content.to_owned())
        });
    }
}

impl GitHubState {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// What GitHub checks of a review beyond its schema.
    fn check_review(&self, pull: &str, review: &Value) -> Result<(), (u16, String)> {
        let pull = self.pulls.get(pull).ok_or((404, format!("pull request {pull} does not exist")))?;
        let unprocessable = |reason: String| Err((422, reason));
        if let Some(commit) = review["commit_id"].as_str()
            && commit != pull.head_sha
        {
            return unprocessable(format!("commit_id {commit} is not the pull request's head {}", pull.head_sha));
        }
        if matches!(review["event"].as_str(), Some("COMMENT" | "REQUEST_CHANGES"))
            && review["body"].as_str().is_none_or(str::is_empty)
        {
            return unprocessable("body is required for a COMMENT or REQUEST_CHANGES review".to_owned());
        }
        for (i, comment) in review["comments"].as_array().into_iter().flatten().enumerate() {
            let path = comment["path"].as_str().unwrap_or_default();
            if comment.get("position").is_some() {
                return unprocessable(format!("comments[{i}]: `position` is deprecated; prfix must send `line`"));
            }
            let Some(line) = comment["line"].as_u64().and_then(|l| u32::try_from(l).ok()) else {
                return unprocessable(format!("comments[{i}]: `line` is required"));
            };
            let side = comment["side"].as_str().unwrap_or("RIGHT");
            let shown = |l: u32, side: &str| match side {
                "RIGHT" => pull.diff.new_line(path, l),
                "LEFT" => pull.diff.old_line(path, l),
                _ => None,
            };
            let Some(end) = shown(line, side) else {
                return unprocessable(format!(
                    "comments[{i}]: Pull request review thread line must be part of the diff ({path}:{line} {side})"
                ));
            };
            if let Some(start) = comment["start_line"].as_u64().and_then(|l| u32::try_from(l).ok()) {
                let start_side = comment["start_side"].as_str().unwrap_or(side);
                match shown(start, start_side) {
                    Some(first) if first.hunk == end.hunk && start < line => {}
                    _ => {
                        return unprocessable(format!(
                            "comments[{i}]: start_line {start} must be before line {line} in the same hunk of the diff"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn comment_json(&self, base: &str, id: u64, pull: &str, body: &str) -> Value {
        let (repository, number) = pull.split_once('#').unwrap_or((pull, "0"));
        json!({
            "id": id,
            "node_id": format!("IC_{id}"),
            "url": format!("{base}/repos/{repository}/issues/comments/{id}"),
            "html_url": format!("https://github.example/{repository}/pull/{number}#issuecomment-{id}"),
            "body": body,
            "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
        })
    }
}

impl Contract for GitHubState {
    fn check(&self, request: &ForgeRequest) -> Result<String, (u16, String)> {
        if request.header("user-agent").is_none_or(str::is_empty) {
            return Err((
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"
                    .to_owned(),
            ));
        }
        let authorization = request.header("authorization").unwrap_or_default();
        let token = authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("token "));
        let exchange = request.method == "POST"
            && request.path.starts_with("/app/installations/")
            && request.path.ends_with("/access_tokens");
        if exchange {
            self.check_app_jwt(token.unwrap_or_default(), &request.path)?;
        } else {
            let now = chrono::Utc::now().timestamp();
            let issued =
                |t: &str| self.installation_tokens.iter().any(|(issued, expires)| issued == t && *expires > now);
            if token.is_none_or(|t| t != self.token && !issued(t)) {
                return Err((401, "Bad credentials".to_owned()));
            }
        }
        let operation = openapi::github()
            .check(&request.method, &request.path, &request.query, &request.body)
            .map_err(|reason| (422, reason))?;
        let repository = match (operation.params.get("owner"), operation.params.get("repo")) {
            (Some(owner), Some(repo)) => format!("{owner}/{repo}"),
            _ => String::new(),
        };
        match operation.operation_id.as_str() {
            "pulls/create-review" => {
                let number = operation.params.get("pull_number").cloned().unwrap_or_default();
                self.check_review(&format!("{repository}#{number}"), &request.json())?;
            }
            "checks/create" => {
                let head = request.json()["head_sha"].as_str().unwrap_or_default().to_owned();
                if !self.pulls.values().any(|p| p.head_sha == head) {
                    return Err((422, format!("No commit found for SHA: {head}")));
                }
            }
            "issues/list-comments"
            | "issues/create-comment"
            | "pulls/list-reviews"
            | "pulls/get"
            | "pulls/list-files"
            | "pulls/list-review-comments" => {
                let number = operation
                    .params
                    .get("issue_number")
                    .or(operation.params.get("pull_number"))
                    .cloned()
                    .unwrap_or_default();
                if !self.pulls.contains_key(&format!("{repository}#{number}")) {
                    return Err((404, "Not Found".to_owned()));
                }
            }
            _ => {}
        }
        Ok(operation.operation_id)
    }

    fn answer(&mut self, operation: &str, request: &ForgeRequest, base: &str) -> Answer {
        let segments = request.segments();
        let repository = segments.get(1..3).map(|s| s.join("/")).unwrap_or_default();
        let body = request.json();
        match operation {
            "pulls/create-review" => {
                let number = segments.get(4).cloned().unwrap_or_default();
                let id = self.id();
                let pull = format!("{repository}#{number}");
                for comment in body["comments"].as_array().into_iter().flatten() {
                    let comment_id = self.id();
                    self.review_comments.push((comment_id, pull.clone(), comment.clone()));
                }
                self.reviews.push((pull, body.clone()));
                Answer::json(
                    200,
                    json!({
                        "id": id,
                        "body": body["body"],
                        "state": "COMMENTED",
                        "commit_id": body["commit_id"],
                        "html_url": format!("https://github.example/{repository}/pull/{number}#pullrequestreview-{id}"),
                    }),
                )
            }
            "issues/list-comments" => {
                let pull = format!("{repository}#{}", segments.get(4).cloned().unwrap_or_default());
                let listed: Vec<Value> = self
                    .comments
                    .iter()
                    .filter(|(_, p, _)| *p == pull)
                    .map(|(id, p, b)| self.comment_json(base, *id, p, b))
                    .collect();
                Answer::json(200, Value::Array(request.page(listed, "per_page", 30)))
            }
            "pulls/list-reviews" => {
                let pull = format!("{repository}#{}", segments.get(4).cloned().unwrap_or_default());
                let listed: Vec<Value> = self
                    .reviews
                    .iter()
                    .enumerate()
                    .filter(|(_, (p, _))| *p == pull)
                    .map(|(i, (_, r))| json!({"id": i + 1, "body": r["body"], "state": "COMMENTED", "commit_id": r["commit_id"]}))
                    .collect();
                Answer::json(200, Value::Array(request.page(listed, "per_page", 30)))
            }
            "issues/create-comment" => {
                let pull = format!("{repository}#{}", segments.get(4).cloned().unwrap_or_default());
                let id = self.id();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                self.comments.push((id, pull.clone(), text.clone()));
                Answer::json(201, self.comment_json(base, id, &pull, &text))
            }
            "issues/update-comment" => {
                let id = segments.get(5).and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                match self.comments.iter_mut().find(|(i, _, _)| *i == id) {
                    Some(comment) => {
                        comment.2 = text.clone();
                        let pull = comment.1.clone();
                        Answer::json(200, self.comment_json(base, id, &pull, &text))
                    }
                    None => Answer::message(404, "Not Found"),
                }
            }
            "checks/create" if self.refuse_check_runs => {
                Answer::message(403, "You must authenticate via a GitHub App.")
            }
            "checks/create" => {
                let id = self.id();
                self.check_runs.push(body.clone());
                Answer::json(
                    201,
                    json!({
                        "id": id,
                        "head_sha": body["head_sha"],
                        "name": body["name"],
                        "status": body["status"],
                        "conclusion": body["conclusion"],
                        "html_url": format!("https://github.example/{repository}/runs/{id}"),
                    }),
                )
            }
            "repos/create-commit-status" => {
                let sha = segments.get(4).cloned().unwrap_or_default();
                self.statuses.push((sha, body.clone()));
                Answer::json(201, json!({"id": self.id(), "state": body["state"], "context": body["context"]}))
            }
            "apps/create-installation-access-token" => {
                let ttl = self.app.as_ref().map_or(3600, |a| a.token_ttl_secs);
                let expires = chrono::Utc::now().timestamp() + ttl;
                let token = format!("ghs_fake_installation_{}", self.id());
                self.installation_tokens.push((token.clone(), expires));
                let at = chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default();
                Answer::json(
                    201,
                    json!({"token": token, "expires_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
                )
            }
            "users/get-authenticated" => Answer::json(200, json!({"login": "prfix-bot", "id": 4242, "type": "User"})),
            "repos/list-for-authenticated-user" | "apps/list-repos-accessible-to-installation" => {
                let mut names: Vec<String> =
                    self.pulls.keys().filter_map(|k| k.split_once('#').map(|(r, _)| r.to_owned())).collect();
                names.dedup();
                let repositories: Vec<Value> = names.iter().map(|n| json!({"full_name": n, "private": true})).collect();
                if operation == "apps/list-repos-accessible-to-installation" {
                    Answer::json(200, json!({"total_count": repositories.len(), "repositories": repositories}))
                } else {
                    Answer::json(200, Value::Array(request.page(repositories, "per_page", 30)))
                }
            }
            "repos/get-collaborator-permission-level" => {
                let user = segments.get(4).cloned().unwrap_or_default();
                let permission = self.permissions.get(&user).cloned().unwrap_or_else(|| "none".to_owned());
                Answer::json(
                    200,
                    json!({"permission": permission, "role_name": permission, "user": {"login": user, "id": 7}}),
                )
            }
            "reactions/create-for-issue-comment" => {
                let comment = segments.get(5).and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                let content = body["content"].as_str().unwrap_or_default().to_owned();
                self.reactions.push((comment, content.clone()));
                Answer::json(201, json!({"id": self.id(), "content": content}))
            }
            "repos/compare-commits" => self.answer_compare(&repository, &segments),
            "pulls/get" | "pulls/list-files" | "pulls/list-review-comments" | "repos/get-content" => {
                self.answer_read(operation, request, &repository, &segments)
            }
            other => Answer::message(501, &format!("the fake GitHub does not answer {other}")),
        }
    }
}
