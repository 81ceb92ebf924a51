//! Generates the pod-resources messages and client from `proto/v1/api.proto`. The .proto is
//! parsed by protox (pure Rust), so building needs no `protoc` on the machine. The server side
//! is generated only with the `test-server` feature, for the fake kubelet of the tests.

use std::error::Error;

const PROTO: &str = "proto/v1/api.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(std::env::var_os("CARGO_FEATURE_TEST_SERVER").is_some())
        .build_transport(false)
        .codec_path("crate::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
