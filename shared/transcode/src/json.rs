//! Writing messages as JSON with the proto3 mapping: lowerCamelCase names, 64-bit integers as
//! strings, enums by name, well-known types in their JSON forms (a Timestamp as RFC 3339 with `Z`,
//! a Duration as `1.5s`), fields with default values left out, as the reference mapping does.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, SerializeOptions, Value};

use crate::routes::Route;

fn options(skip_default_fields: bool) -> SerializeOptions {
    SerializeOptions::new()
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
        .use_proto_field_name(false)
        .skip_default_fields(skip_default_fields)
}

fn serialize(message: &DynamicMessage, skip_default_fields: bool) -> serde_json::Value {
    // Serializing to a `serde_json::Value` fails only for an `Any` whose type is not in the pool;
    // such a message has no JSON form, so it becomes `null`.
    message
        .serialize_with_options(serde_json::value::Serializer, &options(skip_default_fields))
        .unwrap_or(serde_json::Value::Null)
}

/// The proto3 JSON form of `message` (default-valued fields omitted). A message without a JSON
/// form (an `Any` of a type the pool does not know) gives `null`.
pub fn to_json(message: &DynamicMessage) -> serde_json::Value {
    serialize(message, true)
}

/// The HTTP response body of a route: the whole response message, or the field its rule's
/// `response_body` names (for a field with its default value: `{}`, `[]` or the default scalar).
pub fn response_json(route: &Route, message: &DynamicMessage) -> serde_json::Value {
    match route.response_body.as_deref().and_then(|name| message.descriptor().get_field_by_name(name)) {
        Some(field) => field_json(message, &field),
        None => to_json(message),
    }
}

/// The JSON form of one field's value.
fn field_json(message: &DynamicMessage, field: &FieldDescriptor) -> serde_json::Value {
    let singular_message = matches!(field.kind(), Kind::Message(_)) && !field.is_list() && !field.is_map();
    if singular_message && let Value::Message(inner) = message.get_field(field).as_ref() {
        return to_json(inner);
    }
    let mut only = DynamicMessage::new(message.descriptor());
    only.set_field(field, message.get_field(field).into_owned());
    if let Some(value) = to_json(&only).get(field.json_name()) {
        return value.clone();
    }
    // Left out as a default: the scalar's default, `[]` or `{}` (no nested messages to expand).
    serialize(&only, false).get(field.json_name()).cloned().unwrap_or(serde_json::Value::Null)
}
