//! Raw frames to forge: Ethernet, IPv4, IPv6 and UDP built byte by byte,
//! for the tests that send them on a packet socket ([`crate::dhcp::Client`])
//! and look for them, by a marker, elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// The all-nodes multicast group's MAC.
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
/// The all-nodes multicast group's address, ff02::1.
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The MAC the helper gives the container leased 10.10.10.`last`.
pub fn container_mac(last: u8) -> [u8; 6] {
    [0x02, 0x6e, 10, 10, 10, last]
}

/// The address 10.10.10.`last`.
pub fn ip(last: u8) -> [u8; 4] {
    [10, 10, 10, last]
}

/// `mac` as `ip` prints it: lower-case hex pairs joined by colons.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The EUI-64 link-local address of `mac`.
pub fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

/// An Ethernet frame, padded with zeros to the 60-byte minimum.
pub fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (no options, TTL 64) of protocol `proto`, with id `id`
/// and the flags and fragment offset `frag`, header checksum computed.
pub fn ipv4_packet(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A UDP header and `data`, checksum 0 (none, which IPv4 allows).
pub fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

/// An IPv6 packet with next header `next` and `payload`, hop limit 255.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next);
    p.push(255);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// `l4` (UDP or ICMPv6, its checksum field at `at`) with its checksum
/// over the IPv6 pseudo-header.
pub fn with_checksum6(
    src: [u8; 16],
    dst: [u8; 16],
    next: u8,
    mut l4: Vec<u8>,
    at: usize,
) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(40 + l4.len());
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next]);
    pseudo.extend_from_slice(&l4);
    let sum = checksum(&pseudo);
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    l4
}

/// A router advertisement (hop limit 64, router lifetime 1800 s, checksum
/// left 0) carrying `data`.
pub fn router_advertisement(data: &[u8]) -> Vec<u8> {
    let mut p = vec![134, 0, 0, 0];
    // hop limit, flags, router lifetime 1800 s, reachable, retransmit
    p.extend_from_slice(&[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(data);
    p
}

/// 16 bytes that mark frame `n` of this test: `prefix`, the clock's
/// nanoseconds, this process's id, and `n` last.
pub fn marker(prefix: &[u8; 8], n: u8) -> Vec<u8> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut m = prefix.to_vec();
    m.extend_from_slice(&nanos.to_be_bytes());
    m.extend_from_slice(&std::process::id().to_be_bytes());
    m[15] = n;
    m
}

/// Does `frame` hold `marker` anywhere?
pub fn contains(frame: &[u8], marker: &[u8]) -> bool {
    frame.windows(marker.len()).any(|w| w == marker)
}
