//! Reading audit events' metadata (a `google.protobuf.Struct`) in tests.

/// The string at `key` in `metadata`; none when absent or not a string.
pub fn text(metadata: Option<&prost_types::Struct>, key: &str) -> Option<String> {
    match metadata?.fields.get(key)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}
