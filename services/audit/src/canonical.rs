//! The canonical encoding of an audit event: the bytes its leaf hash is taken over. It is written
//! down in docs/audit.md so that anyone can recompute hashes from an export without our code.
//!
//! Version 1 (events stored before appenders were recorded): the ASCII line
//! `prfix-audit-event-v1\n`, then each field in this order, each as a 4-byte big-endian length
//! followed by that many bytes: sequence (8-byte big-endian), event id (16 bytes), time (RFC 3339
//! UTC with exactly six fraction digits and `Z`), actor subject, actor roles (the count as 4-byte
//! big-endian, then each role as a field), actor ip, action, resource, result (1 byte: 1 success,
//! 2 failure, 3 denied), request id, trace id, metadata (compact JSON with object keys sorted by
//! code point). Text is UTF-8.
//!
//! Version 2 (every event appended since): the line `prfix-audit-event-v2\n`, the same fields, then
//! appender subject, appender credential and receive time (as the time above), each as a field.
//! The magic line differs, so a v2 event can never be read as a v1 one or the other way round.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::merkle::{self, Hash};
use crate::store::{Appender, NewEvent};

const MAGIC_V1: &[u8] = b"prfix-audit-event-v1\n";
const MAGIC_V2: &[u8] = b"prfix-audit-event-v2\n";

/// The encoding of events stored before appenders were recorded.
pub const ENCODING_V1: i16 = 1;
/// The encoding of events with their appender and receive time.
pub const ENCODING_V2: i16 = 2;

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

/// The v1 canonical bytes of `event` at position `sequence` (events stored before appenders were
/// recorded; new events are never written with it).
pub fn encode_v1(sequence: i64, event: &NewEvent) -> Vec<u8> {
    encode_with(MAGIC_V1, sequence, event)
}

/// The v2 canonical bytes of `event` at `sequence`, appended by `appender`.
pub fn encode_v2(sequence: i64, event: &NewEvent, appender: &Appender) -> Vec<u8> {
    let mut out = encode_with(MAGIC_V2, sequence, event);
    field(&mut out, appender.subject.as_bytes());
    field(&mut out, appender.credential.as_bytes());
    field(&mut out, time_text(appender.received_at).as_bytes());
    out
}

/// The canonical bytes in the version the event was stored with: v2 when it has an appender, v1
/// when it has none.
pub fn encode(sequence: i64, event: &NewEvent, appender: Option<&Appender>) -> Vec<u8> {
    match appender {
        Some(appender) => encode_v2(sequence, event, appender),
        None => encode_v1(sequence, event),
    }
}

/// The encoding version of an event with or without an appender.
pub fn encoding_of(appender: Option<&Appender>) -> i16 {
    if appender.is_some() { ENCODING_V2 } else { ENCODING_V1 }
}

fn encode_with(magic: &[u8], sequence: i64, event: &NewEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(magic);
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

/// The RFC 6962 leaf hash of `event` at `sequence`, in the version it was stored with (v2 with its
/// `appender`, v1 without). Everything that recomputes leaf hashes goes through here.
pub fn leaf_hash_of(sequence: i64, event: &NewEvent, appender: Option<&Appender>) -> Hash {
    merkle::leaf_hash(&encode(sequence, event, appender))
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

    fn appender() -> Appender {
        Appender {
            subject: "service:gateway".into(),
            credential: "token:4f1c".into(),
            received_at: DateTime::from_timestamp_micros(1_790_000_001_000_001).expect("valid"),
        }
    }

    #[test]
    fn the_encoding_is_stable_and_sensitive_to_every_field() {
        let encode = |sequence, event: &NewEvent| encode_v1(sequence, event);
        let base = encode(7, &event());
        assert!(base.starts_with(MAGIC_V1));
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

    /// The v1 leaf hash of a fixed event, computed independently (a Python script following
    /// docs/audit.md) and equal to what the code before v2 produced: rows stored then must keep
    /// hashing to what was stored.
    #[test]
    fn v1_events_still_hash_as_they_did_before_v2() {
        let bytes = encode(7, &event(), None);
        assert_eq!(bytes, encode_v1(7, &event()));
        assert!(bytes.starts_with(b"prfix-audit-event-v1\n"));
        assert_eq!(
            hex::encode(leaf_hash_of(7, &event(), None)),
            "320082330395eee1acf2c78400352fdda45d310f65fcff69cd1d81df4c24c09a"
        );
    }

    #[test]
    fn v2_binds_the_appender_and_the_receive_time() {
        let base = encode(7, &event(), Some(&appender()));
        assert!(base.starts_with(MAGIC_V2));
        let v1 = encode_v1(7, &event());
        assert_eq!(&base[MAGIC_V2.len()..v1.len()], &v1[MAGIC_V1.len()..], "the v1 fields come first, unchanged");
        assert!(String::from_utf8_lossy(&base).ends_with("2026-09-21T14:13:21.000001Z"));
        for change in [
            |a: &mut Appender| a.subject = "mallory".into(),
            |a: &mut Appender| a.credential = "apikey:0123".into(),
            |a: &mut Appender| a.received_at += chrono::TimeDelta::microseconds(1),
        ] {
            let mut other = appender();
            change(&mut other);
            assert_ne!(leaf_hash_of(7, &event(), Some(&other)), leaf_hash_of(7, &event(), Some(&appender())));
        }
        assert_ne!(leaf_hash_of(7, &event(), None), leaf_hash_of(7, &event(), Some(&appender())));
        assert_eq!(encoding_of(Some(&appender())), ENCODING_V2);
        assert_eq!(encoding_of(None), ENCODING_V1);
    }
}
