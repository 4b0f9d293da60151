//! What one lease implies, computed once: from a request (its network,
//! names and `-publish`) and an IPv4 lease, every address, name, MAC,
//! publication and guard element the call creates, checks or removes.
//!
//! Pure: no kernel, no file, no root. The wiring executes a [`Plan`]
//! (`create`), compares the kernel with one (`check`), and undoes one
//! (`-delete`, poststop, garbage collection, rollback); `-restore`
//! re-creates what a plan of each live lease names. A plan read back from
//! a lease ([`Plan::of_lease`]) is the plan the call that took the lease
//! executed: everything in it is derived from the lease and the network,
//! never read from inside a container.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use netplumb::{Attachment, GuardedPort, Learning, Publication};

use crate::cli::Nic;
use crate::leases::Lease;
use crate::policy::Network;
use crate::ports::Mapping;
use crate::request::Request;

/// How the interface inside gets its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configure {
    /// Set by the call: addresses, default routes, the link-local address.
    Static,
    /// IPv4 left to the container's DHCP client (lxc-user-nic's create):
    /// its client adds the address and route itself, and fails if one is
    /// there. IPv6 (rootlesskit's client speaks DHCPv4 only and leaves
    /// IPv6 alone) is set by the call as with [`Configure::Static`].
    Dhcp,
}

/// One published port of a lease: as the caller wrote it, and as the
/// kernel holds it (its owner and targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The `-publish` mapping, as recorded with the lease.
    pub mapping: Mapping,
    /// What nf_tables holds for it.
    pub kernel: Publication,
}

/// Everything one lease implies on its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The IPv4 lease.
    pub address: Ipv4Addr,
    /// The container's addresses: the IPv4 lease, and the IPv6 address
    /// derived from it when the network has IPv6.
    pub addresses: Vec<IpNetwork>,
    /// The container's default gateways, IPv4 first.
    pub gateways: Vec<IpAddr>,
    /// The MAC the peer is born with: `02:6e:` and the lease's octets.
    pub mac: [u8; 6],
    /// The host end's name (the bridge port).
    pub host_name: String,
    /// The name of the interface inside.
    pub peer_name: String,
    /// Whether the call or DHCP configures the interface inside.
    pub configure: Configure,
    /// The guard's elements, on a guarded network (keyed by the host end's
    /// index: the lease's, 0 until the pair exists).
    pub guard: Option<GuardedPort>,
    /// The published ports.
    pub publications: Vec<Published>,
    /// What the bridge learns from the host end.
    pub learning: Learning,
    /// Whether the host end is an isolated bridge port.
    pub isolated: bool,
}

impl Plan {
    /// The plan of a new lease of `address` for `request`: its names from
    /// the request's prefix, its publications from its `-publish`.
    pub fn new(request: &Request, address: Ipv4Addr) -> Plan {
        let host_name = host_name(&request.prefix, address);
        Plan::derive(request, address, host_name, &request.publish)
    }

    /// The plan a lease was made by, read back from the lease (whose host
    /// end's name is recorded) and its ports record.
    pub fn of_lease(request: &Request, lease: &Lease, mappings: &[Mapping]) -> Plan {
        let mut plan = Plan::derive(request, lease.address, lease.ifname.clone(), mappings);
        plan.guard = plan.guard.map(|port| port.at(lease.ifindex));
        plan
    }

    fn derive(
        request: &Request,
        address: Ipv4Addr,
        host_name: String,
        mappings: &[Mapping],
    ) -> Plan {
        let network = &request.network;
        let addresses = container_addresses(network, address);
        let mac = mac_of(address);
        let guard = network
            .guard
            .then(|| GuardedPort::new(&host_name, mac, &addresses));
        let publications = mappings
            .iter()
            .map(|m| Published {
                mapping: *m,
                kernel: publication(m, address, &addresses),
            })
            .collect();
        let configure = match request.by_dhcp() {
            true => Configure::Dhcp,
            false => Configure::Static,
        };
        Plan {
            address,
            addresses,
            gateways: network
                .bridge_addresses()
                .iter()
                .map(IpNetwork::ip)
                .collect(),
            mac,
            host_name,
            peer_name: peer_name(request),
            configure,
            guard,
            publications,
            learning: match network.guard {
                true => Learning::Pinned(mac),
                false => Learning::On,
            },
            isolated: network.isolate,
        }
    }

