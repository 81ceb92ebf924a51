//! Generated messages, servers and (feature `test-client`) clients.

/// `pluginregistration.Registration`.
pub mod registration {
    #![allow(clippy::all)]
    tonic::include_proto!("pluginregistration");
}
/// `k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin`.
pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");
}
/// `k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin`.
pub mod v1beta1 {
    #![allow(clippy::all)]
    tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1beta1");
}
