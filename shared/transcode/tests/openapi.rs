//! The OpenAPI document: every route is an operation, every `$ref` resolves, path parameters are
//! declared, security and roles follow the policy, schemas follow the JSON mapping.

mod common;

use prfix_transcode::{OpenApiInfo, Routes, openapi};
use serde_json::{Value, json};

fn info() -> OpenApiInfo {
    OpenApiInfo { title: "prfix".into(), version: "v1".into(), description: "The prfix API.".into() }
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_api_document_is_complete_and_consistent() {
    let (routes, pool) = Routes::prfix().expect("routes build");
    let doc = openapi(&routes, &pool, info());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "prfix");

    for route in routes.iter() {
        let path = route.template.openapi_path();
        let method = route.http_method.as_str().to_ascii_lowercase();
        let operation = &doc["paths"][&path][&method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert_eq!(operation["x-prfix-grpc-method"], route.grpc_path());
        assert!(operation["responses"]["default"]["content"]["application/problem+json"].is_object());
        // Every `{param}` of the path is a declared, required path parameter.
        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        let in_path: Vec<&str> =
            path.split('{').skip(1).map(|rest| rest.split('}').next().expect("closing brace")).collect();
        assert_eq!(declared, in_path, "{path}");
        let description = operation["description"].as_str().expect("description");
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{path} has no summary");
        if operation["security"] == json!([]) {
            assert!(description.contains("Public"), "{description}");
        } else {
            assert_eq!(operation["security"], json!([{ "bearerAuth": [] }]));
            let roles: Vec<&str> =
                operation["x-prfix-roles"].as_array().expect("roles").iter().filter_map(Value::as_str).collect();
            assert!(!roles.is_empty(), "{path}");
            assert!(description.contains(&format!("Roles: {}", roles.join(", "))), "{description}");
        }
    }
    let operations: usize =
        doc["paths"].as_object().expect("paths").values().map(|item| item.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(operations, routes.len());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        let name = reference.strip_prefix("#/components/schemas/").expect("a component reference");
        assert!(doc["components"]["schemas"][name].is_object(), "{reference} does not resolve");
    }
}

#[test]
fn a_webhook_takes_its_body_raw_and_no_token() {
    let (routes, pool) = Routes::prfix().expect("routes build");
    let doc = openapi(&routes, &pool, info());
    let deliver = &doc["paths"]["/v1/forges/{forge}/webhook"]["post"];
    assert_eq!(deliver["security"], json!([]));
    assert!(deliver["description"].as_str().is_some_and(|d| d.contains("forge's signature")), "{deliver}");
    let content = deliver["requestBody"]["content"].as_object().expect("a request body");
    assert_eq!(content.keys().collect::<Vec<_>>(), ["*/*"], "any content type, unparsed");
}

#[test]
fn security_roles_and_streaming_follow_the_proto() {
    let (routes, pool) = Routes::prfix().expect("routes build");
    let doc = openapi(&routes, &pool, info());
    let login = &doc["paths"]["/v1/auth/login"]["post"];
    assert_eq!(login["security"], json!([]));
    assert_eq!(login["operationId"], "AuthService.Login");
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/prfix.auth.v1.LoginRequest"
    );
    let review = &doc["paths"]["/v1/tasks:review"]["post"];
    assert_eq!(review["x-prfix-roles"], json!(["admin", "developer"]));
    assert!(review["description"].as_str().expect("description").contains("Roles: admin, developer"));
    let watch = &doc["paths"]["/v1/tasks/{task_id}:watch"]["get"];
    let content = &watch["responses"]["200"]["content"];
    assert!(content["application/x-ndjson"]["schema"]["$ref"].is_string());
    assert!(content["text/event-stream"]["schema"]["$ref"].is_string());
    assert!(watch["responses"]["200"]["description"].as_str().expect("text").contains("one JSON object per line"));
    let names: Vec<&str> =
        watch["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, vec!["task_id", "afterSequence"]);
    let events = &doc["paths"]["/v1/audit/events"]["get"]["parameters"];
    let start = events.as_array().expect("params").iter().find(|p| p["name"] == "startTime").expect("startTime");
    assert_eq!(start["schema"], json!({ "type": "string", "format": "date-time" }));
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!((bearer["type"].as_str(), bearer["scheme"].as_str()), (Some("http"), Some("bearer")));
    assert!(bearer["description"].as_str().expect("text").contains("API key"));
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for key in ["type", "title", "status", "detail", "code", "request_id", "errors"] {
        assert!(problem[key].is_object(), "Problem.{key}");
    }
}

#[test]
fn schemas_follow_the_json_mapping() {
    let routes = Routes::from_pool(&common::pool(&common::standard())).expect("routes build");
    let pool = common::pool(&common::standard());
    let doc = openapi(&routes, &pool, info());
    let schemas = &doc["components"]["schemas"];
    let thing = &schemas["prfix.test.v1.Thing"];
    assert_eq!(thing["additionalProperties"], false);
    let props = &thing["properties"];
    assert_eq!(props["id"], json!({ "type": "string", "format": "int64" }));
    assert_eq!(props["bigCount"], json!({ "type": "string", "format": "int64" }));
    assert_eq!(props["count"], json!({ "type": "integer", "format": "int32" }));
    assert_eq!(props["ratio"], json!({ "type": "number", "format": "double" }));
    assert_eq!(props["flag"], json!({ "type": "boolean" }));
    assert_eq!(props["blob"], json!({ "type": "string", "contentEncoding": "base64" }));
    assert_eq!(props["kind"], json!({ "$ref": "#/components/schemas/prfix.test.v1.Kind" }));
    assert_eq!(props["kinds"]["items"], json!({ "$ref": "#/components/schemas/prfix.test.v1.Kind" }));
    assert_eq!(props["tags"], json!({ "type": "array", "items": { "type": "string" } }));
    assert_eq!(props["labels"], json!({ "type": "object", "additionalProperties": { "type": "string" } }));
    assert_eq!(props["when"], json!({ "type": "string", "format": "date-time" }));
    assert_eq!(props["ttl"]["type"], "string");
    assert!(props["ttl"]["pattern"].is_string());
    assert_eq!(props["limit"], json!({ "type": ["integer", "null"], "format": "int32" }));
    assert!(props["first"]["description"].as_str().expect("oneof note").contains("oneof `choice`"));
    assert_eq!(schemas["prfix.test.v1.Kind"]["enum"], json!(["KIND_UNSPECIFIED", "KIND_A", "KIND_B"]));
    // The recursive message is written once and refers to itself.
    assert_eq!(
        schemas["prfix.test.v1.Inner"]["properties"]["deeper"]["$ref"],
        "#/components/schemas/prfix.test.v1.Inner"
    );
    // Query parameters of a GET: nested scalars with dots, not the map, not beyond the depth limit.
    let list = doc["paths"]["/test/v1/things"]["get"]["parameters"].as_array().expect("params").clone();
    let names: Vec<&str> = list.iter().filter_map(|p| p["name"].as_str()).collect();
    for wanted in ["name", "id", "inner.title", "inner.kind", "inner.deeper.title", "tags", "when", "ttl", "limit"] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }
    assert!(!names.contains(&"labels") && !names.contains(&"inner"));
    // The path variable's field is not also a query parameter; a body field neither.
    let patch = doc["paths"]["/test/v1/things/{name}"]["patch"]["parameters"].as_array().expect("params").clone();
    let names: Vec<&str> = patch.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "name").count(), 1);
    assert!(!names.iter().any(|n| n.starts_with("inner")), "{names:?}");
    // `response_body` and the additional binding.
    let watch = &doc["paths"]["/test/v1/things/{name}:watch"]["get"]["responses"]["200"]["content"];
    assert_eq!(watch["application/x-ndjson"]["schema"]["$ref"], "#/components/schemas/prfix.test.v1.Inner");
    assert_eq!(doc["paths"]["/test/v1/all"]["get"]["operationId"], "TestService.List_1");
}
