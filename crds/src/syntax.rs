//! Syntax of the values found in annotations: DNS-1123 names, interface names, IP requests and
//! hardware addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// Longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest Linux interface name in bytes (IFNAMSIZ less the terminating NUL).
pub const INTERFACE_NAME_MAX: usize = 15;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= DNS1123_LABEL_MAX
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Dot-separated DNS-1123 labels, at most 253 characters: the syntax of most object names.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

/// Why a string cannot be a Linux interface name.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceNameError {
    /// The empty string.
    #[error("it is empty")]
    Empty,
    /// More than [`INTERFACE_NAME_MAX`] bytes.
    #[error("it is longer than 15 bytes")]
    TooLong,
    /// `.` or `..`.
    #[error("\".\" and \"..\" are reserved")]
    Reserved,
    /// A byte the kernel refuses: `/`, `:`, whitespace, or NUL.
    #[error("it contains '/', ':', whitespace or NUL")]
    ForbiddenCharacter,
}

/// Checks a name the way the kernel's `dev_valid_name` does (and refuses NUL, which would
/// silently truncate it).
pub fn check_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    if name.is_empty() {
        return Err(InterfaceNameError::Empty);
    }
    if name.len() > INTERFACE_NAME_MAX {
        return Err(InterfaceNameError::TooLong);
    }
    if name == "." || name == ".." {
        return Err(InterfaceNameError::Reserved);
    }
    // The kernel's isspace(): space, \t, \n, \v, \f, \r.
    let forbidden = |b: u8| matches!(b, b'/' | b':' | b' ' | b'\t'..=b'\r' | 0);
    if name.bytes().any(forbidden) {
        return Err(InterfaceNameError::ForbiddenCharacter);
    }
    Ok(())
}

/// An address asked for in `ips`: an IP, optionally with a prefix length (`10.1.1.5/24`).
/// Host bits are kept: the request names the address, the prefix only sizes the subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRequest {
    /// The address itself.
    pub address: IpAddr,
    /// The prefix length, when given in CIDR form.
    pub prefix_len: Option<u8>,
}

/// A string that is neither an IP address nor an IP in CIDR notation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not an IP address or CIDR")]
pub struct IpRequestParseError(pub String);

impl FromStr for IpRequest {
    type Err = IpRequestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpRequestParseError(s.to_owned());
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address = IpAddr::from_str(address).map_err(|_| err())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => None,
            Some(p) => {
                let canonical = !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0'));
                let len: u8 = p
                    .parse()
                    .ok()
                    .filter(|l| *l <= max && canonical)
                    .ok_or_else(err)?;
                Some(len)
            }
        };
        Ok(Self {
            address,
            prefix_len,
        })
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len {
            Some(len) => write!(f, "{}/{len}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

/// A link-layer address in any form Go's `net.ParseMAC` accepts: 6 (EUI-48), 8 (EUI-64) or
/// 20 (IP over InfiniBand) octets, written `aa:bb:..`, `aa-bb-..` or `aabb.ccdd...`.
/// Displayed as lower-case, colon-separated octets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HardwareAddr {
    octets: [u8; 20],
    len: u8,
}

/// A string that is not a hardware address.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not a MAC address")]
pub struct HardwareAddrParseError(pub String);

impl HardwareAddr {
    /// Builds an address from 6, 8 or 20 octets.
    pub fn from_octets(octets: &[u8]) -> Option<Self> {
        if !matches!(octets.len(), 6 | 8 | 20) {
            return None;
        }
        let mut stored = [0u8; 20];
        stored[..octets.len()].copy_from_slice(octets);
        Some(Self {
            octets: stored,
            len: u8::try_from(octets.len()).ok()?,
        })
    }

    /// The octets, 6, 8 or 20 of them.
    pub fn octets(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }
}

impl FromStr for HardwareAddr {
    type Err = HardwareAddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hardware_addr(s).ok_or_else(|| HardwareAddrParseError(s.to_owned()))
    }
}

