//! A fake GitLab (REST API v4 under `/api/v4`), checking the request shapes GitLab documents for the
//! calls prfix makes (docs.gitlab.com/api/merge_requests, /discussions, /notes, /commits):
//!
//! - `PRIVATE-TOKEN` must be the token; a `JOB-TOKEN` may not write notes or discussions (403);
//! - `GET /projects/:id/merge_requests/:iid` and `.../versions`;
//! - `GET .../discussions` (paged);
//! - `POST .../discussions`: `body`, and `position` with `base_sha`, `start_sha`, `head_sha` of a diff
//!   version of the merge request, `position_type: text`, `new_path`/`old_path` of a file in the
//!   diff, and `new_line`/`old_line` naming a line the diff shows (an added line has only
//!   `new_line`, an unchanged one both, matching each other); nothing else;
//! - `GET`/`POST .../notes`, `PUT .../notes/:note_id` with `body`;
//! - `POST /projects/:id/statuses/:sha` with `state` among GitLab's;
//! - for the service's own reviews: `GET .../merge_requests/:iid/diffs` (paged, cut from the diff),
//!   `GET /projects/:id/repository/files/:file_path?ref=` (the path one URL-encoded segment, `ref`
//!   required), `GET /projects/:id/members/all?query=`, `POST .../notes/:note_id/award_emoji`,
//!   `GET /projects/:id/repository/compare?from=&to=` (only its documented parameters, `from` and
//!   `to` required; answered from [`FakeGitLab::add_history`]).
//!
//! The project is named by its numeric id or its URL-encoded path (an unencoded `group/app` splits
//! into two segments and is not found, as on GitLab).

use serde_json::{Value, json};

use super::DiffLines;
use super::server::{Answer, Contract, FakeForge, ForgeRequest};

/// A fake GitLab.
pub type FakeGitLab = FakeForge<GitLabState>;

/// What the fake GitLab holds: one project with one merge request.
#[derive(Debug, Default)]
pub struct GitLabState {
    /// The token calls must carry.
    pub token: String,
    /// The project's numeric id and path (`group/app`).
    pub project: (String, String),
    /// The merge request's IID.
    pub iid: u64,
    /// Its diff version: base, start, head.
    pub refs: (String, String, String),
    /// The lines its diff shows.
    pub diff: DiffLines,
    /// Discussions as received.
    pub discussions: Vec<Value>,
    /// Notes: (id, body).
    pub notes: Vec<(u64, String)>,
    /// Commit statuses as received, with their sha.
    pub statuses: Vec<(String, Value)>,
    /// The diff as `git diff` printed it.
    pub diff_text: String,
    /// The branch the merge request merges into.
    pub target_branch: String,
    /// File contents by (ref, path).
    pub files: std::collections::BTreeMap<(String, String), String>,
    /// Project members: (username, access level).
    pub members: Vec<(String, u64)>,
    /// Award emoji given: (note id, name).
    pub awards: Vec<(u64, String)>,
    /// Commits the repository compare answers for.
    pub compares: Vec<super::Compare>,
    next_id: u64,
}

const POSITION_KEYS: &[&str] = &[
    "base_sha",
    "start_sha",
    "head_sha",
    "position_type",
    "new_path",
    "old_path",
    "new_line",
    "old_line",
    "line_range",
];
const STATES: &[&str] = &["pending", "running", "success", "failed", "canceled", "skipped"];

impl FakeGitLab {
    /// A fake GitLab with project `id`/`path` and merge request `iid` at `refs` (base, start, head)
    /// whose diff is `diff`.
    pub async fn start_gitlab(
        token: &str,
        project: (&str, &str),
        iid: u64,
        refs: (&str, &str, &str),
        diff: &str,
    ) -> Self {
        let state = GitLabState {
            token: token.to_owned(),
            project: (project.0.to_owned(), project.1.to_owned()),
            iid,
            refs: (refs.0.to_owned(), refs.1.to_owned(), refs.2.to_owned()),
            diff: DiffLines::parse(diff),
            diff_text: diff.to_owned(),
            target_branch: "main".to_owned(),
            next_id: 500,
            ..Default::default()
        };
        FakeForge::start(state, "/api/v4").await
    }

    /// Makes `path` hold `content` at `git_ref` (a commit or a branch).
    pub fn add_file(&self, git_ref: &str, path: &str, content: &str) {
        self.with_mut(|s| s.files.insert((git_ref.to_owned(), path.to_owned()), content.to_owned()));
    }

