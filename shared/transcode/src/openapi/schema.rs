//! JSON Schemas (OpenAPI 3.1) of messages and enums, following the proto3 JSON mapping the
//! transcoder reads and writes: lowerCamelCase properties, 64-bit integers as strings, enums by
//! name, well-known types in their JSON forms. Messages and enums are components named by their
//! full names; every reference made is resolved by [`Schemas::finish`].

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::comments::Comments;

/// Where component schemas live.
pub(crate) const PREFIX: &str = "#/components/schemas/";

/// A message or enum whose component is still to be written.
enum Named {
    Message(MessageDescriptor),
    Enum(EnumDescriptor),
}

/// The component schemas, built as they are referenced.
pub(crate) struct Schemas<'a> {
    comments: &'a Comments,
    done: BTreeMap<String, Value>,
    queue: Vec<(String, Named)>,
}

impl<'a> Schemas<'a> {
    /// No schemas yet.
    pub(crate) fn new(comments: &'a Comments) -> Self {
        Self { comments, done: BTreeMap::new(), queue: Vec::new() }
    }

    /// The schema of a message: inline for well-known types, otherwise a reference.
    pub(crate) fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        let reference = json!({ "$ref": format!("{PREFIX}{name}") });
        self.queue.push((name, Named::Message(message.clone())));
        reference
    }

    /// The schema of a field's value (repeated as an array, maps as an object), without its
    /// description.
    pub(crate) fn field_type(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map()
            && let Kind::Message(entry) = field.kind()
        {
            let value = self.kind(&entry.map_entry_value_field().kind());
            return json!({ "type": "object", "additionalProperties": value });
        }
        let item = self.kind(&field.kind());
        if field.is_list() { json!({ "type": "array", "items": item }) } else { item }
    }

    /// The schema of a field with its comment as the description.
    pub(crate) fn field(&mut self, field: &FieldDescriptor) -> Value {
        let mut schema = self.field_type(field);
        let mut description = self.comments.field(field).unwrap_or_default().to_owned();
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            let members: Vec<String> = oneof.fields().map(|f| format!("`{}`", f.json_name())).collect();
            let note = format!("At most one of {} is set (oneof `{}`).", members.join(", "), oneof.name());
            description = if description.is_empty() { note } else { format!("{description}\n\n{note}") };
        }
        if !description.is_empty()
            && let Some(object) = schema.as_object_mut()
        {
            object.insert("description".to_owned(), Value::String(description));
        }
        schema
    }

    /// The schema of one value of a kind.
    fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({ "type": "number", "format": "double" }),
            Kind::Float => json!({ "type": "number", "format": "float" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
                json!({ "type": "string", "format": "int64" })
            }
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Kind::Message(message) => self.message(message),
            Kind::Enum(enumeration) if enumeration.full_name() == "google.protobuf.NullValue" => {
                json!({ "type": "null" })
            }
            Kind::Enum(enumeration) => {
                let name = enumeration.full_name().to_owned();
                let reference = json!({ "$ref": format!("{PREFIX}{name}") });
                self.queue.push((name, Named::Enum(enumeration.clone())));
                reference
            }
        }
    }

    /// Writes every referenced component (and what those reference) and returns them by name.
    pub(crate) fn finish(mut self) -> Map<String, Value> {
        while let Some((name, named)) = self.queue.pop() {
            if self.done.contains_key(&name) {
                continue;
            }
            // Mark first, so a message that contains itself is written once.
            self.done.insert(name.clone(), Value::Null);
            let schema = match named {
                Named::Message(message) => self.message_schema(&message),
                Named::Enum(enumeration) => self.enum_schema(&enumeration),
            };
            self.done.insert(name, schema);
        }
        self.done.into_iter().collect()
    }

    fn message_schema(&mut self, message: &MessageDescriptor) -> Value {
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), self.field(&field));
        }
        let mut schema = json!({ "type": "object", "properties": properties, "additionalProperties": false });
        if let Some(description) = self.comments.message(message) {
            schema["description"] = Value::String(description.to_owned());
        }
        schema
    }

    fn enum_schema(&self, enumeration: &EnumDescriptor) -> Value {
        let names: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
        let mut lines: Vec<String> = self.comments.enumeration(enumeration).map(str::to_owned).into_iter().collect();
        let values: Vec<String> = enumeration
            .values()
            .filter_map(|v| self.comments.value(&v).map(|c| format!("- `{}`: {}", v.name(), c.replace('\n', " "))))
            .collect();
        if !values.is_empty() {
            lines.push(values.join("\n"));
        }
        let mut schema = json!({ "type": "string", "enum": names });
        if !lines.is_empty() {
            schema["description"] = Value::String(lines.join("\n\n"));
        }
        schema
    }
}

/// The inline schema of a well-known type, in its JSON form.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    let nullable = |schema: Value| {
        let mut schema = schema;
        if let Some(kind) = schema.get("type").cloned() {
            schema["type"] = json!([kind, "null"]);
        }
        schema
    };
    let schema = match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({
            "type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "A duration in seconds with up to nine fractional digits and an `s` suffix, e.g. `1.5s`.",
        }),
        "google.protobuf.FieldMask" => json!({
            "type": "string",
            "description": "Comma-separated field paths in lowerCamelCase, e.g. `roles,disabled`.",
        }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.Empty" => json!({ "type": "object", "additionalProperties": false }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
            "additionalProperties": true,
        }),
        "google.protobuf.DoubleValue" => nullable(json!({ "type": "number", "format": "double" })),
        "google.protobuf.FloatValue" => nullable(json!({ "type": "number", "format": "float" })),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            nullable(json!({ "type": "string", "format": "int64" }))
        }
        "google.protobuf.Int32Value" => nullable(json!({ "type": "integer", "format": "int32" })),
        "google.protobuf.UInt32Value" => nullable(json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })),
        "google.protobuf.BoolValue" => nullable(json!({ "type": "boolean" })),
        "google.protobuf.StringValue" => nullable(json!({ "type": "string" })),
        "google.protobuf.BytesValue" => nullable(json!({ "type": "string", "contentEncoding": "base64" })),
        _ => return None,
    };
    Some(schema)
}
