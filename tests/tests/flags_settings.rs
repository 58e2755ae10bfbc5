//! Flags without Unleash: the settings file is the source, and SIGHUP re-reads it. The services run
//! as their own processes (the `prfix-service` binary), so the signal is a real one.

use std::path::Path;
use std::time::{Duration, Instant};

use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::flags::fix_request;
use prfix_tests::metrics::{MODEL, one_line_change};
use prfix_tests::processes::{System, channel};
use prfix_tests::{FakeOllama, Reply};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

fn write_flags(path: &Path, values: &str) {
    std::fs::write(path, format!("[flags.values]\n{values}\n")).expect("the settings file is writable");
}

async fn flag(client: &mut AgentServiceClient<prfix_tests::app::Authed>, name: &str) -> pb::FlagState {
    let flags = client.list_flags(pb::ListFlagsRequest::default()).await.expect("an admin lists flags").into_inner();
    assert_eq!(flags.provider, "settings");
    flags.flags.into_iter().find(|f| f.flag == name).unwrap_or_else(|| panic!("{name} is not listed"))
}

fn logged(system: &System, message: &str, flag: Option<&str>) -> bool {
    system.agent.lines().iter().any(|line| {
        line["message"].as_str().is_some_and(|m| m.contains(message))
            && flag.is_none_or(|f| line["flag"].as_str() == Some(f))
    })
}

#[tokio::test]
async fn without_unleash_flags_come_from_the_settings_file_and_sighup_reloads_them() {
    let ollama = FakeOllama::start().await;
    ollama.set_models(&[MODEL]);
    ollama.set_default("/api/chat", Reply { status: 200, chunks: vec![], chunk_delay: Duration::ZERO, hang: true });
    let data = tempfile::tempdir().expect("temp dir");
    let config = data.path().join("prfix.toml");
    write_flags(&config, "\"agent.fix\" = false\n\"agent.prompt.review\" = \"v2\"");
    let config_env = ("PRFIX_CONFIG", config.display().to_string());
    let system = System::start(env!("CARGO_BIN_EXE_prfix-service"), &ollama, data.path(), &[config_env]).await;
    let mut agent = AgentServiceClient::with_interceptor(channel(system.gateway.addr), Bearer::new(&operator_token()));

    let refused = agent.create_fix(fix_request("")).await.expect_err("fixes are off in the file");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("`agent.fix`") && refused.message().contains("settings"),
        "{}",
        refused.message()
    );
    let task = agent
        .create_review(pb::CreateReviewRequest { change_set: Some(one_line_change()), options: None })
        .await
        .expect("reviews are on")
        .into_inner()
        .task
        .expect("task");
    let prompt = task.flags.iter().find(|f| f.flag == "agent.prompt.review").expect("the prompt is recorded");
    assert_eq!((prompt.variant.as_str(), prompt.source.as_str()), ("v2", "settings"));

    // The operator turns fixes on in the file and sends SIGHUP: no restart.
    write_flags(&config, "\"agent.fix\" = true\n\"agent.prompt.review\" = \"v2\"");
    system.agent.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !flag(&mut agent, "agent.fix").await.enabled {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the flags within {WAIT:?}:\n{}", system.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.create_fix(fix_request("")).await.expect("fixes are on after the reload");
    assert!(logged(&system, "flag changed", Some("agent.fix")), "the change is logged:\n{}", system.logs());

    // A file with a mistake is refused on SIGHUP and the flags in force stay.
    write_flags(&config, "\"agent.fixx\" = false");
    system.agent.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !logged(&system, "flag settings not reloaded", None) {
        assert!(Instant::now() < deadline, "the bad file was not reported within {WAIT:?}:\n{}", system.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flag(&mut agent, "agent.fix").await.enabled, "the flags in force stay");
    let error = system
        .agent
        .lines()
        .into_iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.contains("not reloaded")))
        .map(|l| l["error"].to_string())
        .unwrap_or_default();
    assert!(error.contains("agent.fixx"), "the error names the unknown flag: {error}");

    // The change reached the audit log through the agent's outbox.
    let mut audit = AuditServiceClient::with_interceptor(channel(system.gateway.addr), Bearer::new(&operator_token()));
    let deadline = Instant::now() + WAIT;
    loop {
        let events = audit
            .list_events(audit::ListEventsRequest {
                action: "flags.changed".into(),
                resource: "flags/agent.fix".into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        if !events.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no flags.changed record within {WAIT:?}:\n{}", system.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
