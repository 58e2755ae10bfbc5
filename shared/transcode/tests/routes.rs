//! Routes of the real API and of a test API: every method is routed, `find` picks the right
//! route with the right bindings, and bad rules are refused at start-up.

mod common;

use http::Method;
use prfix_transcode::{BodyRule, Match, PathTemplate, RouteError, Routes};
use serde_json::json;

fn found<'a>(routes: &'a Routes, method: &Method, path: &str) -> prfix_transcode::RouteMatch<'a> {
    match routes.find(method, path) {
        Match::Found(found) => found,
        other => panic!("{method} {path}: {other:?}"),
    }
}

#[test]
fn every_method_of_every_prfix_service_has_a_route_that_finds_itself() {
    let (routes, pool) = Routes::prfix().expect("routes build");
    let mut methods = 0;
    for service in pool.services().filter(|s| s.package_name().starts_with("prfix.")) {
        for method in service.methods() {
            methods += 1;
            let route = routes
                .iter()
                .find(|r| r.method.full_name() == method.full_name())
                .unwrap_or_else(|| panic!("{} has no google.api.http rule", method.full_name()));
            assert_eq!(route.grpc_path(), format!("/{}/{}", service.full_name(), method.name()));
        }
    }
    assert!(methods >= 26, "only {methods} methods");
    for route in routes.iter() {
        let (path, bindings) = route.template.example();
        let found = found(&routes, &route.http_method, &path);
        assert_eq!(found.route.grpc_path(), route.grpc_path(), "{path}");
        assert_eq!(found.bindings, bindings, "{path}");
    }
}

#[test]
fn the_api_routes_resolve_as_documented() {
    let (routes, _) = Routes::prfix().expect("routes build");
    let get = found(&routes, &Method::GET, "/v1/tasks/abc");
    assert_eq!(get.route.grpc_path(), "/prfix.agent.v1.AgentService/GetTask");
    assert_eq!(get.bindings, vec![("task_id".to_owned(), "abc".to_owned())]);
    let watch = found(&routes, &Method::GET, "/v1/tasks/abc:watch");
    assert_eq!(watch.route.grpc_path(), "/prfix.agent.v1.AgentService/WatchTask");
    assert!(watch.route.server_streaming());
    assert_eq!(watch.bindings, vec![("task_id".to_owned(), "abc".to_owned())]);
    let cancel = found(&routes, &Method::POST, "/v1/tasks/abc:cancel");
    assert_eq!(cancel.route.grpc_path(), "/prfix.agent.v1.AgentService/CancelTask");
    assert_eq!(cancel.route.body, BodyRule::Whole);
    let review = found(&routes, &Method::POST, "/v1/tasks:review?x=1");
    assert_eq!(review.route.grpc_path(), "/prfix.agent.v1.AgentService/CreateReview");
    let revoke = found(&routes, &Method::POST, "/v1/api-keys/k%201:revoke");
    assert_eq!(revoke.bindings, vec![("key_id".to_owned(), "k 1".to_owned())]);
    assert!(matches!(
        routes.find(&Method::GET, "/v1/tasks:review"),
        Match::MethodNotAllowed { allowed } if allowed == vec![Method::POST]
    ));
    assert!(matches!(routes.find(&Method::GET, "/v1/nothing"), Match::NotFound));
    assert!(matches!(routes.find(&Method::GET, "/v1/tasks/"), Match::NotFound));
    assert!(matches!(routes.find(&Method::GET, "/v1/tasks/abc/"), Match::NotFound));
}

