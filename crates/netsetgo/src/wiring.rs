//! The netlink work of one call, done under the network's lock: garbage
//! collection, quota, address choice, the lease, and the attachment itself.

use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnetwork::{IpNetwork, Ipv4Network};
use netplumb::{Attachment, NetNs, Netlink};

use crate::error::Failure;
use crate::leases::{self, Lease, Ledger, Liveness, Store};
use crate::output::{Outcome, Wired};
use crate::request::Request;

pub struct Session<'a> {
    host: Netlink,
    inside: Netlink,
    target: &'a NetNs,
    store: &'a Store,
    request: &'a Request,
    uid: u32,
}

impl<'a> Session<'a> {
    pub fn new(
        host: netplumb::RawSocket,
        inside: netplumb::RawSocket,
        target: &'a NetNs,
        store: &'a Store,
        request: &'a Request,
        uid: u32,
    ) -> Result<Session<'a>, Failure> {
        Ok(Session {
            host: Netlink::from_socket(host)?,
            inside: Netlink::from_socket(inside)?,
            target,
            store,
            request,
            uid,
        })
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
        let result = self
            .create_locked(&mut ledger, bridge.link.index, bridge.created, container)
            .await;
        if result.is_err() && bridge.created {
            let _ = self.host.delete_link(bridge.link.index).await;
        }
        result
    }

    async fn create_locked(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        bridge_created: bool,
        container: Option<String>,
    ) -> Result<Wired, Failure> {
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
        self.host
            .ensure_address(bridge, IpNetwork::V4(gateway))
            .await?;

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
        ledger.reserve(&lease)?;
        let peer_name = self.request.peer_name();
        let addresses = [IpNetwork::V4(
            Ipv4Network::new(address, gateway.prefix()).expect("valid prefix"),
        )];
        let gateways = [IpAddr::V4(gateway.ip())];
        let attachment = Attachment {
            bridge,
            host_name: &lease.ifname,
            peer_name: &peer_name,
            peer_netns: self.target.as_fd(),
            mtu: network.mtu,
            addresses: &addresses,
            gateways: &gateways,
        };
        let attached = match self.host.attach(&self.inside, &attachment).await {
            Ok(attached) => attached,
            Err(e) => {
                ledger.release(&lease)?;
                return Err(e.into());
            }
        };
        lease.ifindex = attached.host.index;
        if let Err(e) = ledger.complete(&lease) {
            let _ = self.host.delete_link(attached.host.index).await;
            ledger.release(&lease)?;
            return Err(e);
        }
        Ok(Wired {
            interface: peer_name,
            mac: attached.peer.mac,
            addresses: addresses.to_vec(),
            gateways: gateways.to_vec(),
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
        let mut live = 0;
        for lease in leases {
            match leases::liveness(&lease) {
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

    /// Removes the caller's own interface from the target and frees its
    /// lease. The interface is found from inside the container (its peer
    /// index), and must match a lease of this caller exactly.
    pub async fn delete(&self) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let not_found = || {
            Failure::refused(format!(
                "no interface of yours from network {} is in that container",
                self.request.network.name
            ))
        };
        let peer = self
            .inside
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
            .map(std::net::Ipv4Addr::from)
            .map(|address| ledger.lease_of(address))
            .transpose()?
            .flatten()
            .filter(|l| l.uid == self.uid && l.ifindex == host.index && l.ifname == host.name)
            .ok_or_else(not_found)?;
        self.host.delete_link(host.index).await?;
        ledger.release(&lease)?;
        Ok(Outcome::Deleted {
            host_interface: lease.ifname,
            address: IpAddr::V4(lease.address),
        })
    }
}
