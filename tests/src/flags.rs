//! Helpers of the flag tests: the agent's flags from a real Unleash ([`crate::unleash`]), the system
//! with room for many tasks, requests with a repository, and waiting for a flag through ListFlags.

use std::path::Path;
use std::time::{Duration, Instant};

use prfix_flags::FlagSettings;
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_runtime::ratelimit::Quota;
use secrecy::SecretString;

use crate::app::{Authed, spawn_app_shared};
use crate::metrics::one_line_change;
use crate::unleash::{CLIENT_TOKEN, UnleashServer};
use crate::{Reply, TestApp};

/// The configured reasoning model.
pub const MODEL: &str = "qwen2.5-coder:14b";
/// The model of the rollout variant.
pub const SMALL: &str = "qwen2.5-coder:7b";
/// Longest wait for a flag change to reach the agent (its refresh interval is 200 ms).
pub const WAIT: Duration = Duration::from_secs(30);

/// Flags from `unleash`, refreshed every 200 ms, kept in `backup`.
pub fn unleash_flags(unleash: &UnleashServer, backup: &Path) -> FlagSettings {
    FlagSettings {
        unleash_url: unleash.api_url.clone(),
        unleash_token: Some(SecretString::from(CLIENT_TOKEN)),
        refresh_interval_ms: 200,
        request_timeout_ms: 2_000,
        backup_file: backup.to_owned(),
        ..FlagSettings::default()
    }
}

/// Sets the agent's flags and room for many tasks of one user, worked one at a time.
pub fn roomy(settings: &mut prfix_agent::Settings, flags: FlagSettings) {
    settings.flags = flags;
    settings.agent.max_active_tasks_per_user = 1_000;
    settings.agent.workers = 1;
}

/// The system with the agent's flags from `flags`, limits raised for many tasks, and a model that
/// never answers (tasks stay queued; their records are what these tests read).
pub async fn spawn_with_flags(flags: FlagSettings) -> TestApp {
    let many = Quota { per_minute: 100_000, burst: 1_000 };
    let app = spawn_app_shared(
        |common| common.service_limits.expensive = many,
        |gateway| gateway.gateway.limits.expensive = many,
        |agent| roomy(agent, flags),
    )
    .await;
    app.ollama.set_models(&[MODEL, SMALL]);
    app.ollama.set_default("/api/chat", Reply { status: 200, chunks: vec![], chunk_delay: Duration::ZERO, hang: true });
    app
}

/// A fix of a one-line change in `repository`.
pub fn fix_request(repository: &str) -> pb::CreateFixRequest {
    pb::CreateFixRequest {
        change_set: Some(pb::ChangeSet {
            files: vec![pb::ChangedFile {
                path: "a.rs".into(),
                new_content: "2\n".into(),
                old_content: Some("1\n".into()),
            }],
            repository: repository.into(),
            ..one_line_change()
        }),
        problem: Some(pb::FixProblem { instruction: "make it 3".into(), ..Default::default() }),
        options: None,
    }
}

/// A review of a one-line change in `repository`.
pub fn review_request(repository: &str) -> pb::CreateReviewRequest {
    pb::CreateReviewRequest {
        change_set: Some(pb::ChangeSet { repository: repository.into(), ..one_line_change() }),
        options: None,
    }
}

/// The flags the agent lists for `repository`.
pub async fn list_flags(client: &mut AgentServiceClient<Authed>, repository: &str) -> Vec<pb::FlagState> {
    client
        .list_flags(pb::ListFlagsRequest { repository: repository.into(), ..Default::default() })
        .await
        .expect("an admin lists the flags")
        .into_inner()
        .flags
}

/// The listed state of `flag`.
pub fn state<'a>(flags: &'a [pb::FlagState], flag: &str) -> &'a pb::FlagState {
    flags.iter().find(|f| f.flag == flag).unwrap_or_else(|| panic!("{flag} is not listed: {flags:?}"))
}

/// Polls ListFlags until `flag` passes `test`; panics after [`WAIT`] with what was seen.
pub async fn wait_for_flag(
    client: &mut AgentServiceClient<Authed>,
    flag: &str,
    what: &str,
    test: impl Fn(&pb::FlagState) -> bool,
) -> pb::FlagState {
    let deadline = Instant::now() + WAIT;
    loop {
        let flags = list_flags(client, "").await;
        let seen = state(&flags, flag).clone();
        if test(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{flag} did not become {what} within {WAIT:?}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `task` recorded of `flag`.
pub fn recorded<'a>(task: &'a pb::Task, flag: &str) -> &'a pb::TaskFlag {
    task.flags.iter().find(|f| f.flag == flag).unwrap_or_else(|| panic!("task records no {flag}: {:?}", task.flags))
}
