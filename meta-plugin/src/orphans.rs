//! Cleaning by container ID alone, for a container whose attachment record cannot be used (torn,
//! or written by someone else): the record is not trusted, so nothing it says is run. What
//! multinet and its delegates left can still be found by the container ID they were tagged with:
//! links in the pod carry it in their alias (`multinet_netlink::link_tag`), device-info files in
//! their name.

use std::fmt;
use std::path::Path;

use crate::config::MultinetConf;

/// What a clean-up by container ID removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub links: usize,
    pub device_info_files: usize,
}

impl fmt::Display for Cleaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tagged links and {} device-info files were removed",
            self.links, self.device_info_files
        )
    }
}

/// Removes what can be found of `container_id`'s attachments without its record.
pub async fn clean(conf: &MultinetConf, container_id: &str, netns: Option<&Path>) -> Cleaned {
    let links = match netns {
        Some(netns) => multinet_netlink::delete_links_tagged(netns, container_id)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(netns = %netns.display(), error = %e, "deleting tagged links");
                0
            }),
        None => 0,
    };
    Cleaned {
        links,
        device_info_files: remove_device_info_files(&conf.device_info_dir, container_id),
    }
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
