//! NetworkAttachmentDefinition, the selection, default-network and network-status annotations.
//!
//! Pure: nothing here does I/O.
//!
//! - [`nad`]: the NetworkAttachmentDefinition custom resource, its CRD, and reading its config
//!   and `resourceName` annotation.
//! - [`selection`]: `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network`.
//! - [`status`]: `k8s.v1.cni.cncf.io/network-status`, with [`device_info`].
//! - [`trust`]: what a NAD author may put in a delegate config (plugin and webhook share it).
//! - [`syntax`]: the value syntaxes those share (DNS-1123 names, interface names, IPs, MACs).

pub mod device_info;
mod error;
mod json;
pub mod nad;
pub mod selection;
pub mod status;
pub mod syntax;
/// What a NAD author may put in a delegate config: the rule lives with the CNI config types
/// (multinet-cni), so delegates use it without this crate's Kubernetes dependencies.
pub use multinet_cni::trust;

pub use device_info::{
    DEVICE_INFO_VERSION, DeviceInfo, DeviceType, MemifDevice, PciDevice, VdpaDevice,
    VhostUserDevice,
};
pub use error::{AnnotationKind, CrdError, NadConfigError, SelectionError, SelectionProblem};
pub use nad::{
    NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec, REGENERATE_COMMAND,
    RESOURCE_NAME_ANNOTATION, crd, crd_yaml, nad_config_with_name, parse_nad_config, resource_name,
};
pub use selection::{
    Bandwidth, DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelection, PortMapping,
    PortProtocol, format_networks, is_json_form, parse_default_network, parse_networks,
    validate_selections,
};
pub use status::{
    Dns, NETWORK_STATUS_ANNOTATION, NetworkStatus, format_network_status, parse_network_status,
    status_ip,
};
pub use syntax::{HardwareAddr, InterfaceNameError, IpRequest};
pub use trust::{TrustViolation, check_delegate_config, is_meta_plugin_type, runs_a_meta_plugin};
