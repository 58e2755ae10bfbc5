//! The OpenAPI 3.1 document of the REST API, made from the same routes the transcoder serves:
//! one operation per route, with its parameters, bodies, errors (problem+json), security and
//! the roles its `prfix.options.v1.policy` requires.

mod comments;
mod policy;
mod schema;

use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::fields;
use crate::routes::{BodyRule, Route, Routes};
use comments::Comments;
use schema::{PREFIX, Schemas};

/// The name of the error schema in `components.schemas`.
const PROBLEM: &str = "Problem";
/// How deep query parameters go into nested messages (`a.b.c`).
const QUERY_DEPTH: usize = 3;
/// The methods a path item can have an operation for.
const OPERATION_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The `info` of the document.
#[derive(Debug, Clone, Default)]
pub struct OpenApiInfo {
    /// The API's title.
    pub title: String,
    /// The API's version.
    pub version: String,
    /// What the API is (Markdown).
    pub description: String,
}

/// The OpenAPI 3.1 document of `routes` (whose messages are in `pool`).
pub fn openapi(routes: &Routes, pool: &DescriptorPool, info: OpenApiInfo) -> Value {
    let comments = Comments::new(pool);
    let mut schemas = Schemas::new(&comments);
    let mut paths = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    for route in routes.iter() {
        let method = route.http_method.as_str().to_ascii_lowercase();
        if !OPERATION_METHODS.contains(&method.as_str()) {
            continue;
        }
        let service = route.method.parent_service();
        if !tags.iter().any(|t| t["name"] == service.name()) {
            let mut tag = json!({ "name": service.name(), "x-prfix-grpc-service": service.full_name() });
            if let Some(description) = comments.service(service) {
                tag["description"] = Value::String(description.to_owned());
            }
            tags.push(tag);
        }
        let operation = operation(route, pool, &comments, &mut schemas);
        let item = paths.entry(route.template.openapi_path()).or_insert_with(|| json!({}));
        item[method] = operation;
    }
    let mut components = schemas.finish();
    components.insert(PROBLEM.to_owned(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": { "title": info.title, "version": info.version, "description": info.description },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/login` (or `/v1/auth/refresh`). \
                        API keys work as bearer tokens too: send the key's secret as `Authorization: Bearer <secret>`.",
                },
            },
        },
    })
}

/// The operation of one route.
fn operation(route: &Route, pool: &DescriptorPool, comments: &Comments, schemas: &mut Schemas<'_>) -> Value {
    let service = route.method.parent_service();
    let suffix = if route.binding > 0 { format!("_{}", route.binding) } else { String::new() };
    let policy = policy::read(pool, &route.method);
    let mut description = comments.method(&route.method).unwrap_or_default().to_owned();
    let access = policy.describe();
    description = if description.is_empty() { access } else { format!("{description}\n\n{access}") };
    let mut operation = json!({
        "operationId": format!("{}.{}{suffix}", service.name(), route.method.name()),
        "tags": [service.name()],
        "description": description,
        "parameters": parameters(route, comments, schemas),
        "responses": responses(route, schemas),
        "security": if policy.public || policy.forge_signature { json!([]) } else { json!([{ "bearerAuth": [] }]) },
        "x-prfix-roles": policy.roles,
        "x-prfix-grpc-method": route.grpc_path(),
    });
    if let Some(comment) = comments.method(&route.method) {
        operation["summary"] = Value::String(comments::summary(comment));
    }
    if let Some(body) = request_body(route, schemas) {
        operation["requestBody"] = body;
    }
    operation
}

/// Path parameters for the template's variables, then query parameters for the fields that
/// neither the path nor the body sets.
fn parameters(route: &Route, comments: &Comments, schemas: &mut Schemas<'_>) -> Vec<Value> {
    let input = route.method.input();
    let mut parameters = Vec::new();
    let bound: Vec<&str> = route.template.variables().collect();
    for variable in &bound {
        let Ok(path) = fields::resolve(&input, variable) else { continue };
        let Some(leaf) = path.last() else { continue };
        let mut parameter =
            json!({ "name": variable, "in": "path", "required": true, "schema": schemas.field_type(leaf) });
        if let Some(description) = comments.field(leaf) {
            parameter["description"] = Value::String(description.to_owned());
        }
        parameters.push(parameter);
    }
    if route.body != BodyRule::Whole {
        let body = match &route.body {
            BodyRule::Field(field) => Some(field.as_str()),
            _ => None,
        };
        let mut query = Query { bound: &bound, body, comments, schemas, out: &mut parameters };
        query.message(&input, "", "", 0);
    }
    parameters
}

