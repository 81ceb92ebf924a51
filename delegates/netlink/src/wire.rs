//! The bytes of a route netlink request, as sent by [`crate::Socket`] and compared with `ip`'s,
//! and the link message bodies the requests share.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

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

/// A link message about link `index` (0: the link is named by an attribute instead) carrying
/// `attributes`, in that order.
pub(crate) fn link_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes = attributes;
    msg
}

/// A link message setting link `index` administratively up or down (`ip link set up|down`).
pub(crate) fn link_admin_state(index: u32, up: bool) -> LinkMessage {
    let mut msg = link_message(index, Vec::new());
    if up {
        msg.header.flags |= LinkFlags::Up;
    }
    msg.header.change_mask |= LinkFlags::Up;
    msg
}
