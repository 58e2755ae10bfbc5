//! REST/JSON through the gateway: every method reachable from its `google.api.http` rule, the
//! proto3 JSON mapping, server streams as NDJSON and server-sent events, and problem+json errors
//! for bad input that never reaches the services.

use std::time::{Duration, Instant};

use futures::StreamExt;
use prfix_tests::auth::operator_token;
use prfix_tests::{Reply, TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};

const MODEL: &str = "qwen2.5-coder:14b";

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.gateway.addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("a client")
}

/// A small real diff for task creation.
fn change_set() -> Value {
    json!({
        "diff": "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n pub fn one() -> u32 {\n-    1\n+    2\n }\n",
        "files": [{"path": "src/lib.rs", "newContent": "pub fn one() -> u32 {\n    2\n}\n"}]
    })
}

/// A path of `template` with every variable filled with a sample value.
fn sample_path(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str("00000000-0000-4000-8000-000000000000");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_method_of_the_api_answers_over_rest_on_its_route() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let pool = prost_reflect::DescriptorPool::decode(prfix_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let routes = prfix_transcode::Routes::from_pool(&pool).expect("routes");
    let mut served = std::collections::BTreeSet::new();
    let http = client();
    for route in routes.iter() {
        let path = sample_path(&route.template.openapi_path());
        let mut request = http.request(route.http_method.clone(), url(&app, &path)).bearer_auth(operator_token());
        if !matches!(route.body, prfix_transcode::BodyRule::None) {
            request = request.json(&json!({}));
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = response.text().await.unwrap_or_default();
        let what = format!("{} {path} ({}): {status} {body}", route.http_method, route.grpc_path());
        assert!(
            content_type.starts_with("application/json")
                || content_type.starts_with("application/problem+json")
                || content_type.starts_with("application/x-ndjson"),
            "{what}: content type {content_type}"
        );
        if content_type.starts_with("application/problem+json") {
            let problem: Value = serde_json::from_str(&body).expect("a problem is JSON");
            let code = problem["code"].as_str().unwrap_or_default();
            assert!(!["ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED", "UNIMPLEMENTED", "INTERNAL"].contains(&code), "{what}");
            assert!(problem["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{what}");
        }
        served.insert(route.grpc_path());
    }
    // Every method of every prfix service has a working route.
    for service in pool.services().filter(|s| s.full_name().starts_with("prfix.")) {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            assert!(served.contains(&path), "{path} has no REST route");
        }
    }
}

#[tokio::test]
async fn json_follows_the_proto3_mapping() {
    let app = spawn_app().await;
    let http = client();
    let login: Value = http
        .post(url(&app, "/v1/auth/login"))
        .json(&json!({"username": "admin", "password": prfix_tests::auth::ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let token = login["tokens"]["accessToken"].as_str().expect("lowerCamelCase names").to_owned();
    let expires = login["tokens"]["accessTokenExpireTime"].as_str().expect("a Timestamp is a string");
    assert!(expires.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(expires).is_ok(), "{expires}");
    assert_eq!(login["user"]["roles"][0], "ROLE_ADMIN", "enums by name");
    let me: Value = http
        .get(url(&app, "/v1/auth/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["subject"], "admin");
    // 64-bit integers are strings; original field names are accepted on input.
    let events: Value = http
        .get(url(&app, "/v1/audit/events?page_size=5"))
        .bearer_auth(operator_token())
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("JSON");
    let first = &events["events"][0];
    assert!(first["sequence"].is_string(), "{first}");
    assert_eq!(events["events"].as_array().map(Vec::len), Some(events["events"].as_array().map_or(0, Vec::len).min(5)));
}

#[tokio::test]
async fn a_task_created_over_rest_is_watched_as_ndjson_and_as_server_sent_events_while_it_runs() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let answer = r#"{"findings": [{"path": "src/lib.rs", "line": 2, "severity": "major", "title": "Wrong", "body": "2 is not one"}]}"#;
    app.ollama.set_default("/api/chat", Reply::chat(answer).with_delay(Duration::from_millis(250)));
    let http = client();
    for sse in [false, true] {
        let created: Value = http
            .post(url(&app, "/v1/tasks:review"))
            .bearer_auth(operator_token())
            .json(&json!({"changeSet": change_set()}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("JSON");
        let task_id = created["task"]["taskId"].as_str().expect("a task id").to_owned();
        assert_eq!(created["task"]["state"], "TASK_STATE_QUEUED");
        let mut request = http.get(url(&app, &format!("/v1/tasks/{task_id}:watch"))).bearer_auth(operator_token());
        if sse {
            request = request.header("accept", "text/event-stream");
        }
        let response = request.send().await.expect("watch");
        let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert_eq!(content_type, if sse { "text/event-stream" } else { "application/x-ndjson" });
        let started = Instant::now();
        let mut arrivals = Vec::new();
        let mut text = String::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("chunk");
            arrivals.push(started.elapsed());
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let events: Vec<Value> = if sse {
            text.split("\n\n")
                .filter(|e| !e.is_empty())
                .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("data lines")).expect("JSON event"))
                .collect()
        } else {
            text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
        };
        let sequences: Vec<&str> =
            events.iter().map(|e| e["event"]["sequence"].as_str().expect("int64 as string")).collect();
        assert_eq!(sequences.first(), Some(&"1"));
        assert!(events.iter().any(|e| e["event"]["finding"]["title"] == "Wrong"), "{text}");
        assert_eq!(events.last().map(|e| e["event"]["stateChange"]["to"].clone()), Some(json!("TASK_STATE_SUCCEEDED")));
        // The model takes four 250 ms chunks: events arrive spread over that time, not at the end.
        let spread = arrivals.last().copied().unwrap_or_default() - arrivals.first().copied().unwrap_or_default();
        assert!(arrivals.len() >= 3 && spread >= Duration::from_millis(500), "{sse}: {arrivals:?}");
    }
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    (status, response.json().await.expect("problem JSON"))
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_names_it_and_never_reaches_the_services() {
    let app = spawn_app_with(|s| s.gateway.max_request_bytes = 4096).await;
    app.ollama.set_models(&[MODEL]);
    let http = client();
    let post = |body: String| {
        http.post(url(&app, "/v1/tasks:review"))
            .bearer_auth(operator_token())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, p) = problem(post("{\"changeSet\": {".to_owned()).await.expect("sent")).await;
    assert_eq!((status, p["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("line 1")), "{p}");
    let (status, p) =
        problem(post(json!({"changeSet": change_set(), "colour": "red"}).to_string()).await.expect("sent")).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("colour")), "the unknown field is named: {p}");
    assert_eq!(p["errors"][0]["field"], "colour");
    let (status, p) = problem(post(json!({"changeSet": {"diff": 42}}).to_string()).await.expect("sent")).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("diff")), "the field of the wrong type is named: {p}");
    let (status, p) =
        problem(post(json!({"changeSet": {"diff": "x".repeat(10_000)}}).to_string()).await.expect("sent")).await;
    assert_eq!((status, p["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    let response =
        http.get(url(&app, "/v1/tasks?colour=red")).bearer_auth(operator_token()).send().await.expect("sent");
    let (status, p) = problem(response).await;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("colour")), "{p}");
    // Nothing reached the agent: no task, no model call.
    let tasks: Value = http
        .get(url(&app, "/v1/tasks"))
        .bearer_auth(operator_token())
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    assert!(tasks["tasks"].as_array().is_none_or(Vec::is_empty), "{tasks}");
    assert!(app.ollama.chat_requests().is_empty());
}

#[tokio::test]
async fn errors_of_the_services_and_of_the_router_are_problems_with_the_usual_status() {
    let app = spawn_app().await;
    let http = client();
    let (status, p) = problem(
        http.get(url(&app, "/v1/tasks/00000000-0000-4000-8000-000000000000"))
            .bearer_auth(operator_token())
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, p) = problem(http.get(url(&app, "/v1/tasks")).send().await.expect("sent")).await;
    assert_eq!((status, p["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (status, p) = problem(http.get(url(&app, "/v1/nothing-here")).send().await.expect("sent")).await;
    assert_eq!((status, p["code"].as_str()), (404, Some("ROUTE_NOT_FOUND")));
    let response = http.delete(url(&app, "/v1/tasks")).bearer_auth(operator_token()).send().await.expect("sent");
    let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (status, p) = problem(response).await;
    assert_eq!((status, p["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    assert!(allow.contains("GET"), "{allow}");
    let response = http.get(url(&app, "/openapi.json")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    assert!(doc["paths"]["/v1/tasks/{task_id}:watch"]["get"].is_object(), "{}", doc["paths"]);
}
