//! Revocations without Redis: Postgres holds them and LISTEN/NOTIFY brings them to every verifier,
//! so a logged-out, disabled, demoted or revoked-key token is refused at the gateway and at each
//! service's own port within a second; a service that cannot confirm its copy is current refuses.

use std::time::{Duration, Instant};

use prfix_auth::{PrincipalKind, Role};
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1 as pb;
use prfix_runtime::settings::CommonSettings;
use prfix_tests::TestApp;
use prfix_tests::app::{
    AdminAddrs, agent_settings, audit_settings, channel_to, common_settings, gateway_settings, run,
};
use prfix_tests::auth::{Bearer, claims, keys};
use prfix_tests::{FakeOllama, TestDatabase};
use tonic::Code;

/// How soon a revocation must hold everywhere.
const PROPAGATION: Duration = Duration::from_secs(1);

/// The three services with no Redis at all (the default `prfix up`), shared settings adjusted.
async fn spawn_without_redis(tweak: impl FnOnce(&mut CommonSettings)) -> TestApp {
    let db = TestDatabase::fresh();
    let ollama = FakeOllama::start().await;
    let redis_prefix = format!("prfix-test:{}:", uuid::Uuid::new_v4().simple());
    let mut common = common_settings(&db, &redis_prefix, &ollama.url());
    common.redis_url = None;
    tweak(&mut common);
    let audit = prfix_audit::Application::build(audit_settings(&common)).await.expect("audit service starts");
    let audit_admin = audit.admin_addr();
    let audit = run(audit.local_addr(), |stop| audit.run_until_stopped(stop));
    let agent = prfix_agent::Application::build(agent_settings(&common)).await.expect("agent starts");
    let agent_admin = agent.admin_addr();
    let agent = run(agent.local_addr(), |stop| agent.run_until_stopped(stop));
    let gateway = prfix_gateway::Application::build(gateway_settings(&common, agent.addr, audit.addr))
        .await
        .expect("gateway starts");
    let gateway_admin = gateway.admin_addr();
    let gateway = run(gateway.local_addr(), |stop| gateway.run_until_stopped(stop));
    let channel = channel_to(gateway.addr);
    let admin = AdminAddrs { gateway: gateway_admin, agent: agent_admin, audit: audit_admin };
    TestApp { gateway, agent, audit, ollama, redis_prefix, channel, common, admin, db }
}

/// Where a token is presented.
#[derive(Debug, Clone, Copy)]
enum Door {
    /// The gateway, forwarding to the agent.
    Gateway,
    /// The agent's own port.
    Agent,
    /// The audit service's own port.
    Audit,
}

/// Presents `token` at `door` with a call its holder's roles allow.
async fn call(app: &TestApp, door: Door, token: &str) -> Result<(), tonic::Status> {
    match door {
        Door::Gateway => app.agent_client_as(token).list_models(agent::ListModelsRequest::default()).await.map(drop),
        Door::Agent => AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(token))
            .list_models(agent::ListModelsRequest::default())
            .await
            .map(drop),
        Door::Audit => AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(token))
            .list_events(audit::ListEventsRequest::default())
            .await
            .map(drop),
    }
}

