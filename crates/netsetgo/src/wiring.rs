//! The netlink work of one call, done under the network's lock: garbage
//! collection, quota, address choice, the lease, and the attachment itself.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use ipnetwork::{IpNetwork, Ipv4Network};
use netplumb::{Attachment, Bridge, Link, NetNs, Netlink};

use crate::error::Failure;
use crate::leases::{IndexProbe, Lease, Ledger, Liveness, Store};
use crate::nat;
use crate::output::{Outcome, Wired};
use crate::request::Request;

pub struct Session<'a> {
    host: Netlink,
    /// A session inside the target, and the target: absent when the call
    /// names no process (the poststop hook).
    inside: Option<Netlink>,
    target: Option<&'a NetNs>,
    store: &'a Store,
    request: &'a Request,
    /// The nftables session of a nat=yes network.
    nft: Option<netplumb::Nftables>,
    uid: u32,
}

impl<'a> Session<'a> {
    pub fn new(
        host: netplumb::RawSocket,
        inside: Option<netplumb::RawSocket>,
        target: Option<&'a NetNs>,
        store: &'a Store,
        request: &'a Request,
        nft: Option<netplumb::Nftables>,
        uid: u32,
    ) -> Result<Session<'a>, Failure> {
        Ok(Session {
            host: Netlink::from_socket(host)?,
            inside: inside.map(Netlink::from_socket).transpose()?,
            target,
            store,
            request,
            nft,
            uid,
        })
    }

    fn inside(&self) -> Result<(&Netlink, &NetNs), Failure> {
        match (&self.inside, self.target) {
            (Some(inside), Some(target)) => Ok((inside, target)),
            _ => Err(Failure::internal("this action needs a target process")),
        }
    }

    /// Wires the target. On failure nothing this call made is left: not
    /// the veth pair, not the lease, not a bridge it created.
    pub async fn create(&self, container: Option<String>) -> Result<Wired, Failure> {
        let network = &self.request.network;
        let mut ledger = self.store.lock()?;
        let bridge = self
            .host
            .ensure_bridge(&network.bridge, network.mtu)
            .await?;
        let result = self.create_locked(&mut ledger, &bridge, container).await;
        if result.is_err() && bridge.created {
            let _ = self.host.delete_link(bridge.link.index).await;
        }
        result
    }

    async fn create_locked(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: &Bridge,
        container: Option<String>,
    ) -> Result<Wired, Failure> {
        let (bridge_created, bridge_mtu, bridge_up) =
            (bridge.created, bridge.link.mtu, bridge.link.up);
        let bridge = bridge.link.index;
        let network = &self.request.network;
        let gateway = network.gateway;
        let subnet = Ipv4Network::new(gateway.network(), gateway.prefix()).expect("valid prefix");
        if bridge_created {
            if let Some(route) = self
                .host
                .route_overlapping(IpNetwork::V4(subnet), Some(bridge))
                .await?
            {
                return Err(Failure::refused(format!(
                    "{subnet} overlaps the host's route to {route}; choose another subnet"
                )));
            }
        }
        if !bridge_up {
            // The configured bridge is ours to bring up: down, it would
            // leave every container without its gateway.
            self.host.set_up(bridge).await?;
        }
        for address in network.bridge_addresses() {
            self.host.ensure_address(bridge, address).await?;
        }
        if let Some(nft) = &self.nft {
            nat::ensure_masquerade(nft, network)?;
        }

        let window = ledger.window()?;
        self.collect(ledger, bridge, window).await?;
        if let Some(quota) = self.request.quota {
            if ledger.count()? >= quota {
                let own: Vec<Lease> = ledger
                    .all()?
                    .into_iter()
                    .filter(|l| l.uid == self.uid)
                    .collect();
                let live = self.collect(ledger, bridge, own).await?;
                ledger.recount(live)?;
                if live >= quota {
                    return Err(Failure::refused(format!(
                        "you already hold {live} of your {quota} interfaces on network {}",
                        network.name
                    )));
                }
            }
        }
        let address = self.choose_address(ledger, bridge).await?;

        let mut lease = Lease {
            address,
            uid: self.uid,
            ifindex: 0,
            ifname: self.request.host_name(address),
            container,
        };
        let (inside, target) = self.inside()?;
        ledger.reserve(&lease)?;
        let peer_name = self.request.peer_name();
        let addresses = network.container_addresses(address);
        let gateways = network.gateways();
        let attachment = Attachment {
            bridge,
            host_name: &lease.ifname,
            peer_name: &peer_name,
            peer_netns: target.as_fd(),
            // Without a policy MTU, the veth follows the bridge's.
            mtu: network.mtu.or(bridge_mtu),
            addresses: &addresses,
            gateways: &gateways,
            peer_link_local: network.gateway6.is_some(),
        };
        let attached = match self.host.attach(inside, &attachment).await {
            Ok(attached) => attached,
            Err(e) => {
                ledger.release(&lease)?;
                return Err(e.into());
            }
        };
        lease.ifindex = attached.host_index;
        if let Err(e) = ledger.complete(&lease) {
            let _ = self.host.delete_link(attached.host_index).await;
            ledger.release(&lease)?;
            return Err(e);
        }
        Ok(Wired {
            interface: peer_name,
            mac: attached.peer.mac,
            addresses,
            gateways,
            host_interface: lease.ifname,
            bridge: network.bridge.clone(),
            mtu: attached.peer.mtu,
        })
    }

    /// The requested address if it is free (or held by a dead lease), else
    /// the first free one; every lease is checked only when none looks free.
    async fn choose_address(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
    ) -> Result<std::net::Ipv4Addr, Failure> {
        if let Some(address) = self.request.address {
            if !ledger.is_free(address) {
                if let Some(lease) = ledger.lease_of(address)? {
                    self.collect(ledger, bridge, vec![lease]).await?;
                }
            }
            return if ledger.is_free(address) {
                Ok(address)
            } else {
                Err(Failure::unavailable(format!("address {address} is in use")))
            };
        }
        if let Some(address) = ledger.first_free() {
            return Ok(address);
        }
        let all = ledger.all()?;
        self.collect(ledger, bridge, all).await?;
        ledger.first_free().ok_or_else(|| {
            Failure::unavailable(format!(
                "no free address left in network {}",
                self.request.network.name
            ))
        })
    }

    /// Frees the leases among `leases` whose interface is gone, deletes the
    /// interfaces of calls that died half way (only a veth on our bridge),
    /// and returns how many of the caller's are alive.
    async fn collect(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        leases: Vec<Lease>,
    ) -> Result<u32, Failure> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut live = 0;
        let probe = IndexProbe::new()?;
        for lease in leases {
            match probe.liveness(&lease) {
                Liveness::Live => live += u32::from(lease.uid == self.uid),
                Liveness::Gone => ledger.release(&lease)?,
                Liveness::Orphan => {
                    if let Some(link) = self.host.link_by_name(&lease.ifname).await? {
                        if link.kind.as_deref() == Some("veth") && link.master == Some(bridge) {
                            self.host.delete_link(link.index).await?;
                        }
                    }
                    ledger.release(&lease)?;
                }
            }
        }
        Ok(live)
    }

    /// The caller's interface in the target: found from inside the
    /// container (the peer's index of its host end) and matched exactly
    /// against a lease of this caller (address, name, index, uid).
    async fn own_interface(&self, ledger: &Ledger<'_>) -> Result<(Link, Link, Lease), Failure> {
        let (inside, _) = self.inside()?;
        let not_found = || {
            Failure::refused(format!(
                "no interface of yours from network {} is in that container",
                self.request.network.name
            ))
        };
        let peer = inside
            .link_by_name(&self.request.peer_name())
            .await?
            .ok_or_else(not_found)?;
        let host_index = peer.link.ok_or_else(not_found)?;
        let host = self
            .host
            .link_by_index(host_index)
            .await?
            .ok_or_else(not_found)?;
        let lease = host
            .name
            .strip_prefix(self.request.prefix.as_str())
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .map(Ipv4Addr::from)
            .map(|address| ledger.lease_of(address))
            .transpose()?
            .flatten()
            .filter(|l| l.uid == self.uid && l.ifindex == host.index && l.ifname == host.name)
            .ok_or_else(not_found)?;
        Ok((peer, host, lease))
    }

    /// Removes the caller's own interface from the target and frees its
    /// lease (security.md 13: only what is recorded for this uid).
    pub async fn delete(&self) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let (_, host, lease) = self.own_interface(&ledger).await?;
        self.host.delete_link(host.index).await?;
        ledger.release(&lease)?;
        Ok(Outcome::Removed {
            host_interfaces: vec![lease.ifname],
            addresses: vec![IpAddr::V4(lease.address)],
        })
    }

    /// Says whether the caller's wiring of the target is intact: both ends
    /// up, the host end on the bridge, the address, the default route, lo.
    pub async fn check(&self) -> Result<Outcome, Failure> {
        let ledger = self.store.lock()?;
        let (inside, _) = self.inside()?;
        let (peer, host, lease) = self.own_interface(&ledger).await?;
        let network = &self.request.network;
        let addresses = network.container_addresses(lease.address);
        let gateways = network.gateways();
        let bridge = self.host.link_by_name(&network.bridge).await?;
        let mut missing = Vec::new();
        if bridge.is_none() || host.master != bridge.map(|b| b.index) {
            missing.push(format!(
                "host end {} is not on bridge {}",
                host.name, network.bridge
            ));
        }
        if !host.up {
            missing.push(format!("host end {} is down", host.name));
        }
        if !peer.up {
            missing.push(format!("{} is down", peer.name));
        }
        let present = inside.addresses_of(peer.index).await?;
        for address in addresses.iter().filter(|a| !present.contains(a)) {
            missing.push(format!("{} lacks address {address}", peer.name));
        }
        for gateway in &gateways {
            let routes = inside.default_gateways(gateway.is_ipv6()).await?;
            if !routes.contains(&(*gateway, Some(peer.index))) {
                missing.push(format!("no default route via {gateway}"));
            }
        }
        if !inside.link_by_index(1).await?.is_some_and(|lo| lo.up) {
            missing.push("lo is down".to_string());
        }
        if !missing.is_empty() {
            return Err(Failure::broken(format!(
                "wiring is broken: {}",
                missing.join("; ")
            )));
        }
        Ok(Outcome::Wired {
            intact: true,
            wired: Wired {
                interface: peer.name,
                mac: peer.mac,
                addresses,
                gateways,
                host_interface: host.name,
                bridge: network.bridge.clone(),
                mtu: peer.mtu,
            },
        })
    }

    /// The poststop hook: removes every interface and lease this caller
    /// recorded for `container` on this network. Usually the kernel has
    /// already deleted the pair with the container's namespace.
    pub async fn release(&self, container: &str) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let bridge = self
            .host
            .link_by_name(&self.request.network.bridge)
            .await?
            .map(|b| b.index);
        let mut removed = Outcome::Removed {
            host_interfaces: vec![],
            addresses: vec![],
        };
        let own = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid && l.container.as_deref() == Some(container));
        for lease in own {
            if let Some(link) = self.host.link_by_name(&lease.ifname).await? {
                let ours = link.index == lease.ifindex
                    || (lease.is_pending()
                        && link.kind.as_deref() == Some("veth")
                        && link.master == bridge);
                if ours {
                    self.host.delete_link(link.index).await?;
                }
            }
            ledger.release(&lease)?;
            if let Outcome::Removed {
                host_interfaces,
                addresses,
            } = &mut removed
            {
                host_interfaces.push(lease.ifname);
                addresses.push(IpAddr::V4(lease.address));
            }
        }
        Ok(removed)
    }
}