#[test]
fn test_api_routes_cover_every_template_form() {
    let routes = Routes::from_pool(&common::pool(&common::standard())).expect("routes build");
    let get = found(&routes, &Method::GET, "/test/v1/things/t1");
    assert_eq!(get.route.method.name(), "Get");
    assert_eq!(get.bindings, vec![("name".to_owned(), "things/t1".to_owned())]);
    let item = found(&routes, &Method::GET, "/test/v1/things/t1/items/7");
    assert_eq!(item.bindings, vec![("name".into(), "things/t1".into()), ("id".into(), "7".into())]);
    let nested = found(&routes, &Method::GET, "/test/v1/nested/a%2Fb");
    assert_eq!(nested.bindings, vec![("inner.title".to_owned(), "a/b".to_owned())]);
    let file = found(&routes, &Method::GET, "/test/v1/files/a/b%2Fc/d%20e");
    assert_eq!(file.bindings, vec![("name".to_owned(), "a/b%2Fc/d e".to_owned())]);
    let cancel = found(&routes, &Method::POST, "/test/v1/things/t1:cancel");
    assert_eq!((cancel.route.method.name(), cancel.bindings[0].1.as_str()), ("Cancel", "things/t1"));
    // A verb route wins over a route whose variable would take the `:watch` too.
    let watch = found(&routes, &Method::GET, "/test/v1/things/t1:watch");
    assert_eq!(watch.route.method.name(), "WatchThing");
    assert_eq!(watch.route.response_body.as_deref(), Some("inner"));
    let additional = found(&routes, &Method::GET, "/test/v1/all");
    assert_eq!((additional.route.method.name(), additional.route.binding), ("List", 1));
    let custom = found(&routes, &Method::from_bytes(b"SEARCH").expect("method"), "/test/v1/things");
    assert_eq!(custom.route.method.name(), "Search");
    let patch = found(&routes, &Method::PATCH, "/test/v1/things/t1");
    assert_eq!(patch.route.body, BodyRule::Field("inner".to_owned()));
    match routes.find(&Method::PUT, "/test/v1/things/t1") {
        Match::MethodNotAllowed { allowed } => assert_eq!(allowed, vec![Method::DELETE, Method::GET, Method::PATCH]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(routes.find(&Method::GET, "/test/v1/things/t1/"), Match::NotFound));
    assert!(matches!(routes.find(&Method::GET, "/test/v1//things"), Match::NotFound));
    assert!(matches!(routes.find(&Method::GET, "test/v1/things"), Match::NotFound));
    assert!(matches!(routes.find(&Method::GET, "/test/v1/nested/%FF"), Match::NotFound));
}

#[test]
fn the_more_literal_template_wins() {
    let routes = Routes::from_pool(&common::pool(&[
        ("Get", json!({ "get": "/test/v1/{name=**}" })),
        ("GetItem", json!({ "get": "/test/v1/special/{name}" })),
    ]))
    .expect("routes build");
    assert_eq!(found(&routes, &Method::GET, "/test/v1/special/x").route.method.name(), "GetItem");
    assert_eq!(found(&routes, &Method::GET, "/test/v1/other/x").route.method.name(), "Get");
    assert_eq!(found(&routes, &Method::GET, "/test/v1/special/x/y").route.method.name(), "Get");
}

fn error_of(methods: &[(&str, serde_json::Value)]) -> RouteError {
    match Routes::from_pool(&common::pool(methods)) {
        Ok(_) => panic!("{methods:?} should be refused"),
        Err(error) => error,
    }
}

#[test]
fn bad_rules_are_refused_naming_the_problem() {
    let error = error_of(&[("Get", json!({ "get": "/test/{name" }))]);
    assert!(matches!(&error, RouteError::Template { source, .. } if source.template == "/test/{name"), "{error}");
    assert!(error.to_string().contains("`/test/{name`"), "{error}");

    let error = error_of(&[("Get", json!({ "get": "/test/{nope}" }))]);
    assert!(matches!(&error, RouteError::UnknownField { place: "path template", field, .. } if field == "nope"));
    let error = error_of(&[("Get", json!({ "get": "/test/{inner.nope}" }))]);
    assert!(matches!(&error, RouteError::UnknownField { field, .. } if field == "inner.nope"), "{error}");
    let error = error_of(&[("Get", json!({ "get": "/test/{inner}" }))]);
    assert!(matches!(&error, RouteError::BadVariable { .. }), "{error}");
    let error = error_of(&[("Get", json!({ "get": "/test/{tags}" }))]);
    assert!(matches!(&error, RouteError::BadVariable { .. }), "{error}");

    let error = error_of(&[("Post", json!({ "post": "/test", "body": "nope" }))]);
    assert!(matches!(&error, RouteError::UnknownField { place: "body", field, .. } if field == "nope"), "{error}");
    let error = error_of(&[("Post", json!({ "post": "/test", "responseBody": "nope" }))]);
    assert!(matches!(&error, RouteError::UnknownField { place: "response_body", .. }), "{error}");
    let error = error_of(&[("Get", json!({ "get": "/test", "body": "*" }))]);
    assert!(matches!(&error, RouteError::BadRule { .. }), "{error}");
    let error = error_of(&[("Get", json!({ "body": "*" }))]);
    assert!(matches!(&error, RouteError::BadRule { .. }), "{error}");
    let error = error_of(&[("Get", json!({ "custom": { "kind": "BAD KIND", "path": "/test" } }))]);
    assert!(matches!(&error, RouteError::BadRule { .. }), "{error}");
    let nested =
        json!({ "get": "/a", "additionalBindings": [{ "get": "/b", "additionalBindings": [{ "get": "/c" }] }] });
    assert!(matches!(error_of(&[("Get", nested)]), RouteError::BadRule { .. }));

    let error = error_of(&[("Get", json!({ "get": "/test/{name}" })), ("Other", json!({ "get": "/test/{id}" }))]);
    assert!(matches!(&error, RouteError::Duplicate { .. }), "{error}");
    assert!(error.to_string().contains("prfix.test.v1.TestService.Other"), "{error}");
    // The same path under another method is fine.
    assert!(
        Routes::from_pool(&common::pool(&[
            ("Get", json!({ "get": "/test/{name}" })),
            ("Other", json!({ "delete": "/test/{name}" })),
        ]))
        .is_ok()
    );
}

#[test]
fn template_parse_and_openapi_form() {
    let template = PathTemplate::parse("/v1/{name=projects/*/things/*}/items/{id}:cancel").expect("parses");
    assert_eq!(template.openapi_path(), "/v1/{name}/items/{id}:cancel");
    assert_eq!(template.variables().collect::<Vec<_>>(), vec!["name", "id"]);
    assert_eq!(template.verb(), Some("cancel"));
    assert_eq!(
        template.matches("/v1/projects/p/things/t/items/i%3A1:cancel"),
        Some(vec![("name".into(), "projects/p/things/t".into()), ("id".into(), "i:1".into())])
    );
    assert_eq!(template.matches("/v1/projects/p/things/t/items/i"), None);
    assert_eq!(template.matches("/v1/projects/p/other/t/items/i:cancel"), None);
}

#[test]
fn an_http_body_takes_the_bytes_unparsed_with_their_content_type() {
    use prost_reflect::Value;
    let (routes, _pool) = Routes::prfix().expect("routes build");
    let webhook = found(&routes, &Method::POST, "/v1/forges/github/webhook");
    assert!(webhook.route.raw_body());
    // Not JSON, and bytes a JSON round trip would not keep: they arrive as sent.
    let bytes = b"payload=%7B%7D \xff\x00 {\"a\":1,  \"a\":2}";
    let message = webhook.request_with_type(None, "application/x-www-form-urlencoded", bytes).expect("a message");
    assert_eq!(message.get_field_by_name("forge").as_deref(), Some(&Value::String("github".to_owned())));
    let body = message.get_field_by_name("body").expect("the body field").into_owned();
    let body = body.as_message().expect("an HttpBody");
    assert_eq!(
        body.get_field_by_name("content_type").as_deref(),
        Some(&Value::String("application/x-www-form-urlencoded".to_owned()))
    );
    let data = body.get_field_by_name("data").expect("data").into_owned();
    assert_eq!(data.as_bytes().map(|b| b.to_vec()), Some(bytes.to_vec()));
    // Routes of JSON bodies are not raw.
    assert!(!found(&routes, &Method::POST, "/v1/auth/login").route.raw_body());
}
