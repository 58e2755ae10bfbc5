//! Every HTTP response of the gateway carries the same security headers, whatever produced it:
//! local routes, 404s, refusals by the edge, forwarded calls, upstream failures, CORS preflights.

use prfix_auth::Role;
use prfix_gateway::ratelimit::Quota;
use prfix_tests::app::TestApp;
use prfix_tests::auth::token;
use prfix_tests::spawn_app_with;

/// The golden set: name and exact value.
const EXPECTED: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), microphone=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("x-xss-protection", "0"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("x-permitted-cross-domain-policies", "none"),
];

const ORIGIN: &str = "https://app.example.com";

fn assert_secure(case: &str, response: &reqwest::Response) {
    let headers = response.headers();
    for (name, value) in EXPECTED {
        let got = headers.get(*name).and_then(|v| v.to_str().ok());
        assert_eq!(got, Some(*value), "{case}: header {name}");
        assert_eq!(headers.get_all(*name).iter().count(), 1, "{case}: {name} appears once");
    }
    for absent in ["server", "x-powered-by"] {
        assert!(headers.get(absent).is_none(), "{case}: {absent} must not be sent");
    }
}

fn grpc_status(response: &reqwest::Response) -> Option<String> {
    response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A unary gRPC call with an empty request message.
async fn grpc(client: &reqwest::Client, base: &str, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0]);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the gateway answers")
}

