//! Compiles `proto/` with protox (no system protoc) and keeps the raw descriptor-set bytes.
//!
//! The raw bytes are written from protox's own encoder, not from `prost_types`, because decoding into
//! `prost_types` drops extension options such as `google.api.http` and `prfix.options.v1.policy`,
//! which the gateway reads at start-up.

use std::path::PathBuf;

/// The API's entry files; their imports are compiled with them.
const FILES: &[&str] = &[
    "prfix/options/v1/options.proto",
    "prfix/auth/v1/auth.proto",
    "prfix/agent/v1/agent.proto",
    "prfix/audit/v1/audit.proto",
    "prfix/forge/v1/webhook.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(FILES)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("prfix_descriptor.bin"), compiler.encode_file_descriptor_set())?;

    // Malformed requests are INVALID_ARGUMENT rather than tonic-prost's INTERNAL (src/codec.rs).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
