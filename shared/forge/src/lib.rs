//! One client for the forges prfix posts reviews to: GitHub (github.com and Enterprise Server),
//! GitLab, and Gitea/Forgejo.
//!
//! A [`Forge`] does three things on a pull (merge) request, the same way on every forge:
//!
//! 1. [`Forge::post_review`]: one review whose comments sit on lines of the diff;
//! 2. [`Forge::upsert_summary`]: one summary comment, found again by a hidden marker and edited in
//!    place, so posting again for the same pull request never adds a second one;
//! 3. [`Forge::report_check`]: a check on the head commit (a GitHub check run, falling back to a
//!    commit status where the token may not create check runs; a commit status elsewhere).
//!
//! Every call goes through [`http::Api`]: a token per forge, rate limits respected (`Retry-After`,
//! `X-RateLimit-Reset` with `X-RateLimit-Remaining: 0`, GitHub's secondary limits) with jittered
//! backoff and a bounded number of tries, and errors that name the call, the HTTP status and the
//! forge's own message. The forge's contract is its documented REST API; nothing here knows about
//! prfix's services.

#![forbid(unsafe_code)]

pub mod app_auth;
mod commands;
pub mod compare;
pub mod error;
pub mod fetch;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod http;
mod reach;
pub mod retry;
mod suggestion;

pub use app_auth::GitHubApp;
pub use compare::Comparison;
pub use error::ForgeError;
pub use fetch::{ChangedFile, PullInfo};
pub use http::Api;
pub use reach::Reach;
pub use retry::RetryPolicy;

use secrecy::SecretString;

/// The hidden first line of prfix's summary comment, by which a later run finds it to edit it.
pub const SUMMARY_MARKER: &str = "<!-- prfix:summary -->";

/// The hidden line that ends every review prfix posts, with the head it reviewed: a later run for the
/// same head finds it and posts no second review.
pub fn review_marker(head_sha: &str) -> String {
    format!("<!-- prfix:review {head_sha} -->")
}

/// The name of the check (run or commit status) prfix reports on the head commit.
pub const CHECK_NAME: &str = "prfix review";

/// Which forge, and so which REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    /// GitHub's REST API (api.github.com, or `https://HOST/api/v3` on Enterprise Server).
    GitHub,
    /// GitLab's REST API v4 (`https://HOST/api/v4`).
    GitLab,
    /// Gitea's or Forgejo's REST API v1 (`https://HOST/api/v1`).
    Gitea,
}

impl ForgeKind {
    /// The forge's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::GitHub => "GitHub",
            Self::GitLab => "GitLab",
            Self::Gitea => "Gitea/Forgejo",
        }
    }
}

/// How to reach one forge.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    /// Which API the forge speaks.
    pub kind: ForgeKind,
    /// The API's base URL, without a trailing slash: `https://api.github.com`,
    /// `https://ghe.example/api/v3`, `https://gitlab.example/api/v4`, `https://gitea.example/api/v1`.
    pub api_url: String,
    /// The token the calls are made with (GitHub and Gitea: `Authorization: token|Bearer`, GitLab:
    /// `PRIVATE-TOKEN`).
    pub token: SecretString,
    /// Retries on rate limits and passing failures.
    pub retry: RetryPolicy,
    /// Authenticate as this GitHub App installation (installation tokens made from the app's key)
    /// instead of with `token` (GitHub only; `token` is then unused).
    pub github_app: Option<GitHubApp>,
    /// Told, in one line, each time a call waits to be tried again (a CLI prints it, so that a
    /// minute's wait for a rate limit is not silent); besides a `tracing` warning.
    pub on_retry: Option<fn(&str)>,
}

/// The pull (merge) request a review is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `owner/name` on GitHub and Gitea; the numeric id or `group/project` path on GitLab.
    pub repository: String,
    /// The pull request's number (GitLab: the merge request's IID).
    pub number: u64,
    /// The head commit the review is about.
    pub head_sha: String,
}

/// A comment on a line of the diff, on its new side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineComment {
    /// The file's path in the new version.
    pub path: String,
    /// The file's path before the change, when it was renamed.
    pub old_path: Option<String>,
    /// The (last) line commented on, in the new version; a line the diff shows.
    pub line: u32,
    /// The first line of a multi-line comment (same hunk), when it spans several.
    pub start_line: Option<u32>,
    /// The line's number in the old version when the diff shows it as unchanged context (GitLab
    /// needs both numbers for such a line); `None` for an added line.
    pub old_line: Option<u32>,
    /// Markdown; a ```` ```suggestion ```` block replaces the commented lines.
    pub body: String,
}

/// One review: a body and comments on lines of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Review {
    /// Markdown shown with the review (GitHub, Gitea) or as the first note (GitLab).
    pub body: String,
    /// The comments on lines.
    pub comments: Vec<InlineComment>,
}

/// The outcome reported on the head commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// Nothing at or above the failing severity.
    Success,
    /// Findings at or above the failing severity.
    Failure,
    /// The review ran but part of it failed; its findings are incomplete.
    Neutral,
}

/// What the check on the head commit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub conclusion: Conclusion,
    /// One line: `3 findings: 1 critical, 2 minor`.
    pub title: String,
    /// Markdown with the details (check runs only; statuses carry the title).
    pub summary: String,
    /// A page with the details (the summary comment), when known.
    pub details_url: Option<String>,
}

