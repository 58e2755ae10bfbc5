//! Field paths (`a.b.c`) in request messages: resolving them against a message type and setting
//! the field they name from text (a path variable or query parameter), with the proto3 JSON
//! mapping deciding how the text reads.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage};

/// Well-known message types whose JSON form is a string, number or bool, so text can set them.
const TEXT_TYPES: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// Why a field path does not name a field that text can set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FieldPathError {
    /// A segment is not a field of the message it is looked up in.
    #[error("`{segment}` is not a field of {message}")]
    Unknown {
        /// The segment.
        segment: String,
        /// The message's full name.
        message: String,
    },
    /// A segment other than the last is not a singular message field.
    #[error("`{segment}` is not a singular message field, so `.` cannot follow it")]
    NotNestable {
        /// The segment.
        segment: String,
    },
    /// The last segment is a message or map field, which text cannot set.
    #[error("`{segment}` is a message or map field and cannot be set from text")]
    NotText {
        /// The segment.
        segment: String,
    },
    /// The path is empty or has an empty segment.
    #[error("`{path}` is not a field path")]
    Empty {
        /// The path.
        path: String,
    },
}

/// Whether `field` has a JSON form text can give (scalars, enums, the well-known types in
/// [`TEXT_TYPES`]); repeated such fields are included, maps are not.
pub(crate) fn is_text(field: &FieldDescriptor) -> bool {
    match field.kind() {
        _ if field.is_map() => false,
        Kind::Message(message) => TEXT_TYPES.contains(&message.full_name()),
        _ => true,
    }
}

/// Finds a field of `message` by its proto name or its JSON (lowerCamelCase) name.
pub(crate) fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message.get_field_by_name(name).or_else(|| message.get_field_by_json_name(name))
}

/// Resolves `path` against `message`: every segment but the last a singular, non-text message
/// field; the last a field [`is_text`] accepts.
pub(crate) fn resolve(message: &MessageDescriptor, path: &str) -> Result<Vec<FieldDescriptor>, FieldPathError> {
    let mut fields = Vec::new();
    let mut current = message.clone();
    let segments: Vec<&str> = path.split('.').collect();
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(FieldPathError::Empty { path: path.to_owned() });
        }
        let field = field_named(&current, segment).ok_or_else(|| FieldPathError::Unknown {
            segment: (*segment).to_owned(),
            message: current.full_name().to_owned(),
        })?;
        if index + 1 == segments.len() {
            if !is_text(&field) {
                return Err(FieldPathError::NotText { segment: (*segment).to_owned() });
            }
        } else {
            match field.kind() {
                Kind::Message(next) if !field.is_list() && !field.is_map() && !is_text(&field) => current = next,
                _ => return Err(FieldPathError::NotNestable { segment: (*segment).to_owned() }),
            }
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The JSON value that text stands for in `field`: bools as JSON booleans, enum numbers as
/// numbers, everything else as the JSON string the proto3 mapping accepts (names of enums,
/// 64-bit and 32-bit integers, floats, base64 bytes, RFC 3339 timestamps, `1.5s` durations).
fn text_to_json(field: &FieldDescriptor, text: &str) -> serde_json::Value {
    let is_bool = match field.kind() {
        Kind::Bool => true,
        Kind::Message(message) => message.full_name() == "google.protobuf.BoolValue",
        _ => false,
    };
    if is_bool && let Ok(value) = text.parse::<bool>() {
        return serde_json::Value::Bool(value);
    }
    if matches!(field.kind(), Kind::Enum(_))
        && let Ok(number) = text.parse::<i32>()
    {
        return serde_json::Value::from(number);
    }
    serde_json::Value::String(text.to_owned())
}

/// Sets the field at `path` (from [`resolve`]) of `message` from `texts` (one text for a
/// singular field, any number for a repeated one), creating the messages on the way. Returns
/// the reason when a text is not a valid value of the field.
pub(crate) fn set_from_text(
    message: &mut DynamicMessage,
    path: &[FieldDescriptor],
    texts: &[String],
) -> Result<(), String> {
    let Some((leaf, parents)) = path.split_last() else { return Err("empty field path".to_owned()) };
    let mut target = message;
    for parent in parents {
        target = target.get_field_mut(parent).as_message_mut().ok_or("not a message field")?;
    }
    let json = if leaf.is_list() {
        serde_json::Value::Array(texts.iter().map(|text| text_to_json(leaf, text)).collect())
    } else {
        match texts {
            [text] => text_to_json(leaf, text),
            _ => return Err("given more than once, but the field is not repeated".to_owned()),
        }
    };
    let wrapper = serde_json::Value::Object([(leaf.json_name().to_owned(), json)].into_iter().collect());
    let parsed = DynamicMessage::deserialize(target.descriptor(), wrapper).map_err(|e| e.to_string())?;
    target.set_field(leaf, parsed.get_field(leaf).into_owned());
    Ok(())
}
