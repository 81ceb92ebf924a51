//! Where the kubelet looks for the driver's sockets.

/// The kubelet's plugin registration directory.
pub const DEFAULT_REGISTRY_DIR: &str = "/var/lib/kubelet/plugins_registry";
/// Where kubelet plugins keep their sockets.
pub const DEFAULT_PLUGINS_DIR: &str = "/var/lib/kubelet/plugins";

/// The registration socket of `driver` in the registry directory.
pub fn registration_socket(registry_dir: &std::path::Path, driver: &str) -> std::path::PathBuf {
    registry_dir.join(format!("{driver}-reg.sock"))
}

/// The DRA service socket of `driver` under the plugins directory.
pub fn dra_socket(plugins_dir: &std::path::Path, driver: &str) -> std::path::PathBuf {
    plugins_dir.join(driver).join("dra.sock")
}
