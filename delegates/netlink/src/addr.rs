//! IP addresses on links, and waiting for IPv6 duplicate address detection.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};

/// An address on a link, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the link.
    pub index: u32,
    /// The address with its prefix length.
    pub address: IpNet,
    /// Scope (universe, link, host, ...).
    pub scope: AddressScope,
    /// `IFA_F_*` flags (full 32 bits when the kernel sent IFA_FLAGS).
    pub flags: AddressFlags,
}

impl Address {
    /// Still undergoing IPv6 duplicate address detection (not usable yet).
    pub fn is_tentative(&self) -> bool {
        self.flags.contains(AddressFlags::Tentative)
    }

    /// IPv6 duplicate address detection found the address in use.
    pub fn is_dad_failed(&self) -> bool {
        self.flags.contains(AddressFlags::Dadfailed)
    }

    /// Reads an address from an RTM_NEWADDR message; None for one without an address.
    pub fn from_message(msg: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                AddressAttribute::Flags(f) => flags = *f,
                _ => {}
            }
        }
        // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
        // point-to-point links); IPv6 sends only IFA_ADDRESS.
        let ip = local.or(address)?;
        let address = IpNet::new(ip, msg.header.prefix_len).ok()?;
        Some(Address {
            index: msg.header.index,
            address,
            scope: msg.header.scope,
            flags,
        })
    }
}

/// The RTM_NEWADDR / RTM_DELADDR message for `address` on link `index`, as `ip addr add`
/// sends it: IFA_ADDRESS and IFA_LOCAL both the address, and for IPv4 prefixes shorter than
/// /31 the broadcast address (`brd +`); a multicast address is IFA_MULTICAST (IPv6) or
/// nothing (IPv4).
pub fn address_message(index: u32, address: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = address.prefix_len();
    let prefix_len = address.prefix_len();
    match address.addr() {
        IpAddr::V4(ip) => {
            msg.header.family = AddressFamily::Inet;
            if !ip.is_multicast() {
                msg.attributes.push(AddressAttribute::Address(ip.into()));
                msg.attributes.push(AddressAttribute::Local(ip.into()));
                if prefix_len < 31 {
                    let brd = Ipv4Addr::from(u32::MAX >> u32::from(prefix_len) | u32::from(ip));
                    msg.attributes.push(AddressAttribute::Broadcast(brd));
                }
            }
        }
        IpAddr::V6(ip) => {
            msg.header.family = AddressFamily::Inet6;
            if ip.is_multicast() {
                msg.attributes.push(AddressAttribute::Multicast(ip));
            } else {
                msg.attributes.push(AddressAttribute::Address(ip.into()));
                msg.attributes.push(AddressAttribute::Local(ip.into()));
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::AddressHeaderFlags;

    #[test]
    fn ipv4_prefers_local_over_peer() {
        let mut msg = address_message(3, "10.0.0.5/24".parse().unwrap());
        msg.attributes
            .retain(|a| !matches!(a, AddressAttribute::Address(_)));
        msg.attributes
            .push(AddressAttribute::Address("10.0.0.1".parse().unwrap()));
        let a = Address::from_message(&msg).unwrap();
        assert_eq!(a.address, "10.0.0.5/24".parse::<IpNet>().unwrap());
        assert_eq!(a.index, 3);
    }

    #[test]
    fn ipv6_tentative_flag_from_header_or_attribute() {
        let mut msg = address_message(2, "fd00::5/64".parse().unwrap());
        assert_eq!(msg.header.family, AddressFamily::Inet6);
        msg.header.flags = AddressHeaderFlags::Tentative;
        assert!(Address::from_message(&msg).unwrap().is_tentative());
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Dadfailed));
        let a = Address::from_message(&msg).unwrap();
        assert!(a.is_dad_failed());
        assert!(
            !a.is_tentative(),
            "IFA_FLAGS overrides the 8-bit header flags"
        );
    }

    #[test]
    fn message_without_address_is_skipped() {
        let msg = AddressMessage::default();
        assert_eq!(Address::from_message(&msg), None);
    }
}
