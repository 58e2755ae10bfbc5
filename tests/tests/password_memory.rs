//! Password hashing stays within its memory cap: during a 16-way login storm the gateway process
//! grows by at most `password_hash_memory_mib` (plus a little for the calls themselves) over what
//! it used after its first login. The gateway runs as its own process, so its resident memory is
//! the gateway's alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prfix_tests::TestDatabase;
use prfix_tests::auth::{ADMIN_PASSWORD, audit_key, keys};
use prfix_tests::processes::{Service, free_port};

const MIB: u64 = 1024 * 1024;
/// The cap under test.
const CAP_MIB: u64 = 40;
/// Room for what 16 calls in flight need besides hashing (buffers, tasks, threads' stacks).
const SLACK_MIB: u64 = 24;

/// Logs in as the admin from 127.0.0.`last`; whether it succeeded.
async fn login(gateway: SocketAddr, last: u8) -> bool {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("an HTTP client");
    client
        .post(format!("http://{gateway}/v1/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test]
async fn a_sixteen_way_login_storm_keeps_the_gateway_within_its_hashing_memory_cap() {
    let program = env!("CARGO_BIN_EXE_prfix-service");
    let db = TestDatabase::fresh();
    let data = tempfile::tempdir().expect("a temporary directory");
    let common =
        [("PRFIX_DATABASE_URL", db.url.clone()), ("PRFIX_AUTH_JWKS_FILE", keys().jwks_file.display().to_string())];
    let with = |more: Vec<(&'static str, String)>| common.iter().cloned().chain(more).collect::<Vec<_>>();
    let any = || "127.0.0.1:0".to_owned();
    let audit = Service::start(
        program,
        "audit",
        &with(vec![
            ("PRFIX_AUDIT__LISTEN", any()),
            ("PRFIX_AUDIT__ADMIN_LISTEN", any()),
            ("PRFIX_AUDIT__DATA_DIR", data.path().join("audit").display().to_string()),
            ("PRFIX_AUDIT_SIGNING_KEY_FILE", audit_key().pem_file.display().to_string()),
        ]),
    )
    .await;
    let gateway = Service::start(
        program,
        "gateway",
        &with(vec![
            ("PRFIX_GATEWAY__LISTEN", any()),
            ("PRFIX_GATEWAY__ADMIN_LISTEN", any()),
            ("PRFIX_GATEWAY__AGENT_URL", format!("http://127.0.0.1:{}", free_port())),
            ("PRFIX_GATEWAY__AUDIT_URL", format!("http://{}", audit.addr)),
            ("PRFIX_GATEWAY__DATA_DIR", data.path().join("gateway").display().to_string()),
            ("PRFIX_GATEWAY__PASSWORD_HASH_MEMORY_MIB", CAP_MIB.to_string()),
            // Every caller waits for its turn rather than being refused: the storm hashes.
            ("PRFIX_GATEWAY__PASSWORD_HASH_QUEUE_MS", "60000".to_owned()),
            ("PRFIX_SIGNING_KEY_FILE", keys().pem_file.display().to_string()),
            ("PRFIX_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ]),
    )
    .await;
    assert!(login(gateway.addr, 1).await, "the first login:\n{}", gateway.output());
    let baseline = gateway.rss_bytes();

    // Sixteen callers at once, each from its own address (the login limits are per address), four
    // logins each, while the gateway's memory is sampled.
    let peak = Arc::new(AtomicU64::new(baseline));
    let storming = Arc::new(AtomicBool::new(true));
    let gateway = Arc::new(gateway);
    let sampler = {
        let (peak, storming, gateway) = (peak.clone(), storming.clone(), gateway.clone());
        tokio::spawn(async move {
            while storming.load(Ordering::Relaxed) {
                peak.fetch_max(gateway.rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let callers = (0..16u8).map(|i| {
        let addr = gateway.addr;
        async move {
            let mut ok = 0;
            for _ in 0..4 {
                ok += usize::from(login(addr, 20 + i).await);
            }
            ok
        }
    });
    let succeeded: usize = futures::future::join_all(callers).await.into_iter().sum();
    storming.store(false, Ordering::Relaxed);
    sampler.await.expect("the sampler ends");
    peak.fetch_max(gateway.rss_bytes(), Ordering::Relaxed);

    assert_eq!(succeeded, 64, "every login of the storm succeeds:\n{}", gateway.output());
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        grown <= (CAP_MIB + SLACK_MIB) * MIB,
        "the gateway grew by {} MiB during the storm (baseline {} MiB); the cap is {CAP_MIB} MiB",
        grown / MIB,
        baseline / MIB
    );
    drop(audit);
}
