//! Generates the registration and DRA (v1, v1beta1) messages and servers from `proto/`, parsed
//! by protox (pure Rust, no `protoc`). The clients are generated only with the `test-client`
//! feature, for tests that play the kubelet.

use std::error::Error;

const PROTOS: [&str; 3] = [
    "proto/pluginregistration/api.proto",
    "proto/dra/v1/api.proto",
    "proto/dra/v1beta1/api.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(std::env::var_os("CARGO_FEATURE_TEST_CLIENT").is_some())
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
