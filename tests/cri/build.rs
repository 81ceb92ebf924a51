//! Generates the CRI client from `proto/` (the part of runtime.v1 the tests use), parsed by
//! protox (pure Rust, no `protoc`).

use std::error::Error;

const PROTO: &str = "proto/runtime/v1/api.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
