//! Fuzzes `netsetgo::dhcp::answer`, the decision the DHCP responder makes on
//! every packet a container sends to port 67: the input is the Ethernet
//! source (its first 6 bytes, so the lease's MAC is reachable) and the IPv4
//! packet (the rest), against one fixed lease.
//!
//! Beyond "does not panic": an answer goes only to the lease's MAC (or to
//! broadcast), only to a request from that MAC, and only ever offers the
//! lease's address, from the gateway's port 67 to port 68.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use netsetgo::dhcp::{answer, Terms};

const MAC: [u8; 6] = [0xc2, 0x7b, 0xfe, 0x31, 0xa0, 0x99];

fuzz_target!(|data: &[u8]| {
    let Some((from, packet)) = data.split_first_chunk::<6>() else {
        return;
    };
    let terms = Terms {
        mac: MAC,
        address: Ipv4Addr::new(10, 10, 10, 7),
        gateway: "10.10.10.1/24".parse().unwrap(),
        dns: vec![Ipv4Addr::new(10, 10, 10, 1)],
    };
    if let Some(reply) = answer(*from, packet, &terms) {
        assert_eq!(*from, MAC, "answered another MAC");
        assert!(reply.to == MAC || reply.to == [0xff; 6], "sent to {:?}", reply.to);
        let p = &reply.packet;
        assert_eq!(&p[12..16], &[10, 10, 10, 1], "not from the gateway");
        assert_eq!(&p[20..24], &[0, 67, 0, 68], "not 67 -> 68");
        // yiaddr, 16 bytes into the BOOTP message.
        assert_eq!(&p[28 + 16..28 + 20], &[10, 10, 10, 7], "offered another address");
        assert_eq!(&p[28 + 28..28 + 34], &MAC, "chaddr is not the lease's MAC");
    }
});
