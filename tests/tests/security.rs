//! Edge security: strict token verification at the gateway and at each service, roles from the
//! proto policy, logins, refresh rotation, logout and API keys that stop working at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prfix_auth::{Role, SigningKey};
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1 as pb;
use prfix_tests::app::channel_to;
use prfix_tests::auth::{Bearer, claims, keys, token};
use prfix_tests::spawn_app;
use tonic::Code;

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn hs256(header: &serde_json::Value, payload: &serde_json::Value, key: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let tag =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Signs `payload` with the test key under a header of our choosing.
fn rs256_with_header(header: serde_json::Value, payload: &serde_json::Value) -> String {
    // Sign a real token, then splice: the signature then does not match the new header, which is
    // also a case; for header cases that must fail before any signature check this is enough.
    let real = token("alice", &[Role::Admin]);
    let signature = real.rsplit('.').next().unwrap_or_default().to_owned();
    format!("{}.{}.{signature}", b64(&header), b64(payload))
}

/// At least thirty tokens that must all be refused.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let kid = keys().key.kid.clone();
    let good = serde_json::to_value(claims("alice", &[Role::Admin, Role::Developer, Role::Auditor, Role::Service]))
        .expect("claims");
    let with = |key: &str, value: serde_json::Value| {
        let mut p = good.clone();
        p[key] = value;
        keys().key.sign(&serde_json::from_value(p).expect("still claims")).expect("signs")
    };
    let now = chrono::Utc::now().timestamp();
    let expired = with("exp", (now - 3600).into());
    let not_yet = with("nbf", (now + 3600).into());
    let wrong_iss = with("iss", "someone-else".into());
    let wrong_aud = with("aud", "another-api".into());
    let unknown_role = with("roles", serde_json::json!(["root"]));
    let empty_jti = with("jti", "".into());
    let empty_sub = with("sub", "".into());
    let real = token("alice", &[Role::Admin]);
    let parts: Vec<&str> = real.split('.').collect();
    let payload_json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload")).expect("json");
    let mut elevated = payload_json.clone();
    elevated["sub"] = "mallory".into();
    let tampered = format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]);
    let mut flipped_sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
    flipped_sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(flipped_sig));
    let header = |alg: &str| serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    let public_key_pem = serde_json::to_string(keys().key.jwk()).expect("jwk");
    let other_key = SigningKey::generate().expect("a second key").0;
    let foreign = other_key.sign(&serde_json::from_value(good.clone()).expect("claims")).expect("signs");
    let mut no_typ_header = header("RS256");
    no_typ_header.as_object_mut().expect("object").remove("typ");
    let mut without_exp = good.clone();
    without_exp.as_object_mut().expect("object").remove("exp");
    let without_exp = rs256_with_header(header("RS256"), &without_exp);
    vec![
        (
            "alg none",
            format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&good)),
        ),
        (
            "alg None",
            format!("{}.{}.", b64(&serde_json::json!({"alg": "None", "typ": "at+jwt", "kid": kid})), b64(&good)),
        ),
        (
            "alg NONE",
            format!("{}.{}.", b64(&serde_json::json!({"alg": "NONE", "typ": "at+jwt", "kid": kid})), b64(&good)),
        ),
        (
            "alg nOnE",
            format!("{}.{}.", b64(&serde_json::json!({"alg": "nOnE", "typ": "at+jwt", "kid": kid})), b64(&good)),
        ),
        ("alg none with signature", rs256_with_header(header("none"), &good)),
        ("HS256 keyed with the public key", hs256(&header("HS256"), &good, public_key_pem.as_bytes())),
        ("HS256 keyed with the modulus", hs256(&header("HS256"), &good, keys().key.jwk().n.as_bytes())),
        ("RS512", rs256_with_header(header("RS512"), &good)),
        ("PS256", rs256_with_header(header("PS256"), &good)),
        ("ES256", rs256_with_header(header("ES256"), &good)),
        (
            "unknown kid",
            rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-a-key"}), &good),
        ),
        (
            "path kid",
            rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "../../etc/passwd"}), &good),
        ),
        (
            "sql kid",
            rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "x' OR '1'='1"}), &good),
        ),
        ("no kid", rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "at+jwt"}), &good)),
        (
            "jku header",
            rs256_with_header(
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "jku": "http://evil/jwks"}),
                &good,
            ),
        ),
        (
            "x5u header",
            rs256_with_header(
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "x5u": "http://evil/cert"}),
                &good,
            ),
        ),
        (
            "jwk header",
            rs256_with_header(
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "jwk": keys().key.jwk()}),
                &good,
            ),
        ),
        (
            "crit header",
            rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}), &good),
        ),
        ("no typ", rs256_with_header(no_typ_header, &good)),
        ("typ JWT", rs256_with_header(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &good)),
        ("missing exp", without_exp),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong iss", wrong_iss),
        ("wrong aud", wrong_aud),
        ("unknown role", unknown_role),
        ("empty jti", empty_jti),
        ("empty sub", empty_sub),
        ("tampered payload", tampered),
        ("flipped signature bit", flipped),
        ("signed by another key", foreign),
        ("truncated", real[..real.len() / 2].to_owned()),
        ("signature removed", format!("{}.{}.", parts[0], parts[1])),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{real}.extra")),
        ("oversized", format!("{}.{}.{}", parts[0], "A".repeat(10_000), parts[2])),
        ("not base64", "!!!.@@@.###".to_owned()),
        ("header not json", format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("nope"), parts[1], parts[2])),
        ("empty", String::new()),
        ("garbage", "Bearer".to_owned()),
    ]
}