    /// Pushes to the merge request: its head is now `head` and its diff `diff` (a new diff version
    /// from the same base).
    pub fn push(&self, head: &str, diff: &str) {
        self.with_mut(|s| {
            head.clone_into(&mut s.refs.2);
            s.diff = DiffLines::parse(diff);
            diff.clone_into(&mut s.diff_text);
        });
    }

    /// Lets the repository compare answer for any two of `commits` of `repo`.
    pub fn add_history(&self, repo: &crate::git::Repo, commits: &[&str]) {
        let compares = super::Compare::all(repo, commits);
        self.with_mut(|s| s.compares.extend(compares));
    }

    /// Makes `username` a member of the project with `access_level` (30: Developer).
    pub fn add_member(&self, username: &str, access_level: u64) {
        self.with_mut(|s| s.members.push((username.to_owned(), access_level)));
    }
}

type Refusal = (u16, String);

fn bad(reason: impl Into<String>) -> Refusal {
    (400, reason.into())
}

impl GitLabState {
    fn check_position(&self, body: &Value) -> Result<(), Refusal> {
        if body["body"].as_str().is_none_or(|b| b.trim().is_empty()) {
            return Err(bad("body is missing"));
        }
        if let Some(key) = body
            .as_object()
            .and_then(|o| o.keys().find(|k| !["body", "position", "commit_id", "created_at"].contains(&k.as_str())))
        {
            return Err(bad(format!("`{key}` is not a discussion attribute")));
        }
        let Some(position) = body["position"].as_object() else {
            return Err(bad("position is missing: a comment on a line needs one"));
        };
        if let Some(key) = position.keys().find(|k| !POSITION_KEYS.contains(&k.as_str())) {
            return Err(bad(format!("`position[{key}]` is not a position attribute")));
        }
        let (base, start, head) = &self.refs;
        for (key, expected) in [("base_sha", base), ("start_sha", start), ("head_sha", head)] {
            if position.get(key).and_then(Value::as_str) != Some(expected.as_str()) {
                return Err(bad(format!("position[{key}] is not the merge request's diff version ({expected})")));
            }
        }
        if position.get("position_type").and_then(Value::as_str) != Some("text") {
            return Err(bad("position[position_type] must be `text` for a line"));
        }
        let new_path =
            position.get("new_path").and_then(Value::as_str).ok_or_else(|| bad("position[new_path] is missing"))?;
        let old_path =
            position.get("old_path").and_then(Value::as_str).ok_or_else(|| bad("position[old_path] is missing"))?;
        let expected_old = self.diff.old_path(new_path).ok_or_else(|| bad(format!("{new_path} is not in the diff")))?;
        if old_path != expected_old.unwrap_or(new_path) {
            return Err(bad(format!("position[old_path] {old_path} is not the old path of {new_path}")));
        }
        let number = |key: &str| position.get(key).map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()));
        let shown = match (number("new_line"), number("old_line")) {
            (Some(None), _) | (_, Some(None)) => return Err(bad("new_line and old_line must be integers")),
            (Some(Some(new)), old) => {
                let line = self
                    .diff
                    .new_line(new_path, new)
                    .ok_or_else(|| bad(format!("line_code: {new_path}:{new} is not in the diff")))?;
                (line, old.flatten())
            }
            (None, Some(Some(old))) => {
                let line = self
                    .diff
                    .old_line(new_path, old)
                    .ok_or_else(|| bad(format!("line_code: old {new_path}:{old} is not in the diff")))?;
                (line, Some(old))
            }
            (None, None) => return Err(bad("a text position needs new_line or old_line")),
        };
        let (line, old_sent) = shown;
        if line.new.is_some() && line.old != old_sent {
            return Err(bad(format!(
                "line_code: new line {:?} of {new_path} is {}, so old_line must be {:?}",
                line.new,
                if line.old.is_some() { "unchanged" } else { "added" },
                line.old
            )));
        }
        Ok(())
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

