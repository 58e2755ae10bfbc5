//! The gRPC codec of every generated client and server: prost's, except that a request body that
//! is not a valid message of the method's type is the caller's fault (`INVALID_ARGUMENT`, with
//! prost's description of the field and the problem), not the server's (`INTERNAL`, which
//! `tonic_prost::ProstCodec` answers).
//!
//! `build.rs` selects this codec with tonic-prost-build's `codec_path`, so the gateway's own
//! services (auth) and the agent's and audit service's servers answer alike; the gateway forwards
//! other services' calls without decoding them, so their answers pass through unchanged.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// A [`Codec`] for `application/grpc+proto` with prost that answers undecodable messages with
/// `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self { _types: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder { buffer_settings: BufferSettings::default(), _type: PhantomData }
    }
}

/// Decodes `U` with prost; a malformed message is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U> {
    buffer_settings: BufferSettings,
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        U::decode(buf).map(Some).map_err(invalid_message)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.buffer_settings
    }
}

/// `INVALID_ARGUMENT` naming what prost found wrong (the field path and the cause, such as
/// "invalid string value: data is not UTF-8 encoded" or "buffer underflow").
pub fn invalid_message(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the request is not a valid protobuf message: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_field_with_invalid_utf8_is_the_callers_fault() {
        // Field 1 (wire type 2), length 2, bytes that are not UTF-8.
        let bytes = [0x0a, 0x02, 0xff, 0xfe];
        let error = crate::auth::v1::LoginRequest::decode(&bytes[..]).expect_err("not UTF-8");
        let status = invalid_message(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("LoginRequest.username"), "{}", status.message());
        assert!(status.message().contains("UTF-8"), "{}", status.message());
    }
}
