//! The crate's one error type.

use thiserror::Error;

/// Every failure this crate reports.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CrdError {
    /// The CRD could not be rendered as YAML.
    #[error("cannot render the CRD as YAML: {0}")]
    Yaml(String),
    /// A selection annotation (`networks` or `default-network`) is unusable.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// The network-status annotation does not parse.
    #[error("network-status: {0}")]
    NetworkStatus(String),
    /// A device-info document does not parse.
    #[error("device-info: {0}")]
    DeviceInfo(String),
    /// A NAD's `spec.config` is unusable.
    #[error("NetworkAttachmentDefinition {nad}: spec.config {source}")]
    NadConfig {
        /// `namespace/name` of the NAD.
        nad: String,
        /// What is wrong with the config.
        source: NadConfigError,
    },
}

/// What is wrong with a NAD's `spec.config`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NadConfigError {
    /// No config: the caller falls back to an on-disk configuration.
    #[error("is empty")]
    Empty,
    /// Not valid JSON.
    #[error("is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("is not a JSON object")]
    NotObject,
    /// `plugins` is present but not an array.
    #[error("has a \"plugins\" that is not an array")]
    PluginsNotArray,
    /// `plugins` is an empty array.
    #[error("has an empty \"plugins\" list")]
    NoPlugins,
    /// An element of `plugins` is not an object.
    #[error("has plugins[{index}] that is not an object")]
    PluginNotObject {
        /// Position in `plugins`.
        index: usize,
    },
    /// An element of `plugins` has no `type`.
    #[error("has plugins[{index}] without a \"type\"")]
    PluginWithoutType {
        /// Position in `plugins`.
        index: usize,
    },
    /// A single conf without `type`.
    #[error("has no \"type\" (and no \"plugins\" list)")]
    NoType,
    /// `name` is present but not a string.
    #[error("has a \"name\" that is not a string")]
    NameNotString,
    /// Neither the config nor the NAD has a name.
    #[error("has no \"name\" and the NAD has no name to fill it with")]
    NoName,
}

/// Which selection annotation an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationKind {
    /// `k8s.v1.cni.cncf.io/networks`.
    Networks,
    /// `v1.multus-cni.io/default-network`.
    DefaultNetwork,
}

impl AnnotationKind {
    /// The short label used in messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Networks => "networks",
            Self::DefaultNetwork => "default-network",
        }
    }
}

/// A selection annotation that cannot be used, with where the problem is:
/// `networks[2].mac: "zz" is not a MAC address`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{}: {problem}", self.location())]
pub struct SelectionError {
    /// The annotation.
    pub annotation: AnnotationKind,
    /// The element, when the problem is in one.
    pub index: Option<usize>,
    /// The field inside the element (`mac`, `portMappings[0].hostPort`), when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: SelectionProblem,
}

impl SelectionError {
    /// `networks`, `networks[2]` or `networks[2].mac`.
    pub fn location(&self) -> String {
        let mut out = self.annotation.label().to_owned();
        if let Some(index) = self.index {
            out.push_str(&format!("[{index}]"));
        }
        if let Some(field) = &self.field {
            out.push('.');
            out.push_str(field);
        }
        out
    }
}

/// What is wrong with a selection annotation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SelectionProblem {
    /// The JSON form does not parse.
    #[error("is not valid JSON: {0}")]
    InvalidJson(String),
    /// The JSON form is not an array.
    #[error("must be a JSON array of objects")]
    NotAnArray,
    /// A JSON value of the wrong type.
    #[error("must be {expected}")]
    WrongType {
        /// What was expected, e.g. "a string".
        expected: &'static str,
    },
    /// A required field is missing.
    #[error("is required")]
    Required,
    /// An empty part in the short form (`a,,b`, `ns/`, `net@`).
    #[error("must not be empty")]
    Empty,
    /// A short-form element with more than one `/` or `@`.
    #[error("{0:?} is not of the form [namespace/]name[@interface]")]
    ShortFormSyntax(String),
    /// Not a DNS-1123 label.
    #[error(
        "{0:?} is not a DNS-1123 label (at most 63 lower-case alphanumerics or '-', starting and ending with an alphanumeric)"
    )]
    NotDnsLabel(String),
    /// Not a DNS-1123 subdomain.
    #[error(
        "{0:?} is not a DNS-1123 subdomain (at most 253 characters: dot-separated lower-case alphanumerics or '-', each part starting and ending with an alphanumeric)"
    )]
    NotDnsSubdomain(String),
    /// Not a usable interface name.
    #[error("{name:?} is not a valid interface name: {reason}")]
    InterfaceName {
        /// The requested name.
        name: String,
        /// Why it is refused.
        reason: crate::syntax::InterfaceNameError,
    },
    /// Not an IP address.
    #[error("{0:?} is not an IP address")]
    NotIp(String),
    /// Neither an IP address nor a CIDR.
    #[error("{0:?} is not an IP address or CIDR")]
    NotIpOrCidr(String),
    /// Not a MAC address.
    #[error("{0:?} is not a MAC address")]
    NotMac(String),
    /// Not an InfiniBand GUID.
    #[error("{0:?} is not an InfiniBand GUID (a hardware address)")]
    NotGuid(String),
    /// Not a port number.
    #[error("{0} is not a port number (1-65535)")]
    NotPort(String),
    /// Not a protocol portmap knows.
    #[error("{0:?} is not a protocol (TCP, UDP or SCTP)")]
    NotProtocol(String),
    /// Not a non-negative integer.
    #[error("{0} is not a non-negative integer")]
    NotCount(String),
    /// `interface` and the legacy `interfaceRequest` disagree.
    #[error("{interface:?} disagrees with interfaceRequest {legacy:?}")]
    ConflictingInterface {
        /// Value of `interface`.
        interface: String,
        /// Value of `interfaceRequest`.
        legacy: String,
    },
    /// Two elements ask for the same interface name.
    #[error("{name:?} is already requested by {first}")]
    DuplicateInterface {
        /// The interface name.
        name: String,
        /// Location of the first request, e.g. `networks[0]`.
        first: String,
    },
    /// A second default-route gateway of one IP family.
    #[error(
        "{gateway} is a second {family} default-route gateway ({first} already sets one; ECMP is not supported)"
    )]
    SecondDefaultRoute {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The gateway refused.
        gateway: String,
        /// Location of the first gateway of this family.
        first: String,
    },
    /// `ipam-claim-reference` together with `ips`.
    #[error("cannot be combined with \"ips\"")]
    IpsWithIpamClaim,
    /// The default-network annotation must select exactly one network.
    #[error("must select exactly one network, found {0}")]
    NotExactlyOne(usize),
}
