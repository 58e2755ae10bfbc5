//! Building a method's request message from a matched HTTP request: the JSON body (per the rule's
//! `body`), then the query parameters for the fields neither the body nor the path sets, then the
//! path variables.

use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, Value};
use serde_json::error::Category;

use crate::fields::{self, FieldPathError};
use crate::routes::{BodyRule, RouteMatch};

/// Why a request does not make a request message. Each names the field or parameter concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("the body is not valid JSON (line {line}, column {column}): {message}")]
    BadJson {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What serde_json says.
        message: String,
    },
    /// The body has a field the message does not have.
    #[error("unknown field `{field}` in the body")]
    UnknownField {
        /// The field path, for example `changeSet.files[0].nme`.
        field: String,
    },
    /// A body field has a value of the wrong type (or an unknown enum name).
    #[error("{}: {message}", describe_field(field))]
    WrongType {
        /// The field path (empty for the body itself).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The rule has no body, but the request has one.
    #[error("this method takes no request body; send its fields as query parameters")]
    BodyNotAllowed,
    /// A query parameter names no field of the request message.
    #[error("unknown query parameter `{name}`")]
    UnknownQueryParameter {
        /// The parameter.
        name: String,
    },
    /// A query parameter names a field it may not set.
    #[error("query parameter `{name}` is not allowed: {reason}")]
    QueryParameterNotAllowed {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// A query parameter's value is not a valid value of its field.
    #[error("query parameter `{name}` has a bad value: {message}")]
    BadQueryValue {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A path variable's value is not a valid value of its field.
    #[error("path value of `{field}` is not valid: {message}")]
    BadPathValue {
        /// The field path of the variable.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl RequestError {
    /// The field or query parameter the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownField { field } | Self::BadPathValue { field, .. } => Some(field),
            Self::WrongType { field, .. } => Some(field).filter(|f| !f.is_empty()).map(String::as_str),
            Self::UnknownQueryParameter { name }
            | Self::QueryParameterNotAllowed { name, .. }
            | Self::BadQueryValue { name, .. } => Some(name),
            Self::BadJson { .. } | Self::BodyNotAllowed => None,
        }
    }
}

fn describe_field(field: &str) -> String {
    if field.is_empty() {
        "the body has the wrong type".to_owned()
    } else {
        format!("field `{field}` has the wrong type")
    }
}

impl RouteMatch<'_> {
    /// Builds the request message: the JSON body (per the rule's `body`: `*` the whole message,
    /// `field` that field, none: a body is an error unless empty), the path bindings and the query
    /// parameters for the fields neither sets (nested with dots `a.b=1`, repeated as `x=1&x=2`,
    /// enums by name or number, bools, 64-bit ints as strings, well-known types as their JSON
    /// forms, e.g. a Timestamp as RFC 3339). Original proto field names are accepted as well as
    /// lowerCamelCase. Path variables set their field even if the body set it too.
    pub fn request(&self, query: Option<&str>, body: &[u8]) -> Result<DynamicMessage, RequestError> {
        self.request_with_type(query, "", body)
    }

    /// As [`request`](Self::request), and when the rule's body is a `google.api.HttpBody`
    /// ([`Route::raw_body`](crate::Route::raw_body)) the body goes into it unparsed, byte for byte,
    /// with `content_type` (the request's `Content-Type`).
    pub fn request_with_type(
        &self,
        query: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<DynamicMessage, RequestError> {
        let input = self.route.method.input();
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let raw = self.route.http_body_target();
        let mut message = match &self.route.body {
            _ if raw.is_some() => {
                let mut message = DynamicMessage::new(input.clone());
                let http_body = match raw.flatten() {
                    Some(field) => message.get_field_mut(&field).as_message_mut(),
                    None => Some(&mut message),
                };
                if let Some(http_body) = http_body {
                    http_body.set_field_by_name("content_type", Value::String(content_type.to_owned()));
                    http_body.set_field_by_name("data", Value::Bytes(prost::bytes::Bytes::copy_from_slice(body)));
                }
                message
            }
            BodyRule::None if !empty => return Err(RequestError::BodyNotAllowed),
            BodyRule::None => DynamicMessage::new(input.clone()),
            _ if empty => DynamicMessage::new(input.clone()),
            BodyRule::Whole => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let message = deserialize(&input, &mut de)?;
                de.end().map_err(|e| json_error(&e, &[]))?;
                message
            }
            BodyRule::Field(name) => {
                let field = fields::field_named(&input, name)
                    .ok_or_else(|| RequestError::UnknownField { field: name.clone() })?;
                let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| json_error(&e, &[]))?;
                let wrapper = serde_json::Value::Object([(field.json_name().to_owned(), value)].into_iter().collect());
                deserialize(&input, wrapper)?
            }
        };
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            self.apply_query(&mut message, &input, query)?;
        }
        for (field, value) in &self.bindings {
            let bad = |message: String| RequestError::BadPathValue { field: field.clone(), message };
            let path = fields::resolve(&input, field).map_err(|e| bad(e.to_string()))?;
            fields::set_from_text(&mut message, &path, std::slice::from_ref(value)).map_err(bad)?;
        }
        Ok(message)
    }

    /// Sets the fields the query names (repeated parameters collected in order).
    fn apply_query(
        &self,
        message: &mut DynamicMessage,
        input: &MessageDescriptor,
        query: &str,
    ) -> Result<(), RequestError> {
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match grouped.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value.into_owned()),
                None => grouped.push((name.into_owned(), vec![value.into_owned()])),
            }
        }
        for (name, values) in grouped {
            let not_allowed =
                |reason: &str| RequestError::QueryParameterNotAllowed { name: name.clone(), reason: reason.to_owned() };
            if self.route.body == BodyRule::Whole {
                return Err(not_allowed("the body carries the whole request"));
            }
            let path = fields::resolve(input, &name).map_err(|e| match e {
                FieldPathError::Unknown { .. } | FieldPathError::Empty { .. } => {
                    RequestError::UnknownQueryParameter { name: name.clone() }
                }
                other => not_allowed(&other.to_string()),
            })?;
            let canonical: Vec<&str> = path.iter().map(|f| f.name()).collect();
            let canonical = canonical.join(".");
            if let BodyRule::Field(body) = &self.route.body
                && path.first().is_some_and(|f| f.name() == body)
            {
                return Err(not_allowed("the body sets this field"));
            }
            if self.bindings.iter().any(|(bound, _)| overlaps(bound, &canonical)) {
                return Err(not_allowed("the path sets this field"));
            }
            fields::set_from_text(message, &path, &values)
                .map_err(|message| RequestError::BadQueryValue { name: name.clone(), message })?;
        }
        Ok(())
    }
}

