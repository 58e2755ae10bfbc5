//! Naming a task on the command line as git names commits: the whole id, a unique prefix of one of
//! the caller's tasks (`7f3c2a9e`), or `--last` for the caller's newest task.

use prfix_proto::agent::v1 as pb;
use prfix_proto::auth::v1 as auth;

use super::{kind_name, state_name, time};
use crate::error::{CliError, CliResult};
use crate::session::Session;

/// The shortest prefix accepted, as with git's abbreviated ids.
pub const MIN_PREFIX: usize = 4;

/// Tasks read per ListTasks page while resolving a prefix (the service's largest page).
const PAGE: i32 = 500;

/// How a command names a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRef {
    /// A whole id or a prefix of one.
    Id(String),
    /// The caller's newest task.
    Last,
}

impl TaskRef {
    /// From the command line: `--last`, else the id or prefix given.
    pub fn from_args(id: Option<String>, last: bool) -> CliResult<Self> {
        match (id, last) {
            (_, true) => Ok(Self::Last),
            (Some(id), false) => Ok(Self::Id(id)),
            (None, false) => Err(CliError::new("name a task: its id, a unique prefix of it, or --last")),
        }
    }
}

/// The id of the task `task` names. A whole id is taken as it is (an admin may name anyone's
/// task); a prefix must start exactly one of the caller's tasks.
pub async fn resolve(session: &Session, task: &TaskRef) -> CliResult<String> {
    match task {
        TaskRef::Last => {
            let owner = caller(session).await?;
            let page = list(session, owner, 1, String::new()).await?;
            page.tasks
                .into_iter()
                .next()
                .map(|t| t.task_id)
                .ok_or_else(|| CliError::new("you have no tasks yet: `prfix review` makes one"))
        }
        TaskRef::Id(id) => {
            let id = id.trim().to_ascii_lowercase();
            if uuid::Uuid::try_parse(&id).is_ok() {
                return Ok(id);
            }
            check_prefix(&id)?;
            let owner = caller(session).await?;
            let mut matches = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = list(session, owner.clone(), PAGE, page_token).await?;
                matches.extend(page.tasks.into_iter().filter(|t| t.task_id.starts_with(&id)));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            choose(&id, matches)
        }
    }
}

/// Refuses what cannot start a task id: too short, or not hexadecimal digits and dashes.
fn check_prefix(prefix: &str) -> CliResult {
    if !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') || prefix.is_empty() {
        return Err(CliError::new(format!(
            "`{}` is not a task id nor the start of one (task ids are UUIDs, e.g. 7f3c2a9e-...)",
            crate::report::printable(prefix)
        )));
    }
    if prefix.len() < MIN_PREFIX {
        return Err(CliError::new(format!(
            "the task id prefix `{prefix}` is too short: give at least {MIN_PREFIX} characters"
        )));
    }
    Ok(())
}

/// The one task of `matches`, or an error listing the candidates.
fn choose(prefix: &str, mut matches: Vec<pb::Task>) -> CliResult<String> {
    match matches.len() {
        0 => Err(CliError::new(format!("no task of yours starts with `{prefix}` (`prfix tasks list` shows them)"))),
        1 => Ok(matches.remove(0).task_id),
        n => {
            let candidates: Vec<String> = matches
                .iter()
                .map(|t| {
                    format!(
                        "{} ({} {}, {})",
                        t.task_id,
                        kind_name(t.kind),
                        state_name(t.state),
                        time(t.create_time.as_ref())
                    )
                })
                .collect();
            Err(CliError::new(format!(
                "the task id prefix `{prefix}` is ambiguous, {n} tasks start with it: {}; give more characters",
                candidates.join(", ")
            )))
        }
    }
}

/// The caller's subject (the owner of the tasks they create).
async fn caller(session: &Session) -> CliResult<String> {
    session.renew(false).await?;
    let who = session.auth().who_am_i(auth::WhoAmIRequest {}).await.map_err(|s| session.fail("who you are", &s))?;
    Ok(who.into_inner().subject)
}

/// One page of `owner`'s tasks, newest first.
async fn list(
    session: &Session,
    owner: String,
    page_size: i32,
    page_token: String,
) -> CliResult<pb::ListTasksResponse> {
    session
        .call("listing your tasks", |mut agent| {
            let request = pb::ListTasksRequest {
                page_size,
                page_token: page_token.clone(),
                owner: owner.clone(),
                ..Default::default()
            };
            async move { agent.list_tasks(request).await }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str) -> pb::Task {
        pb::Task { task_id: id.to_owned(), kind: pb::TaskKind::Review as i32, ..Default::default() }
    }

    #[test]
    fn a_prefix_of_one_task_names_it() {
        let id = "7f3c2a9e-5b1d-4e8a-9c0f-2d6b8e4a1c3f";
        assert_eq!(choose("7f3c", vec![task(id)]).expect("one match"), id);
    }

    #[test]
    fn an_ambiguous_prefix_lists_the_candidates_and_a_missing_one_says_so() {
        let error = choose("7f3c", vec![task("7f3c0000-aaaa"), task("7f3c1111-bbbb")]).expect_err("ambiguous");
        assert!(error.message.contains("ambiguous, 2 tasks start with it: 7f3c0000-aaaa (review"), "{}", error.message);
        assert!(error.message.contains("7f3c1111-bbbb") && error.message.ends_with("give more characters"));
        let error = choose("7f3c", Vec::new()).expect_err("none");
        assert!(error.message.starts_with("no task of yours starts with `7f3c`"), "{}", error.message);
    }

    #[test]
    fn prefixes_must_be_hexadecimal_and_long_enough() {
        assert!(check_prefix("7f3c").is_ok());
        assert!(check_prefix("7f3c2a9e-5b").is_ok());
        assert!(check_prefix("7f3").expect_err("short").message.contains("at least 4 characters"));
        assert!(check_prefix("not-a-uuid").expect_err("not hex").message.contains("is not a task id"));
        assert!(check_prefix("").is_err());
    }

    #[test]
    fn last_wins_over_an_id_and_nothing_is_an_error() {
        assert_eq!(TaskRef::from_args(None, true).expect("last"), TaskRef::Last);
        assert_eq!(TaskRef::from_args(Some("ab12".into()), false).expect("id"), TaskRef::Id("ab12".into()));
        assert!(TaskRef::from_args(None, false).is_err());
    }
}
