//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and keeps the
//! encoded descriptor set for gRPC server reflection.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/rapport/v1/rapport.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("rapport_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // Decode errors as INVALID_ARGUMENT rather than prost's INTERNAL (`api::codec`).
    tonic_prost_build::configure()
        .codec_path("crate::api::codec::RapportCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
