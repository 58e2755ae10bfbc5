//! The prfix v1 API: messages, gRPC clients and servers generated from `proto/`, and the raw
//! descriptor set the gateway uses for reflection, policy and REST transcoding.
//!
//! Every crate of the workspace reaches `tonic` and `prost` through here, so that one version is used.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub use prost;
pub use prost_types;
pub use tonic;

pub mod codec;

/// The encoded `FileDescriptorSet` of the whole API, imports included, with every option kept
/// (`google.api.http`, `prfix.options.v1.policy`).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prfix_descriptor.bin"));

/// Method policy options (`prfix.options.v1`).
pub mod options {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("prfix.options.v1");
    }
}

/// Identity: users, tokens, API keys (`prfix.auth.v1`).
pub mod auth {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("prfix.auth.v1");
    }
}

/// Review, describe and fix tasks (`prfix.agent.v1`).
pub mod agent {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("prfix.agent.v1");
    }
}

/// The audit log (`prfix.audit.v1`).
pub mod audit {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("prfix.audit.v1");
    }
}

/// Forge webhooks (`prfix.forge.v1`).
pub use prfix::forge;

/// Packages whose messages refer to `google.api` types, at the depth of their package name, so that
/// the generated `super::super::super::google` is this crate's [`google`].
mod prfix {
    /// Forge webhooks (`prfix.forge.v1`).
    pub mod forge {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("prfix.forge.v1");
        }
    }
}

/// `google.api` messages referenced by the API (HTTP rules, HttpBody).
pub mod google {
    /// `google.api`.
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// gRPC service names (`package.Service`) of the API, as they appear in request paths.
pub mod service_names {
    /// `prfix.auth.v1.AuthService`, served by the gateway.
    pub const AUTH: &str = "prfix.auth.v1.AuthService";
    /// `prfix.agent.v1.AgentService`, served by the agent.
    pub const AGENT: &str = "prfix.agent.v1.AgentService";
    /// `prfix.audit.v1.AuditService`, served by the audit service.
    pub const AUDIT: &str = "prfix.audit.v1.AuditService";
    /// `prfix.forge.v1.WebhookService`, served by the gateway.
    pub const FORGE_WEBHOOK: &str = "prfix.forge.v1.WebhookService";
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn descriptor_set_keeps_http_and_policy_options() {
        // Decoding with prost_types would drop extensions; the raw bytes must still carry them,
        // which shows as the extension field numbers being present in the encoded options.
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let names: Vec<_> = set.file.iter().filter_map(|f| f.name.clone()).collect();
        for wanted in [
            "prfix/auth/v1/auth.proto",
            "prfix/agent/v1/agent.proto",
            "prfix/audit/v1/audit.proto",
            "google/api/http.proto",
            "google/protobuf/descriptor.proto",
        ] {
            assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
        }
        // The http option's field number 72295728 as a varint key (wire type 2) must occur.
        let key = encode_varint((72295728u64 << 3) | 2);
        assert!(FILE_DESCRIPTOR_SET.windows(key.len()).any(|w| w == key.as_slice()));
    }

    fn encode_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }
}
