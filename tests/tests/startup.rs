//! Start-up against Postgres: databases created when missing, migrations applied once under a
//! lock when replicas start together, sessions that run as the service's least-privileged role.

use prfix_runtime::migrate::{self, MigrateError, Migration};
use prfix_tests::TestDatabase;
use prfix_tests::app::{agent_settings, audit_settings, common_settings};

#[tokio::test]
async fn two_audit_instances_started_at_once_on_an_empty_database_both_come_up_and_migrate_once() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let (a, b) = tokio::join!(
        prfix_audit::Application::build(audit_settings(&common)),
        prfix_audit::Application::build(audit_settings(&common)),
    );
    let (a, b) = (a.expect("first instance starts"), b.expect("second instance starts"));
    let mut applied: Vec<i32> =
        a.migration_report().applied.iter().chain(&b.migration_report().applied).copied().collect();
    applied.sort_unstable();
    let all: Vec<i32> = prfix_audit::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, all, "each migration applied by exactly one instance");
    let ledger = db
        .connect()
        .await
        .query("SELECT version FROM audit.schema_migrations ORDER BY version", &[])
        .await
        .expect("ledger");
    assert_eq!(ledger.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), all);
}

#[tokio::test]
async fn agent_and_audit_started_together_on_one_new_database_each_get_their_schema() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let (agent, audit) = tokio::join!(
        prfix_agent::Application::build(agent_settings(&common)),
        prfix_audit::Application::build(audit_settings(&common)),
    );
    agent.expect("agent starts");
    audit.expect("audit starts");
    let schemas = db
        .connect()
        .await
        .query("SELECT nspname FROM pg_namespace WHERE nspname IN ('agent', 'audit') ORDER BY 1", &[])
        .await
        .expect("schemas");
    assert_eq!(schemas.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["agent", "audit"]);
}

#[tokio::test]
async fn the_audit_service_sessions_may_append_and_read_but_not_rewrite_history() {
    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let app = prfix_audit::Application::build(audit_settings(&common)).await.expect("starts");
    let session = app.pool().get().await.expect("a pooled session");
    let role: String = session.query_one("SELECT current_user::text", &[]).await.expect("role").get(0);
    assert_eq!(role, "prfix_audit");
    for statement in ["UPDATE audit.events SET action = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events"] {
        let err = session.batch_execute(statement).await.expect_err(statement);
        assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{statement}: {err}");
    }
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_stops_start_up_with_its_name() {
    let db = TestDatabase::fresh();
    let original = [Migration { version: 1, name: "0001_t.sql", sql: "CREATE TABLE scratch.t (a int);" }];
    let edited = [Migration { version: 1, name: "0001_t.sql", sql: "CREATE TABLE scratch.t (a bigint);" }];
    let settings = prfix_runtime::db::DatabaseSettings {
        url: db.secret_url(),
        schema: "scratch".into(),
        role: None,
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    };
    let mut owner = prfix_runtime::db::connect_owner(&settings).await.expect("creates and connects");
    let report = migrate::run(&mut owner, "scratch", &original).await.expect("first run");
    assert_eq!(report.applied, [1]);
    let again = migrate::run(&mut owner, "scratch", &original).await.expect("second run");
    assert_eq!((again.applied.len(), again.already_applied), (0, 1));
    let err = migrate::run(&mut owner, "scratch", &edited).await.expect_err("edited migration refused");
    assert!(matches!(err, MigrateError::Changed { version: 1, .. }), "{err}");
    assert!(err.to_string().contains("0001_t.sql"), "{err}");
    let err = migrate::run(&mut owner, "scratch", &[]).await.expect_err("unknown applied migration refused");
    assert!(err.to_string().contains("newer release"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_reported_with_host_and_port_but_no_password() {
    let db = TestDatabase::fresh();
    let mut common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    common.database_url = secrecy::SecretString::from("postgres://postgres:hunter2@127.0.0.1:9/prfix");
    let mut settings = audit_settings(&common);
    settings.audit.database_connect_timeout_ms = 1_000;
    let err = prfix_audit::Application::build(settings).await.err().expect("no database there");
    let text = prfix_runtime::error::chain(&err);
    assert!(text.contains("127.0.0.1:9/prfix"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn health_turns_not_serving_at_shutdown_while_calls_are_still_answered_during_the_drain() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let db = TestDatabase::fresh();
    let common = common_settings(&db, "prfix-test-unused:", "http://127.0.0.1:9");
    let mut settings = audit_settings(&common);
    settings.audit.drain_delay_ms = 3_000;
    settings.audit.shutdown_grace_ms = 500;
    let app = prfix_audit::Application::build(settings).await.expect("starts");
    let mut running = prfix_tests::app::run(app.local_addr(), |stop| app.run_until_stopped(stop));
    let mut health = HealthClient::new(prfix_tests::app::channel_to(running.addr));
    let check = |service: &str| HealthCheckRequest { service: service.to_owned() };
    let status = health.check(check("prfix.audit.v1.AuditService")).await.expect("serving").into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let stopping = tokio::spawn(async move { running.stop().await });
    // Watch until the status changes: the stream reports NOT_SERVING as soon as the drain starts.
    let mut watch = health.watch(check("")).await.expect("watch").into_inner();
    let mut last = None;
    while let Some(update) = watch.message().await.expect("stream stays healthy during the drain") {
        last = Some(update.status);
        if update.status == ServingStatus::NotServing as i32 {
            break;
        }
    }
    assert_eq!(last, Some(ServingStatus::NotServing as i32));
    // The watch is a call still in flight: the grace period ends it, so shutdown does not hang.
    stopping.await.expect("stops after the drain");
    drop(watch);
}

#[tokio::test]
async fn update_delete_and_truncate_of_audit_events_fail_for_everyone_also_in_replica_mode() {
    use prfix_proto::audit::v1 as audit;
    let app = prfix_tests::spawn_app().await;
    let event = audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "alice".into(), roles: vec![] }),
        action: "demo".into(),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    };
    app.audit_client().append(audit::AppendRequest { event: Some(event) }).await.expect("append");
    // The connection of the database's owner, a superuser.
    let owner = app.db.connect().await;
    for (who, setup) in [
        ("superuser", "SET session_replication_role = replica"),
        ("audit role", "SET session_replication_role = replica; SET ROLE prfix_audit"),
        ("superuser, origin mode", "RESET ROLE; SET session_replication_role = origin"),
    ] {
        owner.batch_execute(setup).await.expect(setup);
        for statement in
            ["UPDATE audit.events SET action = 'forged'", "DELETE FROM audit.events", "TRUNCATE audit.events"]
        {
            let err = owner.batch_execute(statement).await.expect_err(statement);
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{who}: {statement}: {err}"
            );
        }
    }
    owner.batch_execute("RESET ROLE").await.expect("reset");
    let count: i64 =
        owner.query_one("SELECT count(*) FROM audit.events WHERE action = 'demo'", &[]).await.expect("count").get(0);
    assert_eq!(count, 1, "the event is untouched");
}
