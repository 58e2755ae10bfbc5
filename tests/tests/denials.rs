//! Denials everywhere: the agent's and the audit service's own ports audit their refusals and
//! apply the same per-method limits as the gateway; a flood of bad tokens from one address is
//! refused before any key is touched once the address has used its budget, and is audited as a
//! few records whose counts add up to the flood.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prfix_auth::Role;
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::prost_types::value::Kind;
use prfix_runtime::ratelimit::Quota;
use prfix_tests::app::{Authed, channel_to, run, spawn_app_shared};
use prfix_tests::auth::{Bearer, token};
use prfix_tests::{TestApp, metrics};
use tonic::Code;

/// A well-formed token of a known key whose signature does not verify: refusing it takes an RSA
/// verification.
fn forged() -> String {
    let real = token("mallory", &[Role::Admin]);
    let parts: Vec<&str> = real.split('.').collect();
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
    signature[0] ^= 1;
    format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature))
}

/// The address the floods come from: not the gateway's (127.0.0.1), whose forwarded calls the
/// services would otherwise count with the flood's.
const FLOODER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A channel to `addr` from [`FLOODER`].
fn from_flooder(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("a socket address is a valid URI")
        .local_address(Some(FLOODER))
        .connect_lazy()
}

/// A number in an event's metadata.
fn number(event: &audit::AuditEvent, key: &str) -> Option<f64> {
    match event.metadata.as_ref()?.fields.get(key)?.kind.as_ref()? {
        Kind::NumberValue(n) => Some(*n),
        _ => None,
    }
}

/// A string in an event's metadata.
fn text<'a>(event: &'a audit::AuditEvent, key: &str) -> Option<&'a str> {
    match event.metadata.as_ref()?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The denial records of calls from `address` `observed_by` a service for `method`: the ones
/// audited at once and the aggregated ones.
async fn denial_records(app: &TestApp, address: &str, observed_by: &str, method: &str) -> Vec<audit::AuditEvent> {
    let mut found = Vec::new();
    for action in [method, prfix_auth::denials::AGGREGATE_ACTION] {
        let events = app
            .audit_client()
            .list_events(audit::ListEventsRequest { action: action.to_owned(), page_size: 1_000, ..Default::default() })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        found.extend(events.into_iter().filter(|e| {
            e.result == audit::AuditResult::Denied as i32
                && e.actor_ip == address
                && text(e, "observed_by") == Some(observed_by)
                && (e.action == method
                    || e.metadata
                        .as_ref()
                        .and_then(|m| m.fields.get("actions"))
                        .and_then(|v| v.kind.as_ref())
                        .is_some_and(|k| matches!(k, Kind::StructValue(s) if s.fields.contains_key(method))))
        }));
    }
    found
}

/// Polls the log until the counts of the denial records reach `count` (or a deadline passes).
async fn wait_for_denials(
    app: &TestApp,
    address: &str,
    observed_by: &str,
    method: &str,
    count: f64,
) -> Vec<audit::AuditEvent> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = denial_records(app, address, observed_by, method).await;
        let total: f64 = records.iter().filter_map(|e| number(e, "count")).sum();
        if total >= count || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The app with an agent replica that relays the agent's outbox (through the gateway, with a
/// service API key, as deployed): denials written at either agent reach the log.
async fn app_relaying(
    tweak: impl FnOnce(&mut prfix_runtime::settings::CommonSettings),
) -> (TestApp, prfix_tests::app::Running) {
    let app = spawn_app_shared(tweak, |_| {}, |_| {}).await;
    let admin = app.admin_token().await;
    let key = prfix_tests::app::provision_service_key(app.auth_client_as(&admin), "agent").await;
    let mut settings = prfix_tests::app::agent_settings(&app.common);
    settings.audit_credential = Some(secrecy::SecretString::from(key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("agent with a relay");
    let relay = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));
    (app, relay)
}

const LIST_TASKS: &str = "/prfix.agent.v1.AgentService/ListTasks";
const LIST_EVENTS: &str = "/prfix.audit.v1.AuditService/ListEvents";

