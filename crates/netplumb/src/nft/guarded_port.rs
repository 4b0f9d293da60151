//! A guarded bridge port: what the guard ([`Guard`](super::Guard)) lets
//! through a container's host end.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// A bridge port whose container may send only from its own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedPort {
    /// The host end of the container's veth pair (the bridge port).
    pub ifname: String,
    /// The host end's interface index, which keys the guard's elements; 0
    /// while not known (before the host end is made).
    pub ifindex: u32,
    /// The container interface's MAC address.
    pub mac: [u8; 6],
    /// Its IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses, the link-local one included.
    pub ipv6: Vec<Ipv6Addr>,
}

impl GuardedPort {
    /// The port of host end `ifname` whose container has MAC `mac` and
    /// `addresses`: those addresses, and the IPv6 link-local address the
    /// kernel derives from the MAC (EUI-64: the universal/local bit
    /// flipped, ff:fe in the middle), which the container uses whether or
    /// not its network has IPv6.
    pub fn new(ifname: &str, mac: [u8; 6], addresses: &[IpNetwork]) -> GuardedPort {
        let mut ipv4 = Vec::new();
        let mut ipv6 = Vec::new();
        for address in addresses {
            match address {
                IpNetwork::V4(a) => ipv4.push(a.ip()),
                IpNetwork::V6(a) => ipv6.push(a.ip()),
            }
        }
        ipv6.push(Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
            u16::from_be_bytes([mac[2], 0xff]),
            u16::from_be_bytes([0xfe, mac[3]]),
            u16::from_be_bytes([mac[4], mac[5]]),
        ));
        GuardedPort {
            ifname: ifname.to_string(),
            ifindex: 0,
            mac,
            ipv4,
            ipv6,
        }
    }

    /// The same port, its host end the device of index `ifindex`.
    pub fn at(mut self, ifindex: u32) -> GuardedPort {
        self.ifindex = ifindex;
        self
    }
}