/// Whether one field path is the other or inside it.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.'));
    a == b || inside(a, b) || inside(b, a)
}

/// Reads a message with the proto3 JSON mapping, unknown fields rejected, keeping the path to
/// the value an error is in.
fn deserialize<'de, D>(desc: &MessageDescriptor, de: D) -> Result<DynamicMessage, RequestError>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let mut track = serde_path_to_error::Track::new();
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(
        desc.clone(),
        serde_path_to_error::Deserializer::new(de, &mut track),
        &options,
    )
    .map_err(|e| {
        let path = track.path();
        let segments: Vec<_> = path.iter().cloned().collect();
        json_error(&e, &segments)
    })
}

/// The request error for a serde_json error at `path`.
fn json_error(error: &serde_json::Error, path: &[serde_path_to_error::Segment]) -> RequestError {
    let full = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&location).unwrap_or(&full).to_owned();
    match error.classify() {
        Category::Data => {
            if let Some(name) = unknown_field_name(&message) {
                return RequestError::UnknownField { field: join(path, Some(name)) };
            }
            // Raised on the message holding the oneof: name the oneof.
            let oneof = message.strip_prefix("multiple fields provided for oneof '").and_then(|r| r.strip_suffix('\''));
            RequestError::WrongType { field: join(path, oneof), message }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            RequestError::BadJson { line: error.line(), column: error.column(), message }
        }
    }
}

/// The field named by an unknown-field message of prost-reflect (`unrecognized field name 'x'`)
/// or serde (`unknown field `x`, expected …`).
fn unknown_field_name(message: &str) -> Option<&str> {
    if let Some(rest) = message.strip_prefix("unrecognized field name '") {
        return rest.strip_suffix('\'');
    }
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// `a.b[2].c` from the path segments (and a last field name).
fn join(path: &[serde_path_to_error::Segment], last: Option<&str>) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let push_name = |out: &mut String, name: &str| {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    };
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_name(&mut out, key),
            Segment::Enum { variant } => push_name(&mut out, variant),
            Segment::Unknown => push_name(&mut out, "?"),
        }
    }
    if let Some(name) = last {
        push_name(&mut out, name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_are_read_from_both_spellings() {
        assert_eq!(unknown_field_name("unrecognized field name 'nope'"), Some("nope"));
        assert_eq!(unknown_field_name("unknown field `nope`, expected one of `a`"), Some("nope"));
        assert_eq!(unknown_field_name("invalid type: integer `5`, expected a string"), None);
    }

    #[test]
    fn field_paths_overlap_only_on_whole_segments() {
        assert!(overlaps("a", "a"));
        assert!(overlaps("a", "a.b"));
        assert!(overlaps("a.b", "a"));
        assert!(!overlaps("a", "ab"));
        assert!(!overlaps("a.b", "a.c"));
    }

    #[test]
    fn error_paths_join_keys_and_indexes() {
        use serde_path_to_error::Segment;
        let path =
            [Segment::Map { key: "files".into() }, Segment::Seq { index: 2 }, Segment::Map { key: "path".into() }];
        assert_eq!(join(&path, None), "files[2].path");
        assert_eq!(join(&path[..2], Some("nope")), "files[2].nope");
        assert_eq!(join(&[], Some("nope")), "nope");
    }
}
