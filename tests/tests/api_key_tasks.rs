//! An API key acts for its owner: what a user does with a key is the user's (they see the tasks
//! with their own login), and the key that did it is recorded beside them, on the task and in the
//! audit log.

use std::time::{Duration, Instant};

use prfix_auth::Role;
use prfix_proto::agent::v1 as agent;
use prfix_proto::audit::v1 as audit;
use prfix_proto::auth::v1 as auth;
use prfix_tests::app::{provision_service_key, run};
use prfix_tests::git::small_change;
use prfix_tests::metadata::text;
use prfix_tests::{Reply, spawn_app};
use tonic::Code;

const MODEL: &str = "qwen2.5-coder:14b";

#[tokio::test]
async fn a_task_created_with_an_api_key_belongs_to_the_keys_owner_and_names_the_key() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let erin = app.user_token("erin", &[Role::Developer]).await;
    // Keys are made by admins (CreateApiKey's policy); this one is erin's, for her CI.
    let admin = app.admin_token().await;
    let created = app
        .auth_client_as(&admin)
        .create_api_key(auth::CreateApiKeyRequest {
            name: "erin-ci".into(),
            roles: vec![Role::Developer.to_proto() as i32],
            ttl: None,
            owner: "erin".into(),
        })
        .await
        .expect("the admin creates erin a key")
        .into_inner();
    let (secret, key_id) = (created.secret, created.api_key.expect("the key's record").key_id);

    // The key's token speaks for erin, and says which key it is.
    let who = app.auth_client_as(&secret).who_am_i(auth::WhoAmIRequest {}).await.expect("whoami").into_inner();
    assert_eq!((who.subject.as_str(), who.api_key_id.as_str()), ("erin", key_id.as_str()));
    assert_eq!(who.kind, auth::PrincipalKind::ApiKey as i32);

    let task = app
        .agent_client_as(&secret)
        .create_review(agent::CreateReviewRequest { change_set: Some(small_change()), options: None })
        .await
        .expect("a review created with the key")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!((task.owner.as_str(), task.api_key_id.as_str()), ("erin", key_id.as_str()));

    // Erin's own login sees it, with the key beside her name.
    let mut own = app.agent_client_as(&erin);
    let got = own
        .get_task(agent::GetTaskRequest { task_id: task.task_id.clone() })
        .await
        .expect("erin reads the task with her login")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!((got.owner.as_str(), got.api_key_id.as_str()), ("erin", key_id.as_str()));
    let listed = own.list_tasks(agent::ListTasksRequest::default()).await.expect("erin lists").into_inner();
    assert!(listed.tasks.iter().any(|t| t.task_id == task.task_id), "{:?}", listed.tasks);

    // Someone else still does not.
    let frank = app.user_token("frank", &[Role::Developer]).await;
    let status = app
        .agent_client_as(&frank)
        .get_task(agent::GetTaskRequest { task_id: task.task_id.clone() })
        .await
        .expect_err("not frank's");
    assert_eq!(status.code(), Code::NotFound);

    // A login creates tasks without a key id.
    let by_login = own
        .create_review(agent::CreateReviewRequest { change_set: Some(small_change()), options: None })
        .await
        .expect("a review created with the login")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!((by_login.owner.as_str(), by_login.api_key_id.as_str()), ("erin", ""));

    // The agent's audit record of the creation, relayed with the agent's own service key, names erin
    // as the actor and the key she used; the appender is the agent's credential.
    let agent_key = provision_service_key(app.auth_client_as(&admin), "agent").await;
    let mut settings = prfix_tests::app::agent_settings(&app.common);
    settings.audit_credential = Some(secrecy::SecretString::from(agent_key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("agent with a relay");
    let _relay = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));
    let resource = format!("tasks/{}", task.task_id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let events = app
            .audit_client()
            .list_events(audit::ListEventsRequest {
                action: "agent.task.create.review".into(),
                resource: resource.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        if let Some(event) = events.into_iter().next() {
            break event;
        }
        assert!(Instant::now() < deadline, "the creation's audit record did not reach the log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.actor.as_ref().map(|a| a.subject.as_str()), Some("erin"));
    assert_eq!(text(record.metadata.as_ref(), "api_key_id").as_deref(), Some(key_id.as_str()));
    let appender = record.appender.expect("the appender is recorded");
    assert_eq!(appender.subject, "agent", "the agent's service user, from its verified token");
    assert!(appender.credential.starts_with("apikey:"), "{}", appender.credential);
}
