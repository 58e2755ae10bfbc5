//! Whether a connection's credentials work, and which repositories they reach: what `prfix forge
//! check` tells an operator.
//!
//! - GitHub: a GitHub App's installation token lists `GET /installation/repositories`; any other
//!   token `GET /user`, then `GET /user/repos`;
//! - GitLab: `GET /user`, then `GET /projects?membership=true&min_access_level=30` (Developer: may
//!   comment and set statuses);
//! - Gitea/Forgejo: `GET /user`, then `GET /user/repos`.

use reqwest::Method;
use serde_json::Value;

use crate::Forge;
use crate::error::ForgeError;
use crate::http::text_of;

/// Most repositories listed (a connection reaching more is told as `at least`).
const MAX_LISTED: usize = 1000;

/// Who a connection is and what it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The account the token belongs to (`app installation 42` for a GitHub App).
    pub account: String,
    /// The repositories it reaches (`owner/name`, GitLab's full paths), sorted.
    pub repositories: Vec<String>,
}

impl Forge {
    /// Authenticates and lists the repositories the connection reaches.
    pub async fn reach(&self) -> Result<Reach, ForgeError> {
        let (account, repositories) = match self {
            Self::GitHub(f) => {
                if let Some(installation) = f.api().installation_id() {
                    let what = "listing the installation's repositories";
                    let mut repositories = Vec::new();
                    for page in 1..=(MAX_LISTED / 100) {
                        let query = [("per_page", "100".to_owned()), ("page", page.to_string())];
                        let answer =
                            f.api().call(what, Method::GET, "/installation/repositories", &query, None).await?.body;
                        let batch = answer.get("repositories").and_then(Value::as_array).cloned().unwrap_or_default();
                        let last = batch.len() < 100;
                        repositories.extend(batch.iter().filter_map(|r| text_of(r, "full_name")));
                        if last {
                            break;
                        }
                    }
                    (format!("GitHub App installation {installation}"), repositories)
                } else {
                    let user = f.api().call("reading the token's user", Method::GET, "/user", &[], None).await?.body;
                    let repos = f.api().list_all("listing the user's repositories", "/user/repos").await?;
                    (text_of(&user, "login").unwrap_or_default(), names(&repos, "full_name"))
                }
            }
            Self::GitLab(f) => {
                let user = f.api().call("reading the token's user", Method::GET, "/user", &[], None).await?.body;
                let what = "listing the projects the token may write to";
                let mut projects = Vec::new();
                for page in 1..=(MAX_LISTED / 100) {
                    let query = [
                        ("membership", "true".to_owned()),
                        ("min_access_level", "30".to_owned()),
                        ("per_page", "100".to_owned()),
                        ("page", page.to_string()),
                    ];
                    let batch = f.api().get_array(what, "/projects", &query).await?;
                    let last = batch.len() < 100;
                    projects.extend(names(&batch, "path_with_namespace"));
                    if last {
                        break;
                    }
                }
                (text_of(&user, "username").unwrap_or_default(), projects)
            }
            Self::Gitea(f) => {
                let user = f.api().call("reading the token's user", Method::GET, "/user", &[], None).await?.body;
                let repos = f.api().get_array("listing the user's repositories", "/user/repos", &[]).await?;
                let mut account = text_of(&user, "login").unwrap_or_default();
                if account.is_empty() {
                    account = text_of(&user, "username").unwrap_or_default();
                }
                (account, names(&repos, "full_name"))
            }
        };
        let mut repositories = repositories;
        repositories.sort();
        repositories.dedup();
        Ok(Reach { account, repositories })
    }
}

fn names(items: &[Value], key: &str) -> Vec<String> {
    items.iter().filter_map(|item| text_of(item, key)).collect()
}
