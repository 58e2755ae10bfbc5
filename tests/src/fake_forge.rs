//! Fake forges at the network edge: HTTP servers that answer the calls prfix makes to GitHub,
//! GitLab and Gitea/Forgejo, check every request against the forge's own contract, and record what
//! they received.
//!
//! - [`FakeGitHub`]: every request validated against GitHub's official OpenAPI description
//!   ([`openapi`]), plus what GitHub checks beyond the schema (the pull request exists, the commit
//!   is its head, a comment's line is in its diff).
//! - [`FakeGitLab`] and [`FakeGitea`]: the documented request shapes of their REST APIs (paths,
//!   required fields, position objects), strictly.
//!
//! A request that breaks the contract is answered as the forge would refuse it (4xx) and recorded
//! with its violation, so a test sees both the client's error and the reason. Scripted answers
//! ([`FakeForge::push_answer`]) stand in for rate limits and outages, after validation.

mod compare;
pub mod diff_lines;
pub mod gitea;
pub mod github;
mod github_reads;
pub mod gitlab;
pub mod openapi;
mod server;
pub mod webhooks;

pub use compare::Compare;
pub use diff_lines::DiffLines;
pub use gitea::FakeGitea;
pub use github::FakeGitHub;
pub use gitlab::FakeGitLab;
pub use server::{Answer, FakeForge, ForgeRequest, Recorded};
