//! Test-only: the CRI RuntimeService client (pod sandboxes) a test uses to play the kubelet
//! against a real containerd, so the runtime itself calls multinet as it does on a node.

/// `runtime.v1`: the messages and the `RuntimeService` client.
pub mod runtime {
    #![allow(clippy::all)]
    tonic::include_proto!("runtime.v1");
}
