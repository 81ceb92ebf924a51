//! Cleaning by container ID alone, for a container whose attachment record cannot be used (torn,
//! or written by someone else): the record is not trusted, so nothing it says is run. What
//! multinet and its delegates left can still be found by the container ID they were tagged with:
//! links in the pod carry it in their alias (`multinet_netlink::link_tag`), host-local
//! reservations and SR-IOV VF allocations name it, device-info files carry it in their name.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use multinet_cni::DelegateConf;
use multinet_ipam::host_local::config::DEFAULT_DATA_DIR;
use multinet_ipam::host_local::store::Store;
use serde_json::Value;

use crate::call::config::MultinetConf;
use crate::call::store::AttachmentStore;

/// What a clean-up by container ID removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub links: usize,
    pub addresses: usize,
    pub vfs: usize,
    pub device_info_files: usize,
}

impl fmt::Display for Cleaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tagged links, {} host-local addresses, {} VFs and {} device-info files were \
             released",
            self.links, self.addresses, self.vfs, self.device_info_files
        )
    }
}

/// Removes what can be found of `container_id`'s attachments without its record. Runs in the
/// node's network namespace (a VF comes back there).
pub async fn clean(
    conf: &MultinetConf,
    store: &AttachmentStore,
    container_id: &str,
    netns: Option<&Path>,
) -> Cleaned {
    let links = match netns {
        Some(netns) => {
            multinet_netlink::delete_links_tagged(netns, container_id).unwrap_or_else(|e| {
                tracing::warn!(netns = %netns.display(), error = %e, "deleting tagged links");
                0
            })
        }
        None => 0,
    };
    let addresses = host_local_roots(store)
        .iter()
        .map(|root| multinet_ipam::host_local::release_container(root, container_id))
        .sum();
    let vfs = multinet_sriov::release_container(
        &multinet_sriov::StateDir::from_env(),
        &multinet_sriov::Sysfs::from_env(),
        container_id,
    );
    Cleaned {
        links,
        addresses,
        vfs,
        device_info_files: remove_device_info_files(&conf.device_info_dir, container_id),
    }
}

/// After an attachment's DEL: whatever host-local store its plugins used (ours or the reference,
/// which share layout and lock) keeps nothing of this container, and no empty reservation file
/// of a writer killed mid-ADD (removed under the store's lock, where no live writer can be).
pub fn release_host_local(conf: &DelegateConf, container_id: &str) {
    let name = conf.name().unwrap_or_default();
    for (_, plugin) in conf.plugins() {
        if plugin.ipam_type() != Some("host-local") {
            continue;
        }
        let Some(ipam) = plugin.get("ipam") else {
            continue;
        };
        let root = ipam
            .get("dataDir")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DATA_DIR);
        match Store::open_existing(Path::new(root), name) {
            Ok(Some(store)) => match store.release_container(container_id) {
                Ok(left) if !left.is_empty() => {
                    tracing::warn!(network = name, ?left, "addresses the delegate's DEL left")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(network = name, error = %e, "host-local release"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(network = name, error = %e, "host-local store"),
        }
    }
}

/// Where host-local keeps reservations on this node: its default folder, and every `dataDir` the
/// other records of this node name (the same NADs usually serve every pod).
fn host_local_roots(store: &AttachmentStore) -> BTreeSet<PathBuf> {
    let mut roots = BTreeSet::from([PathBuf::from(DEFAULT_DATA_DIR)]);
    for id in store.container_ids().unwrap_or_default() {
        let Ok(Some(record)) = store.load(&id) else {
            continue;
        };
        for a in &record.attachments {
            roots.extend(a.conf.plugins().filter_map(|(_, p)| {
                let ipam = p.get("ipam")?;
                (ipam.get("type")?.as_str()? == "host-local")
                    .then(|| ipam.get("dataDir")?.as_str().map(PathBuf::from))
                    .flatten()
            }));
        }
    }
    roots
}

/// Device-info files are `<net>-<containerID>_<ifname>`.
fn remove_device_info_files(dir: &Path, container_id: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let needle = format!("-{container_id}_");
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.contains(&needle)))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}
