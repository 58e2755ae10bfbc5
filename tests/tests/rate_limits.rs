//! Rate limits shared by gateway replicas through Redis, and what happens when Redis goes away.

use prfix_auth::Role;
use prfix_gateway::ratelimit::Quota;
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_tests::app::{Authed, channel_to};
use prfix_tests::auth::{Bearer, token};
use prfix_tests::redis_server::PrivateRedis;
use prfix_tests::spawn_app_with;
use secrecy::SecretString;
use tonic::Code;

fn tight(settings: &mut prfix_gateway::Settings, redis_url: Option<&str>) {
    settings.gateway.limits.default = Quota { per_minute: 1, burst: 5 };
    if let Some(url) = redis_url {
        settings.common.redis_url = Some(SecretString::from(url.to_owned()));
    }
}

fn client(addr: std::net::SocketAddr, subject: &str) -> AgentServiceClient<Authed> {
    AgentServiceClient::with_interceptor(channel_to(addr), Bearer::new(&token(subject, &[Role::Developer])))
}

/// Calls ListTasks `n` times alternating between the clients; returns (admitted, refused) and
/// fails on any answer other than OK or RESOURCE_EXHAUSTED.
async fn alternate(clients: &mut [AgentServiceClient<Authed>], n: usize) -> (usize, usize) {
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..n {
        let k = i % clients.len();
        match clients[k].list_tasks(agent::ListTasksRequest::default()).await {
            Ok(_) => admitted += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.metadata().get("retry-after").is_some(), "retry information in the trailers");
                refused += 1;
            }
            Err(status) => panic!("call {i} got {status:?}; the limiter must answer OK or RESOURCE_EXHAUSTED"),
        }
    }
    (admitted, refused)
}

#[tokio::test]
async fn two_gateways_sharing_redis_admit_one_limits_worth_between_them() {
    let app = spawn_app_with(|s| tight(s, None)).await;
    let second = app.spawn_gateway(|s| tight(s, None)).await;
    let mut clients = [client(app.gateway.addr, "alice"), client(second.addr, "alice")];
    let (admitted, refused) = alternate(&mut clients, 30).await;
    assert_eq!(admitted, 5, "the burst of one limit, shared by both replicas");
    assert_eq!(refused, 25);
    // Another subject has its own budget.
    let mut other = [client(app.gateway.addr, "bob")];
    assert_eq!(alternate(&mut other, 1).await, (1, 0));
}

#[tokio::test]
async fn a_busy_key_takes_tokens_ahead_yet_replicas_never_admit_more_than_the_shared_limit() {
    // A burst of 40 (and almost no refill): a key leases up to 4 tokens at a time.
    const BURST: u32 = 40;
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let roomy = |s: &mut prfix_gateway::Settings| {
        s.gateway.limits.default = Quota { per_minute: 1, burst: BURST };
        s.common.redis_url = Some(SecretString::from(url.clone()));
    };
    let app = spawn_app_with(roomy).await;
    let second = app.spawn_gateway(roomy).await;
    let mut clients = [client(app.gateway.addr, "carol"), client(second.addr, "carol")];
    let before = redis.command_calls("evalsha").await;
    let (admitted, refused) = alternate(&mut clients, 60).await;
    let round_trips = redis.command_calls("evalsha").await - before;
    // Never more than the limit; at most 3 spare tokens per replica held back unspent.
    assert!(admitted <= BURST as usize, "{admitted} admitted over a limit of {BURST}");
    assert!(admitted >= BURST as usize - 2 * 3, "only {admitted} of {BURST} admitted");
    assert_eq!(admitted + refused, 60);
    // Each replica asks for 1, 2, 4, 4... tokens at a time, and once per refused call.
    assert!(
        round_trips <= (refused + admitted / 2) as u64,
        "{round_trips} round trips to Redis for 60 calls ({admitted} admitted)"
    );
    println!("60 calls, {admitted} admitted, {round_trips} round trips to Redis");
}

#[tokio::test]
async fn with_redis_down_limits_fall_back_to_local_ones_and_are_shared_again_when_it_returns() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(|s| tight(s, Some(&url))).await;
    let second = app.spawn_gateway(|s| tight(s, Some(&url))).await;
    let gateways = [app.gateway.addr, second.addr];
    let clients_for = |subject: &str| gateways.map(|addr| client(addr, subject));

    // Shared while Redis is up.
    assert_eq!(alternate(&mut clients_for("before"), 12).await, (5, 7));

    // Redis dies: every call still gets an answer, limited by each replica's own limiter (never
    // unlimited, never an error from the limiter).
    redis.stop();
    let started = std::time::Instant::now();
    let (admitted, refused) = alternate(&mut clients_for("during"), 30).await;
    assert_eq!(admitted, 10, "each replica's local burst: 5 + 5");
    assert_eq!(refused, 20);
    println!("30 calls with redis down answered in {:?}", started.elapsed());

    // Redis returns: once the clients reconnect, limits are shared again.
    redis.restart().await;
    let mut shared_again = false;
    for attempt in 0..40 {
        let mut probe = clients_for(&format!("after-{attempt}"));
        // Five on the first replica use up the shared budget; the second must then refuse.
        let (first, _) = alternate(&mut probe[..1], 5).await;
        let (then, _) = alternate(&mut probe[1..], 1).await;
        if first == 5 && then == 0 {
            shared_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(shared_again, "limits were not shared again within 10 s of Redis returning");
}

/// A limiter of the default class at `quota`, sharing its buckets through Redis under `prefix`.
async fn shared_limiter(quota: Quota, prefix: &str) -> prfix_runtime::ratelimit::Limiter {
    let common = prfix_runtime::settings::CommonSettings {
        redis_url: Some(SecretString::from(
            std::env::var("PRFIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        )),
        redis_key_prefix: prefix.to_owned(),
        ..Default::default()
    };
    let redis = prfix_runtime::redis::connect(&common).await.expect("Redis answers").expect("Redis is configured");
    let limits = prfix_runtime::ratelimit::Limits { default: quota, ..Default::default() };
    prfix_runtime::ratelimit::Limiter::new(limits, Some(redis))
}

#[tokio::test]
async fn a_quota_faster_than_one_call_a_millisecond_is_shared_through_redis_at_its_own_rate() {
    use prfix_runtime::ratelimit::Class;
    let prefix = format!("prfix-test:{}:", uuid::Uuid::new_v4().simple());
    // One call a microsecond with a burst of 1: calls a Redis round trip apart are all admitted.
    // Counted in whole milliseconds, as the shared bucket once was, this let one a millisecond by.
    let fast = shared_limiter(Quota { per_minute: 60_000_000, burst: 1 }, &prefix).await;
    let mut refused = 0;
    for _ in 0..200 {
        if fast.check(Class::Default, "sub:fast").await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "a quota of 60,000,000 a minute refused {refused} of 200 back-to-back calls");
    // 600 a minute, burst 1, on two replicas: the second replica's first call is refused by the
    // shared bucket, told to wait what is left of the 100 ms interval (not 1,000 times more or less).
    let slow = Quota { per_minute: 600, burst: 1 };
    let (first, second) = (shared_limiter(slow, &prefix).await, shared_limiter(slow, &prefix).await);
    assert!(first.check(Class::Default, "sub:slow").await.is_ok(), "the burst admits the first call");
    let denied = second.check(Class::Default, "sub:slow").await.expect_err("the shared bucket is empty");
    assert!(
        denied.retry_after > std::time::Duration::from_millis(1)
            && denied.retry_after <= std::time::Duration::from_millis(100),
        "waits {:?}",
        denied.retry_after
    );
}