    /// The `-publish` mappings of this plan.
    pub fn mappings(&self) -> Vec<Mapping> {
        self.publications.iter().map(|p| p.mapping).collect()
    }

    /// The veth pair this plan makes: on bridge `bridge` (MTU `bridge_mtu`,
    /// which the pair follows without a policy MTU), its peer in `netns`.
    pub fn attachment<'a>(
        &'a self,
        network: &Network,
        bridge: u32,
        bridge_mtu: Option<u32>,
        netns: BorrowedFd<'a>,
    ) -> Attachment<'a> {
        Attachment {
            bridge,
            host_name: &self.host_name,
            peer_name: &self.peer_name,
            peer_netns: netns,
            mtu: network.mtu.or(bridge_mtu),
            addresses: self.by_call(&self.addresses),
            gateways: self.by_call(&self.gateways),
            peer_link_local: network.gateway6.is_some(),
            // Never random: the guard knows it before the pair exists.
            peer_mac: Some(self.mac),
            isolated: self.isolated,
            learning: self.learning,
        }
    }

    /// What of `all` (IPv4 first, as [`Plan::addresses`] and
    /// [`Plan::gateways`] are) the call sets: everything, or with
    /// [`Configure::Dhcp`] all but the IPv4 entry, which DHCP gives.
    fn by_call<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        match self.configure {
            Configure::Static => all,
            Configure::Dhcp => all.get(1..).unwrap_or_default(),
        }
    }
}

/// The name of the interface inside: lxc-user-nic's IFNAME, or as in the
/// original (`veth1`). The same for every lease of a request, so that
/// `-check` and `-delete` look for it before they know the lease.
pub fn peer_name(request: &Request) -> String {
    match &request.nic {
        Some(Nic::Create { ifname }) => ifname.clone(),
        _ => format!("{}1", request.prefix),
    }
}

/// The host end's name: the prefix and the container's IPv4 address in
/// hex. Unique per address, so unique while the lease is held.
fn host_name(prefix: &str, address: Ipv4Addr) -> String {
    format!("{prefix}{:08x}", u32::from(address))
}

/// The IPv4 lease a host end's name says it is for (a hint only: any
/// link can have any name); `None` if it is not `prefix` and hex digits.
pub fn address_of_host_name(prefix: &str, name: &str) -> Option<Ipv4Addr> {
    let hex = name.strip_prefix(prefix)?;
    u32::from_str_radix(hex, 16).ok().map(Ipv4Addr::from)
}

/// The container's addresses for its IPv4 lease. The IPv6 address is
/// derived from the IPv4 lease (same offset into the IPv6 subnet), so it
/// is unique exactly when the IPv4 lease is, with no second table.
pub fn container_addresses(network: &Network, v4: Ipv4Addr) -> Vec<IpNetwork> {
    let gw = network.gateway;
    let mut out = vec![IpNetwork::V4(
        Ipv4Network::new(v4, gw.prefix()).expect("valid prefix"),
    )];
    if let Some(gw6) = network.gateway6 {
        let offset = u32::from(v4) - u32::from(gw.network());
        let v6 = Ipv6Addr::from(u128::from(gw6.network()) + u128::from(offset));
        out.push(IpNetwork::V6(
            Ipv6Network::new(v6, gw6.prefix()).expect("valid prefix"),
        ));
    }
    out
}

/// The deterministic MAC of a container's interface: `02:6e:` and the four
/// octets of its IPv4 lease (unique while the lease is held).
fn mac_of(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x6e, a, b, c, d]
}

/// `mac` as text: `02:6e:0a:0a:0a:02`.
pub fn mac_text(mac: [u8; 6]) -> String {
    let octets: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    octets.join(":")
}

/// The kernel's form of a lease's mapping: the container's addresses the
/// host port leads to are, with one host address, the container's address
/// of that family; with none, each of them (IPv4, and IPv6 when the
/// network has it).
fn publication(m: &Mapping, owner: Ipv4Addr, addresses: &[IpNetwork]) -> Publication {
    Publication {
        protocol: m.protocol,
        host_address: m.host_address,
        host_port: m.host_port,
        container_port: m.container_port,
        owner,
        targets: addresses
            .iter()
            .map(IpNetwork::ip)
            .filter(|a| match m.host_address {
                Some(h) => h.is_ipv4() == a.is_ipv4(),
                None => true,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
