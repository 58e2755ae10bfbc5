//! Who appended each audit event, inside its leaf hash: an admin who makes a service key can append
//! events in that key's name, but cannot put words in the gateway's mouth (`auth.*`), backdate
//! beyond the allowed clock skew, or hide which credential appended what.

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, Report, verify};
use prfix_auth::Role;
use prfix_proto::audit::v1 as audit;
use prfix_proto::auth::v1 as auth;
use prfix_tests::TestApp;
use prfix_tests::app::provision_service_key;
use prfix_tests::auth::audit_key;
use prfix_tests::metadata::text;
use prfix_tests::spawn_app;
use tonic::Code;

/// 2000-01-01T00:00:00Z.
const Y2K: i64 = 946_684_800;

fn event(action: &str, subject: &str, seconds: i64) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        actor: Some(audit::Actor { subject: subject.into(), roles: vec!["developer".into()] }),
        actor_ip: "203.0.113.9".into(),
        action: action.into(),
        resource: format!("users/{subject}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn events(app: &TestApp, action: &str) -> Vec<audit::AuditEvent> {
    app.audit_client()
        .list_events(audit::ListEventsRequest { action: action.into(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .events
}

async fn export(app: &TestApp) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(&app.audit_client()).await
}

fn check(lines: &[ExportLine]) -> Report {
    verify(lines, &[VerifierKey::parse(&audit_key().verifier_key).expect("verifier key")])
}

/// An admin-made service key (as the probe made one) and its id.
async fn service_key(app: &TestApp, name: &str) -> (String, String) {
    let admin = app.admin_token().await;
    let secret = provision_service_key(app.auth_client_as(&admin), name).await;
    let who = app.auth_client_as(&secret).who_am_i(auth::WhoAmIRequest {}).await.expect("whoami").into_inner();
    (secret, who.api_key_id)
}

#[tokio::test]
async fn a_forged_login_from_an_admin_made_service_key_is_refused_and_the_refusal_is_audited() {
    let app = spawn_app().await;
    let (key, key_id) = service_key(&app, "forger").await;
    let forged = event("auth.login", "alice", now());
    let status = app
        .audit_client_as(&key)
        .append(audit::AppendRequest { event: Some(forged.clone()) })
        .await
        .expect_err("only the gateway appends auth.*");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("auth.login") && status.message().contains("forger"), "{}", status.message());
    assert!(events(&app, "auth.login").await.iter().all(|e| e.actor.as_ref().is_none_or(|a| a.subject != "alice")));

    // The refusal is itself in the log, naming the appender, its key and what it tried.
    let refusals = events(&app, "audit.append_refused").await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let refusal = &refusals[0];
    assert_eq!(refusal.actor.as_ref().map(|a| a.subject.as_str()), Some("forger"));
    assert_eq!(refusal.result, audit::AuditResult::Denied as i32);
    assert_eq!(text(refusal.metadata.as_ref(), "refused_action").as_deref(), Some("auth.login"));
    assert_eq!(text(refusal.metadata.as_ref(), "refused_event_id"), Some(forged.event_id.clone()));
    assert_eq!(text(refusal.metadata.as_ref(), "credential"), Some(format!("apikey:{key_id}")));
    assert_eq!(refusal.appender.as_ref().map(|a| a.subject.as_str()), Some("service:audit"));

    // In a batch, the forged event is refused on its own and the honest one is appended.
    let honest = event("demo.import", "forger", now());
    let results = app
        .audit_client_as(&key)
        .append_batch(audit::AppendBatchRequest { events: vec![event("auth.refresh", "alice", now()), honest.clone()] })
        .await
        .expect("the batch is answered per event")
        .into_inner()
        .results;
    assert_eq!(results[0].refusal_code, Code::PermissionDenied as i32);
    assert_eq!(results[0].sequence, 0);
    assert!(results[0].refusal.contains("auth.refresh"), "{}", results[0].refusal);
    assert_eq!((results[1].refusal_code, results[1].event_id.as_str()), (0, honest.event_id.as_str()));
    assert!(results[1].sequence > 0);
    assert_eq!(events(&app, "audit.append_refused").await.len(), 2);
    // Nobody else may write the audit service's own records either.
    let status = app
        .audit_client_as(&key)
        .append(audit::AppendRequest { event: Some(event("audit.append_refused", "alice", now())) })
        .await
        .expect_err("audit.* is the audit service's own");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_gateways_own_login_events_still_land_with_the_gateway_as_appender() {
    let app = spawn_app().await;
    let _ = app.admin_token().await;
    let logins = events(&app, "auth.login").await;
    let login = logins.iter().find(|e| e.actor.as_ref().is_some_and(|a| a.subject == "admin")).expect("admin's login");
    let appender = login.appender.as_ref().expect("an appender");
    assert_eq!(appender.subject, prfix_auth::GATEWAY_SUBJECT);
    assert!(appender.credential.starts_with("token:"), "{}", appender.credential);
    assert_eq!(login.encoding, 2);
}

#[tokio::test]
async fn users_and_their_keys_never_hold_the_gateways_kind_so_cannot_append_auth_actions() {
    let app = spawn_app().await;
    // A user with the service role, by login and by key: kinds USER and API_KEY, never SERVICE.
    let (key, _) = service_key(&app, "svc").await;
    let login = app.login("svc", "svc-password-123").await.expect("svc logs in").tokens.expect("tokens").access_token;
    for (credential, kind) in [(&login, auth::PrincipalKind::User), (&key, auth::PrincipalKind::ApiKey)] {
        let who = app.auth_client_as(credential).who_am_i(auth::WhoAmIRequest {}).await.expect("whoami").into_inner();
        assert_eq!(who.kind, kind as i32);
        let status = app
            .audit_client_as(credential)
            .append(audit::AppendRequest { event: Some(event("auth.login", "alice", now())) })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    // An admin cannot name a user after the gateway.
    let admin = app.admin_token().await;
    let status = app
        .auth_client_as(&admin)
        .create_user(auth::CreateUserRequest {
            username: prfix_auth::GATEWAY_SUBJECT.into(),
            password: "a-long-enough-password".into(),
            roles: vec![Role::Service.to_proto() as i32],
        })
        .await
        .expect_err("not a user name");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_event_dated_2000_is_refused_naming_both_times() {
    let app = spawn_app().await;
    let (key, _) = service_key(&app, "backdater").await;
    let status = app
        .audit_client_as(&key)
        .append(audit::AppendRequest { event: Some(event("demo.export", "bob", Y2K)) })
        .await
        .expect_err("backdated");
    assert_eq!(status.code(), Code::InvalidArgument);
    let message = status.message();
    assert!(message.contains("2000-01-01T00:00:00.000000Z"), "{message}");
    assert!(message.contains("receive time 20") && message.contains("300 s"), "{message}");
    // Per event in a batch; the future is refused as well.
    let results = app
        .audit_client_as(&key)
        .append_batch(audit::AppendBatchRequest {
            events: vec![
                event("demo.a", "bob", Y2K),
                event("demo.b", "bob", now()),
                event("demo.c", "bob", now() + 3_600),
            ],
        })
        .await
        .expect("answered per event")
        .into_inner()
        .results;
    let codes: Vec<i32> = results.iter().map(|r| r.refusal_code).collect();
    assert_eq!(codes, vec![Code::InvalidArgument as i32, 0, Code::InvalidArgument as i32]);
    assert!(events(&app, "demo.a").await.is_empty() && events(&app, "demo.c").await.is_empty());
    assert_eq!(events(&app, "demo.b").await.len(), 1);
}

#[tokio::test]
async fn the_appender_and_receive_time_are_recorded_and_changing_them_breaks_verification() {
    let app = spawn_app().await;
    let (key, key_id) = service_key(&app, "ingest").await;
    let before = chrono::Utc::now();
    // The body claims someone else acted; the appender comes from the verified key all the same.
    let mut claimed = event("demo.import", "someone-else", now());
    claimed.appender = Some(audit::Appender { subject: "service:gateway".into(), credential: "token:made-up".into() });
    claimed.receive_time = Some(prost_types::Timestamp { seconds: Y2K, nanos: 0 });
    let sequence = app
        .audit_client_as(&key)
        .append(audit::AppendRequest { event: Some(claimed) })
        .await
        .expect("appended")
        .into_inner()
        .sequence;
    let after = chrono::Utc::now();
    let stored = events(&app, "demo.import").await.pop().expect("stored");
    assert_eq!(stored.sequence, sequence);
    assert_eq!(stored.actor.as_ref().map(|a| a.subject.as_str()), Some("someone-else"));
    let appender = stored.appender.as_ref().expect("appender");
    assert_eq!((appender.subject.as_str(), appender.credential.clone()), ("ingest", format!("apikey:{key_id}")));
    let received = stored.receive_time.as_ref().and_then(prfix_runtime::time::from_timestamp).expect("receive time");
    let micros = chrono::TimeDelta::microseconds(1);
    assert!(received >= before - micros && received <= after, "{received} not in {before}..{after}");
    assert_eq!(stored.encoding, 2);
    assert!(check(&export(&app).await).ok());

    // Changing who appended it, or when it was received, is caught at that event.
    for change in [
        "UPDATE audit.events SET appender_subject = 'service:gateway' WHERE sequence = $1",
        "UPDATE audit.events SET appender_credential = 'token:other' WHERE sequence = $1",
        "UPDATE audit.events SET received_at = received_at - interval '1 day' WHERE sequence = $1",
    ] {
        let client = app.db.connect().await;
        client.batch_execute("ALTER TABLE audit.events DISABLE TRIGGER ALL").await.expect("disable");
        let restore = client
            .query_one(
                "SELECT appender_subject, appender_credential, received_at FROM audit.events WHERE sequence = $1",
                &[&sequence],
            )
            .await
            .expect("row");
        client.execute(change, &[&sequence]).await.expect(change);
        let report = check(&export(&app).await);
        assert!(report.problems.iter().any(|p| p.sequence == Some(sequence)), "{change}: {:?}", report.problems);
        let (subject, credential, time): (String, String, chrono::DateTime<chrono::Utc>) =
            (restore.get(0), restore.get(1), restore.get(2));
        client
            .execute(
                "UPDATE audit.events SET appender_subject = $2, appender_credential = $3, received_at = $4
                 WHERE sequence = $1",
                &[&sequence, &subject, &credential, &time],
            )
            .await
            .expect("restore");
        assert!(check(&export(&app).await).ok(), "restored");
    }
}

#[tokio::test]
async fn events_stored_before_appenders_were_recorded_still_verify_with_the_v1_encoding() {
    use prfix_audit::store::{NewEvent, Outcome};
    let app = spawn_app().await;
    // A v1 row at the head of the log, written as the service wrote rows before encoding v2 (under
    // its append lock, chained to what is there).
    let mut client = app.db.connect().await;
    let tx = client.transaction().await.expect("tx");
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&0x7072_6669_7861_7564_i64]).await.expect("lock");
    let last = tx.query_opt("SELECT sequence, chain_hash FROM audit.events ORDER BY sequence DESC LIMIT 1", &[]).await;
    let (head, previous): (i64, Vec<u8>) = last.expect("head").map_or((0, vec![0; 32]), |row| (row.get(0), row.get(1)));
    let old = NewEvent {
        event_id: uuid::Uuid::new_v4(),
        occurred_at: chrono::DateTime::from_timestamp_micros(1_780_000_000_250_000).expect("time"),
        actor_subject: "carol".into(),
        actor_roles: vec!["developer".into()],
        actor_ip: "10.0.0.7".into(),
        action: "demo.before_v2".into(),
        resource: "tasks/1".into(),
        outcome: Outcome::Success,
        request_id: "r-old".into(),
        trace_id: String::new(),
        // Text only: numbers come back from the proto Struct as floats.
        metadata: serde_json::json!({"note": "from before v2"}),
    };
    let sequence = head + 1;
    let leaf = prfix_audit::canonical::leaf_hash_of(sequence, &old, None);
    assert_eq!(leaf, prfix_audit::merkle::leaf_hash(&prfix_audit::canonical::encode_v1(sequence, &old)));
    let previous: [u8; 32] = previous.try_into().expect("32 bytes");
    let chain = prfix_audit::canonical::chain_hash(&previous, &leaf);
    tx.execute(
        "INSERT INTO audit.events (sequence, event_id, occurred_at, actor_subject, actor_roles, actor_ip, action,
                                   resource, result, request_id, trace_id, metadata, leaf_hash, chain_hash, encoding)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, '', $10, $11, $12, 1)",
        &[
            &sequence,
            &old.event_id,
            &old.occurred_at,
            &old.actor_subject,
            &old.actor_roles,
            &old.actor_ip,
            &old.action,
            &old.resource,
            &old.request_id,
            &old.metadata,
            &leaf.as_slice(),
            &chain.as_slice(),
        ],
    )
    .await
    .expect("insert a v1 row");
    tx.commit().await.expect("commit");

    // New events after it are v2; the whole log verifies, offline and on the server.
    let (key, _) = service_key(&app, "ingest").await;
    app.audit_client_as(&key)
        .append(audit::AppendRequest { event: Some(event("demo.after_v2", "dave", now())) })
        .await
        .expect("appended");
    let lines = export(&app).await;
    let encodings: Vec<(String, i32, bool)> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Event(e) => Some((e.action.clone(), e.encoding, e.appender_subject.is_some())),
            ExportLine::Checkpoint { .. } => None,
        })
        .filter(|(action, ..)| action.starts_with("demo."))
        .collect();
    assert_eq!(encodings, vec![("demo.before_v2".into(), 1, false), ("demo.after_v2".into(), 2, true)]);
    let report = check(&lines);
    assert!(report.ok(), "{:?}", report.problems);
    let verdict = app.audit_client().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok, "{:?}", verdict.problems);
    // The export file round-trips through JSON lines and still verifies (a v1 line has no appender).
    let mut file = Vec::new();
    prfix_audit::export::write_jsonl(&lines, &mut file).expect("write");
    let read = prfix_audit::export::read_jsonl(std::str::from_utf8(&file).expect("utf-8")).expect("read");
    assert!(check(&read).ok());
}
