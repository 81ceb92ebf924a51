//! multinet's own delegates, run in-process when the binary CNI_PATH would run is this very
//! executable (the multi-call install: `/opt/cni/bin/macvlan -> multinet`), and by `main` when the
//! executable is started under a delegate's name.

use std::path::Path;

/// A delegate multinet implements itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnDelegate {
    HostLocal,
    Static,
    Macvlan,
    Ipvlan,
    Sriov,
}

impl OwnDelegate {
    pub fn from_type(plugin_type: &str) -> Option<OwnDelegate> {
        match plugin_type {
            "host-local" => Some(OwnDelegate::HostLocal),
            "static" => Some(OwnDelegate::Static),
            "macvlan" => Some(OwnDelegate::Macvlan),
            "ipvlan" => Some(OwnDelegate::Ipvlan),
            "sriov" => Some(OwnDelegate::Sriov),
            _ => None,
        }
    }

    /// host-local and static: the ones that may be another plugin's `ipam.type`.
    pub fn is_ipam(&self) -> bool {
        matches!(self, OwnDelegate::HostLocal | OwnDelegate::Static)
    }

    /// One full CNI invocation, exactly as the standalone binary would run it.
    pub async fn dispatch(&self, vars: Vec<(String, String)>, stdin: &[u8]) -> (Vec<u8>, i32) {
        match self {
            OwnDelegate::HostLocal => {
                multinet_cni::dispatch(&multinet_ipam::HostLocalPlugin, vars, stdin).await
            }
            OwnDelegate::Static => {
                multinet_cni::dispatch(&multinet_ipam::StaticPlugin, vars, stdin).await
            }
            OwnDelegate::Macvlan => {
                multinet_cni::dispatch(&multinet_macvlan::MacvlanPlugin, vars, stdin).await
            }
            OwnDelegate::Ipvlan => {
                multinet_cni::dispatch(&multinet_ipvlan::IpvlanPlugin, vars, stdin).await
            }
            OwnDelegate::Sriov => {
                multinet_cni::dispatch(&multinet_sriov::SriovPlugin::default(), vars, stdin).await
            }
        }
    }

    /// Runs as the process's plugin (multi-call binary started under the delegate's name).
    pub fn run_main(&self) -> ! {
        match self {
            OwnDelegate::HostLocal => multinet_cni::run_main(multinet_ipam::HostLocalPlugin),
            OwnDelegate::Static => multinet_cni::run_main(multinet_ipam::StaticPlugin),
            OwnDelegate::Macvlan => multinet_cni::run_main(multinet_macvlan::MacvlanPlugin),
            OwnDelegate::Ipvlan => multinet_cni::run_main(multinet_ipvlan::IpvlanPlugin),
            OwnDelegate::Sriov => multinet_cni::run_main(multinet_sriov::SriovPlugin::default()),
        }
    }
}

/// Our in-process delegate for `plugin_type` when `path` is this executable.
pub fn delegate_for(
    path: &Path,
    plugin_type: &str,
    self_exe: Option<&Path>,
) -> Option<OwnDelegate> {
    let self_exe = self_exe?;
    let target = std::fs::canonicalize(path).ok()?;
    if target != self_exe {
        return None;
    }
    OwnDelegate::from_type(plugin_type)
}