#[tokio::test]
async fn a_bad_token_at_the_agent_port_and_at_the_audit_port_is_refused_and_audited() {
    let (app, _relay) = app_relaying(|_| {}).await;
    let bad = forged();
    let at_agent = AgentServiceClient::with_interceptor(channel_to(app.agent.addr), Bearer::new(&bad))
        .list_tasks(agent::ListTasksRequest::default())
        .await;
    assert_eq!(at_agent.expect_err("refused").code(), Code::Unauthenticated);
    let at_audit = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&bad))
        .list_events(audit::ListEventsRequest::default())
        .await;
    assert_eq!(at_audit.expect_err("refused").code(), Code::Unauthenticated);

    // The agent's record goes through its outbox, the audit service's straight into its log.
    for (observed_by, method) in [("agent", LIST_TASKS), ("audit", LIST_EVENTS)] {
        let records = wait_for_denials(&app, "127.0.0.1", observed_by, method, 1.0).await;
        assert_eq!(records.len(), 1, "one record of the denial at the {observed_by} port: {records:?}");
        let record = &records[0];
        assert_eq!(record.action, method);
        assert_eq!(record.actor_ip, "127.0.0.1");
        assert_eq!(record.actor.as_ref().map(|a| a.subject.as_str()), Some("anonymous"), "never the token's claim");
        assert!(text(record, "reason").is_some_and(|r| r.contains("rejected")), "{record:?}");
    }
}

/// Floods `call` with `n` forged tokens; returns (unauthenticated, exhausted) and checks every
/// exhausted answer carries retry information.
async fn flood<F, Fut>(n: usize, mut call: F) -> (usize, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let (mut unauthenticated, mut exhausted) = (0, 0);
    for i in 0..n {
        let status = call().await.expect_err("a forged token is refused");
        match status.code() {
            Code::Unauthenticated => unauthenticated += 1,
            Code::ResourceExhausted => {
                assert!(status.metadata().get("retry-after").is_some(), "retry information in the trailers");
                exhausted += 1;
            }
            other => panic!("call {i} got {other:?}: {status:?}"),
        }
    }
    (unauthenticated, exhausted)
}

/// Failed verifications counted so far (every forged token that reaches the verifier is one).
async fn rejected(app: &TestApp) -> f64 {
    let text = metrics::scrape(app.admin.agent).await;
    metrics::sum(&text, "prfix_auth_failures_total", &[("reason", "Rejected")]).unwrap_or(0.0)
}

