//! Login limits: a guesser is limited by address and by (user, address) without locking the
//! account's owner out, and an account under guessing from many addresses is throttled while a
//! correct password from a new address still gets in.
//!
//! The gateway takes the caller's address from the socket; on Linux all of 127/8 is loopback, so
//! clients bound to 127.0.0.2, 127.0.0.3, ... reach the gateway from as many addresses.

use std::net::{IpAddr, Ipv4Addr};

use prfix_gateway::auth::login_limits::LoginLimitSettings;
use prfix_gateway::ratelimit::Quota;
use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app_with;

/// A REST client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("an HTTP client")
}

/// `POST /v1/auth/login`; the HTTP status.
async fn login(client: &reqwest::Client, gateway: std::net::SocketAddr, username: &str, password: &str) -> u16 {
    client
        .post(format!("http://{gateway}/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("the gateway answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_correct_admin_login_succeeds_during_a_guessing_run_from_another_address() {
    let app = spawn_app_with(|_| {}).await;
    let gateway = app.gateway.addr;
    let guesser = client_from(2);
    let owner = client_from(1);
    let mut guesses = Vec::new();
    for round in 0..4 {
        for attempt in 0..3 {
            guesses.push(login(&guesser, gateway, "admin", &format!("guess-{round}-{attempt}-password")).await);
        }
        let status = login(&owner, gateway, "admin", ADMIN_PASSWORD).await;
        assert_eq!(status, 200, "round {round}: the admin's own login during the guessing run (guesses: {guesses:?})");
    }
    assert!(guesses.contains(&429), "the guesser is limited: {guesses:?}");
    let failed = guesses.iter().filter(|s| **s == 401).count();
    assert!(failed <= 5, "at most a burst of guesses reaches the password check: {guesses:?}");
    assert!(guesses.iter().all(|s| *s == 401 || *s == 429), "{guesses:?}");
}

#[tokio::test]
async fn an_account_guessed_from_many_addresses_is_throttled_but_a_new_address_with_the_password_gets_in() {
    let app = spawn_app_with(|s| {
        s.gateway.login_limits =
            LoginLimitSettings { account_failures: Quota { per_minute: 1, burst: 6 }, ..LoginLimitSettings::default() };
    })
    .await;
    let gateway = app.gateway.addr;
    // Eight addresses, one wrong guess each: the account's failures overflow.
    for last in 10..18 {
        let status = login(&client_from(last), gateway, "admin", "a-wrong-password-guess").await;
        assert_eq!(status, 401, "127.0.0.{last}: a first guess is checked");
    }
    // An address that guessed lately gets no further attempt at the throttled account, though
    // its own (user, address) bucket has room.
    let again = login(&client_from(11), gateway, "admin", "another-wrong-guess").await;
    assert_eq!(again, 429, "a guessing address at a throttled account");
    // A new address reaches the password check: the owner gets in.
    assert_eq!(login(&client_from(50), gateway, "admin", ADMIN_PASSWORD).await, 200, "the owner from a new address");
    // Another new address with a wrong password is checked once, then refused.
    assert_eq!(login(&client_from(51), gateway, "admin", "a-wrong-password-guess").await, 401);
    assert_eq!(login(&client_from(51), gateway, "admin", "a-wrong-password-guess").await, 429);
    // Other accounts are not throttled.
    assert_eq!(login(&client_from(11), gateway, "nobody-here", "a-wrong-password-guess").await, 401);
}
