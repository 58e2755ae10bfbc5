//! `google.protobuf.Struct` ⇄ JSON, for event metadata.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number};

/// The JSON object of a Struct.
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect::<Map<_, _>>())
}

fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// The Struct of a JSON value (a non-object becomes an empty Struct).
pub fn json_to_struct(v: &serde_json::Value) -> Struct {
    match v {
        serde_json::Value::Object(map) => {
            Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() }
        }
        _ => Struct::default(),
    }
}

fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue { values: a.iter().map(json_to_value).collect() }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(v)),
    };
    Value { kind: Some(kind) }
}

/// `value` as a `Struct` carries it ([`struct_to_json`] of [`json_to_struct`], without building the
/// Struct): every number a float, a non-object `{}`. What the service stores as metadata came in as
/// a Struct, and its leaf hash was taken over this form; Postgres gives numbers back as it stores
/// them (`1.7e18` as `1700000000000000000`, which serde_json reads as an integer), so whatever reads
/// metadata from the log turns it back into this form before rendering or hashing it.
pub fn as_struct_carries(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect())
        }
        _ => serde_json::Value::Object(Map::new()),
    }
}

fn floats(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Number(n) if !n.is_f64() => {
            Number::from_f64(n.as_f64().unwrap_or(0.0)).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(floats).collect()),
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_read_back_from_postgres_takes_the_form_a_struct_gives_it() {
        // As jsonb returns numbers stored from floats, and a non-object.
        let read: serde_json::Value = serde_json::from_str(concat!(
            r#"{"big": 1700000000000000000, "neg": -100000000000000000, "small": 3, "f": 0.5, "#,
            r#""l": [1, {"x": 2}], "s": "1"}"#
        ))
        .expect("json");
        let carried = as_struct_carries(read.clone());
        assert_eq!(carried, struct_to_json(&json_to_struct(&read)));
        assert_eq!(
            carried.to_string(),
            r#"{"big":1.7e+18,"f":0.5,"l":[1.0,{"x":2.0}],"neg":-1e+17,"s":"1","small":3.0}"#
        );
        assert_eq!(as_struct_carries(serde_json::json!([1])), serde_json::json!({}));
    }

    #[test]
    fn json_survives_the_round_trip() {
        let json = serde_json::json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        assert_eq!(struct_to_json(&json_to_struct(&json)), json);
    }
}
