//! JSON that keeps its keys in the order they were written.
//!
//! `serde_json::Value` sorts object keys (the workspace does not enable `preserve_order`, and must
//! not: the audit log's canonical event encoding relies on sorted metadata keys). A schema sent as
//! Ollama's `format` is compiled into a grammar in key order, so the order is what the model is
//! made to write: location and severity before prose. [`Ordered`] holds such a document as
//! written and serializes it (through serde or [`std::fmt::Display`]) in that order.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their members in written order.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Ordered>),
    /// An object: its members in written order (a repeated key keeps its last value, in place).
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Reads JSON text, keeping the order of every object's keys.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The same document as a `serde_json::Value` (keys sorted), for validation and lookups.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Number(n) => serde_json::Value::Number(n.clone()),
            Self::String(s) => serde_json::Value::String(s.clone()),
            Self::Array(items) => serde_json::Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Object(members) => {
                serde_json::Value::Object(members.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }
}

impl From<&serde_json::Value> for Ordered {
    /// A `Value`'s document, in the `Value`'s (sorted) key order.
    fn from(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Number(n) => Self::Number(n.clone()),
            serde_json::Value::String(s) => Self::String(s.clone()),
            serde_json::Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            serde_json::Value::Object(map) => {
                Self::Object(map.iter().map(|(k, v)| (k.clone(), Self::from(v))).collect())
            }
        }
    }
}

impl fmt::Display for Ordered {
    /// Compact JSON, keys in written order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Ordered, E> {
        Ok(Ordered::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Ordered, E> {
        Ok(Ordered::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Ordered, E> {
        Ok(Ordered::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Ordered, E> {
        Ok(Ordered::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Ordered, E> {
        serde_json::Number::from_f64(n).map(Ordered::Number).ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Ordered, E> {
        Ok(Ordered::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Ordered, E> {
        Ok(Ordered::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut members: Vec<(String, Ordered)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some((_, old)) => *old = value,
                None => members.push((key, value)),
            }
        }
        Ok(Ordered::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_serialize_in_the_order_they_were_written() {
        let text = r#"{"z":1,"a":{"y":[true,null,"s"],"b":2.5},"m":"x"}"#;
        let ordered = Ordered::parse(text).expect("valid JSON");
        assert_eq!(ordered.to_string(), text);
        assert_eq!(serde_json::to_string(&ordered).expect("serializes"), text);
        assert_eq!(ordered.to_value(), serde_json::from_str::<serde_json::Value>(text).expect("valid JSON"));
    }

    #[test]
    fn a_value_converts_in_its_sorted_order_and_back() {
        let value = serde_json::json!({"b": [1, {"d": 1, "c": 2}], "a": null});
        let ordered = Ordered::from(&value);
        assert_eq!(ordered.to_string(), value.to_string());
        assert_eq!(ordered.to_value(), value);
    }
}
