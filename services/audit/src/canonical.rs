//! The canonical encoding of an audit event: the bytes its leaf hash is taken over. It is written
//! down in docs/audit.md so that anyone can recompute hashes from an export without our code.
//!
//! Layout: the ASCII line `prfix-audit-event-v1\n`, then each field in this order, each as a
//! 4-byte big-endian length followed by that many bytes:
//! sequence (8-byte big-endian), event id (16 bytes), time (RFC 3339 UTC with exactly six
//! fraction digits and `Z`), actor subject, actor roles (the count as 4-byte big-endian, then
//! each role as a field), actor ip, action, resource, result (1 byte: 1 success, 2 failure,
//! 3 denied), request id, trace id, metadata (compact JSON with object keys sorted by code point).
//! Text is UTF-8.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::merkle::{self, Hash};
use crate::store::NewEvent;

const MAGIC: &[u8] = b"prfix-audit-event-v1\n";

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The time as it is encoded (and stored: Postgres keeps microseconds).
pub fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Compact JSON with sorted keys (serde_json's map is ordered by key).
pub fn metadata_text(metadata: &serde_json::Value) -> String {
    metadata.to_string()
}

/// The canonical bytes of `event` at position `sequence`.
pub fn encode(sequence: i64, event: &NewEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    field(&mut out, &sequence.to_be_bytes());
    field(&mut out, event.event_id.as_bytes());
    field(&mut out, time_text(event.occurred_at).as_bytes());
    field(&mut out, event.actor_subject.as_bytes());
    out.extend_from_slice(&u32::try_from(event.actor_roles.len()).unwrap_or(u32::MAX).to_be_bytes());
    for role in &event.actor_roles {
        field(&mut out, role.as_bytes());
    }
    field(&mut out, event.actor_ip.as_bytes());
    field(&mut out, event.action.as_bytes());
    field(&mut out, event.resource.as_bytes());
    field(&mut out, &[event.outcome as u8]);
    field(&mut out, event.request_id.as_bytes());
    field(&mut out, event.trace_id.as_bytes());
    field(&mut out, metadata_text(&event.metadata).as_bytes());
    out
}

/// The RFC 6962 leaf hash of `event` at `sequence`.
pub fn leaf_hash(sequence: i64, event: &NewEvent) -> Hash {
    merkle::leaf_hash(&encode(sequence, event))
}

/// The chain hash after `previous` (32 zero bytes before the first event).
pub fn chain_hash(previous: &Hash, leaf: &Hash) -> Hash {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(previous);
    h.update(leaf);
    h.finalize().into()
}

/// Truncates a time to what Postgres stores (microseconds), so the hash taken before storing is
/// the hash recomputed after reading.
pub fn storable(time: DateTime<Utc>) -> DateTime<Utc> {
    let micros = time.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    fn event() -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            occurred_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("valid"),
            actor_subject: "alice".into(),
            actor_roles: vec!["developer".into()],
            actor_ip: "10.0.0.1".into(),
            action: "auth.login".into(),
            resource: "users/alice".into(),
            outcome: Outcome::Success,
            request_id: "r-1".into(),
            trace_id: String::new(),
            metadata: serde_json::json!({"b": 1.5, "a": [true, null]}),
        }
    }

    #[test]
    fn the_encoding_is_stable_and_sensitive_to_every_field() {
        let base = encode(7, &event());
        assert!(base.starts_with(MAGIC));
        assert_eq!(encode(7, &event()), base, "deterministic");
        assert_ne!(encode(8, &event()), base, "the position is bound");
        let mut other = event();
        other.action.push('x');
        assert_ne!(encode(7, &other), base);
        let mut other = event();
        other.actor_roles.push("admin".into());
        assert_ne!(encode(7, &other), base);
        // Field boundaries cannot be shifted: "ab"+"c" differs from "a"+"bc".
        let (mut x, mut y) = (event(), event());
        x.action = "ab".into();
        x.resource = "c".into();
        y.action = "a".into();
        y.resource = "bc".into();
        assert_ne!(encode(7, &x), encode(7, &y));
        assert!(String::from_utf8_lossy(&base).contains(r#"{"a":[true,null],"b":1.5}"#), "sorted compact JSON");
        assert!(String::from_utf8_lossy(&base).contains("2026-09-21T14:13:20.123456Z"));
    }
}
