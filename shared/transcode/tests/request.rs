//! Building request messages from body, path and query, the errors that name what is wrong, and
//! writing messages as proto3 JSON.

mod common;

use http::Method;
use prfix_transcode::{Match, RequestError, Routes, response_json, to_json};
use prost_reflect::DynamicMessage;
use serde_json::json;

fn routes() -> Routes {
    Routes::from_pool(&common::pool(&common::standard())).expect("routes build")
}

fn request(routes: &Routes, method: Method, target: &str, body: &str) -> Result<serde_json::Value, RequestError> {
    build(routes, method, target, body).map(|message| to_json(&message))
}

fn build(routes: &Routes, method: Method, target: &str, body: &str) -> Result<DynamicMessage, RequestError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match routes.find(&method, path) {
        Match::Found(found) => found.request(query, body.as_bytes()),
        other => panic!("{method} {path}: {other:?}"),
    }
}

#[test]
fn whole_body_with_path_binding() {
    let routes = routes();
    let body = r#"{"id": "12", "inner": {"title": "x", "kind": "KIND_A"}, "tags": ["a", "b"], "name": "body",
                   "big_count": 5, "when": "2024-01-02T03:04:05.5Z"}"#;
    let message = request(&routes, Method::POST, "/test/v1/things/t1:cancel", body).expect("request builds");
    assert_eq!(
        message,
        json!({
            "name": "things/t1",
            "id": "12",
            "inner": { "title": "x", "kind": "KIND_A" },
            "tags": ["a", "b"],
            "bigCount": "5",
            "when": "2024-01-02T03:04:05.500Z",
        })
    );
    let empty = request(&routes, Method::POST, "/test/v1/things/t1:cancel", " \n").expect("empty body is {}");
    assert_eq!(empty, json!({ "name": "things/t1" }));
}

#[test]
fn field_body_with_path_and_query() {
    let routes = routes();
    let message = request(&routes, Method::PATCH, "/test/v1/things/t1?count=3", r#"{"title": "x", "big": 7}"#)
        .expect("request builds");
    assert_eq!(message, json!({ "name": "t1", "count": 3, "inner": { "title": "x", "big": "7" } }));
    let error = build(&routes, Method::PATCH, "/test/v1/things/t1?inner.title=y", "{}").expect_err("body sets inner");
    assert!(matches!(&error, RequestError::QueryParameterNotAllowed { name, .. } if name == "inner.title"), "{error}");
    let error = build(&routes, Method::PATCH, "/test/v1/things/t1?name=y", "{}").expect_err("path sets name");
    assert!(matches!(&error, RequestError::QueryParameterNotAllowed { name, .. } if name == "name"), "{error}");
    let error = build(&routes, Method::PATCH, "/test/v1/things/t1", r#"{"title": 5}"#).expect_err("wrong type");
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "inner.title"), "{error}");
}

#[test]
fn query_parameters_set_every_kind_of_field() {
    let routes = routes();
    let query = "name=n&id=9007199254740993&inner.title=t&inner.kind=KIND_B&tags=a&tags=b%20c&flag=true&kind=2\
                 &when=2024-01-02T03:04:05Z&kinds=KIND_A&kinds=2&bigCount=5&ttl=1.5s&limit=7&ratio=0.5&blob=aGk%3D\
                 &inner.deeper.title=z&first=x&inner.when=2024-01-02T03:04:05%2B01:00";
    let message = request(&routes, Method::GET, &format!("/test/v1/things?{query}"), "").expect("request builds");
    assert_eq!(
        message,
        json!({
            "name": "n",
            "id": "9007199254740993",
            "inner": {
                "title": "t",
                "kind": "KIND_B",
                "deeper": { "title": "z" },
                "when": "2024-01-02T02:04:05Z",
            },
            "tags": ["a", "b c"],
            "flag": true,
            "kind": "KIND_B",
            "when": "2024-01-02T03:04:05Z",
            "kinds": ["KIND_A", "KIND_B"],
            "bigCount": "5",
            "ttl": "1.500s",
            "limit": 7,
            "ratio": 0.5,
            "blob": "aGk=",
            "first": "x",
        })
    );
    let original = request(&routes, Method::GET, "/test/v1/things?big_count=5&flag=false", "").expect("builds");
    assert_eq!(original, json!({ "bigCount": "5" }));
}

