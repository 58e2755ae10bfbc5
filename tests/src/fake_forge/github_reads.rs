//! The fake GitHub's answers for the service's own reviews (a pull request, its files, file contents,
//! review comments) and its check of a GitHub App's JWT.

use serde_json::{Value, json};

use super::github::GitHubState;
use super::server::{Answer, ForgeRequest};

impl GitHubState {
    /// What GitHub checks of an app's JWT: RS256, signed by the app's key, `iss` the app, issued in
    /// the past and expiring within ten minutes, for the app's installation.
    pub(super) fn check_app_jwt(&self, jwt: &str, path: &str) -> Result<(), (u16, String)> {
        let refused = |why: String| Err((401, format!("A JSON web token could not be decoded: {why}")));
        let Some(app) = &self.app else { return refused("no GitHub App is installed here".to_owned()) };
        if path != format!("/app/installations/{}/access_tokens", app.installation_id) {
            return Err((404, "Not Found: not the app's installation".to_owned()));
        }
        let key = jsonwebtoken::DecodingKey::from_rsa_components(&app.n, &app.e).map_err(|e| (500, e.to_string()))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.set_issuer(&[app.app_id.as_str()]);
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<Value>(jwt, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return refused(e.to_string()),
        };
        let now = chrono::Utc::now().timestamp();
        let (iat, exp) = (claims["iat"].as_i64().unwrap_or(i64::MAX), claims["exp"].as_i64().unwrap_or(0));
        if iat > now + 60 {
            return refused("'Issued at' claim (iat) must be an Integer representing a time in the past".to_owned());
        }
        if exp > now + 600 {
            return refused("'Expiration time' claim ('exp') is too far in the future".to_owned());
        }
        Ok(())
    }

    /// The answers to the reads of a review the service starts by itself.
    pub(super) fn answer_read(
        &self,
        operation: &str,
        request: &ForgeRequest,
        repository: &str,
        segments: &[String],
    ) -> Answer {
        let number = segments.get(4).cloned().unwrap_or_default();
        let key = format!("{repository}#{number}");
        match operation {
            "pulls/get" => {
                let Some(pull) = self.pulls.get(&key) else { return Answer::message(404, "Not Found") };
                Answer::json(
                    200,
                    json!({
                        "number": number.parse::<u64>().unwrap_or_default(),
                        "state": "open",
                        "title": "A change",
                        "draft": pull.draft,
                        "user": {"login": pull.author, "id": 1, "type": "User"},
                        "head": {"sha": pull.head_sha, "ref": "feature"},
                        "base": {"sha": pull.base_sha, "ref": pull.base_ref},
                    }),
                )
            }
            "pulls/list-files" => {
                let Some(pull) = self.pulls.get(&key) else { return Answer::message(404, "Not Found") };
                Answer::json(200, Value::Array(request.page(files_of(&pull.diff_text), "per_page", 30)))
            }
            "pulls/list-review-comments" => {
                let listed: Vec<Value> = self
                    .review_comments
                    .iter()
                    .filter(|(_, p, _)| *p == key)
                    .map(|(id, _, c)| json!({"id": id, "path": c["path"], "line": c["line"], "body": c["body"]}))
                    .collect();
                Answer::json(200, Value::Array(request.page(listed, "per_page", 30)))
            }
            _ => {
                // repos/get-content: the path is every segment after `contents`.
                let path = segments.get(4..).map(|s| s.join("/")).unwrap_or_default();
                let git_ref =
                    request.query.iter().find(|(k, _)| k == "ref").map(|(_, v)| v.clone()).unwrap_or_default();
                match self.files.get(&(repository.to_owned(), git_ref, path.clone())) {
                    Some(content) => {
                        use base64::Engine as _;
                        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
                        // GitHub wraps the base64 text at 60 characters.
                        let wrapped: Vec<String> =
                            encoded.as_bytes().chunks(60).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                        Answer::json(
                            200,
                            json!({"type": "file", "encoding": "base64", "path": path, "content": wrapped.join("\n")}),
                        )
                    }
                    None => Answer::message(404, "Not Found"),
                }
            }
        }
    }
}

impl GitHubState {
    /// `repos/compare-commits` of `{base}...{head}` (the last segment): the status, the counts, the
    /// commits and the files with their patches; 404 for commits the fake was not told of.
    pub(super) fn answer_compare(&self, repository: &str, segments: &[String]) -> Answer {
        let basehead = segments.get(4).cloned().unwrap_or_default();
        let Some((base, head)) = basehead.split_once("...") else {
            return Answer::message(404, "Not Found");
        };
        let Some((_, compare)) =
            self.compares.iter().find(|(r, c)| r == repository && c.base == base && c.head == head)
        else {
            return Answer::message(404, "Not Found");
        };
        let status = match (compare.ahead.is_empty(), compare.behind.is_empty()) {
            (true, true) => "identical",
            (false, true) => "ahead",
            (true, false) => "behind",
            (false, false) => "diverged",
        };
        let commits: Vec<Value> = compare.ahead.iter().rev().map(|sha| json!({"sha": sha})).collect();
        Answer::json(
            200,
            json!({
                "status": status,
                "ahead_by": compare.ahead.len(),
                "behind_by": compare.behind.len(),
                "total_commits": compare.ahead.len(),
                "commits": commits,
                "files": files_of(&compare.diff),
                "html_url": format!("https://github.example/{repository}/compare/{basehead}"),
            }),
        )
    }
}

/// A diff's files as `pulls/list-files` lists them: name, status, and the patch (its hunks).
fn files_of(diff: &str) -> Vec<Value> {
    let Ok(patches) = prfix_engine::diff::parse(diff) else { return Vec::new() };
    let mut sections: Vec<&str> = diff.split("\ndiff --git ").collect();
    if let Some(first) = sections.first_mut() {
        *first = first.strip_prefix("diff --git ").unwrap_or(first);
    }
    patches
        .iter()
        .zip(sections)
        .map(|(patch, section)| {
            let hunks = section.find("\n@@").map(|at| &section[at + 1..]).unwrap_or_default();
            let status = match patch.status {
                prfix_engine::diff::FileStatus::Added => "added",
                prfix_engine::diff::FileStatus::Deleted => "removed",
                prfix_engine::diff::FileStatus::Renamed => "renamed",
                _ => "modified",
            };
            let mut file = json!({
                "sha": "0000000000000000000000000000000000000000",
                "filename": patch.path(),
                "status": status,
                "additions": patch.additions(),
                "deletions": patch.deletions(),
                "changes": patch.additions() + patch.deletions(),
                "patch": hunks.trim_end_matches('\n'),
            });
            if patch.status == prfix_engine::diff::FileStatus::Renamed {
                file["previous_filename"] = json!(patch.old_path);
            }
            file
        })
        .collect()
}