impl Contract for GitLabState {
    fn check(&self, request: &ForgeRequest) -> Result<String, Refusal> {
        let writes = request.method != "GET";
        if request.header("job-token").is_some() && writes {
            return Err((403, "403 Forbidden: a CI job token may not write notes".to_owned()));
        }
        if request.header("private-token") != Some(self.token.as_str()) {
            return Err((401, "401 Unauthorized".to_owned()));
        }
        let s = request.segments();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        let project_ok = |p: &str| p == self.project.0 || p == self.project.1;
        if s.first() != Some(&"projects") || !s.get(1).is_some_and(|p| project_ok(p)) {
            return Err((404, format!("404 Project Not Found: {}", request.path)));
        }
        let iid = self.iid.to_string();
        let mr = s.get(2) == Some(&"merge_requests") && s.get(3) == Some(&iid.as_str());
        let body = request.json();
        let operation = match (request.method.as_str(), &s[2..]) {
            ("GET", [_, _]) if mr => "get-merge-request",
            ("GET", [_, _, "versions"]) if mr => "list-versions",
            ("GET", [_, _, "diffs"]) if mr => "list-diffs",
            ("GET", ["repository", "files", _]) => {
                if !request.query.iter().any(|(k, v)| k == "ref" && !v.is_empty()) {
                    return Err(bad("ref is missing"));
                }
                "get-file"
            }
            ("GET", ["members", "all"]) => "list-members",
            ("GET", ["repository", "compare"]) => {
                // docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits
                const PARAMETERS: &[&str] = &["from", "to", "from_project_id", "straight", "unidiff"];
                if let Some((key, _)) = request.query.iter().find(|(k, _)| !PARAMETERS.contains(&k.as_str())) {
                    return Err(bad(format!("`{key}` is not a parameter of the repository compare")));
                }
                for key in ["from", "to"] {
                    if !request.query.iter().any(|(k, v)| k == key && !v.is_empty()) {
                        return Err(bad(format!("{key} is missing")));
                    }
                }
                for (key, value) in &request.query {
                    if matches!(key.as_str(), "straight" | "unidiff") && !matches!(value.as_str(), "true" | "false") {
                        return Err(bad(format!("{key} is invalid: {value} is not a boolean")));
                    }
                }
                "compare"
            }
            ("POST", [_, _, "notes", _, "award_emoji"]) if mr => {
                if body["name"].as_str().is_none_or(str::is_empty) {
                    return Err(bad("name is missing"));
                }
                "award-emoji"
            }
            ("GET", [_, _, "discussions"]) if mr => "list-discussions",
            ("POST", [_, _, "discussions"]) if mr => {
                self.check_position(&body)?;
                "create-discussion"
            }
            ("GET", [_, _, "notes"]) if mr => "list-notes",
            ("POST", [_, _, "notes"]) | ("PUT", [_, _, "notes", _]) if mr => {
                if body["body"].as_str().is_none_or(|b| b.trim().is_empty()) {
                    return Err(bad("body is missing"));
                }
                if request.method == "PUT" { "update-note" } else { "create-note" }
            }
            ("POST", ["statuses", sha]) => {
                if *sha != self.refs.2 {
                    return Err((404, format!("404 Commit Not Found: {sha}")));
                }
                if !body["state"].as_str().is_some_and(|st| STATES.contains(&st)) {
                    return Err(bad(format!("state {} is not one of {STATES:?}", body["state"])));
                }
                "create-status"
            }
            _ => return Err((404, format!("404 Not Found: {} {}", request.method, request.path))),
        };
        Ok(operation.to_owned())
    }

