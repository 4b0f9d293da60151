//! The responder's decisions and the DHCP codec, against packets captured
//! from real clients (rootlesskit's, busybox udhcpc's), against
//! dhcproto's independent encoder and decoder, and against malformed input.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::message::{code, Reply as Message, Request, MAGIC_AT, MIN_MESSAGE};
use super::*;

const MAC: [u8; 6] = [0xc2, 0x7b, 0xfe, 0x31, 0xa0, 0x99];
/// The MAC of the busybox captures.
const BUSYBOX_MAC: [u8; 6] = [0xc6, 0x91, 0xdb, 0x50, 0x6d, 0x48];

fn terms() -> Terms {
    Terms {
        mac: MAC,
        address: "10.10.10.7".parse().unwrap(),
        gateway: "10.10.10.1/24".parse().unwrap(),
        dns: vec!["10.10.10.1".parse().unwrap()],
    }
}

/// The terms dnsmasq gave busybox's client in the capture.
fn busybox_terms() -> Terms {
    Terms {
        mac: BUSYBOX_MAC,
        address: "10.9.0.17".parse().unwrap(),
        gateway: "10.9.0.1/24".parse().unwrap(),
        dns: vec!["10.9.0.53".parse().unwrap(), "10.9.0.54".parse().unwrap()],
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An IPv4 packet captured on a host end: `head` (the IP and UDP headers
/// and the BOOTP fields up to `chaddr`), zeros up to the magic cookie,
/// `options` (cookie included), zeros up to the captured length.
fn captured(head: &str, options: &str, len: usize) -> Vec<u8> {
    let mut p = hex(head);
    p.resize(20 + 8 + MAGIC_AT, 0);
    p.extend_from_slice(&hex(options));
    p.resize(len, 0);
    p
}

/// rootlesskit's DISCOVER: 0.0.0.0:68 -> 255.255.255.255:67, UDP checksum
/// 0, flags 0, options 53=1, 55=[1,3,15,6], padded to 300.
fn rootlesskit_discover() -> Vec<u8> {
    captured(
        concat!(
            "450001483cde000040113cc800000000ffffffff004400430134000001010600842eee42",
            "0000000000000000000000000000000000000000c27bfe31a099",
        ),
        "63825363350101370401030f06ff",
        0x148,
    )
}

const BUSYBOX_HEAD: &str = concat!(
    "4500014800000000401179a600000000ffffffff00440043013400000101",
    "0600998e2a7a0003000000000000000000000000000000000000c691db506d48",
);

/// busybox 1.35 udhcpc's DISCOVER (`udhcpc -i c0 -n -q`, answered by
/// dnsmasq): secs 3, options 53=1, 57=576, 55=[1,3,6,12,15,28,42], 60
/// "udhcp 1.35.0", 61=[1, its MAC]. (The UDP checksum is zeroed here: the
/// responder does not read it.)
fn busybox_discover() -> Vec<u8> {
    captured(
        BUSYBOX_HEAD,
        "638253633501013902024037070103060c0f1c2a3c0c756468637020312e33352e303d0701c691db506d48ff",
        0x148,
    )
}

/// Its REQUEST that followed: 53=3, 50=10.9.0.17, 54=10.9.0.1, then as
/// the DISCOVER.
fn busybox_request() -> Vec<u8> {
    captured(
        BUSYBOX_HEAD,
        concat!(
            "6382536335010332040a09001136040a0900013902024037070103060c0f1c2a",
            "3c0c756468637020312e33352e303d0701c691db506d48ff",
        ),
        0x148,
    )
}

fn fix_header_checksum(p: &mut [u8]) {
    let sum = checksum(&[&p[..10], &p[12..20]]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// The reply's DHCP message, decoded by dhcproto, after checking both
/// checksums and the ports.
fn decode(reply: &Reply) -> v4::Message {
    assert_eq!(checksum(&[&reply.packet[..20]]), 0, "IP header checksum");
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&reply.packet[12..20]);
    pseudo[9] = UDP;
    pseudo[10..].copy_from_slice(&reply.packet[24..26]);
    assert_eq!(checksum(&[&pseudo, &reply.packet[20..]]), 0, "UDP checksum");
    assert_eq!(&reply.packet[20..24], &[0, 67, 0, 68]);
    v4::Message::decode(&mut Decoder::new(&reply.packet[28..])).unwrap()
}

fn requested(address: &str) -> (u8, Vec<u8>) {
    let address: Ipv4Addr = address.parse().unwrap();
    (code::REQUESTED_ADDRESS, address.octets().to_vec())
}

fn server_id(address: &str) -> (u8, Vec<u8>) {
    let address: Ipv4Addr = address.parse().unwrap();
    (code::SERVER_ID, address.octets().to_vec())
}

/// Asserts everything a client needs of an answer for `terms`.
#[track_caller]
fn assert_configures(m: &v4::Message, terms: &Terms, kind: v4::MessageType) {
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.chaddr(), &terms.mac[..]);
    assert_eq!(m.yiaddr(), terms.address);
    let o = m.opts();
    assert_eq!(o.msg_type(), Some(kind));
    let gw = terms.gateway.ip();
    let option = |code| o.get(code).cloned();
    assert_eq!(
        option(OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(gw))
    );
    assert_eq!(
        option(OptionCode::SubnetMask),
        Some(DhcpOption::SubnetMask(terms.gateway.mask()))
    );
    assert_eq!(
        option(OptionCode::Router),
        Some(DhcpOption::Router(vec![gw]))
    );
    assert_eq!(
        option(OptionCode::DomainNameServer),
        Some(DhcpOption::DomainNameServer(terms.dns.clone()))
    );
    assert_eq!(
        option(OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(u32::MAX))
    );
}

#[test]
fn rootlesskits_discover_gets_an_offer_with_everything_it_needs() {
    let reply = answer(MAC, &rootlesskit_discover(), &terms()).expect("an offer");
    assert!(!reply.done);
    // Flags 0: to the client's MAC and the address it is offered.
    assert_eq!(reply.to, MAC);
    assert_eq!(&reply.packet[12..20], &[10, 10, 10, 1, 10, 10, 10, 7]);
    assert!(reply.packet.len() >= 28 + MIN_MESSAGE);
    let m = decode(&reply);
    assert_eq!(m.xid(), 0x842eee42);
    assert_configures(&m, &terms(), v4::MessageType::Offer);
    assert_eq!(m.opts().get(OptionCode::ClientIdentifier), None);
}

#[test]
fn busyboxs_exchange_gets_an_offer_and_an_ack_echoing_its_client_id() {
    let t = busybox_terms();
    let offer = answer(BUSYBOX_MAC, &busybox_discover(), &t).expect("an offer");
    let ack = answer(BUSYBOX_MAC, &busybox_request(), &t).expect("an ack");
    for (reply, kind, done) in [
        (&offer, v4::MessageType::Offer, false),
        (&ack, v4::MessageType::Ack, true),
    ] {
        assert_eq!((reply.to, reply.done), (BUSYBOX_MAC, done));
        let m = decode(reply);
        assert_eq!(m.xid(), 0x998e2a7a);
        assert_configures(&m, &t, kind);
        let mut id = vec![1];
        id.extend_from_slice(&BUSYBOX_MAC);
        assert_eq!(
            m.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(id))
        );
    }
    // Another address than the lease: silence.
    let mut other = busybox_terms();
    other.address = "10.9.0.18".parse().unwrap();
    assert_eq!(answer(BUSYBOX_MAC, &busybox_request(), &other), None);
}

#[test]
fn a_reply_is_laid_out_as_rfc_2131_says() {
    let dns = ["10.0.0.53".parse().unwrap(), "10.0.0.54".parse().unwrap()];
    let bytes = Message {
        kind: MessageType::Ack,
        xid: 0x0102_0304,
        broadcast: true,
        ciaddr: "10.0.0.9".parse().unwrap(),
        yiaddr: "10.0.0.7".parse().unwrap(),
        chaddr: MAC,
        server: "10.0.0.1".parse().unwrap(),
        lease: 3600,
        mask: "255.255.0.0".parse().unwrap(),
        dns: &dns,
        client_id: Some(&[0xaa, 0xbb]),
    }
    .encode()
    .unwrap();
    assert_eq!(bytes.len(), MIN_MESSAGE);
    let mut head = hex("0201060001020304000080000a0000090a0000070000000000000000");
    head.extend_from_slice(&MAC);
    head.resize(MAGIC_AT, 0);
    assert_eq!(&bytes[..MAGIC_AT], &head[..], "fixed fields");
    let options = hex(concat!(
        "63825363",
        "350105",
        "36040a000001",
        "330400000e10",
        "0104ffff0000",
        "03040a000001",
        "06080a0000350a000036",
        "3d02aabb",
        "ff"
    ));
    assert_eq!(&bytes[MAGIC_AT..MAGIC_AT + options.len()], &options[..]);
    assert!(
        bytes[MAGIC_AT + options.len()..].iter().all(|&b| b == 0),
        "padding"
    );
    // Without DNS servers the option is left out; 64 of them do not fit.
    let none = Message {
        dns: &[],
        client_id: None,
        ..reply_for_tests(&dns)
    };
    let encoded = none.encode().unwrap();
    assert!(!encoded[MAGIC_AT..].windows(2).any(|w| w == [6, 8]));
    let many = vec![Ipv4Addr::LOCALHOST; 64];
    assert_eq!(
        Message {
            dns: &many,
            ..reply_for_tests(&dns)
        }
        .encode(),
        None
    );
}

fn reply_for_tests(dns: &[Ipv4Addr]) -> Message<'_> {
    Message {
        kind: MessageType::Offer,
        xid: 1,
        broadcast: false,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: "10.0.0.7".parse().unwrap(),
        chaddr: MAC,
        server: "10.0.0.1".parse().unwrap(),
        lease: 1,
        mask: "255.255.255.0".parse().unwrap(),
        dns,
        client_id: None,
    }
}

#[test]
fn requests_encoded_by_dhcproto_parse_to_the_same_fields() {
    let z = Ipv4Addr::UNSPECIFIED;
    let ciaddr: Ipv4Addr = "10.0.0.9".parse().unwrap();
    let mut m = v4::Message::new_with_id(0xdead_beef, ciaddr, z, z, z, &MAC);
    m.set_flags(v4::Flags::default().set_broadcast());
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(v4::MessageType::Request));
    opts.insert(DhcpOption::RequestedIpAddress("10.0.0.7".parse().unwrap()));
    opts.insert(DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()));
    opts.insert(DhcpOption::ClientIdentifier(vec![1, 2, 3]));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
    ]));
    opts.insert(DhcpOption::Hostname("c1".into()));
    let mut bytes = Vec::new();
    m.encode(&mut Encoder::new(&mut bytes)).unwrap();
    let r = Request::parse(&bytes).expect("parsed");
    assert_eq!(
        r,
        Request {
            xid: 0xdead_beef,
            broadcast: true,
            ciaddr,
            chaddr: MAC,
            kind: MessageType::Request,
            requested: Some("10.0.0.7".parse().unwrap()),
            server: Some("10.0.0.1".parse().unwrap()),
            client_id: Some(&[1, 2, 3]),
        }
    );
}

