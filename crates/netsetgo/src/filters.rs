//! The seam under the host's packet filters: the nf_tables operations the
//! wiring decides with (masquerading, published ports, the guard), as a
//! trait. [`Kernel`] is netplumb's nf_tables session on our own tables;
//! the unit tests of `wiring` use a fake that keeps claims and guarded
//! ports in tables and records every change, so that the order of the
//! steps, the rollback and the garbage collection are tested without root.
//!
//! Everything a kernel element or guard rule holds is derived here from the
//! lease and the network (the host end's name, the deterministic MAC, the
//! addresses), so nothing read from inside a container ever reaches the
//! host's filters.

use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network};
use netplumb::{GuardedPort, Nftables, Publication};

use crate::error::Failure;
use crate::leases::Lease;
use crate::policy::Network;
use crate::ports::{self, Mapping};

/// Our table (`inet` for masquerading and publishing, `netdev` for the
/// guard's chains, one per guarded host end); never any other.
pub const TABLE: &str = "netsetgo";

/// Host-wide packet filter operations, each on our own tables only.
pub trait Filters {
    /// The network's masquerade rules (nat=yes), created once.
    fn masquerade(&self, network: &Network) -> Result<(), Failure>;
    /// Masquerades a container's traffic to a port published by another
    /// container of the same bridge (ensured once per network).
    fn hairpin(&self, network: &Network) -> Result<(), Failure>;
    /// Publishes `m` for the lease of `owner`; a host port already claimed
    /// (by anyone) is refused and nothing is added.
    fn publish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<(), Failure>;
    /// Removes `m` if `owner` claims it; true if it did.
    fn unpublish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure>;
    /// Whether `m` is published for `owner`, completely.
    fn published(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure>;
    /// Guards the lease's host end (layer 3, the netdev ingress chain named
    /// after it): only its MAC and addresses pass, nothing posing as a
    /// DHCP server or a router. Idempotent: run again, it leaves the same
    /// chain. (Layer 2, the bridge port's flags and the pinned MAC, is
    /// set by the attachment, `Learning::Pinned`.)
    fn guard(&self, network: &Network, lease: &Lease) -> Result<(), Failure>;
    /// Forgets the lease's guard chain; true if it was there.
    fn unguard(&self, network: &Network, lease: &Lease) -> Result<bool, Failure>;
    /// Whether the lease's guard chain is there, whole.
    fn guarded(&self, network: &Network, lease: &Lease) -> Result<bool, Failure>;
}

/// A borrowed [`Filters`] is one too: `-restore` shares one nf_tables
/// session among the sessions of its networks (and the tests keep their
/// fake across sessions).
impl<T: Filters> Filters for &T {
    fn masquerade(&self, network: &Network) -> Result<(), Failure> {
        (**self).masquerade(network)
    }
    fn hairpin(&self, network: &Network) -> Result<(), Failure> {
        (**self).hairpin(network)
    }
    fn publish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<(), Failure> {
        (**self).publish(network, owner, m)
    }
    fn unpublish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
        (**self).unpublish(network, owner, m)
    }
    fn published(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
        (**self).published(network, owner, m)
    }
    fn guard(&self, network: &Network, lease: &Lease) -> Result<(), Failure> {
        (**self).guard(network, lease)
    }
    fn unguard(&self, network: &Network, lease: &Lease) -> Result<bool, Failure> {
        (**self).unguard(network, lease)
    }
    fn guarded(&self, network: &Network, lease: &Lease) -> Result<bool, Failure> {
        (**self).guarded(network, lease)
    }
}