/// Polls `door` until `token` is refused with `code` and a message containing `saying` (returning
/// the status) or `within` has passed (failing).
async fn until_refused(
    app: &TestApp,
    door: Door,
    token: &str,
    code: Code,
    saying: &str,
    within: Duration,
) -> tonic::Status {
    let deadline = Instant::now() + within;
    loop {
        let outcome = call(app, door, token).await;
        match outcome {
            Err(status) if status.code() == code && status.message().contains(saying) => return status,
            other if Instant::now() >= deadline => {
                panic!("{door:?} still answers {other:?} {within:?} after the change; expected {code:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Polls `door` until `token` is accepted again or `within` has passed (failing).
async fn until_accepted(app: &TestApp, door: Door, token: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match call(app, door, token).await {
            Ok(()) => return,
            Err(status) if Instant::now() >= deadline => panic!("{door:?} still refuses after {within:?}: {status:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Creates `username` with `roles` (as the admin); returns their password.
async fn create_user(app: &TestApp, admin: &str, username: &str, roles: &[Role]) -> String {
    let password = format!("{username}-password-123");
    app.auth_client_as(admin)
        .create_user(pb::CreateUserRequest {
            username: username.to_owned(),
            password: password.clone(),
            roles: roles.iter().map(|r| r.to_proto() as i32).collect(),
        })
        .await
        .expect("the admin creates a user");
    password
}

async fn access_token(app: &TestApp, username: &str, password: &str) -> String {
    app.login(username, password).await.expect("the user logs in").tokens.expect("tokens").access_token
}

async fn update_user(app: &TestApp, admin: &str, request: pb::UpdateUserRequest) {
    app.auth_client_as(admin).update_user(request).await.expect("the admin updates the user");
}

fn mask(path: &str) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: vec![path.to_owned()] })
}

const DOORS: [Door; 3] = [Door::Gateway, Door::Agent, Door::Audit];

#[tokio::test]
async fn a_logged_out_token_is_refused_at_the_agent_and_audit_ports_within_a_second_without_redis() {
    let app = spawn_without_redis(|_| {}).await;
    let admin = app.admin_token().await;
    let password = create_user(&app, &admin, "dana", &[Role::Developer, Role::Auditor]).await;
    let login = app.login("dana", &password).await.expect("login").tokens.expect("tokens");
    for door in DOORS {
        call(&app, door, &login.access_token).await.unwrap_or_else(|s| panic!("{door:?} accepts it before: {s:?}"));
    }
    app.auth_client_as(&login.access_token)
        .logout(pb::LogoutRequest { refresh_token: login.refresh_token })
        .await
        .expect("logout");
    for door in DOORS {
        until_refused(&app, door, &login.access_token, Code::Unauthenticated, "", PROPAGATION).await;
    }
    // A gateway replica that did not handle the logout refuses it as well.
    let replica = app.spawn_gateway(|_| {}).await;
    let status = AgentServiceClient::with_interceptor(channel_to(replica.addr), Bearer::new(&login.access_token))
        .list_models(agent::ListModelsRequest::default())
        .await
        .expect_err("the other replica refuses it");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_disabled_users_token_is_refused_everywhere_within_a_second_and_a_new_login_after_enabling_works() {
    let app = spawn_without_redis(|_| {}).await;
    let admin = app.admin_token().await;
    let password = create_user(&app, &admin, "erin", &[Role::Developer, Role::Auditor]).await;
    let before = access_token(&app, "erin", &password).await;
    call(&app, Door::Agent, &before).await.expect("accepted before");
    let disable = |disabled| pb::UpdateUserRequest {
        username: "erin".into(),
        disabled,
        update_mask: mask("disabled"),
        ..Default::default()
    };
    update_user(&app, &admin, disable(true)).await;
    for door in DOORS {
        until_refused(&app, door, &before, Code::Unauthenticated, "", PROPAGATION).await;
    }
    // Enabled again and logged in at once, often within the same second as the not-before: the new
    // token is accepted everywhere; the old one stays refused.
    update_user(&app, &admin, disable(false)).await;
    let after = access_token(&app, "erin", &password).await;
    for door in DOORS {
        until_accepted(&app, door, &after, PROPAGATION).await;
        let status = call(&app, door, &before).await.expect_err("the old token stays refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{door:?}");
    }
}

#[tokio::test]
async fn removing_a_role_revokes_tokens_issued_before_at_every_service() {
    let app = spawn_without_redis(|_| {}).await;
    let admin = app.admin_token().await;
    let password = create_user(&app, &admin, "fred", &[Role::Developer, Role::Auditor]).await;
    let before = access_token(&app, "fred", &password).await;
    call(&app, Door::Audit, &before).await.expect("the auditor reads the log");
    update_user(
        &app,
        &admin,
        pb::UpdateUserRequest {
            username: "fred".into(),
            roles: vec![Role::Developer.to_proto() as i32],
            update_mask: mask("roles"),
            ..Default::default()
        },
    )
    .await;
    // The old token still says `auditor`; it must not be worth anything anywhere.
    for door in DOORS {
        until_refused(&app, door, &before, Code::Unauthenticated, "", PROPAGATION).await;
    }
    let after = access_token(&app, "fred", &password).await;
    until_accepted(&app, Door::Agent, &after, PROPAGATION).await;
    let status = call(&app, Door::Audit, &after).await.expect_err("no longer an auditor");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn revoking_an_api_key_stops_the_tokens_it_was_exchanged_for_at_every_service() {
    let app = spawn_without_redis(|_| {}).await;
    let admin = app.admin_token().await;
    create_user(&app, &admin, "gina", &[Role::Developer, Role::Auditor]).await;
    let created = app
        .auth_client_as(&admin)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "ci".into(),
            roles: vec![Role::Developer.to_proto() as i32, Role::Auditor.to_proto() as i32],
            ttl: None,
            owner: "gina".into(),
        })
        .await
        .expect("the admin creates a key for gina")
        .into_inner();
    let key_id = created.api_key.expect("the key's record").key_id;
    // What the gateway forwards when the key is presented: a short token for the owner naming the
    // key (minted here with the gateway's key, since the exchanged token never leaves the gateway).
    let mut exchanged = claims("gina", &[Role::Developer, Role::Auditor]);
    exchanged.kind = PrincipalKind::ApiKey;
    exchanged.key = Some(key_id.clone());
    exchanged.exp = exchanged.iat + 300;
    let exchanged = keys().key.sign(&exchanged).expect("signing works");
    for door in [Door::Agent, Door::Audit] {
        call(&app, door, &exchanged).await.unwrap_or_else(|s| panic!("{door:?} accepts it before: {s:?}"));
    }
    call(&app, Door::Gateway, &created.secret).await.expect("the key works at the gateway");
    app.auth_client_as(&admin).revoke_api_key(pb::RevokeApiKeyRequest { key_id }).await.expect("revoke");
    for door in DOORS {
        until_refused(&app, door, &exchanged, Code::Unauthenticated, "", PROPAGATION).await;
    }
    let status = call(&app, Door::Gateway, &created.secret).await.expect_err("the key itself is refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    // The owner's own login is untouched.
    let own = access_token(&app, "gina", "gina-password-123").await;
    call(&app, Door::Agent, &own).await.expect("the owner's login still works");
}

#[tokio::test]
async fn a_service_that_cannot_confirm_its_revocations_refuses_and_recovers_when_the_database_returns() {
    let staleness = Duration::from_millis(400);
    let app = spawn_without_redis(|c| c.auth_revocations_max_staleness_ms = staleness.as_millis() as u64).await;
    let admin = app.admin_token().await;
    let password = create_user(&app, &admin, "hana", &[Role::Developer, Role::Auditor]).await;
    let token = access_token(&app, "hana", &password).await;
    for door in [Door::Agent, Door::Audit] {
        call(&app, door, &token).await.unwrap_or_else(|s| panic!("{door:?} accepts it before: {s:?}"));
    }
    // The database goes away for the services: no new connections, and every existing one (the
    // revocation feeds' LISTEN connections among them) ended. A session on the server's maintenance
    // database stays to bring it back.
    let (db, connection) = tokio_postgres::connect(&prfix_tests::db::admin_url(), tokio_postgres::NoTls)
        .await
        .expect("the test server is reachable");
    tokio::spawn(connection);
    let name = prfix_runtime::db::quote_ident(&app.db.name);
    db.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await.expect("closes the database");
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&app.db.name])
        .await
        .expect("ends the services' sessions");
    // Past the bound (and the wait for a confirmation), they refuse rather than trust an old copy.
    for door in [Door::Agent, Door::Audit] {
        // The message says why (the database's own errors at the handler are not this refusal).
        until_refused(&app, door, &token, Code::Unavailable, "revocations", staleness * 5).await;
    }
    db.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.expect("reopens the database");
    for door in [Door::Agent, Door::Audit] {
        until_accepted(&app, door, &token, Duration::from_secs(10)).await;
    }
}
