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
    /// Marked as a draft.
    pub draft: bool,
    /// Who opened it (GitHub and Gitea; GitLab's hook names only the author's id).
    pub author: String,
    /// GitLab's `update` with `oldrev`: the update brought new commits.
    pub new_commits: bool,
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
    /// A new comment on a pull (merge) request, for comment events.
    pub comment: Option<Comment>,
}

/// A new comment on a pull (merge) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The pull request's number (GitLab: the merge request's IID).
    pub number: u64,
    /// The comment's id (GitLab: the note's).
    pub id: u64,
    /// Its text (its first line is what is read as a command).
    pub body: String,
    /// The pull request's head, when the payload says it (GitLab).
    pub head_sha: String,
    /// What happened to it: `created` (GitLab: always a new note).
    pub action: String,
    /// The pull request's author, when the payload names them (GitHub and Gitea; GitLab's hook
    /// names only the author's id).
    pub author: String,
}

/// A command in a pull request comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The comment.
    pub comment: Comment,
    /// The command without its slash: `review`.
    pub name: String,
    /// What follows it (`full`).
    pub argument: String,
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).map(bounded).unwrap_or_default()
}

fn flag(value: &Value, key: &str) -> bool {
    value.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// What a verified delivery asks of prfix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Review the pull request's head.
    Review(PullRequest),
    /// Run a command from a comment.
    Command(Command),
    /// A pull request event that starts nothing, and why (a draft, an edit without commits).
    Ignored(String),
    /// Not an event prfix acts on.
    Nothing,
}

/// Whether `event` with `payload` (read as `read`) starts a review: a pull (merge) request opened,
/// reopened, marked ready, or pushed to; a draft only when `review_drafts`.
pub fn trigger(kind: ForgeKind, event: &str, read: &Payload, review_drafts: bool) -> Trigger {
    if let Some(comment) = &read.comment {
        return command(comment);
    }
    let Some(pull) = &read.pull_request else { return Trigger::Nothing };
    let starts = match kind {
        ForgeKind::GitHub => {
            event == "pull_request"
                && matches!(pull.action.as_str(), "opened" | "reopened" | "ready_for_review" | "synchronize")
        }
        ForgeKind::GitLab => {
            event == "Merge Request Hook"
                && (matches!(pull.action.as_str(), "open" | "reopen") || (pull.action == "update" && pull.new_commits))
        }
        ForgeKind::Gitea | ForgeKind::Forgejo => {
            event == "pull_request" && matches!(pull.action.as_str(), "opened" | "reopened" | "synchronized")
        }
    };
    if !starts {
        return Trigger::Ignored(format!("`{}` of a pull request adds nothing to review", pull.action));
    }
    if pull.draft && !review_drafts {
        return Trigger::Ignored(
            "the pull request is a draft (drafts are reviewed when review_drafts is on)".to_owned(),
        );
    }
    if pull.head_sha.is_empty() {
        return Trigger::Ignored("the delivery names no head commit".to_owned());
    }
    Trigger::Review(pull.clone())
}

/// The commands prfix answers in comments.
const COMMANDS: [&str; 4] = ["review", "describe", "ask", "fix"];

/// The longest question `/ask` passes on (characters).
pub const MAX_QUESTION_CHARS: usize = 2000;