#[tokio::test]
async fn a_flood_of_bad_tokens_from_one_address_is_refused_before_any_key_and_audited_as_a_few_counted_records() {
    const N: usize = 500;
    const BURST: u32 = 20;
    const WINDOW_MS: u64 = 3_000;
    let (app, _relay) = app_relaying(|common| {
        common.unauthenticated_limit = Quota { per_minute: 6, burst: BURST };
        common.denial_audit_window_ms = WINDOW_MS;
    })
    .await;
    let bad = forged();
    let at_agent = AgentServiceClient::with_interceptor(from_flooder(app.agent.addr), Bearer::new(&bad));
    let audit_port = AuditServiceClient::with_interceptor(from_flooder(app.audit.addr), Bearer::new(&bad));
    let gateway = AgentServiceClient::with_interceptor(from_flooder(app.gateway.addr), Bearer::new(&bad));
    let targets: Vec<(&str, &str)> = vec![("agent", LIST_TASKS), ("audit", LIST_EVENTS), ("gateway", LIST_TASKS)];
    for (observed_by, method) in targets {
        let before = rejected(&app).await;
        let started = Instant::now();
        let (unauthenticated, exhausted) = match observed_by {
            "agent" => {
                flood(N, || {
                    let mut c = at_agent.clone();
                    async move { c.list_tasks(agent::ListTasksRequest::default()).await.map(|_| ()) }
                })
                .await
            }
            "audit" => {
                flood(N, || {
                    let mut c = audit_port.clone();
                    async move { c.list_events(audit::ListEventsRequest::default()).await.map(|_| ()) }
                })
                .await
            }
            _ => {
                flood(N, || {
                    let mut c = gateway.clone();
                    async move { c.list_tasks(agent::ListTasksRequest::default()).await.map(|_| ()) }
                })
                .await
            }
        };
        let elapsed = started.elapsed();
        // Past the budget the refusals come before any key: only the first BURST (and the few the
        // budget refilled during the flood) were verified at all.
        let verified = rejected(&app).await - before;
        let refilled = (elapsed.as_secs_f64() / 10.0).ceil() as usize;
        assert!(
            (BURST as usize..=BURST as usize + refilled).contains(&unauthenticated),
            "{observed_by}: {unauthenticated} verified and refused, {exhausted} refused before verification"
        );
        assert_eq!(unauthenticated + exhausted, N);
        assert_eq!(verified, unauthenticated as f64, "{observed_by}: failed verifications");

        let records = wait_for_denials(&app, &FLOODER.to_string(), observed_by, method, N as f64).await;
        let total: f64 = records.iter().filter_map(|e| number(e, "count")).sum();
        assert_eq!(total, N as f64, "{observed_by}: the counts add up to the flood: {records:?}");
        // One record at once per window and one counted record when it closes.
        let windows = elapsed.as_millis() as usize / WINDOW_MS as usize + 1;
        assert!(records.len() <= 2 * windows, "{observed_by}: {} records in {elapsed:?}", records.len());
        let counted = records.iter().find(|e| e.action == prfix_auth::denials::AGGREGATE_ACTION).expect("counted");
        assert_eq!(counted.actor_ip, FLOODER.to_string());
        assert!(text(counted, "first_time").is_some() && text(counted, "last_time").is_some());
    }
}

fn developer_at(addr: std::net::SocketAddr, subject: &str) -> AgentServiceClient<Authed> {
    AgentServiceClient::with_interceptor(channel_to(addr), Bearer::new(&token(subject, &[Role::Developer])))
}

#[tokio::test]
async fn a_direct_caller_at_a_service_port_hits_the_same_method_limits_as_through_the_gateway() {
    let tight = Quota { per_minute: 1, burst: 5 };
    let app = spawn_app_shared(
        |common| common.service_limits.default = tight,
        |gateway| gateway.gateway.limits.default = tight,
        |_| {},
    )
    .await;
    let count = |results: Vec<Result<(), tonic::Status>>| {
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
            assert!(refused.metadata().get("retry-after-ms").is_some(), "retry information");
        }
        admitted
    };
    let mut through_gateway = Vec::new();
    let mut gateway =
        AgentServiceClient::with_interceptor(app.channel.clone(), Bearer::new(&token("gina", &[Role::Developer])));
    for _ in 0..8 {
        through_gateway.push(gateway.list_tasks(agent::ListTasksRequest::default()).await.map(|_| ()));
    }
    let mut at_agent = Vec::new();
    let mut direct = developer_at(app.agent.addr, "dora");
    for _ in 0..8 {
        at_agent.push(direct.list_tasks(agent::ListTasksRequest::default()).await.map(|_| ()));
    }
    let mut at_audit = Vec::new();
    let mut auditor =
        AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&token("aud", &[Role::Auditor])));
    for _ in 0..8 {
        at_audit.push(auditor.list_events(audit::ListEventsRequest::default()).await.map(|_| ()));
    }
    assert_eq!(count(through_gateway), 5, "the gateway admits a burst");
    assert_eq!(count(at_agent), 5, "the agent's own port admits the same burst");
    assert_eq!(count(at_audit), 5, "the audit service's own port admits the same burst");
    // The refusals at the service ports are audited too: the first at once (the audit service's
    // in its own log), the rest counted into one record when the window closes.
    let records = wait_for_denials(&app, "127.0.0.1", "audit", LIST_EVENTS, 1.0).await;
    assert!(records.iter().any(|e| e.actor.as_ref().is_some_and(|a| a.subject == "aud")), "{records:?}");
}
