//! The network selection annotations: `k8s.v1.cni.cncf.io/networks` (a list) and
//! `v1.multus-cni.io/default-network` (exactly one element), in short and JSON form.
//!
//! Short form: a comma-separated list of `[namespace/]name[@interface]`.
//! JSON form (chosen when the value contains `[`, `{` or `"`): an array of objects.
//! JSON keys match case-insensitively when no exact match exists, `null` counts as absent and an
//! empty string counts as "not requested", as with the Go client every peer uses.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AnnotationKind, CrdError, SelectionError, SelectionProblem};
use crate::syntax::{
    HardwareAddr, IpRequest, check_interface_name, is_dns1123_label, is_dns1123_subdomain,
};

/// Pod annotation selecting additional networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Pod annotation replacing the cluster (default) network.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";

/// One selected network: which NAD, and what the pod asks of the attachment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkSelection {
    /// NAD name.
    pub name: String,
    /// NAD namespace; `None` means the pod's namespace (or, for the default network, the
    /// plugin's own namespace).
    pub namespace: Option<String>,
    /// Requested interface name inside the pod.
    pub interface: Option<String>,
    /// Requested addresses (`ips`), delivered as runtimeConfig `ips`.
    pub ips: Vec<IpRequest>,
    /// Requested MAC address (`mac`).
    pub mac: Option<HardwareAddr>,
    /// Default-route gateways (`default-route`).
    pub default_route: Vec<IpAddr>,
    /// Port mappings (`portMappings`).
    pub port_mappings: Vec<PortMapping>,
    /// Bandwidth limits (`bandwidth`).
    pub bandwidth: Option<Bandwidth>,
    /// Extra CNI args (`cni-args`), merged into the delegate config as `args.cni`.
    pub cni_args: Option<Map<String, Value>>,
    /// Requested InfiniBand GUID (`infiniband-guid`).
    pub infiniband_guid: Option<HardwareAddr>,
    /// Device ID (`deviceID`), used when no device plugin supplies one.
    pub device_id: Option<String>,
    /// Name of the IPAMClaim holding this attachment's addresses (`ipam-claim-reference`).
    pub ipam_claim_reference: Option<String>,
    /// Keys this crate does not know, kept for pass-through.
    pub extra: Map<String, Value>,
}

/// One `portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// Port on the host; 0 when not given.
    pub host_port: u16,
    /// Port in the pod, 1-65535.
    pub container_port: u16,
    /// Protocol; `None` means TCP.
    pub protocol: Option<PortProtocol>,
    /// Host address to bind.
    pub host_ip: Option<IpAddr>,
}

/// A `portMappings` protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl PortProtocol {
    /// The upper-case name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Tcp, Self::Udp, Self::Sctp]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// The `bandwidth` request, in the bandwidth plugin's units (bits per second and bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// `ingressRate`.
    pub ingress_rate: u64,
    /// `ingressBurst`.
    pub ingress_burst: u64,
    /// `egressRate`.
    pub egress_rate: u64,
    /// `egressBurst`.
    pub egress_burst: u64,
}

impl NetworkSelection {
    /// A selection of the NAD `name` with nothing else requested.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The namespace to look the NAD up in.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }

    /// True when the short form `[namespace/]name[@interface]` says everything this selection
    /// holds, and its interface name (which may hold any byte the kernel allows) survives it.
    pub fn fits_short_form(&self) -> bool {
        let interface_fits = self.interface.as_deref().is_none_or(|name| {
            !name.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '@' | '[' | '{' | '"'))
        });
        interface_fits
            && self.ips.is_empty()
            && self.mac.is_none()
            && self.default_route.is_empty()
            && self.port_mappings.is_empty()
            && self.bandwidth.is_none()
            && self.cni_args.is_none()
            && self.infiniband_guid.is_none()
            && self.device_id.is_none()
            && self.ipam_claim_reference.is_none()
            && self.extra.is_empty()
    }
}

/// True when an annotation value is in JSON form (contains `[`, `{` or `"`).
pub fn is_json_form(value: &str) -> bool {
    value.contains(['[', '{', '"'])
}

/// Parses and validates `k8s.v1.cni.cncf.io/networks`. A blank value selects nothing.
pub fn parse_networks(value: &str) -> Result<Vec<NetworkSelection>, CrdError> {
    Ok(parse_list(AnnotationKind::Networks, value)?)
}

