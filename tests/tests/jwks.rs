//! Services that fetch the gateway's keys from its JWKS URL: keys are fetched when needed, an unknown
//! `kid` re-fetches at most once per cooldown, and without keys nothing is accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prfix_auth::{AuthError, Jwks, KeySource, Role, SigningKey, Verifier, VerifierConfig};
use prfix_tests::auth::{AUDIENCE, ISSUER, claims, keys, token};

/// A JWKS endpoint that counts its fetches.
async fn jwks_server(jwks: Jwks) -> (String, Arc<AtomicUsize>, tokio_util::sync::CancellationToken) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
    });
    (url, fetches, stop)
}

fn verifier(url: String, cooldown: Duration) -> Verifier {
    Verifier::new(
        VerifierConfig {
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            leeway: Duration::from_secs(30),
            keys: KeySource::Url { url, cooldown },
        },
        None,
    )
    .expect("the verifier builds")
}

#[tokio::test]
async fn keys_are_fetched_on_demand_and_unknown_kids_refetch_at_most_once_per_cooldown() {
    let (url, fetches, _stop) = jwks_server(Jwks { keys: vec![keys().key.jwk().clone()] }).await;
    let verifier = verifier(url, Duration::from_secs(60));
    assert_eq!(fetches.load(Ordering::SeqCst), 0, "nothing is fetched before it is needed");
    let principal = verifier.verify(&token("alice", &[Role::Developer])).await.expect("valid");
    assert_eq!(principal.subject, "alice");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    verifier.verify(&token("bob", &[Role::Developer])).await.expect("valid, from the cache");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // A flood of tokens under keys the JWKS does not have.
    let stranger = SigningKey::generate().expect("key").0;
    for _ in 0..20 {
        let forged = stranger.sign(&claims("mallory", &[Role::Admin])).expect("signs");
        assert!(matches!(verifier.verify(&forged).await, Err(AuthError::UnknownKey(_))));
    }
    assert!(fetches.load(Ordering::SeqCst) <= 2, "fetched {} times", fetches.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_cooldown() {
    let (new_key, _) = SigningKey::generate().expect("key");
    let (url, fetches, _stop) = jwks_server(Jwks { keys: vec![keys().key.jwk().clone(), new_key.jwk().clone()] }).await;
    let verifier = verifier(url, Duration::from_millis(1));
    verifier.verify(&token("alice", &[Role::Developer])).await.expect("old key");
    let rotated = new_key.sign(&claims("alice", &[Role::Developer])).expect("signs");
    verifier.verify(&rotated).await.expect("new key from the same JWKS");
    assert!(fetches.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn without_keys_nothing_is_accepted() {
    // A port nothing listens on: the JWKS cannot be had.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let url = format!("http://{closed}/.well-known/jwks.json");
    let verifier = verifier(url, Duration::from_secs(60));
    let result = verifier.verify(&token("alice", &[Role::Admin])).await;
    assert!(matches!(result, Err(AuthError::KeysUnavailable(_))), "{result:?}");
    assert_eq!(result.expect_err("refused").to_status().code(), tonic::Code::Unavailable);
}
