//! Generates the peer gRPC code from `proto/peer.proto` with a vendored `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Only this build script's process sees the variable; edition 2021 keeps set_var safe.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(&["proto/peer.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/peer.proto");
    Ok(())
}