fn parse_hardware_addr(s: &str) -> Option<HardwareAddr> {
    let bytes = s.as_bytes();
    // Groups of `width` hex digits, each followed by `separator` except the last.
    let (width, separator) = match (bytes.get(2), bytes.get(4)) {
        (Some(b':'), _) => (2, b':'),
        (Some(b'-'), _) => (2, b'-'),
        (_, Some(b'.')) => (4, b'.'),
        _ => return None,
    };
    let groups: Vec<&[u8]> = bytes.split(|b| *b == separator).collect();
    if groups.iter().any(|g| g.len() != width) {
        return None;
    }
    let mut octets = Vec::with_capacity(groups.len() * width / 2);
    for group in groups {
        for pair in group.chunks(2) {
            let text = std::str::from_utf8(pair).ok()?;
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            octets.push(u8::from_str_radix(text, 16).ok()?);
        }
    }
    HardwareAddr::from_octets(&octets)
}

impl fmt::Display for HardwareAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.octets().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{octet:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HardwareAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HardwareAddr({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for good in ["a", "0", "a-b", "abc123", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64), "é"] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        assert!(is_dns1123_subdomain("claim.v1"));
        assert!(!is_dns1123_subdomain("claim..v1"));
        assert!(!is_dns1123_subdomain(".a"));
        assert!(!is_dns1123_subdomain(&"a.".repeat(127)));
    }

    #[test]
    fn interface_names() {
        assert_eq!(check_interface_name("net1"), Ok(()));
        assert_eq!(check_interface_name("a_b-C.é"), Ok(()));
        assert_eq!(check_interface_name(&"x".repeat(15)), Ok(()));
        assert_eq!(check_interface_name(""), Err(InterfaceNameError::Empty));
        assert_eq!(
            check_interface_name(&"x".repeat(16)),
            Err(InterfaceNameError::TooLong)
        );
        // 8 two-byte characters are 16 bytes.
        assert_eq!(
            check_interface_name(&"é".repeat(8)),
            Err(InterfaceNameError::TooLong)
        );
        assert_eq!(
            check_interface_name(".."),
            Err(InterfaceNameError::Reserved)
        );
        for bad in ["a/b", "a:b", "a b", "a\tb", "a\u{b}b", "a\0b"] {
            assert_eq!(
                check_interface_name(bad),
                Err(InterfaceNameError::ForbiddenCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ip_requests() {
        let r: IpRequest = "10.1.1.5/24".parse().unwrap();
        assert_eq!(r.address, "10.1.1.5".parse::<IpAddr>().unwrap());
        assert_eq!(r.prefix_len, Some(24));
        assert_eq!(r.to_string(), "10.1.1.5/24");
        assert_eq!("2001:db8::1".parse::<IpRequest>().unwrap().prefix_len, None);
        assert_eq!(
            "2001:db8::1/128".parse::<IpRequest>().unwrap().prefix_len,
            Some(128)
        );
        for bad in [
            "",
            "10.1.1",
            "10.1.1.5/33",
            "10.1.1.5/",
            "10.1.1.5/024",
            "::1/129",
            "a/1",
            "10.1.1.5/+1",
            "fe80::1%eth0",
        ] {
            assert!(bad.parse::<IpRequest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hardware_addresses() {
        let cases = [
            ("00:11:22:AA:bb:cc", "00:11:22:aa:bb:cc"),
            ("00-11-22-aa-bb-cc", "00:11:22:aa:bb:cc"),
            ("0011.22aa.bbcc", "00:11:22:aa:bb:cc"),
            ("00:11:22:33:44:55:66:77", "00:11:22:33:44:55:66:77"),
            ("0011.2233.4455.6677", "00:11:22:33:44:55:66:77"),
        ];
        for (input, shown) in cases {
            let parsed: HardwareAddr = input.parse().unwrap();
            assert_eq!(parsed.to_string(), shown);
        }
        let ipoib = ["00"; 20].join(":");
        assert_eq!(ipoib.parse::<HardwareAddr>().unwrap().octets().len(), 20);
        for bad in [
            "",
            "zz",
            "00:11:22:33:44",
            "00:11:22:33:44:5",
            "00:11-22:33:44:55",
            "00:11:22:33:44:55:",
            "0011.22aa.bbc",
            "00:11:22:33:44:55:66",
            "0g:11:22:33:44:55",
            "001122334455",
            "+0:11:22:33:44:55",
        ] {
            assert!(bad.parse::<HardwareAddr>().is_err(), "{bad}");
        }
    }
}