/// What [`Forge::post_review`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedReview {
    /// The review's (GitLab: the first discussion's) URL, when the forge says it.
    pub url: Option<String>,
    /// Comments posted on lines.
    pub comments: usize,
    /// Why the comments went into the review's body instead, when the forge refused them on lines.
    pub fallback: Option<String>,
    /// The head already had prfix's review, so none was posted.
    pub already: bool,
}

/// What [`Forge::upsert_summary`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedSummary {
    /// The comment's id.
    pub id: u64,
    /// Whether an earlier summary was edited (else one was created).
    pub updated: bool,
    /// The comment's URL, when the forge says it.
    pub url: Option<String>,
}

/// How [`Forge::report_check`] reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostedCheck {
    /// A GitHub check run.
    CheckRun {
        /// Its URL.
        url: Option<String>,
    },
    /// A commit status; `fallback` says why a check run was not possible, when one was tried.
    CommitStatus {
        /// Why not a check run (GitHub refused it), if one was tried.
        fallback: Option<String>,
    },
}

/// A client of one forge.
#[derive(Debug, Clone)]
pub enum Forge {
    /// GitHub or GitHub Enterprise Server.
    GitHub(github::GitHub),
    /// GitLab.
    GitLab(gitlab::GitLab),
    /// Gitea or Forgejo.
    Gitea(gitea::Gitea),
}

impl Forge {
    /// A client for the forge `config` describes.
    pub fn new(config: ForgeConfig) -> Result<Self, ForgeError> {
        let kind = config.kind;
        let api = Api::new(config)?;
        Ok(match kind {
            ForgeKind::GitHub => Self::GitHub(github::GitHub::new(api)),
            ForgeKind::GitLab => Self::GitLab(gitlab::GitLab::new(api)),
            ForgeKind::Gitea => Self::Gitea(gitea::Gitea::new(api)),
        })
    }

    /// Which forge this is.
    pub fn kind(&self) -> ForgeKind {
        match self {
            Self::GitHub(_) => ForgeKind::GitHub,
            Self::GitLab(_) => ForgeKind::GitLab,
            Self::Gitea(_) => ForgeKind::Gitea,
        }
    }

    /// Posts `review` on `pr` as one review (GitLab: one discussion per comment, since GitLab has no
    /// review object in its API), marked with [`review_marker`]. A review without comments is not
    /// posted, nor one for a head that already has prfix's review (a job run again): its comments
    /// would all be there twice.
    pub async fn post_review(&self, pr: &PullRequest, review: &Review) -> Result<PostedReview, ForgeError> {
        if review.comments.is_empty() {
            return Ok(PostedReview { url: None, comments: 0, fallback: None, already: false });
        }
        let marker = review_marker(&pr.head_sha);
        let reviewed = match self {
            Self::GitHub(f) => f.has_review(pr, &marker).await?,
            Self::GitLab(f) => f.has_review(pr, &marker).await?,
            Self::Gitea(f) => f.has_review(pr, &marker).await?,
        };
        if reviewed {
            return Ok(PostedReview { url: None, comments: 0, fallback: None, already: true });
        }
        let mut review = review.clone();
        review.body = format!("{}\n\n{marker}\n", review.body.trim_end());
        match self {
            Self::GitHub(f) => f.post_review(pr, &review).await,
            Self::GitLab(f) => f.post_review(pr, &review, &marker).await,
            Self::Gitea(f) => f.post_review(pr, &review).await,
        }
    }

    /// Creates the summary comment on `pr`, or edits the one an earlier run left (found by
    /// [`SUMMARY_MARKER`] on its first line). `body` gets the marker put in front.
    pub async fn upsert_summary(&self, pr: &PullRequest, body: &str) -> Result<PostedSummary, ForgeError> {
        let body = format!("{SUMMARY_MARKER}\n{body}");
        match self {
            Self::GitHub(f) => f.upsert_summary(pr, &body).await,
            Self::GitLab(f) => f.upsert_summary(pr, &body).await,
            Self::Gitea(f) => f.upsert_summary(pr, &body).await,
        }
    }

    /// Reports `check` on the head commit of `pr`.
    pub async fn report_check(&self, pr: &PullRequest, check: &CheckReport) -> Result<PostedCheck, ForgeError> {
        match self {
            Self::GitHub(f) => f.report_check(pr, check).await,
            Self::GitLab(f) => f.report_check(pr, check).await,
            Self::Gitea(f) => f.report_check(pr, check).await,
        }
    }
}

/// Whether a comment body is prfix's summary (the marker on its first line).
pub(crate) fn is_summary(body: &str) -> bool {
    body.lines().next().is_some_and(|line| line.trim() == SUMMARY_MARKER)
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The review's body followed by its comments, each under its place: for a forge that refused the
/// comments on lines.
pub(crate) fn comments_in_body(review: &Review) -> String {
    let mut out = review.body.trim_end().to_owned();
    out.push_str("\n\n### Comments\n");
    for comment in &review.comments {
        out.push_str(&format!("\n**`{}`**\n\n{}\n", place(comment), comment.body.trim_end()));
    }
    out
}

/// `path:12` or `path:12-14`: where a comment belongs.
pub(crate) fn place(comment: &InlineComment) -> String {
    match comment.start_line {
        Some(start) if start < comment.line => format!("{}:{start}-{}", comment.path, comment.line),
        _ => format!("{}:{}", comment.path, comment.line),
    }
}
