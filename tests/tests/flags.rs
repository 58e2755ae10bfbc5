//! Feature flags end to end: kill switches and a model rollout served by a real Unleash server
//! (started on a fresh database by the harness; tests/src/unleash.rs), the last flags kept through an
//! Unleash outage and a restart during it, and the variant each task used on its record and in the
//! audit log. The settings-file source and its SIGHUP reload are in flags_settings.rs.

use std::time::{Duration, Instant};

use prfix_flags::{FlagSettings, OnDisable};
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::prost::Message;
use prfix_tests::app::{channel_to, provision_service_key, run};
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::flags::{
    SMALL, WAIT, fix_request, list_flags, recorded, review_request, roomy, spawn_with_flags, state, unleash_flags,
    wait_for_flag,
};
use prfix_tests::metrics::{scrape, sum};
use prfix_tests::unleash::UnleashServer;
use prfix_tests::{Reply, TestApp};
use secrecy::SecretString;
use serde_json::json;
use tonic::Code;

/// The agent's audit records still in its outbox.
async fn outbox(app: &TestApp) -> Vec<audit::AuditEvent> {
    let pg = app.db.connect().await;
    let rows = pg.query("SELECT payload FROM agent.audit_outbox ORDER BY id", &[]).await.expect("read the outbox");
    rows.iter()
        .map(|r| audit::AuditEvent::decode(r.get::<_, Vec<u8>>(0).as_slice()).expect("an outbox record decodes"))
        .collect()
}

fn metadata_text(event: &audit::AuditEvent, key: &str) -> Option<String> {
    prfix_tests::metadata::text(event.metadata.as_ref(), key)
}