#[test]
fn a_request_for_the_leased_address_is_acked_and_ends_the_exchange() {
    let asked = requested("10.10.10.7");
    for extra in [vec![asked.clone(), server_id("10.10.10.1")], vec![asked]] {
        let packet = client_request(MAC, MessageType::Request, &extra);
        let reply = answer(MAC, &packet, &terms()).expect("an ack");
        assert!(reply.done);
        assert_configures(&decode(&reply), &terms(), v4::MessageType::Ack);
    }
}

#[test]
fn the_broadcast_flag_and_a_client_identifier_are_honoured() {
    let mut packet = client_request(
        MAC,
        MessageType::Discover,
        &[(code::CLIENT_ID, vec![1, 2, 3])],
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
    let foreign = client_request(other, MessageType::Discover, &[]);
    assert_eq!(answer(MAC, &foreign, &t), None);
    for extra in [
        vec![requested("10.10.10.8")],
        vec![requested("10.10.10.7"), server_id("10.10.10.9")],
        vec![server_id("10.10.10.1")],
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
        MessageType::Nak,
    ] {
        let packet = client_request(MAC, kind, &[]);
        assert_eq!(answer(MAC, &packet, &t), None, "{kind:?}");
    }
}

/// `good` with its options (after the cookie) replaced by `options`, the
/// lengths and the header checksum made right.
fn with_options(good: &[u8], options: &[u8]) -> Vec<u8> {
    let mut p = good[..28 + MAGIC_AT + 4].to_vec();
    p.extend_from_slice(options);
    let udp_len = (p.len() - 20) as u16;
    let total = p.len() as u16;
    p[24..26].copy_from_slice(&udp_len.to_be_bytes());
    p[2..4].copy_from_slice(&total.to_be_bytes());
    fix_header_checksum(&mut p);
    p
}

#[test]
fn malformed_packets_get_nothing() {
    let t = terms();
    let good = rootlesskit_discover();
    assert!(answer(MAC, &good, &t).is_some());
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // One field changed at a time, the header checksum kept right unless
    // it is the field.
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
    edit("hlen short", 28 + 2, 4);
    edit("hardware type", 28 + 1, 6);
    edit("a reply", 28, 2);
    edit("relayed", 28 + 3, 1);
    edit("giaddr", 28 + 27, 1);
    for (what, p) in &cases {
        assert_eq!(answer(MAC, p, &t), None, "{what}");
    }
    for len in [0, 19, 27, 28 + MAGIC_AT, 28 + MAGIC_AT + 4, good.len() - 1] {
        assert_eq!(answer(MAC, &good[..len], &t), None, "cut at {len}");
    }
    // Options: unknown, of a wrong length, twice, without End or a type.
    for (what, bytes) in [
        ("overload", &[52, 1, 3, 53, 1, 1, 255][..]),
        ("bulk lease query", &[53, 1, 1, 152, 0, 255]),
        ("message type of 0 bytes", &[53, 0, 1, 255]),
        ("message type of 2 bytes", &[53, 2, 1, 1, 255]),
        ("message type 0", &[53, 1, 0, 255]),
        ("message type 9", &[53, 1, 9, 255]),
        ("message type twice", &[53, 1, 1, 53, 1, 1, 255]),
        ("no message type", &[55, 1, 1, 255]),
        (
            "requested address of 3 bytes",
            &[53, 1, 1, 50, 3, 10, 10, 10, 255],
        ),
        (
            "server id of 5 bytes",
            &[53, 1, 1, 54, 5, 10, 10, 10, 1, 0, 255],
        ),
        ("client id of 1 byte", &[53, 1, 1, 61, 1, 1, 255]),
        ("parameter list of 0 bytes", &[53, 1, 1, 55, 0, 255]),
        ("no end", &[53, 1, 1]),
        ("only pad", &[53, 1, 1, 0, 0, 0]),
        ("a code without length", &[53, 1, 1, 55]),
        ("past the end", &[53, 1, 1, 55, 200, 1, 255]),
        ("nothing", &[]),
    ] {
        let p = with_options(&good, bytes);
        assert_eq!(answer(MAC, &p, &t), None, "{what}");
    }
    // Pad between options and anything after End are fine.
    let padded = with_options(&good, &[0, 0, 53, 1, 1, 0, 255, 53, 9, 9]);
    assert!(answer(MAC, &padded, &t).is_some(), "pad and trailer");
    let mut long_udp = good.clone();
    long_udp[24..26].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(answer(MAC, &long_udp, &t), None, "UDP length");
    // To another host than the server or everyone.
    let mut p = client_request(MAC, MessageType::Discover, &[]);
    p[16..20].copy_from_slice(&[10, 10, 10, 9]);
    fix_header_checksum(&mut p);
    assert_eq!(answer(MAC, &p, &t), None, "destination");
}

/// Every truncation and every single-byte change of the captured packets
/// (each byte set to 0x00, 0xff and flipped): no panic, and any answer
/// still goes to the lease's MAC with the lease's address.
#[test]
fn no_truncation_or_byte_change_of_a_real_packet_panics_or_misleads() {
    let t = busybox_terms();
    for good in [busybox_discover(), busybox_request()] {
        for len in 0..good.len() {
            let _ = answer(BUSYBOX_MAC, &good[..len], &t);
        }
        for at in 0..good.len() {
            for byte in [0, 0xff, !good[at]] {
                let mut p = good.clone();
                p[at] = byte;
                if let Some(reply) = answer(BUSYBOX_MAC, &p, &t) {
                    assert!(reply.to == BUSYBOX_MAC || reply.to == [0xff; 6]);
                    assert_eq!(decode(&reply).yiaddr(), t.address, "byte {at} = {byte}");
                }
            }
        }
    }
}

#[test]
fn checksums_match_the_textbook() {
    // RFC 1071's example, and a header that sums to zero with its own.
    assert_eq!(
        checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
        !0xddf2
    );
    assert_eq!(checksum(&[&rootlesskit_discover()[..20]]), 0);
    assert_eq!(checksum(&[&busybox_request()[..20]]), 0);
}