/// The command a new comment holds on its first line, if it holds one prfix answers. `/ask`'s
/// question is the rest of the comment (it may run over several lines); other commands take the
/// rest of the first line.
fn command(comment: &Comment) -> Trigger {
    if comment.action != "created" {
        return Trigger::Nothing;
    }
    let body = comment.body.trim_start();
    let first = body.lines().next().unwrap_or_default().trim();
    let Some(rest) = first.strip_prefix('/') else { return Trigger::Nothing };
    let (name, argument) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !COMMANDS.contains(&name) {
        return Trigger::Nothing;
    }
    let argument: String = if name == "ask" {
        let question = body.trim_start_matches('/').trim_start_matches("ask");
        question.trim().chars().take(MAX_QUESTION_CHARS).collect()
    } else {
        argument.trim().chars().take(MAX_VALUE_CHARS).collect()
    };
    Trigger::Command(Command { comment: comment.clone(), name: name.to_owned(), argument })
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
                        draft: flag(a, "draft") || flag(a, "work_in_progress"),
                        author: String::new(),
                        new_commits: !text(a, "/oldrev").is_empty(),
                    })
                });
            let comment = (text(payload, "/object_kind") == "note"
                && text(payload, "/object_attributes/noteable_type") == "MergeRequest")
                .then(|| {
                    Some(Comment {
                        number: payload.pointer("/merge_request/iid")?.as_u64()?,
                        id: payload.pointer("/object_attributes/id")?.as_u64()?,
                        body: payload.pointer("/object_attributes/note")?.as_str()?.chars().take(4096).collect(),
                        head_sha: text(payload, "/merge_request/last_commit/id"),
                        action: "created".to_owned(),
                        author: String::new(),
                    })
                })
                .flatten();
            Payload {
                repository: text(payload, "/project/path_with_namespace"),
                sender: text(payload, "/user/username"),
                pull_request,
                comment,
            }
        }
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => {
            let pull_request = payload.get("pull_request").and_then(|pull| {
                let mut author = text(pull, "/user/login");
                if author.is_empty() {
                    author = text(pull, "/user/username");
                }
                Some(PullRequest {
                    number: pull.get("number")?.as_u64()?,
                    head_sha: text(pull, "/head/sha"),
                    action: text(payload, "/action"),
                    draft: flag(pull, "draft"),
                    author,
                    new_commits: false,
                })
            });
            let mut sender = text(payload, "/sender/login");
            if sender.is_empty() {
                sender = text(payload, "/sender/username");
            }
            // A comment on an issue that is a pull request (GitHub: `issue.pull_request` set; Gitea:
            // `is_pull`).
            let on_pull = payload.pointer("/issue/pull_request").is_some_and(|p| !p.is_null())
                || payload.get("is_pull").and_then(Value::as_bool).unwrap_or(false);
            let comment = (on_pull && payload.get("comment").is_some())
                .then(|| {
                    Some(Comment {
                        number: payload.pointer("/issue/number")?.as_u64()?,
                        id: payload.pointer("/comment/id")?.as_u64()?,
                        body: payload.pointer("/comment/body")?.as_str()?.chars().take(4096).collect(),
                        head_sha: String::new(),
                        action: text(payload, "/action"),
                        author: Some(text(payload, "/issue/user/login"))
                            .filter(|a| !a.is_empty())
                            .unwrap_or_else(|| text(payload, "/issue/user/username")),
                    })
                })
                .flatten();
            Payload { repository: text(payload, "/repository/full_name"), sender, pull_request, comment }
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
            Some(PullRequest {
                number: 3,
                head_sha: "abc".to_owned(),
                action: "open".to_owned(),
                draft: false,
                author: String::new(),
                new_commits: false,
            })
        );
    }

    #[test]
    fn opened_and_pushed_pull_requests_start_reviews_and_drafts_wait_unless_configured() {
        let pull = |action: &str, draft: bool| Payload {
            repository: "o/r".to_owned(),
            sender: "s".to_owned(),
            comment: None,
            pull_request: Some(PullRequest {
                number: 1,
                head_sha: "abc".to_owned(),
                action: action.to_owned(),
                draft,
                author: "a".to_owned(),
                new_commits: action == "update",
            }),
        };
        let starts = |kind, event: &str, read: &Payload, drafts| {
            matches!(trigger(kind, event, read, drafts), Trigger::Review(_))
        };
        for action in ["opened", "reopened", "ready_for_review", "synchronize"] {
            assert!(starts(ForgeKind::GitHub, "pull_request", &pull(action, false), false), "{action}");
        }
        assert!(!starts(ForgeKind::GitHub, "pull_request", &pull("edited", false), false));
        assert!(!starts(ForgeKind::GitHub, "pull_request", &pull("opened", true), false));
        assert!(starts(ForgeKind::GitHub, "pull_request", &pull("opened", true), true));
        assert!(starts(ForgeKind::GitLab, "Merge Request Hook", &pull("update", false), false));
        let mut no_commits = pull("update", false);
        if let Some(p) = no_commits.pull_request.as_mut() {
            p.new_commits = false;
        }
        assert!(!starts(ForgeKind::GitLab, "Merge Request Hook", &no_commits, false));
        assert!(starts(ForgeKind::Gitea, "pull_request", &pull("synchronized", false), false));
        assert_eq!(trigger(ForgeKind::GitHub, "push", &Payload::default(), false), Trigger::Nothing);
        let comment = |body: &str| Payload {
            comment: Some(Comment {
                number: 1,
                id: 9,
                body: body.to_owned(),
                head_sha: String::new(),
                action: "created".to_owned(),
                author: String::new(),
            }),
            ..Payload::default()
        };
        match trigger(ForgeKind::GitHub, "issue_comment", &comment("/review full\nplease"), false) {
            Trigger::Command(command) => {
                assert_eq!((command.name.as_str(), command.argument.as_str()), ("review", "full"))
            }
            other => panic!("not a command: {other:?}"),
        }
        assert_eq!(
            trigger(ForgeKind::GitHub, "issue_comment", &comment("looks good /review"), false),
            Trigger::Nothing
        );
        assert_eq!(trigger(ForgeKind::GitHub, "issue_comment", &comment("/deploy"), false), Trigger::Nothing);
        match trigger(ForgeKind::GitHub, "issue_comment", &comment("/ask Why a join here?\nAnd not a subquery?"), false)
        {
            Trigger::Command(command) => assert_eq!(
                (command.name.as_str(), command.argument.as_str()),
                ("ask", "Why a join here?\nAnd not a subquery?")
            ),
            other => panic!("not a command: {other:?}"),
        }
        assert!(matches!(
            trigger(ForgeKind::GitHub, "issue_comment", &comment("/fix"), false),
            Trigger::Command(Command { ref name, .. }) if name == "fix"
        ));
    }

    #[test]
    fn values_from_outside_are_bounded() {
        let long = "x".repeat(10_000);
        let payload = serde_json::json!({ "repository": { "full_name": long } });
        assert_eq!(read(ForgeKind::GitHub, &payload).repository.len(), MAX_VALUE_CHARS);
    }
}
