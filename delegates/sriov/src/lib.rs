//! The SR-IOV delegate (`"type": "sriov"`, a drop-in for SR-IOV CNI) and the VF allocator.
//!
//! - [`sysfs`]: PFs, VFs and their netdevs from a sysfs tree whose root is configurable
//!   (`MULTINET_SYSFS_ROOT`, default `/sys`), names from the PCI ID database ([`pci`]).
//! - [`config`]: every SR-IOV CNI key with the reference's validation, plus `pool`.
//! - [`selector`] and [`allocator`]: pools selected like the device plugin selects resources;
//!   per-VF flock and allocation records, stale records reclaimed, never two owners.
//! - [`vf`]: PF-side VF settings saved, applied in the reference order, restored.
//! - [`attach`]: the VF netdev moved into the pod (move and rename in one request) and back.
//! - [`state`]: the state directory (`MULTINET_SRIOV_STATE_DIR`, default
//!   `/var/lib/cni/multinet-sriov`), every file written atomically.
//! - [`devinfo`]: device-info files for network-status.
//! - [`plugin`]: [`SriovPlugin`], the CNI plugin run by the `sriov` binary and in-process by
//!   the meta-plugin.
//! - [`list`]: what `multinet sriov list` prints.
//! - [`provision`]: VF counts, drivers and PF MTU from a node policy (`multinet sriov apply`).

pub mod allocator;
pub mod attach;
pub mod config;
pub mod devinfo;
pub mod error;
pub mod ipam;
pub mod list;
pub mod log;
pub mod pci;
pub mod plugin;
pub mod provision;
pub mod selector;
pub mod state;
pub mod sysfs;
pub mod topology;
pub mod vf;

pub use allocator::{Claim, Owner, PoolUsage, VfAllocator, holder};
pub use config::{MacAddr, SriovConf, VfSettings};
pub use error::{Result, SriovError};
pub use list::{DeviceRow, DeviceTable, list_devices, list_devices_with};
pub use pci::{PciAddress, PciIds};
pub use plugin::{Paths, SriovPlugin, release_container};
pub use selector::{PoolSpec, Selectors};
pub use state::{AllocationRecord, AttachmentState, StateDir};
pub use sysfs::{PfDevice, Sysfs, VfDevice};