fn metadata_flag(event: &audit::AuditEvent, flag: &str) -> Option<String> {
    match event.metadata.as_ref()?.fields.get("flags")?.kind.as_ref()? {
        prost_types::value::Kind::StructValue(flags) => match flags.fields.get(flag)?.kind.as_ref()? {
            prost_types::value::Kind::StringValue(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn turning_agent_fix_off_in_unleash_refuses_new_fixes_and_turning_it_on_lets_them_through() {
    let unleash = UnleashServer::start().await;
    unleash.create_flag("agent.fix").await;
    unleash.set_enabled("agent.fix", true).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = spawn_with_flags(unleash_flags(&unleash, &dir.path().join("flags.json"))).await;
    let mut client = app.agent_client();
    wait_for_flag(&mut client, "agent.fix", "served by Unleash", |f| f.source == "unleash").await;

    let first =
        client.create_fix(fix_request("acme/app")).await.expect("fixes are on").into_inner().task.expect("task");
    let switch = recorded(&first, "agent.fix");
    assert!(switch.enabled && switch.source == "unleash", "{switch:?}");

    unleash.set_enabled("agent.fix", false).await;
    wait_for_flag(&mut client, "agent.fix", "off", |f| !f.enabled).await;
    let refused = client.create_fix(fix_request("acme/app")).await.expect_err("fixes are off");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("`agent.fix`") && refused.message().contains("unleash"),
        "the refusal names the flag and its source: {}",
        refused.message()
    );
    client.create_review(review_request("acme/app")).await.expect("reviews have their own switch and stay on");

    unleash.set_enabled("agent.fix", true).await;
    wait_for_flag(&mut client, "agent.fix", "on again", |f| f.enabled).await;
    client.create_fix(fix_request("acme/app")).await.expect("fixes are on again");

    // Each change the agent saw is audited: off, then on.
    let changes: Vec<_> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "flags.changed" && e.resource == "flags/agent.fix")
        .collect();
    assert!(changes.len() >= 2, "the switch went off and on again: {changes:?}");
    assert!(changes.iter().all(|e| metadata_text(e, "source").as_deref() == Some("unleash")), "{changes:?}");
    let metrics = scrape(app.admin.agent).await;
    let off = sum(&metrics, "prfix_flag_evaluations_total", &[("flag", "agent.fix"), ("variant", "off")]);
    assert!(off.is_some_and(|n| n >= 1.0), "the refusal is counted: {off:?}");
}

#[tokio::test]
async fn a_quarter_rollout_of_a_model_by_repository_sends_about_a_quarter_of_200_repositories_to_it_each_always_the_same_way()
 {
    let unleash = UnleashServer::start().await;
    unleash.create_context_field("repository").await;
    unleash.create_flag("agent.model.reasoning").await;
    unleash
        .add_strategy(
            "agent.model.reasoning",
            json!({
                "name": "flexibleRollout",
                "parameters": {"rollout": "25", "stickiness": "repository", "groupId": "agent.model.reasoning"},
                "variants": [{"name": "small", "weight": 1000, "weightType": "variable", "stickiness": "repository",
                              "payload": {"type": "string", "value": SMALL}}]
            }),
        )
        .await;
    unleash.set_enabled("agent.model.reasoning", true).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = spawn_with_flags(unleash_flags(&unleash, &dir.path().join("flags.json"))).await;
    let mut client = app.agent_client();
    wait_for_flag(&mut client, "agent.model.reasoning", "served by Unleash", |f| f.source == "unleash").await;

    let repositories: Vec<String> = (0..200).map(|i| format!("acme/service-{i}")).collect();
    let mut variants = Vec::new();
    for repository in &repositories {
        let task = client
            .create_review(review_request(repository))
            .await
            .expect("a review is created")
            .into_inner()
            .task
            .expect("task");
        let model = recorded(&task, "agent.model.reasoning").clone();
        assert_eq!(model.source, "unleash");
        match model.variant.as_str() {
            "small" => assert_eq!(model.value, SMALL, "the variant's payload is the model: {model:?}"),
            "disabled" => assert_eq!(model.value, "", "outside the rollout the setting applies: {model:?}"),
            other => panic!("unexpected variant {other}"),
        }
        variants.push(model.variant);
    }
    let small = variants.iter().filter(|v| *v == "small").count();
    eprintln!("{small} of 200 repositories got the variant `small` (25% rollout by repository)");
    // Binomial(200, 0.25): mean 50, standard deviation 6.1; five deviations either side.
    assert!((20..=80).contains(&small), "{small} of 200 repositories got the variant");

    // The same repository always goes the same way, and the way Unleash itself evaluates it.
    for (repository, first) in repositories.iter().zip(&variants).take(40) {
        let again =
            client.create_review(review_request(repository)).await.expect("created").into_inner().task.expect("task");
        assert_eq!(&recorded(&again, "agent.model.reasoning").variant, first, "{repository} changed variant");
    }
    for (repository, ours) in repositories.iter().zip(&variants) {
        let context = json!({"appName": "prfix", "environment": "default", "properties": {"repository": repository}});
        let (enabled, theirs) = unleash.playground("agent.model.reasoning", context).await;
        let theirs = if enabled { theirs } else { "disabled".to_owned() };
        assert_eq!(ours, &theirs, "{repository}: this agent and the Unleash server disagree");
    }
    let metrics = scrape(app.admin.agent).await;
    let counted =
        sum(&metrics, "prfix_flag_evaluations_total", &[("flag", "agent.model.reasoning"), ("variant", "small")]);
    assert!(counted.is_some_and(|n| n >= small as f64), "evaluations by variant are counted: {counted:?}");
}

#[tokio::test]
async fn with_unleash_stopped_the_agent_keeps_its_flags_and_an_agent_restarted_during_the_outage_serves_them_from_disk()
{
    let mut unleash = UnleashServer::start().await;
    unleash.create_flag("agent.fix").await;
    unleash.set_enabled("agent.fix", true).await;
    unleash.set_enabled("agent.fix", false).await;
    unleash.create_flag("agent.prompt.review").await;
    unleash
        .add_strategy(
            "agent.prompt.review",
            json!({
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": "agent.prompt.review"},
                "variants": [{"name": "v2", "weight": 1000, "weightType": "variable", "stickiness": "default",
                              "payload": {"type": "string", "value": "v2"}}]
            }),
        )
        .await;
    unleash.set_enabled("agent.prompt.review", true).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backup = dir.path().join("flags.json");
    let mut app = spawn_with_flags(unleash_flags(&unleash, &backup)).await;
    let mut client = app.agent_client();
    wait_for_flag(&mut client, "agent.prompt.review", "v2 from Unleash", |f| {
        f.variant == "v2" && f.source == "unleash"
    })
    .await;
    wait_for_flag(&mut client, "agent.fix", "off from Unleash", |f| !f.enabled && f.source == "unleash").await;
    assert!(backup.exists(), "the flags fetched are kept on disk");

    // The outage: the agent keeps serving what it last fetched.
    let errors = |text: &str| sum(text, "prfix_flag_fetches_total", &[("outcome", "error")]).unwrap_or(0.0);
    let before = errors(&scrape(app.admin.agent).await);
    unleash.kill().await;
    let deadline = Instant::now() + WAIT;
    while errors(&scrape(app.admin.agent).await) <= before {
        assert!(Instant::now() < deadline, "the agent did not notice the outage within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flags = list_flags(&mut client, "").await;
    assert!(!state(&flags, "agent.fix").enabled && state(&flags, "agent.fix").source == "unleash", "{flags:?}");
    let refused = client.create_fix(fix_request("acme/app")).await.expect_err("fixes stay off");
    assert_eq!(refused.code(), Code::Unavailable);
    let task =
        client.create_review(review_request("acme/app")).await.expect("reviews work").into_inner().task.expect("t");
    assert_eq!(recorded(&task, "agent.prompt.review").value, "v2");

    // A replica restarted during the outage serves the copy on disk.
    app.agent.stop().await;
    let settings = unleash_flags(&unleash, &backup);
    let restarted = app.spawn_agent(|s| roomy(s, settings)).await;
    let mut direct = AgentServiceClient::with_interceptor(channel_to(restarted.addr), Bearer::new(&operator_token()));
    let flags = list_flags(&mut direct, "").await;
    let fix = state(&flags, "agent.fix");
    assert!(!fix.enabled && fix.source == "unleash-backup", "{fix:?}");
    let prompt = state(&flags, "agent.prompt.review");
    assert!(prompt.variant == "v2" && prompt.source == "unleash-backup", "{prompt:?}");
    let refused = direct.create_fix(fix_request("acme/app")).await.expect_err("fixes stay off after the restart");
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("unleash-backup"), "{}", refused.message());
    let task =
        direct.create_review(review_request("acme/app")).await.expect("reviews work").into_inner().task.expect("t");
    let recorded_prompt = recorded(&task, "agent.prompt.review");
    assert_eq!((recorded_prompt.value.as_str(), recorded_prompt.source.as_str()), ("v2", "unleash-backup"));

    // A replica that never fetched anything (no copy) serves the settings' values until Unleash answers.
    let mut never = unleash_flags(&unleash, &dir.path().join("never-fetched.json"));
    never.values.insert("agent.fix".into(), prfix_flags::FlagValue::Switch(false));
    let fresh = app.spawn_agent(|s| roomy(s, never)).await;
    let mut fresh_client = AgentServiceClient::with_interceptor(channel_to(fresh.addr), Bearer::new(&operator_token()));
    let flags = list_flags(&mut fresh_client, "").await;
    let fix = state(&flags, "agent.fix");
    assert!(!fix.enabled && fix.source == "settings", "{fix:?}");
    let prompt = state(&flags, "agent.prompt.review");
    assert!(prompt.variant == "v1" && prompt.source == "default", "{prompt:?}");
}

#[tokio::test]
async fn the_task_record_and_the_audit_log_name_the_variant_each_task_used() {
    let unleash = UnleashServer::start().await;
    unleash.create_context_field("repository").await;
    unleash.create_flag("agent.prompt.review").await;
    let variant = |name: &str| {
        json!({"name": name, "weight": 500, "weightType": "variable", "stickiness": "repository",
               "payload": {"type": "string", "value": name}})
    };
    unleash
        .add_strategy(
            "agent.prompt.review",
            json!({
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "repository", "groupId": "agent.prompt.review"},
                "variants": [variant("v1"), variant("v2")]
            }),
        )
        .await;
    unleash.set_enabled("agent.prompt.review", true).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = spawn_with_flags(unleash_flags(&unleash, &dir.path().join("flags.json"))).await;
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let mut client = app.agent_client();
    wait_for_flag(&mut client, "agent.prompt.review", "served by Unleash", |f| f.source == "unleash").await;

    let mut tasks = Vec::new();
    for i in 0..12 {
        let task = client
            .create_review(review_request(&format!("acme/lib-{i}")))
            .await
            .expect("created")
            .into_inner()
            .task
            .expect("task");
        let ended = prfix_tests::tasks::wait_for_end(&mut client, &task.task_id, Duration::from_secs(30)).await;
        assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");
        // GetTask shows the record made at creation.
        assert_eq!(ended.flags, task.flags);
        tasks.push(ended);
    }
    let used: Vec<String> = tasks.iter().map(|t| recorded(t, "agent.prompt.review").variant.clone()).collect();
    assert!(used.iter().any(|v| v == "v1") && used.iter().any(|v| v == "v2"), "both variants are in use: {used:?}");
    // The v2 prompt went to the model exactly for the v2 tasks (one call each).
    let v2_calls = app
        .ollama
        .chat_requests()
        .iter()
        .filter(|r| {
            r["messages"][0]["content"].as_str().is_some_and(|s| s.contains("Report only problems you can point to"))
        })
        .count();
    assert_eq!(v2_calls, used.iter().filter(|v| *v == "v2").count(), "each task used its own prompt version");

    // The records reach the audit log through the agent's relay.
    let admin = app.admin_token().await;
    let key = provision_service_key(app.auth_client_as(&admin), "agent").await;
    let mut settings = prfix_tests::app::agent_settings(&app.common);
    settings.audit_credential = Some(SecretString::from(key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("an agent with a relay");
    let _relay = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));
    for (task, variant) in tasks.iter().zip(&used) {
        for action in ["agent.task.create.review", "agent.task.succeeded"] {
            let resource = format!("tasks/{}", task.task_id);
            let deadline = Instant::now() + WAIT;
            let event = loop {
                let events = app
                    .audit_client()
                    .list_events(audit::ListEventsRequest {
                        action: action.into(),
                        resource: resource.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().events)
                    .unwrap_or_default();
                if let Some(event) = events.into_iter().next() {
                    break event;
                }
                assert!(Instant::now() < deadline, "no {action} record of {resource} within {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(metadata_flag(&event, "agent.prompt.review").as_deref(), Some(variant.as_str()), "{event:?}");
        }
    }
}

#[tokio::test]
async fn with_on_disable_cancel_turning_reviews_off_cancels_the_reviews_queued_and_running_naming_the_flag() {
    let unleash = UnleashServer::start().await;
    unleash.create_flag("agent.review").await;
    unleash.set_enabled("agent.review", true).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let flags =
        FlagSettings { on_disable: OnDisable::Cancel, ..unleash_flags(&unleash, &dir.path().join("flags.json")) };
    let app = spawn_with_flags(flags).await;
    let mut client = app.agent_client();
    wait_for_flag(&mut client, "agent.review", "served by Unleash", |f| f.source == "unleash").await;
    // The model never answers: the first review runs, the others wait in the queue.
    let mut ids = Vec::new();
    for i in 0..3 {
        let task = client.create_review(review_request(&format!("acme/r{i}"))).await.expect("created");
        ids.push(task.into_inner().task.expect("task").task_id);
    }

    unleash.set_enabled("agent.review", false).await;
    for id in &ids {
        let ended = prfix_tests::tasks::wait_for_end(&mut client, id, WAIT).await;
        assert_eq!(ended.state, pb::TaskState::Cancelled as i32, "{ended:?}");
        let events = prfix_tests::tasks::events(&mut client, id).await;
        let named = events.iter().any(|e| {
            matches!(&e.payload, Some(pb::task_event::Payload::StateChange(c)) if c.reason.contains("flag agent.review"))
        });
        assert!(named, "the cancellation names the flag: {events:?}");
    }
    let cancels = outbox(&app).await.into_iter().filter(|e| e.action == "agent.task.cancel").count();
    assert_eq!(cancels, ids.len(), "each cancellation is audited");
}