    fn answer(&mut self, operation: &str, request: &ForgeRequest, base: &str) -> Answer {
        let body = request.json();
        let (base_sha, start_sha, head_sha) = self.refs.clone();
        let web_url = format!("{base}/{}/-/merge_requests/{}", self.project.1, self.iid);
        match operation {
            "get-merge-request" => Answer::json(
                200,
                json!({
                    "iid": self.iid, "sha": head_sha, "web_url": web_url, "title": "A change", "draft": false,
                    "target_branch": self.target_branch, "source_branch": "feature",
                    "author": {"id": 1, "username": "root"},
                    "diff_refs": {"base_sha": base_sha, "start_sha": start_sha, "head_sha": head_sha},
                }),
            ),
            "list-diffs" => Answer::json(200, Value::Array(request.page(diffs_of(&self.diff_text), "per_page", 20))),
            "get-file" => {
                let segments = request.segments();
                let path = segments.get(4).cloned().unwrap_or_default();
                let git_ref =
                    request.query.iter().find(|(k, _)| k == "ref").map(|(_, v)| v.clone()).unwrap_or_default();
                match self.files.get(&(git_ref.clone(), path.clone())) {
                    Some(content) => {
                        use base64::Engine as _;
                        Answer::json(
                            200,
                            json!({
                                "file_path": path, "ref": git_ref, "encoding": "base64",
                                "content": base64::engine::general_purpose::STANDARD.encode(content),
                            }),
                        )
                    }
                    None => Answer::message(404, "404 File Not Found"),
                }
            }
            "compare" => {
                let arg = |key: &str| request.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                let (from, to) = (arg("from").unwrap_or_default(), arg("to").unwrap_or_default());
                let Some(compare) = self.compares.iter().find(|c| c.base == from && c.head == to) else {
                    return Answer::message(404, "404 Ref Not Found");
                };
                let commits: Vec<Value> = compare.ahead.iter().rev().map(|sha| json!({"id": sha})).collect();
                Answer::json(
                    200,
                    json!({
                        "commit": commits.last().cloned(),
                        "commits": commits,
                        "diffs": diffs_of(&compare.diff),
                        "compare_timeout": false,
                        "compare_same_ref": from == to,
                        "web_url": format!("{base}/{}/-/compare/{from}...{to}", self.project.1),
                    }),
                )
            }
            "list-members" => {
                let query =
                    request.query.iter().find(|(k, _)| k == "query").map(|(_, v)| v.clone()).unwrap_or_default();
                let members: Vec<Value> = self
                    .members
                    .iter()
                    .filter(|(name, _)| name.contains(&query))
                    .map(|(name, level)| json!({"id": 1, "username": name, "access_level": level}))
                    .collect();
                Answer::json(200, Value::Array(members))
            }
            "award-emoji" => {
                let note = request.segments().get(5).and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                let name = body["name"].as_str().unwrap_or_default().to_owned();
                self.awards.push((note, name.clone()));
                Answer::json(201, json!({"id": self.id(), "name": name}))
            }
            "list-versions" => Answer::json(
                200,
                json!([{
                    "id": 1, "head_commit_sha": head_sha, "base_commit_sha": base_sha, "start_commit_sha": start_sha, "state": "collected",
                }]),
            ),
            "create-discussion" => {
                let (discussion, note) = (self.id(), self.id());
                self.discussions.push(body.clone());
                Answer::json(
                    201,
                    json!({"id": format!("d{discussion}"), "notes": [{"id": note, "body": body["body"], "position": body["position"]}]}),
                )
            }
            "list-notes" => {
                let notes: Vec<Value> =
                    self.notes.iter().map(|(id, b)| json!({"id": id, "body": b, "system": false})).collect();
                Answer::json(200, Value::Array(request.page(notes, "per_page", 20)))
            }
            "list-discussions" => {
                let discussions: Vec<Value> = self
                    .discussions
                    .iter()
                    .enumerate()
                    .map(|(i, d)| json!({"id": format!("d{i}"), "notes": [{"id": i + 1, "body": d["body"], "position": d["position"]}]}))
                    // As on GitLab, every plain note is a discussion of its own too.
                    .chain(self.notes.iter().map(|(id, b)| json!({"id": format!("n{id}"), "individual_note": true, "notes": [{"id": id, "body": b}]})))
                    .collect();
                Answer::json(200, Value::Array(request.page(discussions, "per_page", 20)))
            }
            "create-note" => {
                let id = self.id();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                self.notes.push((id, text.clone()));
                Answer::json(201, json!({"id": id, "body": text}))
            }
            "update-note" => {
                let id = request.segments().get(5).and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                let text = body["body"].as_str().unwrap_or_default().to_owned();
                match self.notes.iter_mut().find(|(i, _)| *i == id) {
                    Some(note) => {
                        note.1 = text.clone();
                        Answer::json(200, json!({"id": id, "body": text}))
                    }
                    None => Answer::message(404, "404 Not found"),
                }
            }
            "create-status" => {
                self.statuses.push((head_sha, body.clone()));
                Answer::json(201, json!({"id": self.id(), "status": body["state"], "name": body["name"]}))
            }
            other => Answer::message(501, &format!("the fake GitLab does not answer {other}")),
        }
    }
}

/// A diff's files as GitLab lists a merge request's diffs: paths, flags, and the hunks as `diff`.
fn diffs_of(diff: &str) -> Vec<Value> {
    let Ok(patches) = prfix_engine::diff::parse(diff) else { return Vec::new() };
    let mut sections: Vec<&str> = diff.split("\ndiff --git ").collect();
    if let Some(first) = sections.first_mut() {
        *first = first.strip_prefix("diff --git ").unwrap_or(first);
    }
    patches
        .iter()
        .zip(sections)
        .map(|(patch, section)| {
            use prfix_engine::diff::FileStatus;
            let hunks = section.find("\n@@").map(|at| &section[at + 1..]).unwrap_or_default();
            json!({
                "old_path": patch.old_path.as_deref().unwrap_or(patch.path()),
                "new_path": patch.path(),
                "new_file": patch.status == FileStatus::Added,
                "renamed_file": patch.status == FileStatus::Renamed,
                "deleted_file": patch.status == FileStatus::Deleted,
                "diff": hunks,
            })
        })
        .collect()
}