#[test]
fn body_errors_name_the_field() {
    let routes = routes();
    let post = |body: &str| build(&routes, Method::POST, "/test/v1/things/t:cancel", body).expect_err(body);
    assert_eq!(post(r#"{"nope": 1}"#), RequestError::UnknownField { field: "nope".to_owned() });
    assert_eq!(
        post(r#"{"inner": {"deeper": {"nope": 1}}}"#),
        RequestError::UnknownField { field: "inner.deeper.nope".to_owned() }
    );
    let error = post(r#"{"count": "abc"}"#);
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "count"), "{error}");
    assert_eq!(error.field(), Some("count"));
    let error = post(r#"{"tags": ["a", 5]}"#);
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "tags[1]"), "{error}");
    let error = post(r#"{"kind": "KIND_Z"}"#);
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "kind"), "{error}");
    let error = post(r#"{"when": "yesterday"}"#);
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "when"), "{error}");
    let error = post(r#"{"first": "a", "second": "b"}"#);
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field == "choice"), "{error}");
    let error = post("[]");
    assert!(matches!(&error, RequestError::WrongType { field, .. } if field.is_empty()), "{error}");
    assert!(error.to_string().starts_with("the body has the wrong type"), "{error}");
    assert_eq!(error.field(), None);
    match post("{\n  \"id\": }") {
        RequestError::BadJson { line, column, .. } => assert_eq!((line, column), (2, 9)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(post("{} x"), RequestError::BadJson { line: 1, .. }));
    assert!(matches!(post(r#"{"id": "1""#), RequestError::BadJson { .. }));
}

#[test]
fn query_and_path_errors_name_the_parameter() {
    let routes = routes();
    let get = |target: &str| build(&routes, Method::GET, target, "").expect_err(target);
    assert_eq!(get("/test/v1/things?nope=1"), RequestError::UnknownQueryParameter { name: "nope".to_owned() });
    assert_eq!(get("/test/v1/things?inner.nope=1").field(), Some("inner.nope"));
    assert!(matches!(get("/test/v1/things?count=abc"), RequestError::BadQueryValue { name, .. } if name == "count"));
    assert!(matches!(get("/test/v1/things?flag=maybe"), RequestError::BadQueryValue { .. }));
    assert!(matches!(get("/test/v1/things?kind=KIND_Z"), RequestError::BadQueryValue { .. }));
    assert!(matches!(get("/test/v1/things?count=1&count=2"), RequestError::BadQueryValue { .. }));
    assert!(matches!(get("/test/v1/things?labels=x"), RequestError::QueryParameterNotAllowed { .. }));
    assert!(matches!(get("/test/v1/things?inner=x"), RequestError::QueryParameterNotAllowed { .. }));
    assert!(matches!(get("/test/v1/things?tags.x=1"), RequestError::QueryParameterNotAllowed { .. }));
    let error = get("/test/v1/things/t/items/abc");
    assert!(matches!(&error, RequestError::BadPathValue { field, .. } if field == "id"), "{error}");
    let error = build(&routes, Method::POST, "/test/v1/things/t:cancel?id=1", "{}").expect_err("whole body");
    assert!(matches!(error, RequestError::QueryParameterNotAllowed { .. }));
    assert_eq!(build(&routes, Method::GET, "/test/v1/things", "{}"), Err(RequestError::BodyNotAllowed));
    assert!(build(&routes, Method::GET, "/test/v1/things", " ").is_ok());
    assert!(build(&routes, Method::GET, "/test/v1/things?", "").is_ok());
}

#[test]
fn the_real_api_builds_requests() {
    let (routes, _) = Routes::prfix().expect("routes build");
    let review = r#"{"change_set": {"diff": "d"}, "options": {"minSeverity": "SEVERITY_MAJOR", "max_findings": 3}}"#;
    let message = request(&routes, Method::POST, "/v1/tasks:review", review).expect("builds");
    assert_eq!(
        message,
        json!({ "changeSet": { "diff": "d" }, "options": { "minSeverity": "SEVERITY_MAJOR", "maxFindings": 3 } })
    );
    let list = request(
        &routes,
        Method::GET,
        "/v1/audit/events?start_time=2024-01-01T00:00:00Z&result=AUDIT_RESULT_DENIED&pageSize=5",
        "",
    )
    .expect("builds");
    assert_eq!(list, json!({ "startTime": "2024-01-01T00:00:00Z", "result": "AUDIT_RESULT_DENIED", "pageSize": 5 }));
    let watch = request(&routes, Method::GET, "/v1/tasks/t-1:watch?afterSequence=9", "").expect("builds");
    assert_eq!(watch, json!({ "taskId": "t-1", "afterSequence": "9" }));
}

#[test]
fn to_json_follows_the_proto3_mapping() {
    let routes = routes();
    let message = build(&routes, Method::GET, "/test/v1/things?id=5&kind=1&when=2024-01-02T03:04:05Z&count=0", "")
        .expect("builds");
    let json = to_json(&message);
    assert_eq!(json, json!({ "id": "5", "kind": "KIND_A", "when": "2024-01-02T03:04:05Z" }));
    let watch = routes.iter().find(|r| r.method.name() == "WatchThing").expect("route");
    assert_eq!(response_json(watch, &message), json!({}));
    let nested = build(&routes, Method::GET, "/test/v1/things?inner.big=1", "").expect("builds");
    assert_eq!(response_json(watch, &nested), json!({ "big": "1" }));
    let list = routes.iter().find(|r| r.method.name() == "List").expect("route");
    assert_eq!(response_json(list, &nested), json!({ "inner": { "big": "1" } }));
}