/// What the guard lets through a lease's host end: its name, the MAC its
/// peer is born with, its IPv4 lease, its IPv6 address (if the network has
/// IPv6) and the IPv6 link-local address the kernel derives from the MAC.
pub fn guarded_port(network: &Network, lease: &Lease) -> GuardedPort {
    let mac = ports::mac_of(lease.address);
    let mut ipv4 = Vec::new();
    let mut ipv6 = Vec::new();
    for address in network.container_addresses(lease.address) {
        match address {
            IpNetwork::V4(a) => ipv4.push(a.ip()),
            IpNetwork::V6(a) => ipv6.push(a.ip()),
        }
    }
    ipv6.push(ports::link_local_of(mac));
    GuardedPort {
        ifname: lease.ifname.clone(),
        mac,
        ipv4,
        ipv6,
    }
}

/// The kernel's form of a lease's mapping.
pub fn publication(network: &Network, owner: Ipv4Addr, m: &Mapping) -> Publication {
    Publication {
        protocol: m.protocol,
        host_address: m.host_address,
        host_port: m.host_port,
        container_port: m.container_port,
        owner,
        targets: m.targets(network, owner),
    }
}

/// The kernel: netplumb's nf_tables session, opened before the drop.
pub struct Kernel {
    nft: Nftables,
}

impl Kernel {
    pub fn new(nft: Nftables) -> Kernel {
        Kernel { nft }
    }
}

impl Filters for Kernel {
    fn masquerade(&self, network: &Network) -> Result<(), Failure> {
        for subnet in network.bridge_addresses() {
            self.nft
                .masquerade(TABLE)
                .add(&network.bridge, subnet)
                .execute()?;
        }
        Ok(())
    }

    fn hairpin(&self, network: &Network) -> Result<(), Failure> {
        let gateway = network.gateway;
        let subnet = Ipv4Network::new(gateway.network(), gateway.prefix()).expect("valid prefix");
        self.nft
            .ports(TABLE)
            .hairpin(&network.bridge, subnet)
            .execute()?;
        Ok(())
    }

    fn publish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<(), Failure> {
        match self
            .nft
            .ports(TABLE)
            .publish(&publication(network, owner, m))
            .execute()
        {
            Err(e) if e.errno() == Some(libc::EEXIST) => Err(already_published(m)),
            other => Ok(other?),
        }
    }

    fn unpublish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
        Ok(self
            .nft
            .ports(TABLE)
            .unpublish(&publication(network, owner, m))
            .execute()?)
    }

    fn published(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
        Ok(self
            .nft
            .ports(TABLE)
            .present(&publication(network, owner, m))?)
    }

    fn guard(&self, network: &Network, lease: &Lease) -> Result<(), Failure> {
        Ok(self
            .nft
            .guard(TABLE)
            .allow(&guarded_port(network, lease))
            .execute()?)
    }

    fn unguard(&self, network: &Network, lease: &Lease) -> Result<bool, Failure> {
        Ok(self
            .nft
            .guard(TABLE)
            .forget(&guarded_port(network, lease))
            .execute()?)
    }

    fn guarded(&self, network: &Network, lease: &Lease) -> Result<bool, Failure> {
        Ok(self
            .nft
            .guard(TABLE)
            .present(&guarded_port(network, lease))?)
    }
}

/// The refusal of a host port someone has published already.
pub fn already_published(m: &Mapping) -> Failure {
    Failure::refused(format!(
        "-publish {m}: {} port {} is already published; choose another host port",
        m.protocol.name(),
        m.host_port
    ))
}

