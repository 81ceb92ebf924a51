//! A Kubernetes API fixture server on loopback for multinet's tests.