/// Collects query parameters through nested messages.
struct Query<'q, 's> {
    bound: &'q [&'q str],
    body: Option<&'q str>,
    comments: &'q Comments,
    schemas: &'q mut Schemas<'s>,
    out: &'q mut Vec<Value>,
}

impl Query<'_, '_> {
    /// The parameters of `message`'s fields, named `json_prefix` + JSON name.
    fn message(&mut self, message: &MessageDescriptor, proto_prefix: &str, json_prefix: &str, depth: usize) {
        for field in message.fields() {
            let proto = format!("{proto_prefix}{}", field.name());
            let name = format!("{json_prefix}{}", field.json_name());
            let covered = self.bound.iter().any(|b| *b == proto || proto.starts_with(&format!("{b}.")))
                || (depth == 0 && self.body == Some(field.name()));
            if covered {
                continue;
            }
            if fields::is_text(&field) {
                let mut parameter = json!({ "name": name, "in": "query", "schema": self.schemas.field_type(&field) });
                if field.is_list() {
                    parameter["style"] = json!("form");
                    parameter["explode"] = json!(true);
                }
                if let Some(description) = self.comments.field(&field) {
                    parameter["description"] = Value::String(description.to_owned());
                }
                self.out.push(parameter);
            } else if let prost_reflect::Kind::Message(inner) = field.kind()
                && !field.is_list()
                && !field.is_map()
                && depth + 1 < QUERY_DEPTH
            {
                self.message(&inner, &format!("{proto}."), &format!("{name}."), depth + 1);
            }
        }
    }
}

/// The request body of a route with a `body` rule.
fn request_body(route: &Route, schemas: &mut Schemas<'_>) -> Option<Value> {
    if route.raw_body() {
        // An HttpBody: the bytes as sent, of any content type, never parsed by the gateway.
        return Some(json!({
            "required": true,
            "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
        }));
    }
    let input = route.method.input();
    let schema = match &route.body {
        BodyRule::None => return None,
        BodyRule::Whole => schemas.message(&input),
        BodyRule::Field(name) => schemas.field(&input.get_field_by_name(name)?),
    };
    Some(json!({ "content": { "application/json": { "schema": schema } } }))
}

/// The 200 response (one message, or a stream of them) and the problem+json default.
fn responses(route: &Route, schemas: &mut Schemas<'_>) -> Value {
    let output = route.method.output();
    let schema = match route.response_body.as_deref().and_then(|name| output.get_field_by_name(name)) {
        Some(field) => schemas.field(&field),
        None => schemas.message(&output),
    };
    let ok = if route.server_streaming() {
        json!({
            "description": format!(
                "A stream of `{}` messages: with `application/x-ndjson` one JSON object per line, with \
                 `text/event-stream` one per server-sent event (`data:`). The schema is that of one message.",
                output.full_name()
            ),
            "content": {
                "application/x-ndjson": { "schema": schema.clone() },
                "text/event-stream": { "schema": schema },
            },
        })
    } else {
        json!({ "description": "OK", "content": { "application/json": { "schema": schema } } })
    };
    json!({
        "200": ok,
        "default": {
            "description": "An error, as RFC 9457 problem details.",
            "content": { "application/problem+json": { "schema": { "$ref": format!("{PREFIX}{PROBLEM}") } } },
        },
    })
}

/// The problem details every error response carries.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An error (RFC 9457 problem details).",
        "properties": {
            "type": { "type": "string", "format": "uri-reference", "description": "What kind of problem it is." },
            "title": { "type": "string", "description": "A short summary of the kind of problem." },
            "status": { "type": "integer", "format": "int32", "description": "The HTTP status." },
            "detail": { "type": "string", "description": "What went wrong in this request." },
            "code": { "type": "string", "description": "The gRPC status code, e.g. `NOT_FOUND`." },
            "request_id": { "type": "string", "description": "The request's id (`x-request-id`)." },
            "errors": {
                "type": "array",
                "description": "Problems with individual fields or parameters.",
                "items": {
                    "type": "object",
                    "properties": { "field": { "type": "string" }, "message": { "type": "string" } },
                },
            },
        },
        "required": ["type", "title", "status"],
    })
}
