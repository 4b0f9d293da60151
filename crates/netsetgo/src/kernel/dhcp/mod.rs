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

pub mod responder;

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use ipnetwork::Ipv4Network;

/// The DHCP server's UDP port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client's UDP port.
pub const CLIENT_PORT: u16 = 68;
/// RFC 2131's infinite lease: the client never renews, so nothing a
/// renewal could change ever does. (rootlesskit would sleep 0.9 of 136
/// years before renewing.)
pub const INFINITE_LEASE: u32 = u32::MAX;
/// The BOOTP minimum message size (RFC 1542): some clients drop shorter.
const MIN_MESSAGE: usize = 300;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offset of the magic cookie in a BOOTP message.
const MAGIC_AT: usize = 236;
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
    let payload = udp_payload(packet, terms.gateway.ip())?;
    if payload.get(MAGIC_AT..MAGIC_AT + 4)? != MAGIC || !plain_options(&payload[MAGIC_AT + 4..]) {
        return None;
    }
    let request = Message::decode(&mut Decoder::new(payload)).ok()?;
    // hlen first: chaddr() slices by it.
    if request.opcode() != Opcode::BootRequest
        || request.htype() != HType::Eth
        || request.hlen() != 6
        || request.chaddr() != terms.mac
        || request.hops() != 0
        || !request.giaddr().is_unspecified()
    {
        return None;
    }
    let server = terms.gateway.ip();
    let (kind, ciaddr) = match request.opts().msg_type()? {
        MessageType::Discover => (MessageType::Offer, Ipv4Addr::UNSPECIFIED),
        MessageType::Request => {
            if let Some(DhcpOption::ServerIdentifier(id)) =
                request.opts().get(OptionCode::ServerIdentifier)
            {
                if *id != server {
                    return None;
                }
            }
            let asked = match request.opts().get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(asked)) => *asked,
                _ => request.ciaddr(),
            };
            if asked != terms.address {
                return None;
            }
            (MessageType::Ack, request.ciaddr())
        }
        _ => return None,
    };
    let broadcast = request.flags().broadcast();
    let mut reply = Message::new_with_id(
        request.xid(),
        ciaddr,
        terms.address,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &terms.mac,
    );
    reply.set_opcode(Opcode::BootReply).set_flags(if broadcast {
        Flags::default().set_broadcast()
    } else {
        Flags::default()
    });
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server));
    opts.insert(DhcpOption::AddressLeaseTime(INFINITE_LEASE));
    opts.insert(DhcpOption::SubnetMask(terms.gateway.mask()));
    opts.insert(DhcpOption::Router(vec![server]));
    if !terms.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(terms.dns.clone()));
    }
    // RFC 6842: a client identifier is echoed.
    if let Some(id @ DhcpOption::ClientIdentifier(_)) =
        request.opts().get(OptionCode::ClientIdentifier)
    {
        opts.insert(id.clone());
    }
    let mut message = Vec::with_capacity(MIN_MESSAGE);
    reply.encode(&mut Encoder::new(&mut message)).ok()?;
    message.resize(message.len().max(MIN_MESSAGE), 0);
    // RFC 2131 4.1: to the broadcast address if the client asked, else to
    // its hardware address and the address it is about to have.
    let (to, dst) = if broadcast {
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

/// The options a client sends in a DISCOVER or REQUEST (RFC 2131 table 5,
/// less what a client of ours has no use for), with the lengths each may
/// have. dhcproto decodes some options by their type rather than their
/// length and asserts on or subtracts from the lengths of others (found by
/// fuzzing), so it only ever sees these.
const CLIENT_OPTIONS: [(u8, u8, u8); 9] = [
    (12, 1, 255), // host name
    (50, 4, 4),   // requested address
    (51, 4, 4),   // lease time
    (53, 1, 1),   // message type
    (54, 4, 4),   // server identifier
    (55, 1, 255), // parameter request list
    (57, 2, 2),   // maximum message size
    (60, 1, 255), // vendor class
    (61, 2, 255), // client identifier
];

/// Whether the options are well-formed, each of [`CLIENT_OPTIONS`] with a
/// length it may have and at most once, up to an End option.
fn plain_options(mut rest: &[u8]) -> bool {
    let mut seen = [false; 256];
    loop {
        match rest {
            [255, ..] => return true,
            [0, tail @ ..] => rest = tail,
            [code, len, tail @ ..] => {
                let known = CLIENT_OPTIONS
                    .iter()
                    .any(|&(c, min, max)| c == *code && (min..=max).contains(len));
                let len = usize::from(*len);
                if !known || seen[usize::from(*code)] || tail.len() < len {
                    return false;
                }
                seen[usize::from(*code)] = true;
                rest = &tail[len..];
            }
            _ => return false,
        }
    }
}

/// A client's message as rootlesskit's client sends it: an IPv4 packet
/// from `0.0.0.0:68` to `255.255.255.255:67`, flags 0 (for tests and fuzz
/// seeds).
pub fn client_request(chaddr: [u8; 6], kind: MessageType, options: &[DhcpOption]) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x842e_ee42, z, z, z, z, &chaddr);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in options {
        m.opts_mut().insert(o.clone());
    }
    let mut bytes = Vec::new();
    m.encode(&mut Encoder::new(&mut bytes))
        .expect("a message of known options encodes");
    udp_packet((z, CLIENT_PORT), (Ipv4Addr::BROADCAST, SERVER_PORT), &bytes)
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
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xc2, 0x7b, 0xfe, 0x31, 0xa0, 0x99];

    fn terms() -> Terms {
        Terms {
            mac: MAC,
            address: "10.10.10.7".parse().unwrap(),
            gateway: "10.10.10.1/24".parse().unwrap(),
            dns: vec!["10.10.10.1".parse().unwrap()],
        }
    }

    /// rootlesskit's DISCOVER as captured on a host end (the IPv4 packet,
    /// without the Ethernet header): 0.0.0.0:68 -> 255.255.255.255:67, UDP
    /// checksum 0, flags 0, options 53=1, 55=[1,3,15,6], padded to 300.
    fn captured_discover() -> Vec<u8> {
        let mut p = hex(concat!(
            "450001483cde000040113cc800000000ffffffff004400430134000001010600842eee42",
            "0000000000000000000000000000000000000000c27bfe31a099",
        ));
        p.resize(20 + 8 + MAGIC_AT, 0);
        p.extend_from_slice(&hex("63825363350101370401030f06ff"));
        p.resize(0x148, 0);
        p
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fix_header_checksum(p: &mut [u8]) {
        let sum = checksum(&[&p[..10], &p[12..20]]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    fn decode(reply: &Reply) -> Message {
        assert_eq!(checksum(&[&reply.packet[..20]]), 0, "IP header checksum");
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&reply.packet[12..20]);
        pseudo[9] = UDP;
        pseudo[10..].copy_from_slice(&reply.packet[24..26]);
        assert_eq!(checksum(&[&pseudo, &reply.packet[20..]]), 0, "UDP checksum");
        assert_eq!(&reply.packet[20..24], &[0, 67, 0, 68]);
        Message::decode(&mut Decoder::new(&reply.packet[28..])).unwrap()
    }

    fn requested(address: &str) -> DhcpOption {
        DhcpOption::RequestedIpAddress(address.parse().unwrap())
    }

    fn server_id(address: &str) -> DhcpOption {
        DhcpOption::ServerIdentifier(address.parse().unwrap())
    }

    #[test]
    fn rootlesskits_discover_gets_an_offer_with_everything_it_needs() {
        let reply = answer(MAC, &captured_discover(), &terms()).expect("an offer");
        assert!(!reply.done);
        // Flags 0: to the client's MAC and the address it is offered.
        assert_eq!(reply.to, MAC);
        assert_eq!(&reply.packet[12..20], &[10, 10, 10, 1, 10, 10, 10, 7]);
        assert!(reply.packet.len() >= 28 + MIN_MESSAGE);
        let m = decode(&reply);
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!((m.xid(), m.chaddr()), (0x842eee42, &MAC[..]));
        assert_eq!(m.yiaddr(), terms().address);
        let o = m.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Offer));
        let gw: Ipv4Addr = "10.10.10.1".parse().unwrap();
        assert_eq!(
            o.get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(gw))
        );
        assert_eq!(
            o.get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()))
        );
        assert_eq!(
            o.get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![gw]))
        );
        assert_eq!(
            o.get(OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![gw]))
        );
        assert_eq!(
            o.get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(u32::MAX))
        );
    }

    #[test]
    fn a_request_for_the_leased_address_is_acked_and_ends_the_exchange() {
        for extra in [
            vec![requested("10.10.10.7"), server_id("10.10.10.1")],
            vec![requested("10.10.10.7")],
        ] {
            let reply = answer(
                MAC,
                &client_request(MAC, MessageType::Request, &extra),
                &terms(),
            )
            .expect("an ack");
            assert!(reply.done);
            let m = decode(&reply);
            assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
            assert_eq!(m.yiaddr(), terms().address);
        }
    }

    #[test]
    fn the_broadcast_flag_and_a_client_identifier_are_honoured() {
        let mut packet = client_request(
            MAC,
            MessageType::Discover,
            &[DhcpOption::ClientIdentifier(vec![1, 2, 3])],
        );
        packet[28 + 10] = 0x80;
        let reply = answer(MAC, &packet, &terms()).expect("an offer");
        assert_eq!(reply.to, [0xff; 6]);
        assert_eq!(&reply.packet[16..20], &[255, 255, 255, 255]);
        let m = decode(&reply);
        assert!(m.flags().broadcast());
        assert_eq!(
            m.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(vec![1, 2, 3]))
        );
    }

    #[test]
    fn other_macs_addresses_servers_and_kinds_get_nothing() {
        let t = terms();
        let other = [0x02, 0, 0, 0, 0, 1];
        let discover = client_request(MAC, MessageType::Discover, &[]);
        // Another Ethernet source, or another chaddr.
        assert_eq!(answer(other, &discover, &t), None);
        assert_eq!(
            answer(MAC, &client_request(other, MessageType::Discover, &[]), &t),
            None
        );
        for extra in [
            vec![requested("10.10.10.8")],
            vec![requested("10.10.10.7"), server_id("10.10.10.9")],
            vec![],
        ] {
            let packet = client_request(MAC, MessageType::Request, &extra);
            assert_eq!(answer(MAC, &packet, &t), None, "{extra:?}");
        }
        for kind in [
            MessageType::Release,
            MessageType::Decline,
            MessageType::Inform,
            MessageType::Offer,
            MessageType::Ack,
        ] {
            assert_eq!(
                answer(MAC, &client_request(MAC, kind, &[]), &t),
                None,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn malformed_packets_get_nothing() {
        let t = terms();
        let good = captured_discover();
        assert!(answer(MAC, &good, &t).is_some());
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        // One field changed at a time, the header checksum kept right
        // unless it is the field.
        let mut edit = |what, at: usize, byte: u8| {
            let mut p = good.clone();
            p[at] = byte;
            if at < 20 && !(10..12).contains(&at) {
                fix_header_checksum(&mut p);
            }
            cases.push((what, p));
        };
        edit("IP options", 0, 0x46);
        edit("IPv6", 0, 0x65);
        edit("header checksum", 11, 0);
        edit("more fragments", 6, 0x20);
        edit("TCP", 9, 6);
        edit("client port", 21, 69);
        edit("server port", 23, 66);
        edit("magic cookie", 28 + MAGIC_AT, 0);
        edit("hlen beyond chaddr", 28 + 2, 17);
        edit("hardware type", 28 + 1, 6);
        edit("a reply", 28, 2);
        edit("relayed", 28 + 3, 1);
        for (what, p) in &cases {
            assert_eq!(answer(MAC, p, &t), None, "{what}");
        }
        for len in [0, 19, 27, 28 + MAGIC_AT, good.len() - 1] {
            assert_eq!(answer(MAC, &good[..len], &t), None, "cut at {len}");
        }
        // Options: unknown, of a wrong length, twice, or without End.
        let options = 28 + MAGIC_AT + 4;
        for (what, bytes) in [
            ("overload", &[52, 1, 3, 53, 1, 1, 255][..]),
            ("bulk lease query", &[53, 1, 1, 152, 0, 255]),
            ("message type of 0 bytes", &[53, 0, 1, 255]),
            ("message type twice", &[53, 1, 1, 53, 1, 1, 255]),
            ("no end", &[53, 1, 1]),
            ("past the end", &[53, 1, 1, 55, 200, 1, 255]),
        ] {
            let mut p = good[..options].to_vec();
            p.extend_from_slice(bytes);
            let udp_len = (p.len() - 20) as u16;
            let total = p.len() as u16;
            p[24..26].copy_from_slice(&udp_len.to_be_bytes());
            p[2..4].copy_from_slice(&total.to_be_bytes());
            fix_header_checksum(&mut p);
            assert_eq!(answer(MAC, &p, &t), None, "{what}");
        }
        let mut long_udp = good.clone();
        long_udp[24..26].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(answer(MAC, &long_udp, &t), None, "UDP length");
        // To another host than the server or everyone.
        let mut p = client_request(MAC, MessageType::Discover, &[]);
        p[16..20].copy_from_slice(&[10, 10, 10, 9]);
        fix_header_checksum(&mut p);
        assert_eq!(answer(MAC, &p, &t), None, "destination");
    }

    #[test]
    fn checksums_match_the_textbook() {
        // RFC 1071's example, and a header that sums to zero with its own.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
        assert_eq!(checksum(&[&captured_discover()[..20]]), 0);
    }
}
