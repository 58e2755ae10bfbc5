//! The edge's transport: TLS termination, and request size and header limits with clear errors.

use prfix_tests::spawn_app_with;

fn grpc_body(len: usize) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(len).expect("fits").to_be_bytes());
    body.resize(5 + len, 0);
    body
}

#[tokio::test]
async fn the_gateway_terminates_tls_for_http1_and_http2() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("prfix-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let app = spawn_app_with(|s| {
        s.gateway.tls_cert_file = Some(cert.clone());
        s.gateway.tls_key_file = Some(key.clone());
    })
    .await;
    let port = app.gateway.addr.port();
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("root");
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .expect("client");
    let jwks = client.get(format!("https://localhost:{port}/.well-known/jwks.json")).send().await.expect("https");
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers().get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));
    // gRPC over TLS negotiates HTTP/2 by ALPN.
    let grpc = client
        .post(format!("https://localhost:{port}/prfix.agent.v1.AgentService/ListTasks"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(grpc_body(0))
        .send()
        .await
        .expect("grpc over tls");
    assert_eq!(grpc.version(), reqwest::Version::HTTP_2);
    assert_eq!(grpc.headers().get("grpc-status").and_then(|v| v.to_str().ok()), Some("16"));
    // Plain text on the TLS port gets nowhere.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/.well-known/jwks.json")).await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused_with_their_own_status() {
    let app = spawn_app_with(|s| {
        s.gateway.max_request_bytes = 64 * 1024;
        s.gateway.max_header_bytes = 4 * 1024;
    })
    .await;
    let base = format!("http://{}", app.gateway.addr);
    let token = prfix_tests::auth::token("dana", &[prfix_auth::Role::Developer]);
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let big = h2
        .post(format!("{base}/prfix.agent.v1.AgentService/CreateReview"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .bearer_auth(&token)
        .body(grpc_body(200 * 1024))
        .send()
        .await
        .expect("answered");
    assert_eq!(big.status(), 413, "a body over max_request_bytes");
    assert_eq!(big.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));

    let http1 = reqwest::Client::new();
    let huge_header =
        http1.get(format!("{base}/.well-known/jwks.json")).header("x-padding", "a".repeat(16 * 1024)).send().await;
    match huge_header {
        Ok(response) => assert_eq!(response.status(), 431, "headers over max_header_bytes"),
        Err(error) => panic!("expected 431, got {error}"),
    }
}
