//! Compiles `proto/irgan/v1/*.proto` into Rust (prost messages, tonic client and server) in
//! `OUT_DIR`, with protox: a pure-Rust protobuf compiler, so no system `protoc` is needed.
//! Also writes the encoded descriptor set the gRPC reflection service serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("irgan/v1"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "proto"));
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    // Includes the imported well-known types (google/protobuf/struct.proto), which protox
    // ships, and the comments (they become the generated code's docs).
    let fds = protox::compile(&files, [&dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("irgan_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