/// Parses and validates `v1.multus-cni.io/default-network`: exactly one element, same syntax.
pub fn parse_default_network(value: &str) -> Result<NetworkSelection, CrdError> {
    let kind = AnnotationKind::DefaultNetwork;
    let mut list = parse_list(kind, value)?;
    match list.len() {
        1 => Ok(list.remove(0)),
        n => Err(error(kind, None, None, SelectionProblem::NotExactlyOne(n)).into()),
    }
}

/// Checks selections built in code against the same rules the parsers apply.
pub fn validate_selections(
    kind: AnnotationKind,
    selections: &[NetworkSelection],
) -> Result<(), CrdError> {
    for (index, selection) in selections.iter().enumerate() {
        check_element(kind, index, selection)?;
    }
    Ok(check_list(kind, selections)?)
}

/// Writes selections as an annotation value: the short form when every element fits it,
/// otherwise the JSON form. Parsing the result gives back equal selections.
pub fn format_networks(selections: &[NetworkSelection]) -> String {
    if selections.is_empty() {
        return "[]".to_owned();
    }
    if selections.iter().all(NetworkSelection::fits_short_form) {
        return selections
            .iter()
            .map(short_form)
            .collect::<Vec<_>>()
            .join(",");
    }
    // Serializing maps of strings and numbers cannot fail.
    serde_json::to_string(selections).unwrap_or_default()
}

fn short_form(selection: &NetworkSelection) -> String {
    let mut out = String::new();
    if let Some(ns) = &selection.namespace {
        out.push_str(ns);
        out.push('/');
    }
    out.push_str(&selection.name);
    if let Some(interface) = &selection.interface {
        out.push('@');
        out.push_str(interface);
    }
    out
}

fn error(
    kind: AnnotationKind,
    index: Option<usize>,
    field: Option<String>,
    problem: SelectionProblem,
) -> SelectionError {
    SelectionError {
        annotation: kind,
        index,
        field,
        problem,
    }
}

fn parse_list(kind: AnnotationKind, value: &str) -> Result<Vec<NetworkSelection>, SelectionError> {
    let selections = if is_json_form(value) {
        parse_json_list(kind, value)?
    } else if value.trim().is_empty() {
        Vec::new()
    } else {
        value
            .split(',')
            .enumerate()
            .map(|(index, item)| parse_short_element(kind, index, item))
            .collect::<Result<_, _>>()?
    };
    for (index, selection) in selections.iter().enumerate() {
        check_element(kind, index, selection)?;
    }
    check_list(kind, &selections)?;
    Ok(selections)
}

fn parse_short_element(
    kind: AnnotationKind,
    index: usize,
    item: &str,
) -> Result<NetworkSelection, SelectionError> {
    let item = item.trim();
    let syntax = || {
        error(
            kind,
            Some(index),
            None,
            SelectionProblem::ShortFormSyntax(item.to_owned()),
        )
    };
    if item.is_empty() {
        return Err(error(kind, Some(index), None, SelectionProblem::Empty));
    }
    let (namespace, rest) = match item.split_once('/') {
        Some((_, rest)) if rest.contains('/') => return Err(syntax()),
        Some((ns, rest)) => (Some(ns.trim().to_owned()), rest),
        None => (None, item),
    };
    let (name, interface) = match rest.split_once('@') {
        Some((_, interface)) if interface.contains('@') => return Err(syntax()),
        Some((name, interface)) => (name, Some(interface.trim().to_owned())),
        None => (rest, None),
    };
    Ok(NetworkSelection {
        name: name.trim().to_owned(),
        namespace,
        interface,
        ..NetworkSelection::default()
    })
}

fn parse_json_list(
    kind: AnnotationKind,
    value: &str,
) -> Result<Vec<NetworkSelection>, SelectionError> {
    let parsed: Value = serde_json::from_str(value).map_err(|e| {
        error(
            kind,
            None,
            None,
            SelectionProblem::InvalidJson(e.to_string()),
        )
    })?;
    let Value::Array(elements) = parsed else {
        return Err(error(kind, None, None, SelectionProblem::NotAnArray));
    };
    elements
        .iter()
        .enumerate()
        .map(|(index, element)| {
            parse_json_element(element)
                .map_err(|(field, problem)| error(kind, Some(index), field, problem))
        })
        .collect()
}