#[tokio::test]
async fn a_corpus_of_bad_tokens_is_refused_by_the_gateway_and_by_each_service_directly() {
    let app = spawn_app().await;
    let corpus = bad_tokens();
    assert!(corpus.len() >= 30, "the corpus has {} tokens", corpus.len());
    for (name, bad) in &corpus {
        let via_gateway = app.agent_client_as(bad).list_tasks(agent::ListTasksRequest::default()).await;
        assert_eq!(via_gateway.map(|_| ()).expect_err(name).code(), Code::Unauthenticated, "gateway accepted `{name}`");
        let agent_direct = AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(bad))
            .list_tasks(agent::ListTasksRequest::default())
            .await;
        assert_eq!(agent_direct.map(|_| ()).expect_err(name).code(), Code::Unauthenticated, "agent accepted `{name}`");
        let audit_direct = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(bad))
            .list_events(audit::ListEventsRequest::default())
            .await;
        assert_eq!(audit_direct.map(|_| ()).expect_err(name).code(), Code::Unauthenticated, "audit accepted `{name}`");
    }
    // And a good token passes all three, so the refusals above are about the tokens.
    let good = token("alice", &[Role::Admin]);
    app.agent_client_as(&good).list_tasks(agent::ListTasksRequest::default()).await.expect("gateway");
    AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(&good))
        .list_tasks(agent::ListTasksRequest::default())
        .await
        .expect("agent");
    AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&good))
        .list_events(audit::ListEventsRequest::default())
        .await
        .expect("audit");
}

