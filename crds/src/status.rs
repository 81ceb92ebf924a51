//! The `k8s.v1.cni.cncf.io/network-status` pod annotation: what each attachment got.
//!
//! The writer produces byte for byte what the Go client (and so every peer) writes: each entry
//! indented by four spaces, entries joined by `,` inside `[` `]`, zero values omitted except
//! `name` and `dns`, and `<`, `>`, `&`, U+2028, U+2029 escaped. The reader also accepts the
//! spec's `default-route` for `gateway`, and `null` wherever a value may be absent.

use std::io;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

use crate::device_info::DeviceInfo;
use crate::error::CrdError;
use crate::json::strip_nulls;

/// Pod annotation listing the attachments and their addresses.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// One attachment's status. Empty strings, empty lists, `mtu` 0 and `default` false are
/// "not set" and are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `namespace/nad` for a NAD, the CNI network name for the cluster network. Read as empty
    /// when missing, as the Go client does.
    #[serde(default)]
    pub name: String,
    /// Interface name inside the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// Addresses, without prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address of the interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU of the interface.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    /// True for the entry that holds the pod's default route.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// DNS settings from the CNI result; always written, `{}` when empty.
    #[serde(default)]
    pub dns: Dns,
    /// The device behind the attachment, if any.
    #[serde(
        rename = "device-info",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info: Option<DeviceInfo>,
    /// Default-route gateways. Written as `gateway`; `default-route` is read too.
    #[serde(
        default,
        alias = "default-route",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub gateway: Vec<String>,
}

/// DNS settings, as in a CNI result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// `nameservers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `search`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An address as Go's `net.IP.String()` writes it: IPv4-mapped IPv6 addresses as dotted IPv4.
pub fn status_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Writes the annotation value exactly as the Go client does.
pub fn format_network_status(statuses: &[NetworkStatus]) -> String {
    let entries: Vec<String> = statuses.iter().map(go_indented_json).collect();
    format!("[{}]", entries.join(","))
}

/// Reads the annotation value. Entries may use `gateway` or `default-route`; unknown keys are
/// ignored.
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>, CrdError> {
    let err = |e: serde_json::Error| CrdError::NetworkStatus(e.to_string());
    let mut parsed: Value = serde_json::from_str(value).map_err(err)?;
    strip_nulls(&mut parsed);
    merge_gateway_spellings(&mut parsed);
    serde_json::from_value(parsed).map_err(err)
}

/// When an entry has both spellings, `gateway` (what Multus writes) wins.
fn merge_gateway_spellings(value: &mut Value) {
    if let Value::Array(entries) = value {
        for entry in entries {
            if let Value::Object(object) = entry
                && object.contains_key("gateway")
            {
                object.remove("default-route");
            }
        }
    }
}

fn go_indented_json(status: &NetworkStatus) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        GoFormatter(PrettyFormatter::with_indent(b"    ")),
    );
    // A struct of strings, integers and bools always serializes.
    if status.serialize(&mut serializer).is_err() {
        return String::new();
    }
    // serde_json only writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Go's encoder: indented like `json.MarshalIndent`, with HTML-sensitive characters and the
/// JavaScript line separators escaped.
struct GoFormatter(PrettyFormatter<'static>);

impl GoFormatter {
    fn write_escaped_fragment<W: ?Sized + io::Write>(
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        Self::write_escaped_fragment(writer, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(writer, char_escape)
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}
