//! A test API (`prfix.test.v1`) added to the prfix pool, written as a JSON `FileDescriptorProto`
//! so that each test can give the service the HTTP rules it needs.

#![allow(dead_code)]

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

/// A field of the test messages.
fn field(name: &str, number: u32, ty: &str, extra: Value) -> Value {
    let mut field = json!({ "name": name, "number": number, "label": "LABEL_OPTIONAL", "type": ty });
    if let (Some(field), Some(extra)) = (field.as_object_mut(), extra.as_object()) {
        field.extend(extra.clone());
    }
    field
}

fn message_field(name: &str, number: u32, type_name: &str) -> Value {
    field(name, number, "TYPE_MESSAGE", json!({ "typeName": type_name }))
}

/// The test file with a `TestService` of `methods` (each `{name, rule, streaming?}`).
pub fn file(methods: &[(&str, Value)]) -> Value {
    let thing = ".prfix.test.v1.Thing";
    let methods: Vec<Value> = methods
        .iter()
        .map(|(name, rule)| {
            let streaming = name.starts_with("Watch");
            json!({
                "name": name,
                "inputType": thing,
                "outputType": thing,
                "serverStreaming": streaming,
                "options": { "[google.api.http]": rule },
            })
        })
        .collect();
    json!({
        "name": "prfix/test/v1/test.proto",
        "package": "prfix.test.v1",
        "dependency": [
            "google/api/annotations.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/wrappers.proto",
        ],
        "syntax": "proto3",
        "enumType": [{
            "name": "Kind",
            "value": [
                { "name": "KIND_UNSPECIFIED", "number": 0 },
                { "name": "KIND_A", "number": 1 },
                { "name": "KIND_B", "number": 2 },
            ],
        }],
        "messageType": [
            {
                "name": "Inner",
                "field": [
                    field("title", 1, "TYPE_STRING", json!({})),
                    field("kind", 2, "TYPE_ENUM", json!({ "typeName": ".prfix.test.v1.Kind" })),
                    message_field("when", 3, ".google.protobuf.Timestamp"),
                    field("big", 4, "TYPE_INT64", json!({})),
                    message_field("deeper", 5, ".prfix.test.v1.Inner"),
                ],
            },
            {
                "name": "Thing",
                "field": [
                    field("name", 1, "TYPE_STRING", json!({})),
                    field("id", 2, "TYPE_INT64", json!({})),
                    message_field("inner", 3, ".prfix.test.v1.Inner"),
                    field("tags", 4, "TYPE_STRING", json!({ "label": "LABEL_REPEATED" })),
                    field("flag", 5, "TYPE_BOOL", json!({})),
                    field("kind", 6, "TYPE_ENUM", json!({ "typeName": ".prfix.test.v1.Kind" })),
                    message_field("when", 7, ".google.protobuf.Timestamp"),
                    field("count", 8, "TYPE_INT32", json!({})),
                    field("kinds", 9, "TYPE_ENUM", json!({ "typeName": ".prfix.test.v1.Kind", "label": "LABEL_REPEATED" })),
                    field("big_count", 10, "TYPE_UINT64", json!({})),
                    field("labels", 11, "TYPE_MESSAGE", json!({
                        "typeName": ".prfix.test.v1.Thing.LabelsEntry",
                        "label": "LABEL_REPEATED",
                    })),
                    message_field("ttl", 12, ".google.protobuf.Duration"),
                    message_field("limit", 13, ".google.protobuf.Int32Value"),
                    field("blob", 14, "TYPE_BYTES", json!({})),
                    field("ratio", 15, "TYPE_DOUBLE", json!({})),
                    field("first", 16, "TYPE_STRING", json!({ "oneofIndex": 0 })),
                    field("second", 17, "TYPE_STRING", json!({ "oneofIndex": 0 })),
                ],
                "nestedType": [{
                    "name": "LabelsEntry",
                    "field": [field("key", 1, "TYPE_STRING", json!({})), field("value", 2, "TYPE_STRING", json!({}))],
                    "options": { "mapEntry": true },
                }],
                "oneofDecl": [{ "name": "choice" }],
            },
        ],
        "service": [{ "name": "TestService", "method": methods }],
    })
}

/// The prfix pool with the test file of `methods` added.
pub fn try_pool(methods: &[(&str, Value)]) -> Result<DescriptorPool, String> {
    let mut pool = DescriptorPool::decode(prfix_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())?;
    let desc = pool.get_message_by_name("google.protobuf.FileDescriptorProto").ok_or("no FileDescriptorProto")?;
    // The API does not import wrappers.proto; the test API needs one wrapper of it.
    let wrappers = json!({
        "name": "google/protobuf/wrappers.proto",
        "package": "google.protobuf",
        "syntax": "proto3",
        "messageType": [{ "name": "Int32Value", "field": [field("value", 1, "TYPE_INT32", json!({}))] }],
    });
    for file in [wrappers, file(methods)] {
        let message = DynamicMessage::deserialize(desc.clone(), file).map_err(|e| e.to_string())?;
        pool.decode_file_descriptor_proto(message.encode_to_vec().as_slice()).map_err(|e| e.to_string())?;
    }
    Ok(pool)
}

/// [`try_pool`] for tests.
pub fn pool(methods: &[(&str, Value)]) -> DescriptorPool {
    try_pool(methods).expect("test pool builds")
}

/// The methods most tests use: one of each template form and body rule.
pub fn standard() -> Vec<(&'static str, Value)> {
    vec![
        ("Get", json!({ "get": "/test/v1/{name=things/*}" })),
        ("GetItem", json!({ "get": "/test/v1/{name=things/*}/items/{id}" })),
        ("GetNested", json!({ "get": "/test/v1/nested/{inner.title}" })),
        ("GetFile", json!({ "get": "/test/v1/files/{name=**}" })),
        ("Cancel", json!({ "post": "/test/v1/{name=things/*}:cancel", "body": "*" })),
        ("Patch", json!({ "patch": "/test/v1/things/{name}", "body": "inner" })),
        ("Delete", json!({ "delete": "/test/v1/things/{name}" })),
        ("List", json!({ "get": "/test/v1/things", "additionalBindings": [{ "get": "/test/v1/all" }] })),
        ("Search", json!({ "custom": { "kind": "SEARCH", "path": "/test/v1/things" } })),
        ("WatchThing", json!({ "get": "/test/v1/things/{name}:watch", "responseBody": "inner" })),
    ]
}
