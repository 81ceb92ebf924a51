//! The bytes of a route netlink request, as sent by [`crate::Socket`] and compared with `ip`'s.

use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

/// Serialises `msg` as a request with the given flags and sequence number (port 0), exactly
/// the bytes sent.
pub fn encode_request(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}
