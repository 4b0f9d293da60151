//! DHCP for the address a lease holds (the lxc-user-nic mode): what to
//! answer, decided here without any I/O so that it can be unit tested and
//! fuzzed, and the process that answers on one interface ([`responder`]).
//!
//! The client it serves is rootlesskit's (insomniacslk/dhcp `client4`): one
//! DISCOVER and one REQUEST, both broadcast from `0.0.0.0:68` with the
//! broadcast flag clear and no client identifier, waiting 30 s for each
//! answer and reading it from a packet socket; the ACK must carry `yiaddr`,
//! a subnet mask, a router and a DNS server, or rootlesskit gives up.
//!
//! Only requests from the lease's MAC (both the Ethernet source and
//! `chaddr`) are answered, and only with the lease's address. Everything
//! else, and everything malformed, gets no answer at all: a REQUEST for
//! another address is not NAKed, since the one client we serve never asks
//! for one and silence tells a hostile sender nothing.

pub mod message;
pub mod responder;

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

pub use message::MessageType;
use message::{client_message, Reply as Message, Request};

/// The DHCP server's UDP port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client's UDP port.
pub const CLIENT_PORT: u16 = 68;
/// RFC 2131's infinite lease: the client never renews, so nothing a
/// renewal could change ever does. (rootlesskit would sleep 0.9 of 136
/// years before renewing.)
pub const INFINITE_LEASE: u32 = u32::MAX;
const UDP: u8 = 17;
const TTL: u8 = 64;

/// What one responder hands out: one address, to one MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The container's MAC: the peer of the host end.
    pub mac: [u8; 6],
    /// The leased address.
    pub address: Ipv4Addr,
    /// The bridge's address and the subnet's prefix: router, server
    /// identifier and, through the prefix, the subnet mask.
    pub gateway: Ipv4Network,
    /// DNS servers; rootlesskit refuses an answer without one.
    pub dns: Vec<Ipv4Addr>,
}

/// An answer: an IPv4 packet and the Ethernet address it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The client's Ethernet address.
    pub to: [u8; 6],
    /// The IPv4 packet.
    pub packet: Vec<u8>,
    /// It is the ACK: the exchange is complete.
    pub done: bool,
}

/// The answer to the IPv4 packet `packet` that arrived from Ethernet
/// address `from`, if it deserves one.
pub fn answer(from: [u8; 6], packet: &[u8], terms: &Terms) -> Option<Reply> {
    if from != terms.mac {
        return None;
    }
    let server = terms.gateway.ip();
    let request = Request::parse(udp_payload(packet, server)?)?;
    if request.chaddr != terms.mac {
        return None;
    }
    let (kind, ciaddr) = match request.kind {
        MessageType::Discover => (MessageType::Offer, Ipv4Addr::UNSPECIFIED),
        MessageType::Request => {
            if request.server.is_some_and(|id| id != server)
                || request.requested.unwrap_or(request.ciaddr) != terms.address
            {
                return None;
            }
            (MessageType::Ack, request.ciaddr)
        }
        _ => return None,
    };
    let message = Message {
        kind,
        xid: request.xid,
        broadcast: request.broadcast,
        ciaddr,
        yiaddr: terms.address,
        chaddr: terms.mac,
        server,
        lease: INFINITE_LEASE,
        mask: terms.gateway.mask(),
        dns: &terms.dns,
        client_id: request.client_id,
    }
    .encode()?;
    // RFC 2131 4.1: to the broadcast address if the client asked, else to
    // its hardware address and the address it is about to have.
    let (to, dst) = if request.broadcast {
        ([0xff; 6], Ipv4Addr::BROADCAST)
    } else {
        (terms.mac, terms.address)
    };
    Some(Reply {
        to,
        packet: udp_packet((server, SERVER_PORT), (dst, CLIENT_PORT), &message),
        done: kind == MessageType::Ack,
    })
}

/// A client's message as rootlesskit's client sends it, in an IPv4 packet
/// from `0.0.0.0:68` to `255.255.255.255:67`: flags 0, the message type,
/// then `options` (code and value) as they are (for tests and fuzz seeds,
/// which may forge any option). Panics if a value is longer than 255 bytes.
pub fn client_request(chaddr: [u8; 6], kind: MessageType, options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let bytes = client_message(chaddr, kind, options);
    udp_packet(
        (Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
        (Ipv4Addr::BROADCAST, SERVER_PORT),
        &bytes,
    )
}

/// The DHCP message of an IPv4 packet from the client port to the server
/// port, sent to the broadcast address or to `server`; `None` for anything
/// else: options, fragments, bad header checksums, lengths that disagree.
/// (The UDP checksum is not checked: one sent through a veth may be left
/// for an offload that never happens, and nothing here depends on it.)
fn udp_payload(packet: &[u8], server: Ipv4Addr) -> Option<&[u8]> {
    let header = packet.get(..20)?;
    let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    if header[0] != 0x45
        || total > packet.len()
        || flags_offset & 0x3fff != 0
        || header[9] != UDP
        || checksum(&[header]) != 0
        || !(dst == Ipv4Addr::BROADCAST || dst == server)
    {
        return None;
    }
    let udp = packet.get(20..total)?;
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let length = usize::from(port(4));
    if udp.len() < 8 || port(0) != CLIENT_PORT || port(2) != SERVER_PORT || length < 8 {
        return None;
    }
    udp.get(8..length)
}

/// An IPv4 packet from `src` to `dst` (address and UDP port) carrying
/// `payload`, both checksums computed.
pub fn udp_packet(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let ((src, src_port), (dst, dst_port)) = (src, dst);
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, TTL, UDP, 0, 0]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let header_sum = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&header_sum.to_be_bytes());
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = UDP;
    pseudo[10..].copy_from_slice(&(udp_len as u16).to_be_bytes());
    // 0 means "no checksum" in UDP; a computed 0 is sent as all ones.
    let udp_sum = match checksum(&[&pseudo, &p[20..]]) {
        0 => 0xffff,
        sum => sum,
    };
    p[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    p
}

/// The Internet checksum of the concatenated parts (each of even length
/// but the last); 0 over data that includes a correct checksum.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