#[tokio::test]
async fn no_credentials_means_unauthenticated_everywhere() {
    let app = spawn_app().await;
    let status = app.agent_client_as("").list_tasks(agent::ListTasksRequest::default()).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid or missing credentials");
    let direct =
        AgentServiceClient::new(channel_to(app.agent.addr)).list_tasks(agent::ListTasksRequest::default()).await;
    assert_eq!(direct.expect_err("refused").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_developer_cannot_call_an_admin_method_and_an_auditor_cannot_create_tasks() {
    let app = spawn_app().await;
    let developer = app.user_token("dana", &[Role::Developer]).await;
    let status = app
        .auth_client_as(&developer)
        .create_user(pb::CreateUserRequest {
            username: "eve".into(),
            password: "long-enough-password".into(),
            roles: vec![1],
        })
        .await
        .expect_err("developers do not manage users");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied");

    let auditor = app.user_token("audrey", &[Role::Auditor]).await;
    let status =
        app.agent_client_as(&auditor).create_review(agent::CreateReviewRequest::default()).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    // The service re-checks the role itself when reached directly.
    let direct = AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(&auditor))
        .list_tasks(agent::ListTasksRequest::default())
        .await;
    assert_eq!(direct.expect_err("refused").code(), Code::PermissionDenied);
    // Only services append to the audit log, even admins may not.
    let admin = app.admin_token().await;
    let status = app.audit_client_as(&admin).append(audit::AppendRequest::default()).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    // But an auditor reads it.
    app.audit_client_as(&auditor).list_events(audit::ListEventsRequest::default()).await.expect("auditors read");
}

#[tokio::test]
async fn login_refresh_rotation_and_reuse_detection() {
    let app = spawn_app().await;
    let wrong = app.login("admin", "not-the-password").await.expect_err("wrong password");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let unknown = app.login("nobody", "whatever-password").await.expect_err("unknown user");
    assert_eq!((unknown.code(), unknown.message()), (wrong.code(), wrong.message()), "the same answer for both");

    let login = app.login("admin", prfix_tests::auth::ADMIN_PASSWORD).await.expect("login");
    let first = login.tokens.expect("tokens");
    let who =
        app.auth_client_as(&first.access_token).who_am_i(pb::WhoAmIRequest {}).await.expect("whoami").into_inner();
    assert_eq!(who.subject, "admin");
    // The first admin also reviews (docs/security.md#roles).
    let (admin, developer) = (prfix_proto::options::v1::Role::Admin, prfix_proto::options::v1::Role::Developer);
    assert_eq!(who.roles, vec![admin as i32, developer as i32]);

    let mut auth = app.auth_client_as("");
    let second = auth
        .refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    // Replaying the spent token revokes the family: the newer token stops working too.
    let replay = auth.refresh(pb::RefreshRequest { refresh_token: first.refresh_token }).await.expect_err("reuse");
    assert_eq!(replay.code(), Code::Unauthenticated);
    let after =
        auth.refresh(pb::RefreshRequest { refresh_token: second.refresh_token }).await.expect_err("family revoked");
    assert_eq!(after.code(), Code::Unauthenticated);

    // The login, the failures and the reuse are in the audit log.
    let events =
        app.audit_client().list_events(audit::ListEventsRequest::default()).await.expect("events").into_inner().events;
    let actions: Vec<_> = events.iter().map(|e| (e.action.as_str(), e.result)).collect();
    assert!(actions.contains(&("auth.login", audit::AuditResult::Failure as i32)), "{actions:?}");
    assert!(actions.contains(&("auth.login", audit::AuditResult::Success as i32)), "{actions:?}");
    assert!(actions.contains(&("auth.refresh", audit::AuditResult::Denied as i32)), "{actions:?}");
}

#[tokio::test]
async fn a_logged_out_token_stops_working_at_once() {
    let app = spawn_app().await;
    let login = app.login("admin", prfix_tests::auth::ADMIN_PASSWORD).await.expect("login").tokens.expect("tokens");
    let mut client = app.auth_client_as(&login.access_token);
    client.who_am_i(pb::WhoAmIRequest {}).await.expect("works before");
    client.logout(pb::LogoutRequest { refresh_token: login.refresh_token.clone() }).await.expect("logout");
    let status = client.who_am_i(pb::WhoAmIRequest {}).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    // Behind the gateway too: the services learn of it from Postgres (LISTEN/NOTIFY) within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let direct = AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(&login.access_token))
            .list_tasks(agent::ListTasksRequest::default())
            .await;
        match direct {
            Err(status) if status.code() == Code::Unauthenticated => break,
            other => assert!(std::time::Instant::now() < deadline, "the agent still answers {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refresh = app.auth_client_as("").refresh(pb::RefreshRequest { refresh_token: login.refresh_token }).await;
    assert_eq!(refresh.expect_err("refresh revoked").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_api_key_works_as_a_bearer_credential_until_it_is_revoked() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut auth = app.auth_client_as(&admin);
    let created = auth
        .create_api_key(pb::CreateApiKeyRequest {
            name: "ci-main".into(),
            roles: vec![prfix_proto::options::v1::Role::Admin as i32],
            ttl: None,
            owner: String::new(),
        })
        .await
        .expect("create key")
        .into_inner();
    let secret = created.secret;
    assert!(secret.starts_with("prfix_"));
    let key_id = created.api_key.expect("record").key_id;
    // Through the gateway to the agent: the key is exchanged for a token the agent verifies.
    app.agent_client_as(&secret).list_tasks(agent::ListTasksRequest::default()).await.expect("the key works");
    let who = app.auth_client_as(&secret).who_am_i(pb::WhoAmIRequest {}).await.expect("whoami").into_inner();
    // The key acts for its owner, and names itself.
    assert_eq!((who.subject.as_str(), who.api_key_id.as_str()), ("admin", key_id.as_str()));
    assert_eq!(who.kind, pb::PrincipalKind::ApiKey as i32);
    let listed = auth.list_api_keys(pb::ListApiKeysRequest::default()).await.expect("list").into_inner();
    assert!(listed.api_keys.iter().any(|k| k.key_id == key_id && k.last_used_time.is_some()));

    auth.revoke_api_key(pb::RevokeApiKeyRequest { key_id }).await.expect("revoke");
    let status =
        app.agent_client_as(&secret).list_tasks(agent::ListTasksRequest::default()).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn user_administration_validates_input_and_disabling_stops_logins() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut auth = app.auth_client_as(&admin);
    let short = auth
        .create_user(pb::CreateUserRequest { username: "bob".into(), password: "short".into(), roles: vec![2] })
        .await
        .expect_err("short password");
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(short.message().contains("12 characters"), "{}", short.message());
    let bad_name = auth
        .create_user(pb::CreateUserRequest {
            username: "Bob Smith".into(),
            password: "long-enough-password".into(),
            roles: vec![2],
        })
        .await
        .expect_err("bad name");
    assert!(bad_name.message().contains("username"), "{}", bad_name.message());
    auth.create_user(pb::CreateUserRequest {
        username: "bob".into(),
        password: "long-enough-password".into(),
        roles: vec![2],
    })
    .await
    .expect("created");
    let twice = auth
        .create_user(pb::CreateUserRequest {
            username: "bob".into(),
            password: "long-enough-password".into(),
            roles: vec![2],
        })
        .await
        .expect_err("exists");
    assert_eq!(twice.code(), Code::AlreadyExists);
    app.login("bob", "long-enough-password").await.expect("bob logs in");
    auth.update_user(pb::UpdateUserRequest {
        username: "bob".into(),
        disabled: true,
        update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
        ..Default::default()
    })
    .await
    .expect("disable");
    assert_eq!(app.login("bob", "long-enough-password").await.expect_err("disabled").code(), Code::Unauthenticated);
    let users = auth.list_users(pb::ListUsersRequest::default()).await.expect("list").into_inner().users;
    assert_eq!(
        users.iter().map(|u| (u.username.as_str(), u.disabled)).collect::<Vec<_>>(),
        [("admin", false), ("bob", true)]
    );
}

#[tokio::test]
async fn login_for_an_unknown_user_and_a_wrong_password_take_comparable_time() {
    let app = spawn_app().await;
    async fn timed(app: &prfix_tests::TestApp, user: &str) -> std::time::Duration {
        let started = std::time::Instant::now();
        let _ = app.login(user, "wrong-password-123").await;
        started.elapsed()
    }
    // Warm up, then take medians of alternating attempts.
    let _ = timed(&app, "admin").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..3 {
        known.push(timed(&app, "admin").await);
        unknown.push(timed(&app, &format!("ghost{i}")).await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    let ratio = k / u;
    println!("login median: known user, wrong password {k:.4}s; unknown user {u:.4}s; ratio {ratio:.2}");
    assert!((0.5..2.0).contains(&ratio), "known {k:.4}s vs unknown {u:.4}s");
}

#[tokio::test]
async fn a_refresh_token_used_twice_at_once_leaves_no_live_session() {
    let app = spawn_app().await;
    let login = app.login("admin", prfix_tests::auth::ADMIN_PASSWORD).await.expect("login").tokens.expect("tokens");
    let mut a = app.auth_client_as("");
    let mut b = app.auth_client_as("");
    let (first, second) = tokio::join!(
        a.refresh(pb::RefreshRequest { refresh_token: login.refresh_token.clone() }),
        b.refresh(pb::RefreshRequest { refresh_token: login.refresh_token.clone() }),
    );
    let winners: Vec<_> = [first, second].into_iter().filter_map(Result::ok).collect();
    assert!(winners.len() <= 1, "one token, at most one successor");
    // Whoever won, the reuse revoked the family, the winner's new token included.
    for winner in winners {
        let next = winner.into_inner().tokens.expect("tokens").refresh_token;
        let status = a.refresh(pb::RefreshRequest { refresh_token: next }).await.expect_err("family revoked");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn logout_after_a_refresh_and_a_password_change_both_end_refresh_sessions() {
    let app = spawn_app().await;
    let login = app.login("admin", prfix_tests::auth::ADMIN_PASSWORD).await.expect("login").tokens.expect("tokens");
    let mut anonymous = app.auth_client_as("");
    let refreshed = anonymous
        .refresh(pb::RefreshRequest { refresh_token: login.refresh_token })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    app.auth_client_as(&refreshed.access_token)
        .logout(pb::LogoutRequest { refresh_token: refreshed.refresh_token.clone() })
        .await
        .expect("logout works on a family with several rotations");
    let status =
        anonymous.refresh(pb::RefreshRequest { refresh_token: refreshed.refresh_token }).await.expect_err("ended");
    assert_eq!(status.code(), Code::Unauthenticated);

    // A new session, then the admin's password changes: the session's refresh token stops.
    let session = app.login("admin", prfix_tests::auth::ADMIN_PASSWORD).await.expect("login").tokens.expect("tokens");
    app.auth_client_as(&session.access_token)
        .update_user(pb::UpdateUserRequest {
            username: "admin".into(),
            password: "a-brand-new-password".into(),
            update_mask: Some(prost_types::FieldMask { paths: vec!["password".into()] }),
            ..Default::default()
        })
        .await
        .expect("password changed");
    let status =
        anonymous.refresh(pb::RefreshRequest { refresh_token: session.refresh_token }).await.expect_err("ended");
    assert_eq!(status.code(), Code::Unauthenticated);
    app.login("admin", "a-brand-new-password").await.expect("the new password works");
}

#[tokio::test]
async fn an_api_key_is_worth_no_more_than_its_owner_and_cannot_make_keys() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut auth = app.auth_client_as(&admin);
    auth.create_user(pb::CreateUserRequest {
        username: "opal".into(),
        password: "opal-password-123".into(),
        roles: vec![prfix_proto::options::v1::Role::Admin as i32],
    })
    .await
    .expect("second admin");
    let opal = app.login("opal", "opal-password-123").await.expect("login").tokens.expect("tokens").access_token;
    let key = app
        .auth_client_as(&opal)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "opal-ci".into(),
            roles: vec![prfix_proto::options::v1::Role::Admin as i32],
            ttl: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
            owner: String::new(),
        })
        .await
        .expect("key")
        .into_inner()
        .secret;
    let from_key = app
        .auth_client_as(&key)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "child".into(),
            roles: vec![1],
            ttl: None,
            owner: String::new(),
        })
        .await
        .expect_err("a key cannot make keys");
    assert_eq!(from_key.code(), Code::PermissionDenied);
    let absurd = app
        .auth_client_as(&opal)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "forever".into(),
            roles: vec![1],
            ttl: Some(prost_types::Duration { seconds: i64::MAX, nanos: 0 }),
            owner: String::new(),
        })
        .await
        .expect_err("an absurd ttl is refused, not a crash");
    assert_eq!(absurd.code(), Code::InvalidArgument);

    app.auth_client_as(&key).who_am_i(pb::WhoAmIRequest {}).await.expect("works while opal is enabled");
    auth.update_user(pb::UpdateUserRequest {
        username: "opal".into(),
        disabled: true,
        update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
        ..Default::default()
    })
    .await
    .expect("disable opal");
    let status = app.auth_client_as(&key).who_am_i(pb::WhoAmIRequest {}).await.expect_err("owner disabled");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_unknown_method_of_one_of_our_services_is_denied_at_the_gateway_not_forwarded() {
    let app = spawn_app().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/prfix.agent.v1.AgentService/DropAllTasks");
    let status = grpc
        .unary::<(), (), _>(tonic::Request::new(()), path, tonic_prost::ProstCodec::default())
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied);
}