#[tokio::test]
async fn every_kind_of_response_carries_the_exact_security_header_set() {
    let mut app = spawn_app_with(|s| {
        s.gateway.cors_allowed_origins = vec![ORIGIN.to_owned()];
        s.gateway.limits.expensive = Quota { per_minute: 1, burst: 1 };
    })
    .await;
    let base = format!("http://{}", app.gateway.addr);
    let http1 = reqwest::Client::new();
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let developer = token("dana", &[Role::Developer]);
    let auditor = token("audrey", &[Role::Auditor]);

    let ok = http1.get(format!("{base}/.well-known/jwks.json")).send().await.expect("jwks");
    assert_eq!(ok.status(), 200);
    assert_secure("200 jwks", &ok);

    let missing = http1.get(format!("{base}/no/such/page")).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    assert_secure("404", &missing);

    let forwarded = grpc(&h2, &base, "/prfix.agent.v1.AgentService/ListTasks", Some(&developer)).await;
    assert_eq!(forwarded.status(), 200);
    assert_secure("forwarded gRPC OK", &forwarded);

    let unauthenticated = grpc(&h2, &base, "/prfix.agent.v1.AgentService/ListTasks", None).await;
    assert_eq!(grpc_status(&unauthenticated).as_deref(), Some("16"));
    assert_secure("UNAUTHENTICATED (401)", &unauthenticated);

    let forbidden = grpc(&h2, &base, "/prfix.agent.v1.AgentService/ListTasks", Some(&auditor)).await;
    assert_eq!(grpc_status(&forbidden).as_deref(), Some("7"));
    assert_secure("PERMISSION_DENIED (403)", &forbidden);

    // The expensive class allows one call: the second is refused.
    let _first = grpc(&h2, &base, "/prfix.agent.v1.AgentService/CreateReview", Some(&developer)).await;
    let limited = grpc(&h2, &base, "/prfix.agent.v1.AgentService/CreateReview", Some(&developer)).await;
    assert_eq!(grpc_status(&limited).as_deref(), Some("8"));
    assert!(limited.headers().get("retry-after").is_some(), "retry information");
    assert_secure("RESOURCE_EXHAUSTED (429)", &limited);

    // The same refusals for clients that do not speak gRPC: HTTP statuses with problem+json.
    let rest = |path: &str, bearer: Option<&str>| {
        let mut request = http1.post(format!("{base}{path}")).header("content-type", "application/json").body("{}");
        if let Some(token) = bearer {
            request = request.bearer_auth(token.to_owned());
        }
        request.send()
    };
    let http_401 = rest("/prfix.agent.v1.AgentService/ListTasks", None).await.expect("401");
    assert_eq!(http_401.status(), 401);
    assert_eq!(http_401.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    assert_secure("HTTP 401", &http_401);
    let problem: serde_json::Value = http_401.json().await.expect("problem json");
    assert_eq!((problem["status"].as_u64(), problem["code"].as_str()), (Some(401), Some("UNAUTHENTICATED")));
    let http_403 = rest("/prfix.agent.v1.AgentService/ListTasks", Some(&auditor)).await.expect("403");
    assert_eq!(http_403.status(), 403);
    assert_secure("HTTP 403", &http_403);
    let dora = token("dora", &[Role::Developer]);
    let _first = rest("/prfix.agent.v1.AgentService/CreateReview", Some(&dora)).await.expect("first");
    let http_429 = rest("/prfix.agent.v1.AgentService/CreateReview", Some(&dora)).await.expect("429");
    assert_eq!(http_429.status(), 429);
    assert!(http_429.headers().get("retry-after").is_some(), "Retry-After");
    let ratelimit = http_429.headers().get("ratelimit").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ratelimit.starts_with("limit=1, remaining=0, reset="), "{ratelimit}");
    assert_secure("HTTP 429", &http_429);

    let unknown = grpc(&h2, &base, "/nope.v1.Nope/Call", Some(&developer)).await;
    assert_eq!(grpc_status(&unknown).as_deref(), Some("12"));
    assert_secure("UNIMPLEMENTED", &unknown);

    let preflight = http1
        .request(reqwest::Method::OPTIONS, format!("{base}/prfix.agent.v1.AgentService/ListTasks"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,x-grpc-web")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(ORIGIN));
    assert!(preflight.headers().get("access-control-allow-credentials").is_none(), "no credentials mode");
    assert_secure("CORS preflight", &preflight);

    let foreign = http1
        .request(reqwest::Method::OPTIONS, format!("{base}/prfix.agent.v1.AgentService/ListTasks"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "an unlisted origin is not allowed");
    assert_secure("CORS preflight from an unlisted origin", &foreign);

    // An upstream failure (the 5xx of gRPC): the agent is down.
    app.agent.stop().await;
    let down = grpc(&h2, &base, "/prfix.agent.v1.AgentService/ListTasks", Some(&developer)).await;
    assert_eq!(grpc_status(&down).as_deref(), Some("14"));
    assert_secure("UNAVAILABLE (503)", &down);
}

async fn boom() -> &'static str {
    panic!("this handler panics on purpose")
}

#[tokio::test]
async fn a_handler_that_panics_answers_500_with_the_same_header_set() {
    // The layers the gateway puts around all of its routes, around a handler that panics.
    let router = prfix_gateway::router::secured(axum::Router::new().route("/boom", axum::routing::get(boom)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let response = reqwest::get(format!("http://{addr}/boom")).await.expect("answered");
    assert_eq!(response.status(), 500);
    assert_secure("500 from a panic", &response);
}

/// A gateway whose header and body limits are small enough to exceed in a test.
async fn small_limits() -> TestApp {
    spawn_app_with(|s| {
        s.gateway.max_header_bytes = 4 * 1024;
        s.gateway.max_request_bytes = 64 * 1024;
    })
    .await
}

#[tokio::test]
async fn headers_over_the_limit_get_431_with_the_security_headers_over_http1_and_http2() {
    let app = small_limits().await;
    let base = format!("http://{}", app.gateway.addr);
    let http1 = reqwest::Client::new();
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    for (protocol, client) in [("HTTP/1.1", &http1), ("HTTP/2", &h2)] {
        for (what, padding) in [("just over the limit", 5 * 1024), ("four times the limit", 16 * 1024)] {
            let case = format!("{protocol}, headers {what}");
            let response = client
                .get(format!("{base}/.well-known/jwks.json"))
                .header("x-padding", "a".repeat(padding))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
            assert_eq!(response.status(), 431, "{case}");
            assert_secure(&case, &response);
        }
        // Under the limit, the same request is served.
        let fine = client.get(format!("{base}/.well-known/jwks.json")).header("x-padding", "a".repeat(1024));
        assert_eq!(fine.send().await.expect("answered").status(), 200, "{protocol}: headers under the limit");
    }
}

#[tokio::test]
async fn a_rest_body_over_the_limit_on_http2_gets_413_with_the_security_headers() {
    let app = small_limits().await;
    let base = format!("http://{}", app.gateway.addr);
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let developer = token("dana", &[Role::Developer]);
    let body = serde_json::json!({ "changeSet": { "diff": "x".repeat(20 * 1024 * 1024) } }).to_string();
    let known_length = h2
        .post(format!("{base}/v1/tasks:review"))
        .bearer_auth(&developer)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("a body with a length over the limit is answered, not reset");
    assert_eq!(known_length.status(), 413);
    assert_secure("HTTP/2 REST 413, with content-length", &known_length);
    let problem: serde_json::Value = known_length.json().await.expect("problem json");
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");

    // Streamed (no content-length): the limit is met while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.as_bytes().chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = h2
        .post(format!("{base}/v1/tasks:review"))
        .bearer_auth(&developer)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("a streamed body over the limit is answered, not reset");
    assert_eq!(streamed.status(), 413);
    assert_secure("HTTP/2 REST 413, streamed", &streamed);

    // What a strict HTTP/2 client sees (curl reports a stream error for this): the 413 arrives
    // while the body is still being sent, and the stream must then not be reset.
    for declared in [true, false] {
        assert_not_reset_after_413(app.gateway.addr, &developer, body.as_bytes(), declared).await;
    }
}

/// Sends `body` (over the limit) to a REST route with a raw HTTP/2 client, reads the 413, then
/// checks that the server did not reset the stream: a second call on the same connection is
/// answered after anything the server sent for the first, so a reset would have arrived by then.
async fn assert_not_reset_after_413(addr: std::net::SocketAddr, token: &str, body: &[u8], declared: bool) {
    let case = if declared { "with content-length" } else { "without content-length" };
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("the gateway accepts");
    let (client, connection) = h2::client::handshake(tcp).await.expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("the connection is ready");
    let mut request = http::Request::post(format!("http://{addr}/v1/tasks:review"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"));
    if declared {
        request = request.header("content-length", body.len());
    }
    let request = request.body(()).expect("a valid request");
    let (response, mut send) = client.send_request(request, false).expect("the request is sent");
    // Queued whole: h2 sends it as the server's flow-control windows allow.
    send.send_data(bytes_of(body), true).expect("the body is queued");
    let response = response.await.unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
    assert_eq!(response.status(), 413, "{case}");
    let mut answer = response.into_body();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{case}: the 413's body breaks off: {e}"));
        let _ = answer.flow_control().release_capacity(chunk.len());
    }
    let mut client = client.ready().await.expect("the connection is still usable");
    let next = http::Request::get(format!("http://{addr}/.well-known/jwks.json")).body(()).expect("a valid request");
    let (next, _) = client.send_request(next, true).expect("a second request is sent");
    assert_eq!(next.await.expect("the second request is answered").status(), 200, "{case}");
    let reset = futures::future::poll_fn(|cx| std::task::Poll::Ready(send.poll_reset(cx))).await;
    assert!(reset.is_pending(), "{case}: the stream was reset after the 413: {reset:?}");
}

fn bytes_of(body: &[u8]) -> prfix_proto::prost::bytes::Bytes {
    prfix_proto::prost::bytes::Bytes::copy_from_slice(body)
}