/// A problem inside one element: the field path (if any) and what is wrong.
type ElementError = (Option<String>, SelectionProblem);

const NAME: &str = "name";
const NAMESPACE: &str = "namespace";
const INTERFACE: &str = "interface";
const INTERFACE_LEGACY: &str = "interfaceRequest";
const IPS: &str = "ips";
const MAC: &str = "mac";
const DEFAULT_ROUTE: &str = "default-route";
const PORT_MAPPINGS: &str = "portMappings";
const BANDWIDTH: &str = "bandwidth";
const CNI_ARGS: &str = "cni-args";
const INFINIBAND_GUID: &str = "infiniband-guid";
const DEVICE_ID: &str = "deviceID";
const IPAM_CLAIM_REFERENCE: &str = "ipam-claim-reference";

/// The fields of one element, so that matching on a field is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementField {
    Name,
    Namespace,
    Interface,
    InterfaceLegacy,
    Ips,
    Mac,
    DefaultRoute,
    PortMappings,
    Bandwidth,
    CniArgs,
    InfinibandGuid,
    DeviceId,
    IpamClaimReference,
}

const ELEMENT_KEYS: &[(&str, ElementField)] = &[
    (NAME, ElementField::Name),
    (NAMESPACE, ElementField::Namespace),
    (INTERFACE, ElementField::Interface),
    (INTERFACE_LEGACY, ElementField::InterfaceLegacy),
    (IPS, ElementField::Ips),
    (MAC, ElementField::Mac),
    (DEFAULT_ROUTE, ElementField::DefaultRoute),
    (PORT_MAPPINGS, ElementField::PortMappings),
    (BANDWIDTH, ElementField::Bandwidth),
    (CNI_ARGS, ElementField::CniArgs),
    (INFINIBAND_GUID, ElementField::InfinibandGuid),
    (DEVICE_ID, ElementField::DeviceId),
    (IPAM_CLAIM_REFERENCE, ElementField::IpamClaimReference),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMappingField {
    HostPort,
    ContainerPort,
    Protocol,
    HostIp,
}

const HOST_PORT: &str = "hostPort";
const CONTAINER_PORT: &str = "containerPort";
const PORT_MAPPING_KEYS: &[(&str, PortMappingField)] = &[
    (HOST_PORT, PortMappingField::HostPort),
    (CONTAINER_PORT, PortMappingField::ContainerPort),
    ("protocol", PortMappingField::Protocol),
    ("hostIP", PortMappingField::HostIp),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BandwidthField {
    IngressRate,
    IngressBurst,
    EgressRate,
    EgressBurst,
}

const BANDWIDTH_KEYS: &[(&str, BandwidthField)] = &[
    ("ingressRate", BandwidthField::IngressRate),
    ("ingressBurst", BandwidthField::IngressBurst),
    ("egressRate", BandwidthField::EgressRate),
    ("egressBurst", BandwidthField::EgressBurst),
];

/// The known key a JSON key stands for: exact match first, then ASCII case-insensitive.
fn known_key<T: Copy>(key: &str, known: &[(&'static str, T)]) -> Option<(&'static str, T)> {
    known
        .iter()
        .find(|(k, _)| *k == key)
        .or_else(|| known.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .copied()
}

fn wrong_type(field: &str, expected: &'static str) -> ElementError {
    (
        Some(field.to_owned()),
        SelectionProblem::WrongType { expected },
    )
}

/// A string field; `""` means "not given".
fn optional_string(field: &str, value: &Value) -> Result<Option<String>, ElementError> {
    match value {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(wrong_type(field, "a string")),
    }
}

fn string_array<'v>(field: &str, value: &'v Value) -> Result<Vec<&'v str>, ElementError> {
    let expected = "an array of strings";
    let Value::Array(items) = value else {
        return Err(wrong_type(field, expected));
    };
    items
        .iter()
        .map(|item| item.as_str().ok_or_else(|| wrong_type(field, expected)))
        .collect()
}

fn parse_json_element(value: &Value) -> Result<NetworkSelection, ElementError> {
    let Value::Object(object) = value else {
        return Err((
            None,
            SelectionProblem::WrongType {
                expected: "a JSON object",
            },
        ));
    };
    let mut selection = NetworkSelection::default();
    let mut interface = None;
    let mut legacy_interface = None;
    for (key, value) in object {
        let Some((field, which)) = known_key(key, ELEMENT_KEYS) else {
            selection.extra.insert(key.clone(), value.clone());
            continue;
        };
        // Go's decoder leaves a field alone on null.
        if value.is_null() {
            continue;
        }
        match which {
            ElementField::Name => {
                selection.name = optional_string(field, value)?.unwrap_or_default();
            }
            ElementField::Namespace => selection.namespace = optional_string(field, value)?,
            ElementField::Interface => interface = optional_string(field, value)?,
            ElementField::InterfaceLegacy => legacy_interface = optional_string(field, value)?,
            ElementField::Ips => selection.ips = parse_ips(value)?,
            ElementField::Mac => {
                selection.mac = parse_hardware_addr(field, value, SelectionProblem::NotMac)?;
            }
            ElementField::InfinibandGuid => {
                selection.infiniband_guid =
                    parse_hardware_addr(field, value, SelectionProblem::NotGuid)?;
            }
            ElementField::DefaultRoute => selection.default_route = parse_gateways(value)?,
            ElementField::PortMappings => selection.port_mappings = parse_port_mappings(value)?,
            ElementField::Bandwidth => selection.bandwidth = Some(parse_bandwidth(value)?),
            ElementField::CniArgs => match value {
                Value::Object(args) => selection.cni_args = Some(args.clone()),
                _ => return Err(wrong_type(field, "a JSON object")),
            },
            ElementField::DeviceId => selection.device_id = optional_string(field, value)?,
            ElementField::IpamClaimReference => {
                selection.ipam_claim_reference = optional_string(field, value)?;
            }
        }
    }
    selection.interface = match (interface, legacy_interface) {
        (Some(interface), Some(legacy)) if interface != legacy => {
            return Err((
                Some(INTERFACE.to_owned()),
                SelectionProblem::ConflictingInterface { interface, legacy },
            ));
        }
        (interface, legacy) => interface.or(legacy),
    };
    Ok(selection)
}

fn parse_ips(value: &Value) -> Result<Vec<IpRequest>, ElementError> {
    string_array(IPS, value)?
        .into_iter()
        .enumerate()
        .map(|(i, ip)| {
            ip.parse().map_err(|_| {
                (
                    Some(format!("{IPS}[{i}]")),
                    SelectionProblem::NotIpOrCidr(ip.to_owned()),
                )
            })
        })
        .collect()
}

fn parse_gateways(value: &Value) -> Result<Vec<IpAddr>, ElementError> {
    string_array(DEFAULT_ROUTE, value)?
        .into_iter()
        .enumerate()
        .map(|(i, gw)| {
            gw.parse().map_err(|_| {
                (
                    Some(format!("{DEFAULT_ROUTE}[{i}]")),
                    SelectionProblem::NotIp(gw.to_owned()),
                )
            })
        })
        .collect()
}

fn parse_hardware_addr(
    field: &str,
    value: &Value,
    problem: fn(String) -> SelectionProblem,
) -> Result<Option<HardwareAddr>, ElementError> {
    match optional_string(field, value)? {
        None => Ok(None),
        Some(text) => match text.parse() {
            Ok(addr) => Ok(Some(addr)),
            Err(_) => Err((Some(field.to_owned()), problem(text))),
        },
    }
}

fn parse_port_mappings(value: &Value) -> Result<Vec<PortMapping>, ElementError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(PORT_MAPPINGS, "an array of objects"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_port_mapping(&format!("{PORT_MAPPINGS}[{i}]"), item))
        .collect()
}

fn parse_port_mapping(path: &str, value: &Value) -> Result<PortMapping, ElementError> {
    let Value::Object(object) = value else {
        return Err(wrong_type(path, "a JSON object"));
    };
    let mut mapping = PortMapping {
        host_port: 0,
        container_port: 0,
        protocol: None,
        host_ip: None,
    };
    for (key, value) in object {
        let Some((field, which)) = known_key(key, PORT_MAPPING_KEYS) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let path = format!("{path}.{field}");
        let at = || Some(path.clone());
        match which {
            PortMappingField::HostPort => {
                mapping.host_port = port(value).ok_or_else(|| (at(), not_port(value)))?;
            }
            PortMappingField::ContainerPort => {
                mapping.container_port = port(value).ok_or_else(|| (at(), not_port(value)))?;
            }
            PortMappingField::Protocol => {
                mapping.protocol = match optional_string(&path, value)? {
                    None => None,
                    Some(text) => Some(
                        PortProtocol::parse(&text)
                            .ok_or_else(|| (at(), SelectionProblem::NotProtocol(text)))?,
                    ),
                };
            }
            PortMappingField::HostIp => {
                mapping.host_ip = match optional_string(&path, value)? {
                    None => None,
                    Some(text) => Some(
                        text.parse()
                            .map_err(|_| (at(), SelectionProblem::NotIp(text)))?,
                    ),
                };
            }
        }
    }
    Ok(mapping)
}

fn port(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|p| u16::try_from(p).ok())
}

fn not_port(value: &Value) -> SelectionProblem {
    SelectionProblem::NotPort(value.to_string())
}

fn parse_bandwidth(value: &Value) -> Result<Bandwidth, ElementError> {
    let Value::Object(object) = value else {
        return Err(wrong_type(BANDWIDTH, "a JSON object"));
    };
    let mut bandwidth = Bandwidth::default();
    for (key, value) in object {
        let Some((field, which)) = known_key(key, BANDWIDTH_KEYS) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let count = value.as_u64().ok_or_else(|| {
            (
                Some(format!("{BANDWIDTH}.{field}")),
                SelectionProblem::NotCount(value.to_string()),
            )
        })?;
        match which {
            BandwidthField::IngressRate => bandwidth.ingress_rate = count,
            BandwidthField::IngressBurst => bandwidth.ingress_burst = count,
            BandwidthField::EgressRate => bandwidth.egress_rate = count,
            BandwidthField::EgressBurst => bandwidth.egress_burst = count,
        }
    }
    Ok(bandwidth)
}

/// Rules on one element that the types alone do not enforce.
fn check_element(
    kind: AnnotationKind,
    index: usize,
    selection: &NetworkSelection,
) -> Result<(), SelectionError> {
    let fail =
        |field: &str, problem| Err(error(kind, Some(index), Some(field.to_owned()), problem));
    if selection.name.is_empty() {
        return fail(NAME, SelectionProblem::Required);
    }
    // A NAD's name is a Kubernetes object name: dots are allowed, as in "storage.v2".
    if !is_dns1123_subdomain(&selection.name) {
        return fail(
            NAME,
            SelectionProblem::NotDnsSubdomain(selection.name.clone()),
        );
    }
    if let Some(ns) = &selection.namespace {
        if ns.is_empty() {
            return fail(NAMESPACE, SelectionProblem::Empty);
        }
        if !is_dns1123_label(ns) {
            return fail(NAMESPACE, SelectionProblem::NotDnsLabel(ns.clone()));
        }
    }
    if let Some(interface) = &selection.interface
        && let Err(reason) = check_interface_name(interface)
    {
        let name = interface.clone();
        return fail(INTERFACE, SelectionProblem::InterfaceName { name, reason });
    }
    for (i, mapping) in selection.port_mappings.iter().enumerate() {
        if mapping.container_port == 0 {
            let field = format!("{PORT_MAPPINGS}[{i}].{CONTAINER_PORT}");
            return fail(&field, SelectionProblem::NotPort("0".to_owned()));
        }
    }
    if let Some(claim) = &selection.ipam_claim_reference {
        if !is_dns1123_subdomain(claim) {
            let problem = SelectionProblem::NotDnsSubdomain(claim.clone());
            return fail(IPAM_CLAIM_REFERENCE, problem);
        }
        if !selection.ips.is_empty() {
            return fail(IPAM_CLAIM_REFERENCE, SelectionProblem::IpsWithIpamClaim);
        }
    }
    Ok(())
}

/// Rules across elements: unique interface names, at most one gateway per IP family.
fn check_list(kind: AnnotationKind, selections: &[NetworkSelection]) -> Result<(), SelectionError> {
    let label = |index: usize| format!("{}[{index}]", kind.label());
    let mut interfaces: HashMap<&str, usize> = HashMap::new();
    let mut first_v4: Option<usize> = None;
    let mut first_v6: Option<usize> = None;
    for (index, selection) in selections.iter().enumerate() {
        if let Some(interface) = selection.interface.as_deref() {
            if let Some(first) = interfaces.get(interface) {
                let problem = SelectionProblem::DuplicateInterface {
                    name: interface.to_owned(),
                    first: label(*first),
                };
                return Err(error(
                    kind,
                    Some(index),
                    Some(INTERFACE.to_owned()),
                    problem,
                ));
            }
            interfaces.insert(interface, index);
        }
        for gateway in &selection.default_route {
            let (first, family) = if gateway.is_ipv4() {
                (&mut first_v4, "IPv4")
            } else {
                (&mut first_v6, "IPv6")
            };
            if let Some(first) = first {
                let problem = SelectionProblem::SecondDefaultRoute {
                    family,
                    gateway: gateway.to_string(),
                    first: label(*first),
                };
                return Err(error(
                    kind,
                    Some(index),
                    Some(DEFAULT_ROUTE.to_owned()),
                    problem,
                ));
            }
            *first = Some(index);
        }
    }
    Ok(())
}

impl Serialize for NetworkSelection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(NAME, &self.name)?;
        if let Some(ns) = &self.namespace {
            map.serialize_entry(NAMESPACE, ns)?;
        }
        if let Some(interface) = &self.interface {
            map.serialize_entry(INTERFACE, interface)?;
        }
        if !self.ips.is_empty() {
            let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
            map.serialize_entry(IPS, &ips)?;
        }
        if let Some(mac) = &self.mac {
            map.serialize_entry(MAC, &mac.to_string())?;
        }
        if let Some(guid) = &self.infiniband_guid {
            map.serialize_entry(INFINIBAND_GUID, &guid.to_string())?;
        }
        if !self.default_route.is_empty() {
            map.serialize_entry(DEFAULT_ROUTE, &self.default_route)?;
        }
        if !self.port_mappings.is_empty() {
            let mappings: Vec<Value> = self.port_mappings.iter().map(port_mapping_json).collect();
            map.serialize_entry(PORT_MAPPINGS, &mappings)?;
        }
        if let Some(bandwidth) = &self.bandwidth {
            map.serialize_entry(BANDWIDTH, &bandwidth_json(bandwidth))?;
        }
        if let Some(args) = &self.cni_args {
            map.serialize_entry(CNI_ARGS, args)?;
        }
        if let Some(device_id) = &self.device_id {
            map.serialize_entry(DEVICE_ID, device_id)?;
        }
        if let Some(claim) = &self.ipam_claim_reference {
            map.serialize_entry(IPAM_CLAIM_REFERENCE, claim)?;
        }
        // An extra key that a parser would read as a known field is not written: it would
        // shadow or duplicate that field.
        for (key, value) in &self.extra {
            if known_key(key, ELEMENT_KEYS).is_none() {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NetworkSelection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let selection = parse_json_element(&value).map_err(|(field, problem)| match field {
            Some(field) => serde::de::Error::custom(format!("{field}: {problem}")),
            None => serde::de::Error::custom(problem),
        })?;
        check_element(AnnotationKind::Networks, 0, &selection).map_err(|e| {
            let field = e.field.unwrap_or_default();
            serde::de::Error::custom(format!("{field}: {}", e.problem))
        })?;
        Ok(selection)
    }
}

fn port_mapping_json(mapping: &PortMapping) -> Value {
    let mut object = Map::new();
    object.insert(HOST_PORT.to_owned(), mapping.host_port.into());
    object.insert(CONTAINER_PORT.to_owned(), mapping.container_port.into());
    if let Some(protocol) = mapping.protocol {
        object.insert("protocol".to_owned(), protocol.as_str().into());
    }
    if let Some(ip) = mapping.host_ip {
        object.insert("hostIP".to_owned(), ip.to_string().into());
    }
    Value::Object(object)
}

fn bandwidth_json(bandwidth: &Bandwidth) -> Value {
    let values = [
        bandwidth.ingress_rate,
        bandwidth.ingress_burst,
        bandwidth.egress_rate,
        bandwidth.egress_burst,
    ];
    let object = BANDWIDTH_KEYS
        .iter()
        .zip(values)
        .map(|((key, _), value)| ((*key).to_owned(), Value::from(value)))
        .collect();
    Value::Object(object)
}
