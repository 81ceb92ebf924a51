//! The DRA kubelet plugin of `multinet daemon` (opt-in with `--dra-driver`): SR-IOV VFs
//! published as devices in this node's ResourceSlices, and the kubelet's prepare/unprepare of
//! ResourceClaims holding them in the VF allocator. The driver itself is `multinet_dra`; this
//! file binds its sockets (root-only, as the daemon's own) and starts it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use multinet_sriov::{StateDir, Sysfs};

use super::socket::{SocketFile, bind};

/// How long one API request of the driver may take.
const API_BUDGET: Duration = Duration::from_secs(30);

/// The daemon's DRA flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct DraArgs {
    /// Serve the kubelet's DRA plugin API as this driver (e.g. sriov.multinet.io) and publish
    /// this node's SR-IOV VFs as its devices. Off unless given.
    #[arg(long, value_name = "NAME")]
    pub dra_driver: Option<String>,
    /// The kubelet's plugin registration directory.
    #[arg(long, value_name = "DIR", default_value = multinet_dra::DEFAULT_REGISTRY_DIR)]
    pub kubelet_registry_dir: PathBuf,
    /// Where the DRA socket goes (`<DIR>/<driver>/dra.sock`).
    #[arg(long, value_name = "DIR", default_value = multinet_dra::DEFAULT_PLUGINS_DIR)]
    pub kubelet_plugins_dir: PathBuf,
    /// The k8s.cni.cncf.io/resourceName of the published devices (a NAD's resourceName
    /// annotation); the driver name when not given.
    #[arg(long, value_name = "NAME")]
    pub dra_resource_name: Option<String>,
}

/// The running driver.
pub struct RunningDriver {
    task: tokio::task::JoinHandle<()>,
    sockets: Vec<SocketFile>,
}

impl RunningDriver {
    /// Stops serving and removes the sockets (the kubelet then deregisters the driver).
    pub fn stop(self) {
        self.task.abort();
        for socket in self.sockets {
            socket.remove();
        }
    }
}

/// Whether `name` is a DNS subdomain of at most `max` characters (driver and node names; both
/// become paths and field selectors).
fn is_dns_subdomain(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Checks the flags; None when DRA is off.
fn validated(
    args: &DraArgs,
    node_name: Option<&str>,
) -> io::Result<Option<(String, String, String)>> {
    let Some(driver) = &args.dra_driver else {
        return Ok(None);
    };
    if !is_dns_subdomain(driver, 63) {
        return Err(invalid(format!(
            "--dra-driver {driver:?} is not a DNS subdomain of at most 63 characters"
        )));
    }
    let node = match node_name {
        Some(n) if is_dns_subdomain(n, 253) => n.to_owned(),
        Some(n) => {
            return Err(invalid(format!("--node-name {n:?} is not a DNS subdomain")));
        }
        None => {
            return Err(invalid(
                "--dra-driver needs --node-name (or NODE_NAME)".to_owned(),
            ));
        }
    };
    let resource = args
        .dra_resource_name
        .clone()
        .unwrap_or_else(|| driver.clone());
    if resource.is_empty() || resource.len() > 64 {
        return Err(invalid(format!(
            "--dra-resource-name {resource:?} must have 1 to 64 characters"
        )));
    }
    Ok(Some((driver.clone(), node, resource)))
}

/// Starts the driver when `--dra-driver` is given: binds the DRA socket, then the registration
/// socket (the kubelet dials the endpoint as soon as it sees the registration), and serves them
/// with the slice publisher on the current runtime.
/// The node's name is the pool of its devices; the kubeconfig (`None`: the in-cluster service
/// account) is that of the driver's API client.
pub async fn start(
    args: &DraArgs,
    node_name: Option<&str>,
    kubeconfig: Option<&std::path::Path>,
) -> io::Result<Option<RunningDriver>> {
    let Some((driver, node, resource_name)) = validated(args, node_name)? else {
        return Ok(None);
    };
    let client = crate::call::source::kube::build_client(kubeconfig, API_BUDGET)
        .await
        .map_err(|e| io::Error::other(format!("DRA driver's API client: {e}")))?;
    let plugins_dir = std::path::absolute(&args.kubelet_plugins_dir)?;
    let registry_dir = std::path::absolute(&args.kubelet_registry_dir)?;
    let endpoint = multinet_dra::dra_socket(&plugins_dir, &driver);
    let (dra, dra_file) = bind(&endpoint)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", endpoint.display())))?
        .into_parts();
    let registration_path = multinet_dra::registration_socket(&registry_dir, &driver);
    let (registration, registration_file) = match bind(&registration_path) {
        Ok(bound) => bound.into_parts(),
        Err(e) => {
            dra_file.remove();
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", registration_path.display()),
            ));
        }
    };
    let sysfs = Sysfs::from_env();
    let state = StateDir::from_env();
    let publisher = multinet_dra::Publisher {
        driver: driver.clone(),
        node: node.clone(),
        resource_name,
    };
    let engine = Arc::new(multinet_dra::Driver::new(
        driver.clone(),
        node,
        sysfs,
        state,
        client,
    ));
    let sockets = multinet_dra::Sockets {
        registration,
        dra,
        endpoint: endpoint.clone(),
    };
    tracing::info!(%driver, registration = %registration_path.display(),
        endpoint = %endpoint.display(), "serving the DRA kubelet plugin");
    let task = tokio::spawn(async move {
        let served = multinet_dra::serve(engine, publisher, sockets, std::future::pending()).await;
        if let Err(e) = served {
            tracing::error!(%driver, error = %e, "the DRA kubelet plugin stopped");
        }
    });
    Ok(Some(RunningDriver {
        task,
        sockets: vec![registration_file, dra_file],
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(driver: Option<&str>) -> DraArgs {
        DraArgs {
            dra_driver: driver.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn dra_is_off_without_a_driver_and_needs_a_node_with_one() {
        assert!(validated(&args(None), None).unwrap().is_none());
        let (driver, node, resource) = validated(&args(Some("sriov.multinet.io")), Some("node-1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (driver.as_str(), node.as_str()),
            ("sriov.multinet.io", "node-1")
        );
        assert_eq!(resource, "sriov.multinet.io");
        let err = |a: DraArgs, node| validated(&a, node).unwrap_err().to_string();
        assert!(err(args(Some("sriov.multinet.io")), None).contains("--node-name"));
        for bad in ["../x", "Sriov.io", "a/b", "", "-a", "a..b"] {
            assert!(
                err(args(Some(bad)), Some("n")).contains("--dra-driver"),
                "{bad}"
            );
        }
        assert!(err(args(Some("d.io")), Some("node/1")).contains("--node-name"));
    }
}