/// Host ports and guarded ports kept in tables, for unit tests: every
/// change is recorded in `log` as one line (`publish tcp:8080:80 for
/// 10.10.10.2`, `guard veth0a0a0a02`), and `fail` makes the operation whose
/// line starts with it fail once.
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use netplumb::Protocol;

    use super::*;

    #[derive(Default)]
    pub struct FakeFilters {
        /// (protocol, host port) -> owner.
        pub claims: RefCell<BTreeMap<(u8, u16), Ipv4Addr>>,
        /// Guarded host ends.
        pub guarded: RefCell<Vec<String>>,
        /// May be shared with a `FakeLinks`, to see the order of both.
        pub log: Rc<RefCell<Vec<String>>>,
        pub fail: RefCell<Option<String>>,
    }

    fn key(m: &Mapping) -> (u8, u16) {
        let p = match m.protocol {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        };
        (p, m.host_port)
    }

    impl FakeFilters {
        fn act(&self, line: String) -> Result<(), Failure> {
            let mut fail = self.fail.borrow_mut();
            if fail.as_deref().is_some_and(|f| line.starts_with(f)) {
                *fail = None;
                return Err(Failure::internal(format!("injected: {line}")));
            }
            self.log.borrow_mut().push(line);
            Ok(())
        }

        /// The log's lines that start with `prefix`.
        pub fn lines(&self, prefix: &str) -> Vec<String> {
            self.log
                .borrow()
                .iter()
                .filter(|l| l.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    impl Filters for FakeFilters {
        fn masquerade(&self, network: &Network) -> Result<(), Failure> {
            self.act(format!("masquerade {}", network.bridge))
        }
        fn hairpin(&self, network: &Network) -> Result<(), Failure> {
            self.act(format!("hairpin {}", network.bridge))
        }
        fn publish(&self, _: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<(), Failure> {
            if self.claims.borrow().contains_key(&key(m)) {
                return Err(already_published(m));
            }
            self.act(format!("publish {m} for {owner}"))?;
            self.claims.borrow_mut().insert(key(m), owner);
            Ok(())
        }
        fn unpublish(&self, _: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
            if self.claims.borrow().get(&key(m)) != Some(&owner) {
                return Ok(false);
            }
            self.act(format!("unpublish {m} for {owner}"))?;
            self.claims.borrow_mut().remove(&key(m));
            Ok(true)
        }
        fn published(&self, _: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
            Ok(self.claims.borrow().get(&key(m)) == Some(&owner))
        }
        fn guard(&self, _: &Network, lease: &Lease) -> Result<(), Failure> {
            self.act(format!("guard {}", lease.ifname))?;
            self.guarded.borrow_mut().push(lease.ifname.clone());
            Ok(())
        }
        fn unguard(&self, _: &Network, lease: &Lease) -> Result<bool, Failure> {
            let present = self.guarded.borrow().contains(&lease.ifname);
            self.act(format!("unguard {}", lease.ifname))?;
            self.guarded.borrow_mut().retain(|g| g != &lease.ifname);
            Ok(present)
        }
        fn guarded(&self, _: &Network, lease: &Lease) -> Result<bool, Failure> {
            Ok(self.guarded.borrow().contains(&lease.ifname))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn the_guard_lets_through_what_the_lease_and_the_mac_derive() {
        let mut network = Network {
            name: "default".into(),
            bridge: "brg0".into(),
            gateway: "10.10.10.1/24".parse().unwrap(),
            gateway6: Some("fd00:10::1/64".parse().unwrap()),
            mtu: None,
            nat: false,
            dns: Vec::new(),
            guard: true,
            isolate: false,
        };
        let lease = Lease {
            address: "10.10.10.2".parse().unwrap(),
            uid: 1000,
            ifindex: 0,
            ifname: "veth0a0a0a02".into(),
            container: None,
        };
        let port = guarded_port(&network, &lease);
        assert_eq!(port.ifname, "veth0a0a0a02");
        assert_eq!(port.mac, [0x02, 0x6e, 10, 10, 10, 2]);
        assert_eq!(port.ipv4, vec![lease.address]);
        let v6: Vec<String> = port.ipv6.iter().map(ToString::to_string).collect();
        assert_eq!(v6, ["fd00:10::2", "fe80::6e:aff:fe0a:a02"]);
        network.gateway6 = None;
        assert_eq!(guarded_port(&network, &lease).ipv6.len(), 1);
        let m = Mapping::parse("tcp:8080:80").unwrap();
        let p = publication(&network, lease.address, &m);
        assert_eq!(p.targets, vec![IpAddr::V4(lease.address)]);
        assert_eq!((p.host_port, p.container_port), (8080, 80));
    }
}
