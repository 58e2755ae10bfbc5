//! A request body that is not a valid protobuf message of the method's type is the caller's fault:
//! INVALID_ARGUMENT naming the problem, never INTERNAL, at the gateway (its own AuthService, and
//! forwarded calls, whose answer comes back from the service unchanged) and at the agent's and the
//! audit service's own ports.

use std::net::SocketAddr;

use prfix_gateway::ratelimit::Quota;
use prfix_proto::prost::bytes::{Buf, BufMut, Bytes};
use prfix_tests::app::channel_to;
use prfix_tests::auth::operator_token;
use prfix_tests::spawn_app_with;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;

/// Sends the given bytes as the message, unchanged, and ignores whatever message comes back.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// The five kinds of malformed message the probe sent, for a message whose field `field` is a
/// string: (what it is, the bytes).
fn malformed(field: u8) -> Vec<(&'static str, Vec<u8>)> {
    let length_delimited = (field << 3) | 2;
    let varint = field << 3;
    vec![
        ("invalid UTF-8 in a string field", vec![length_delimited, 2, 0xff, 0xfe]),
        ("a truncated message", vec![length_delimited, 16, b'a', b'b']),
        ("garbage bytes", b"\x00\x9c\x13 this is not protobuf".to_vec()),
        ("a wrong wire type", vec![varint, 1]),
        ("an over-long varint", [vec![length_delimited], vec![0xff; 11]].concat()),
    ]
}

/// Calls `path` at `addr` with `body` as the message (and a bearer token when given), returning
/// the status the call ended with.
async fn call(addr: SocketAddr, path: &'static str, body: Vec<u8>, bearer: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel_to(addr));
    grpc.ready().await.expect("the server is reachable");
    let mut request = tonic::Request::new(Bytes::from(body));
    if let Some(token) = bearer {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is a header value");
        request.metadata_mut().insert("authorization", value);
    }
    match grpc.unary(request, http::uri::PathAndQuery::from_static(path), RawCodec).await {
        Ok(_) => tonic::Status::ok("the malformed message was accepted"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn malformed_messages_are_invalid_argument_at_the_gateway_and_at_each_service() {
    // Five logins from one address must not meet the login limit before the message is read.
    let app = spawn_app_with(|s| s.gateway.limits.strict = Quota { per_minute: 600, burst: 100 }).await;
    let operator = operator_token();
    let login = "/prfix.auth.v1.AuthService/Login";
    let get_task = "/prfix.agent.v1.AgentService/GetTask";
    let list_events = "/prfix.audit.v1.AuditService/ListEvents";
    // (where, address, method, the string field's number, credentials)
    let targets: [(&str, SocketAddr, &'static str, u8, Option<&str>); 5] = [
        ("gateway, its own AuthService", app.gateway.addr, login, 1, None),
        ("gateway, forwarded to the agent", app.gateway.addr, get_task, 1, Some(&operator)),
        ("gateway, forwarded to the audit service", app.gateway.addr, list_events, 3, Some(&operator)),
        ("agent port", app.agent.addr, get_task, 1, Some(&operator)),
        ("audit port", app.audit.addr, list_events, 3, Some(&operator)),
    ];
    let mut wrong = Vec::new();
    for (place, addr, path, field, bearer) in targets {
        for (kind, body) in malformed(field) {
            let status = call(addr, path, body, bearer).await;
            let named = status.message().contains("not a valid protobuf message");
            if status.code() != Code::InvalidArgument || !named {
                wrong.push(format!("{place} {path}, {kind}: {:?} {:?}", status.code(), status.message()));
            }
        }
    }
    assert!(wrong.is_empty(), "not INVALID_ARGUMENT naming the problem:\n{}", wrong.join("\n"));
}
