//! The netlink work of one call, done under the network's lock: garbage
//! collection, quota, address choice, the lease, the guard, the published
//! ports, and the attachment itself.
//!
//! Order of a create: every refusal (host ports, quota, address, a host
//! port claimed already) comes before anything that outlives the call is
//! made in nftables. The lease (pending) and its ports record are written
//! first, then each port is published (a claimed port is refused there),
//! then the network's masquerade and hairpin rules are made sure of, then
//! the pair is made (both ends down); on a guarded network its host end's
//! bridge port is pinned (no learning, no unknown unicast, a static sticky
//! forwarding entry for the peer's MAC) and its netdev ingress chain added
//! (`Filters::guard`) before the host end is brought up, so the container
//! never has an unguarded moment. A failure at any step undoes the earlier
//! ones in reverse, except the shared structure (tables, maps, chains, a
//! network's masquerade and hairpin rules), which a successful call keeps
//! too.
//! Every way a lease ends (-delete, poststop, garbage collection, rollback)
//! goes through `Session::teardown`: publications, guard, record, lease.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use ipnetwork::{IpNetwork, Ipv4Network};
use netplumb::{Attached, Attachment, Bridge, Learning, Link, NetNs, Netlink};

use crate::cli::Nic;
use crate::dhcp::responder::Responder;
use crate::dhcp::Terms;
use crate::error::{Failure, Kind};
use crate::filters::{self, Filters};
use crate::leases::{Lease, Ledger, Liveness, Store, TOKEN_PREFIX};
use crate::links::{Kernel, Links};
use crate::output::{Outcome, Restored, Wired};
use crate::policy::{Network, Ports};
use crate::ports::{self, Mapping};
use crate::request::Request;

/// How often a call at its quota looks again, and how long it waits in
/// between without the lock: a container's pair outlives it by a few
/// milliseconds (the kernel tears a dead namespace down asynchronously).
const QUOTA_RETRIES: u32 = 8;
const QUOTA_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// Why a locked attempt failed: at the quota (worth another look once the
/// kernel has caught up), or anything else.
enum Refusal {
    AtQuota(Failure),
    Other(Failure),
}

impl<E: Into<Failure>> From<E> for Refusal {
    fn from(e: E) -> Refusal {
        Refusal::Other(e.into())
    }
}

pub struct Session<'a, L: Links = Kernel, F: Filters = filters::Kernel> {
    host: L,
    /// A session inside the target, and the target: absent when the call
    /// names no process (the poststop hook).
    inside: Option<L>,
    target: Option<&'a NetNs>,
    store: &'a Store,
    request: &'a Request,
    /// The host's packet filters: masquerading, publications, the guard.
    filters: F,
    uid: u32,
    /// The DHCP responder's socket, in lxc-user-nic mode.
    dhcp: Option<Responder>,
}

impl<'a> Session<'a, Kernel, filters::Kernel> {
    /// A session on netlink sockets opened before the drop.
    pub fn new(
        host: netplumb::RawSocket,
        inside: Option<netplumb::RawSocket>,
        target: Option<&'a NetNs>,
        store: &'a Store,
        request: &'a Request,
        nft: netplumb::Nftables,
        uid: u32,
    ) -> Result<Session<'a>, Failure> {
        let kernel = |socket| Netlink::from_socket(socket).map(Kernel::new);
        Ok(Session::with(
            kernel(host)?,
            inside.map(kernel).transpose()?,
            target,
            store,
            request,
            filters::Kernel::new(nft),
            uid,
        ))
    }
}

impl<'a, L: Links, F: Filters> Session<'a, L, F> {
    /// A session over any [`Links`] and [`Filters`] (the unit tests'
    /// fakes, for one).
    pub fn with(
        host: L,
        inside: Option<L>,
        target: Option<&'a NetNs>,
        store: &'a Store,
        request: &'a Request,
        filters: F,
        uid: u32,
    ) -> Session<'a, L, F> {
        Session {
            host,
            inside,
            target,
            store,
            request,
            filters,
            uid,
            dhcp: None,
        }
    }

    /// Hands the address out by DHCP: after the pair is made, a responder
    /// answers on its host end (lxc-user-nic mode).
    pub fn with_dhcp(mut self, responder: Responder) -> Session<'a, L, F> {
        self.dhcp = Some(responder);
        self
    }

    fn inside(&self) -> Result<(&L, &NetNs), Failure> {
        match (&self.inside, self.target) {
            (Some(inside), Some(target)) => Ok((inside, target)),
            _ => Err(Failure::internal("this action needs a target process")),
        }
    }

    /// Wires the target. On failure nothing this call made is left: not
    /// the veth pair, not the lease, not a bridge it created.
    ///
    /// A caller at its quota whose replaced container has just died would
    /// be refused while the kernel is still tearing that container's pair
    /// down: such a call lets go of the lock, waits a moment and tries
    /// again, `QUOTA_RETRIES` times at the most.
    pub async fn create(&self, container: Option<String>) -> Result<Wired, Failure> {
        self.check_host_ports().await?;
        let mut attempt = 1;
        loop {
            let mut ledger = self.store.lock()?;
            match self.create_locked(&mut ledger, container.clone()).await {
                Err(Refusal::AtQuota(_)) if attempt < QUOTA_RETRIES => {
                    drop(ledger);
                    attempt += 1;
                    std::thread::sleep(QUOTA_RETRY_PAUSE);
                }
                Err(Refusal::AtQuota(f) | Refusal::Other(f)) => return Err(f),
                Ok(wired) => return Ok(wired),
            }
        }
    }

    async fn create_locked(
        &self,
        ledger: &mut Ledger<'_>,
        container: Option<String>,
    ) -> Result<Wired, Refusal> {
        let bridge = self.ensure_bridge().await?;
        let result = self.attach_locked(ledger, &bridge, container).await;
        if result.is_err() && bridge.created {
            let _ = self.host.delete_link(bridge.link.index).await;
        }
        result
    }

    /// The configured bridge, up, claimed by this state and with its
    /// addresses. Before a bridge is created, and whenever it lacks its
    /// address (a call killed half way may have left it so), its subnet
    /// must not overlap a route of the host.
    async fn ensure_bridge(&self) -> Result<Bridge, Failure> {
        let network = &self.request.network;
        let gateway = network.gateway;
        let subnet = Ipv4Network::new(gateway.network(), gateway.prefix()).expect("valid prefix");
        let existing = self
            .host
            .link_by_name(&network.bridge)
            .await?
            .map(Bridge::existing)
            .transpose()?;
        // One ioctl, not a dump of every address in the namespace.
        let has_gateway = match &existing {
            Some(bridge) => self.host.ipv4_of(&bridge.link.name)? == Some(gateway.ip()),
            None => false,
        };
        if !has_gateway {
            let own = existing.as_ref().map(|b| b.link.index);
            if let Some(route) = self
                .host
                .route_overlapping(IpNetwork::V4(subnet), own)
                .await?
            {
                return Err(Failure::refused(format!(
                    "{subnet} overlaps the host's route to {route}; choose another subnet"
                )));
            }
        }
        let bridge = match existing {
            Some(bridge) => bridge,
            None => {
                self.host
                    .ensure_bridge(&network.bridge, network.mtu)
                    .await?
            }
        };
        let configured = async {
            self.claim(&bridge.link).await?;
            if !bridge.link.up {
                // The configured bridge is ours to bring up: down, it would
                // leave every container without its gateway.
                self.host.set_up(bridge.link.index).await?;
            }
            for address in network.bridge_addresses() {
                if !(has_gateway && address == IpNetwork::V4(gateway)) {
                    self.host.ensure_address(bridge.link.index, address).await?;
                }
            }
            Ok(())
        }
        .await;
        match configured {
            Ok(()) => Ok(bridge),
            Err(e) => {
                if bridge.created {
                    let _ = self.host.delete_link(bridge.link.index).await;
                }
                Err(e)
            }
        }
    }

    /// Refuses, before anything is made, a `-publish` whose host address is
    /// not one of the host's, or whose host port a socket of the host
    /// listens on. Checked before the lock is taken: the kernel walks every
    /// socket of the host to answer, and any user can open many, so it
    /// must not hold up the network (security.md 16); the check is advice
    /// either way (a program that starts listening afterwards shares the
    /// port with the container, and the published mapping wins for traffic
    /// from outside), and a host port another lease publishes is refused
    /// under the lock by its claim.
    async fn check_host_ports(&self) -> Result<(), Failure> {
        for m in &self.request.publish {
            if let Some(address) = m.host_address {
                if !self.host.is_local(address).await? {
                    return Err(Failure::refused(format!(
                        "-publish {m}: {address} is not an address of this host"
                    )));
                }
            }
            if self.host.listening(m.protocol, m.host_port)? {
                return Err(Failure::refused(format!(
                    "-publish {m}: a program on this host listens on {} port {}; choose another host port",
                    m.protocol.name(),
                    m.host_port
                )));
            }
        }
        Ok(())
    }

    /// Makes sure the bridge is managed by this state (security.md 15): its
    /// alias names the state that hands out its addresses. A bridge that
    /// names another state (the same network namespace seen with another
    /// /run) is refused; an unnamed one is claimed.
    async fn claim(&self, bridge: &Link) -> Result<(), Failure> {
        let token = self.store.token()?;
        match bridge.alias.as_deref() {
            Some(alias) if alias == token => Ok(()),
            Some(alias) if alias.starts_with(TOKEN_PREFIX) => Err(Failure::refused(format!(
                "bridge {} is managed by netsetgo state in another /run (another mount namespace); \
                 call netsetgo from there, or, if that state is gone, an administrator may release \
                 the bridge with: ip link set {} alias \"\"",
                bridge.name, bridge.name
            ))),
            _ => Ok(self.host.set_alias(bridge.index, &token).await?),
        }
    }

    async fn attach_locked(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: &Bridge,
        container: Option<String>,
    ) -> Result<Wired, Refusal> {
        let bridge_mtu = bridge.link.mtu;
        let bridge = bridge.link.index;
        let network = &self.request.network;

        let window = ledger.window()?;
        self.collect(ledger, bridge, window).await?;
        if let Some(quota) = self.request.quota {
            if ledger.count()? >= quota {
                let live = self.count_own(ledger, bridge).await?;
                ledger.recount(live)?;
                if live >= quota {
                    return Err(Refusal::AtQuota(Failure::refused(format!(
                        "you already hold {live} of your {quota} interfaces on network {}",
                        network.name
                    ))));
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
        if let Err(e) = self.publish(ledger, &lease) {
            let _ = self.teardown(ledger, &lease);
            return Err(e.into());
        }
        let peer_name = self.request.peer_name();
        let addresses = network.container_addresses(address);
        let gateways = network.gateways();
        // Configured by DHCP, the peer gets nothing here: its client adds
        // the address and route itself, and fails if one is there.
        let by_dhcp = self.request.by_dhcp();
        let mac = ports::mac_of(address);
        let attachment = Attachment {
            bridge,
            host_name: &lease.ifname,
            peer_name: &peer_name,
            peer_netns: target.as_fd(),
            // Without a policy MTU, the veth follows the bridge's.
            mtu: network.mtu.or(bridge_mtu),
            addresses: if by_dhcp { &[] } else { &addresses },
            gateways: if by_dhcp { &[] } else { &gateways },
            peer_link_local: !by_dhcp && network.gateway6.is_some(),
            // Never random: the guard knows it before the pair exists.
            peer_mac: Some(mac),
            isolated: network.isolate,
            learning: if network.guard {
                Learning::Pinned(mac)
            } else {
                Learning::On
            },
        };
        // The netdev guard chain goes on the host end while it is down.
        let guard = |_: &Link| {
            if network.guard {
                self.filters.guard(network, &lease)
            } else {
                Ok(())
            }
        };
        let attached = match self.host.attach(inside, &attachment, guard).await {
            Ok(attached) => attached,
            Err(e) => {
                let _ = self.teardown(ledger, &lease);
                return Err(e.into());
            }
        };
        lease.ifindex = attached.host_index;
        let done = ledger
            .complete(&lease)
            .and_then(|()| self.serve_dhcp(&attached, address));
        if let Err(e) = done {
            let _ = self.host.delete_link(attached.host_index).await;
            let _ = self.teardown(ledger, &lease);
            return Err(e.into());
        }
        Ok(Wired {
            interface: peer_name,
            index: attached.peer.index,
            host_index: attached.host_index,
            mac: attached.peer.mac,
            addresses,
            gateways,
            host_interface: lease.ifname,
            bridge: network.bridge.clone(),
            mtu: attached.peer.mtu,
            dns: network.dns_servers(),
            published: self.request.publish.clone(),
            guard: network.guard,
            isolated: network.isolate,
        })
    }

    /// After the lease is reserved and before the pair exists: its ports
    /// recorded (write-ahead), then published, then the network's
    /// masquerade and hairpin rules made sure of: after every refusal (the
    /// quota and the address before the lease, a claimed port here), so
    /// that a refused call makes nothing that outlives it (issue 17).
    fn publish(&self, ledger: &mut Ledger<'_>, lease: &Lease) -> Result<(), Failure> {
        let network = &self.request.network;
        if !self.request.publish.is_empty() {
            ledger.set_ports(lease.address, &self.request.publish)?;
        }
        for m in &self.request.publish {
            self.filters.publish(network, lease.address, m)?;
        }
        if network.nat {
            self.filters.masquerade(network)?;
        }
        if !self.request.publish.is_empty() {
            self.filters.hairpin(network)?;
        }
        Ok(())
    }

    /// Ends a lease whose interface is gone (or never made): its
    /// publications removed (only those it claims), its guard chain
    /// forgotten, its ports record erased, the lease freed, in that order.
    /// A failure stops before the lease is freed, so that nothing of it
    /// can outlive its record (and reach the next holder of the address);
    /// the next garbage collection that looks at it tries again.
    fn teardown(&self, ledger: &mut Ledger<'_>, lease: &Lease) -> Result<(), Failure> {
        let network = &self.request.network;
        let published = ledger.ports_of(lease.address)?;
        let mut failed = None;
        for m in &published {
            if let Err(e) = self.filters.unpublish(network, lease.address, m) {
                failed.get_or_insert(e);
            }
        }
        if network.guard {
            if let Err(e) = self.filters.unguard(network, lease) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !published.is_empty() {
            ledger.set_ports(lease.address, &[])?;
        }
        ledger.release(lease)
    }

    /// Starts the DHCP responder for the new pair (if this call has one):
    /// the lease's address for the MAC its peer was born with.
    fn serve_dhcp(&self, attached: &Attached, address: Ipv4Addr) -> Result<(), Failure> {
        let Some(responder) = &self.dhcp else {
            return Ok(());
        };
        let network = &self.request.network;
        let terms = Terms {
            // The MAC we gave the peer, not the one it reports: its owner
            // may have changed it already (requirement 14).
            mac: ports::mac_of(address),
            address,
            gateway: network.gateway,
            dns: network.dns_servers(),
        };
        responder.start(attached.host_index, &terms).map(drop)
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

    /// Frees the leases among `leases` whose interface is gone, and
    /// deletes the interfaces of calls that died half way (only a veth of
    /// that name on our bridge).
    async fn collect(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        leases: Vec<Lease>,
    ) -> Result<(), Failure> {
        if leases.is_empty() {
            return Ok(());
        }
        for lease in leases {
            match lease.liveness(self.host.index_of(&lease.ifname)?) {
                Liveness::Live => {}
                Liveness::Gone => self.teardown(ledger, &lease)?,
                Liveness::Orphan => self.remove(ledger, bridge, &lease).await?,
            }
        }
        Ok(())
    }

    /// How many interfaces the caller really holds: its leases whose
    /// interface is gone are freed, and so are those whose container's
    /// namespace has already died (the kernel would delete the pair a few
    /// milliseconds later; a runtime replacing a container at its quota must
    /// not be refused for it). Judged from the host ends alone.
    async fn count_own(&self, ledger: &mut Ledger<'_>, bridge: u32) -> Result<u32, Failure> {
        let own: Vec<Lease> = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid)
            .collect();
        let mut live = 0;
        for lease in own {
            match lease.liveness(self.host.index_of(&lease.ifname)?) {
                Liveness::Gone => self.teardown(ledger, &lease)?,
                Liveness::Orphan => self.remove(ledger, bridge, &lease).await?,
                Liveness::Live => {
                    let dying = self
                        .host
                        .link_by_index(lease.ifindex)
                        .await?
                        .is_some_and(|l| l.name == lease.ifname && l.peer_namespace_dead());
                    if dying {
                        self.remove(ledger, bridge, &lease).await?;
                    } else {
                        live += 1;
                    }
                }
            }
        }
        Ok(live)
    }

    /// Deletes a lease's interface (if it is still a veth of that name on
    /// our bridge) and frees the lease.
    async fn remove(
        &self,
        ledger: &mut Ledger<'_>,
        bridge: u32,
        lease: &Lease,
    ) -> Result<(), Failure> {
        if let Some(link) = self.host.host_end(&lease.ifname, bridge).await? {
            match self.host.delete_link(link.index).await {
                Err(e) if e.errno() != Some(libc::ENODEV) => return Err(e.into()),
                _ => {}
            }
        }
        self.teardown(ledger, lease)
    }

    /// The caller's interface in the target, found from the host side: a
    /// lease of this caller on this network, with this call's name prefix,
    /// whose host end (matched exactly: the lease's name and index, a veth)
    /// has its peer in the target's namespace. Only then is the peer looked
    /// at, by the index the host end gives, inside. (Whether the host end is
    /// still on the bridge is for `check` to say.)
    async fn own_interface(&self, ledger: &mut Ledger<'_>) -> Result<(Link, Link, Lease), Failure> {
        let (inside, target) = self.inside()?;
        let not_found = || {
            Failure::refused(format!(
                "no interface of yours from network {} is in that container",
                self.request.network.name
            ))
        };
        let target_id = self.host.nsid_of(target).await?.ok_or_else(not_found)?;
        let prefix = self.request.prefix.as_str();
        let named = |l: &Lease| match &self.request.nic {
            Some(Nic::Delete { host_ifname }) => &l.ifname == host_ifname,
            _ => l.ifname.starts_with(prefix),
        };
        // The host end is the caller's exactly when a lease of the caller
        // records it (name and index) and it is a veth whose peer is in the
        // target's namespace: all of it facts of the host.
        let ours = |host: &Link, lease: &Lease| {
            lease.uid == self.uid
                && named(lease)
                && lease.ifindex == host.index
                && lease.ifname == host.name
                && host.kind.as_deref() == Some("veth")
                && host.link_netnsid == Some(target_id)
        };
        // Where to look first: the host end the interface inside points at
        // (or lxc-user-nic's HOSTIF). Only a hint, since the container may
        // forge it; it is matched to a lease like any other, and when it
        // does not match, every lease of the caller is tried.
        let hint = match &self.request.nic {
            Some(Nic::Delete { host_ifname }) => self.host.link_by_name(host_ifname).await?,
            _ => match inside.link_by_name(&self.request.peer_name()).await? {
                Some(Link { link: Some(h), .. }) => self.host.link_by_index(h).await?,
                _ => None,
            },
        };
        if let Some(host) = hint {
            let address = host
                .name
                .strip_prefix(prefix)
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .map(std::net::Ipv4Addr::from);
            if let Some(lease) = address.map(|a| ledger.lease_of(a)).transpose()?.flatten() {
                if let (true, Some(peer)) = (ours(&host, &lease), host.link) {
                    let peer = inside.link_by_index(peer).await?.ok_or_else(not_found)?;
                    return Ok((peer, host, lease));
                }
            }
        }
        let own: Vec<Lease> = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid && !l.is_pending() && named(l))
            .collect();
        for lease in own {
            let Some(host) = self.host.link_by_index(lease.ifindex).await? else {
                continue;
            };
            if let (true, Some(peer)) = (ours(&host, &lease), host.link) {
                let peer = inside.link_by_index(peer).await?.ok_or_else(not_found)?;
                return Ok((peer, host, lease));
            }
        }
        Err(not_found())
    }

    /// Removes the caller's own interface from the target and frees its
    /// lease (security.md 13: only what is recorded for this uid).
    pub async fn delete(&self) -> Result<Outcome, Failure> {
        let mut ledger = self.store.lock()?;
        let (_, host, lease) = self.own_interface(&mut ledger).await?;
        self.host.delete_link(host.index).await?;
        self.teardown(&mut ledger, &lease)?;
        Ok(Outcome::Removed {
            host_interfaces: vec![lease.ifname],
            addresses: vec![IpAddr::V4(lease.address)],
        })
    }

    /// Says whether the caller's wiring of the target is intact: both ends
    /// up, the host end on the bridge, the address, the default route, lo.
    ///
    /// Only what the ledger decides is read under the lock: which interface
    /// is the caller's (look-ups by name and index) and its publications.
    /// The rest is read after the lock is released (security.md 16): the
    /// container's addresses and routes, whose number its owner chooses,
    /// and the bridge's forwarding entries, which the containers of an
    /// unguarded network can multiply by sending from many MACs.
    pub async fn check(&self) -> Result<Outcome, Failure> {
        let (inside, _) = self.inside()?;
        let (peer, host, lease, published) = {
            let mut ledger = self.store.lock()?;
            let (peer, host, lease) = self.own_interface(&mut ledger).await?;
            let published = ledger.ports_of(lease.address)?;
            (peer, host, lease, published)
        };
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
        let mut lost = Vec::new();
        for m in &published {
            if !self.filters.published(network, lease.address, m)? {
                lost.push(format!("publication {m} is missing"));
            }
        }
        if network.guard && !self.filters.guarded(network, &lease)? {
            lost.push(format!("the guard of host end {} is missing", host.name));
        }
        if !lost.is_empty() {
            // What lives in the firewall's ruleset, which a firewall
            // restart flushes: -restore re-creates it from the leases.
            missing.extend(lost);
            missing.push(
                "run `netsetgo -restore` as root to re-create them (the firewall's ruleset was probably flushed)"
                    .into(),
            );
        }
        let port = self.host.bridge_port(host.index).await?;
        if network.isolate && !port.is_some_and(|p| p.isolated) {
            missing.push(format!("host end {} is not isolated", host.name));
        }
        if network.guard {
            missing.extend(self.check_pinned(&host, &lease, port).await?);
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
                index: peer.index,
                host_index: host.index,
                mac: peer.mac,
                addresses,
                gateways,
                host_interface: host.name,
                bridge: network.bridge.clone(),
                mtu: peer.mtu,
                dns: network.dns_servers(),
                published,
                guard: network.guard,
                isolated: network.isolate,
            },
        })
    }

    /// What a guarded lease's bridge port lacks of its layer 2 guard: the
    /// bridge learns nothing from it and floods no unknown unicast to it,
    /// and the lease's MAC is pinned to it and to no other port.
    async fn check_pinned(
        &self,
        host: &Link,
        lease: &Lease,
        port: Option<netplumb::BridgePort>,
    ) -> Result<Vec<String>, Failure> {
        let mut missing = Vec::new();
        if port.is_none_or(|p| p.learning) {
            missing.push(format!("bridge port {} learns source MACs", host.name));
        }
        if port.is_none_or(|p| p.unicast_flood) {
            missing.push(format!("bridge port {} gets unknown unicast", host.name));
        }
        let mac = ports::mac_of(lease.address);
        let entries = match host.master {
            Some(bridge) => self.host.fdb_entries(bridge, mac).await?,
            None => Vec::new(),
        };
        let pinned = |e: &netplumb::FdbEntry| e.port == host.index && e.is_static;
        if !entries.iter().any(pinned) || entries.iter().any(|e| e.port != host.index) {
            missing.push(format!(
                "MAC {} is not pinned to bridge port {}",
                ports::mac_text(mac),
                host.name
            ));
        }
        Ok(missing)
    }

    /// `-restore` on this session's network, under its lock (root's call):
    /// leases whose interface is gone are collected as garbage collection
    /// does; each live lease's publications are brought in line with what
    /// `grants` (the ports its owner's grants cover now, `None`: no bound)
    /// still covers, and all of them go when the network left the policy;
    /// then what the firewall lost is re-created: masquerading, the
    /// hairpin, each live lease's guard and publications (never on a
    /// network that left the policy, whose live leases keep their lease
    /// and get their guard back until their interface goes). Each object is
    /// looked up before it is added, so a second run changes nothing; one
    /// look-up per object, no dump. What fails is reported in `failed`
    /// after the rest was tried.
    pub async fn restore(
        &self,
        grants: &mut dyn FnMut(u32) -> Result<Covered, Failure>,
    ) -> Result<Restored, Failure> {
        let mut ledger = self.store.lock()?;
        let network = &self.request.network;
        let retired = self.request.recorded;
        let mut done = Restored {
            network: network.name.clone(),
            bridge: network.bridge.clone(),
            retired,
            ..Restored::default()
        };
        let bridge = self.host.link_by_name(&network.bridge).await?;
        let bridge = bridge.map_or(0, |b| b.index);
        let mut live = Vec::new();
        for lease in ledger.all()? {
            if lease.liveness(self.host.index_of(&lease.ifname)?) == Liveness::Live {
                live.push(lease);
            } else if let Err(e) = self.collect(&mut ledger, bridge, vec![lease.clone()]).await {
                done.failed
                    .push(format!("collecting lease {}: {e}", lease.address));
            } else {
                done.collected += 1;
            }
        }
        let mut publishing = Vec::with_capacity(live.len());
        for lease in live {
            let recorded = ledger.ports_of(lease.address)?;
            let covered = match retired {
                true => Some(Vec::new()),
                // Grants that cannot be judged revoke nothing (reported).
                false => grants(lease.uid).unwrap_or_else(|e| {
                    let uid = lease.uid;
                    done.failed.push(format!("the grants of uid {uid}: {e}"));
                    None
                }),
            };
            let (granted, revoked): (Vec<Mapping>, Vec<Mapping>) =
                recorded.into_iter().partition(|m| {
                    covered
                        .as_ref()
                        .is_none_or(|g| g.iter().any(|g| g.contains(m.protocol, m.host_port)))
                });
            if !revoked.is_empty() {
                let mut kept = granted.clone();
                for m in revoked {
                    match self.filters.unpublish(network, lease.address, &m) {
                        Ok(_) => done.revoked.push(format!("{m} of {}", lease.address)),
                        Err(e) => {
                            let of = lease.address;
                            done.failed
                                .push(format!("removing publication {m} of {of}: {e}"));
                            kept.push(m);
                        }
                    }
                }
                // Unpublished first, then the record (as a teardown does).
                ledger.set_ports(lease.address, &kept)?;
            }
            publishing.push((lease, granted));
        }
        let mut fail = |what: String, e: Failure| done.failed.push(format!("{what}: {e}"));
        if network.nat && !retired {
            match self.filters.masquerade(network) {
                Ok(()) => done.masquerade = true,
                Err(e) => fail("masquerading".into(), e),
            }
        }
        if publishing.iter().any(|(_, granted)| !granted.is_empty()) {
            match self.filters.hairpin(network) {
                Ok(()) => done.hairpin = true,
                Err(e) => fail("the hairpin".into(), e),
            }
        }
        for (lease, granted) in &publishing {
            done.leases += 1;
            if network.guard {
                let guarded = match self.filters.guarded(network, lease) {
                    Ok(true) => Ok(false),
                    Ok(false) => self.filters.guard(network, lease).map(|()| true),
                    Err(e) => Err(e),
                };
                match guarded {
                    Ok(restored) => {
                        done.guarded += 1;
                        done.guards_restored += usize::from(restored);
                    }
                    Err(e) => fail(format!("the guard of {}", lease.ifname), e),
                }
            }
            for m in granted {
                match self.republish(network, lease.address, m) {
                    Ok(restored) => {
                        done.publications += 1;
                        done.publications_restored += usize::from(restored);
                    }
                    Err(e) => fail(format!("publication {m} of {}", lease.address), e),
                }
            }
        }
        Ok(done)
    }

    /// Publishes `m` for `owner` unless it is in place; true if it was
    /// not. Whatever is left of it (its claim without all of its map
    /// elements) is removed first, so that the claim's exclusive add
    /// succeeds; another owner's claim is left alone and refuses it.
    fn republish(&self, network: &Network, owner: Ipv4Addr, m: &Mapping) -> Result<bool, Failure> {
        if self.filters.published(network, owner, m)? {
            return Ok(false);
        }
        self.filters.unpublish(network, owner, m)?;
        self.filters.publish(network, owner, m)?;
        Ok(true)
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
            self.teardown(&mut ledger, &lease)?;
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

/// The host ports a lease owner's grants cover on a network now; `None`:
/// no grant binds it (root).
pub type Covered = Option<Vec<Ports>>;

/// What `-restore` asks the policy: for a lease owner's uid and a network,
/// what its grants cover.
pub type Grants<'a> = dyn Fn(u32, &Network) -> Result<Covered, Failure> + 'a;

/// One network `-restore` works on: what it restores by (from the policy,
/// or as its state recorded it: [`Request::recorded`]) and its state, or
/// why that could not be opened.
pub struct Restorable {
    pub request: Request,
    pub store: Result<Store, Failure>,
}

/// How long `-restore` keeps coming back to a network whose lock another
/// call holds: no new attempt starts after this, and one attempt waits
/// 10 s for the lock at the most, so `-restore` gives a busy network up
/// after about a minute.
const RESTORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(50);

/// `netsetgo -restore`: [`Session::restore`] on each network, one after the
/// other, each under its own lock, as root; a network that fails is
/// reported as such and the others are restored all the same. A network
/// whose lock stayed busy (a caller may freeze its helper while it holds
/// it) is tried again after the others, round after round, until
/// `RESTORE_PATIENCE` has passed: a firewall reload must not leave it
/// unguarded for good (security.md 20). `grants` says which ports a lease
/// owner's grants cover on a network now (asked once per owner and
/// network and attempt).
pub async fn restore_all<L: Links, F: Filters>(
    mut host: L,
    filters: &F,
    networks: &[Restorable],
    grants: &Grants<'_>,
) -> Vec<Restored> {
    let started = std::time::Instant::now();
    let mut out = vec![None; networks.len()];
    let mut busy: Vec<usize> = (0..networks.len()).collect();
    let mut round = 0;
    while !busy.is_empty() && (round == 0 || started.elapsed() < RESTORE_PATIENCE) {
        round += 1;
        for i in std::mem::take(&mut busy) {
            if round > 1 && started.elapsed() >= RESTORE_PATIENCE {
                busy.push(i);
                continue;
            }
            let (back, done) = restore_one(host, filters, &networks[i], grants).await;
            host = back;
            if matches!(&done, Err(e) if e.kind == Kind::Unavailable) {
                busy.push(i);
            }
            out[i] = Some(done);
        }
    }
    let waited = started.elapsed().as_secs();
    let out = out.into_iter().zip(networks).enumerate();
    out.filter_map(|(i, (done, Restorable { request, .. }))| {
        Some(done?.unwrap_or_else(|e| {
            let why = match busy.contains(&i) {
                true => format!("{e} (still busy after {waited} s of tries)"),
                false => e.to_string(),
            };
            Restored {
                network: request.network.name.clone(),
                bridge: request.network.bridge.clone(),
                retired: request.recorded,
                failed: vec![why],
                not_restored: true,
                ..Restored::default()
            }
        }))
    })
    .collect()
}

/// One attempt of [`restore_all`] on one network; `host` is handed back.
/// An error: the network's restore stopped before it re-created anything
/// (`Kind::Unavailable`: its lock stayed busy, the only such error a
/// restore has).
async fn restore_one<L: Links, F: Filters>(
    host: L,
    filters: &F,
    Restorable { request, store }: &Restorable,
    grants: &Grants<'_>,
) -> (L, Result<Restored, Failure>) {
    let store = match store {
        Ok(store) => store,
        Err(e) => return (host, Err(e.clone())),
    };
    let network = &request.network;
    let session = Session::with(host, None, None, store, request, filters, 0);
    let mut known = std::collections::HashMap::new();
    let mut ports_of = |uid: u32| -> Result<Covered, Failure> {
        if let Some(ports) = known.get(&uid) {
            return Ok(Clone::clone(ports));
        }
        let ports = grants(uid, network)?;
        known.insert(uid, ports.clone());
        Ok(ports)
    };
    let done = session.restore(&mut ports_of).await;
    (session.host, done)
}

/// The wiring's decisions against a fake namespace pair and a state store
/// in a temporary directory: no root, no kernel.
#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use netplumb::NsId;

    use super::*;
    use crate::filters::fake::FakeFilters;
    use crate::links::fake::{link, FakeLinks};
    use crate::policy::Network;

    const A: u32 = 1000;
    const B: u32 = 1001;
    const TARGET: i32 = 7;

    /// A state directory of its own, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "netsetgo-unit-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }

        fn store(&self, uid: u32) -> Store {
            let owner = nix::unistd::geteuid().as_raw();
            let ns = NsId { dev: 0, ino: 1 };
            let gateway = "10.10.10.1/24".parse().unwrap();
            Store::open_under(&self.0, owner, &ns, "brg0", gateway, uid).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn request(quota: Option<u32>, address: Option<&str>) -> Request {
        Request {
            network: Network {
                name: "default".into(),
                bridge: "brg0".into(),
                gateway: "10.10.10.1/24".parse().unwrap(),
                gateway6: None,
                mtu: None,
                nat: false,
                dns: Vec::new(),
                guard: true,
                isolate: false,
            },
            quota,
            address: address.map(|a| a.parse().unwrap()),
            prefix: "veth".into(),
            nic: None,
            publish: Vec::new(),
            recorded: false,
        }
    }

    /// A host with brg0 (index 1) and a container, as seen by the session.
    fn host() -> FakeLinks {
        let host = FakeLinks {
            target_nsid: Some(TARGET),
            ..FakeLinks::default()
        };
        host.add(link(1, "brg0", Some("bridge")));
        host
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Wires one container of `uid` on `host`; the fake's pair stays in
    /// `host` (the host end) and a fresh inside.
    fn wire(
        host: FakeLinks,
        store: &Store,
        req: &Request,
        uid: u32,
    ) -> (FakeLinks, Result<Wired, Failure>) {
        let target = NetNs::current().unwrap();
        let session = Session::with(
            host,
            Some(FakeLinks::default()),
            Some(&target),
            store,
            req,
            FakeFilters::default(),
            uid,
        );
        let result = block_on(session.create(None));
        (session.host, result)
    }

    fn leases(store: &Store) -> Vec<Lease> {
        store.lock().unwrap().all().unwrap()
    }

    #[test]
    fn quota_at_the_limit_counts_only_live_interfaces_of_live_containers() {
        let dir = Scratch::new("quota");
        let store = dir.store(A);
        let req = request(Some(2), None);
        let (host, first) = wire(host(), &store, &req, A);
        let (host, second) = wire(host, &store, &req, A);
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.host_interface, "veth0a0a0a02");
        assert_eq!(second.host_interface, "veth0a0a0a03");
        let (host, third) = wire(host, &store, &req, A);
        let refused = third.unwrap_err();
        assert_eq!(refused.kind, Kind::Refused);
        assert!(refused.message.contains("2 of your 2"), "{refused}");

        // The first container's namespace has died; its pair is still
        // there: it does not count, and it is deleted with its lease.
        let first_index = host.index_of("veth0a0a0a02").unwrap().unwrap();
        host.links
            .borrow_mut()
            .get_mut(&first_index)
            .unwrap()
            .link_netnsid = Some(-1);
        let (host, fourth) = wire(host, &store, &req, A);
        assert_eq!(fourth.unwrap().host_interface, "veth0a0a0a02");
        assert!(host
            .log
            .borrow()
            .contains(&format!("delete #{first_index}")));
        assert_eq!(leases(&store).len(), 2);
    }

    #[test]
    fn garbage_collection_deletes_only_our_veth_on_our_bridge() {
        let dir = Scratch::new("gc");
        let store = dir.store(A);
        let host = host();
        // Calls that died half way: pending leases whose names exist, once
        // as our veth on brg0, once as some other device, once as a veth on
        // another bridge.
        let mut ours = link(10, "veth0a0a0a02", Some("veth"));
        ours.master = Some(1);
        host.add(ours);
        host.add(link(11, "veth0a0a0a03", Some("dummy")));
        host.add(link(12, "other", Some("bridge")));
        let mut elsewhere = link(13, "veth0a0a0a04", Some("veth"));
        elsewhere.master = Some(12);
        host.add(elsewhere);
        {
            let mut ledger = store.lock().unwrap();
            for last in [2u8, 3, 4] {
                ledger
                    .reserve(&Lease {
                        address: std::net::Ipv4Addr::new(10, 10, 10, last),
                        uid: B,
                        ifindex: 0,
                        ifname: format!("veth0a0a0a0{last}"),
                        container: None,
                    })
                    .unwrap();
            }
        }
        let (host, wired) = wire(host, &store, &request(None, None), A);
        let log = host.log.borrow();
        assert!(log.contains(&"delete #10".to_string()), "{log:?}");
        assert!(
            !log.iter().any(|l| l == "delete #11" || l == "delete #13"),
            "{log:?}"
        );
        // Every pending lease was freed, and the first address reused.
        assert_eq!(wired.unwrap().host_interface, "veth0a0a0a02");
        let held: Vec<u32> = leases(&store).iter().map(|l| l.uid).collect();
        assert_eq!(held, vec![A]);
    }

    #[test]
    fn the_requested_address_if_free_or_held_by_a_dead_lease_else_refused() {
        let dir = Scratch::new("address");
        let store = dir.store(A);
        let (host, wired) = wire(host(), &store, &request(None, Some("10.10.10.9")), A);
        assert_eq!(wired.unwrap().addresses[0].to_string(), "10.10.10.9/24");
        // In use by a live lease: unavailable, nothing made.
        let (host, taken) = wire(host, &store, &request(None, Some("10.10.10.9")), B);
        assert_eq!(taken.unwrap_err().kind, Kind::Unavailable);
        // Its interface gone: the lease is freed and the address given.
        let index = host.index_of("veth0a0a0a09").unwrap().unwrap();
        host.links.borrow_mut().remove(&index);
        let (host, again) = wire(host, &store, &request(None, Some("10.10.10.9")), B);
        assert_eq!(again.unwrap().host_interface, "veth0a0a0a09");
        // Without a request: the first free address of the subnet.
        let (_, first) = wire(host, &store, &request(None, None), A);
        assert_eq!(first.unwrap().host_interface, "veth0a0a0a02");
    }

    #[test]
    fn delete_and_check_find_only_the_callers_own_interface_from_the_host_side() {
        let dir = Scratch::new("own");
        let store_a = dir.store(A);
        let req = request(None, None);
        let (host, wired) = wire(host(), &store_a, &req, A);
        wired.unwrap();
        let target = NetNs::current().unwrap();
        let inside = FakeLinks::default();
        inside.add(link(1, "lo", None));
        let host_index = host.index_of("veth0a0a0a02").unwrap().unwrap();
        let mut peer = link(2, "veth1", Some("veth"));
        peer.link = Some(host_index);
        inside.add(peer);

        // Another user: refused, nothing deleted.
        let store_b = dir.store(B);
        let session = Session::with(
            host,
            Some(inside),
            Some(&target),
            &store_b,
            &req,
            FakeFilters::default(),
            B,
        );
        let refused = block_on(session.delete()).unwrap_err();
        assert_eq!(refused.kind, Kind::Refused);
        assert!(!session
            .host
            .log
            .borrow()
            .iter()
            .any(|l| l.starts_with("delete")));

        // The owner, but the host end's peer is in another namespace (a
        // forged veth1 inside cannot change that): refused.
        let Session { host, inside, .. } = session;
        host.links
            .borrow_mut()
            .get_mut(&host_index)
            .unwrap()
            .link_netnsid = Some(TARGET + 1);
        let session = Session::with(
            host,
            inside,
            Some(&target),
            &store_a,
            &req,
            FakeFilters::default(),
            A,
        );
        assert_eq!(block_on(session.check()).unwrap_err().kind, Kind::Refused);
        assert_eq!(block_on(session.delete()).unwrap_err().kind, Kind::Refused);

        // The owner's own: -check sees it, -delete deletes that host end.
        let Session { host, inside, .. } = session;
        host.links
            .borrow_mut()
            .get_mut(&host_index)
            .unwrap()
            .link_netnsid = Some(TARGET);
        let session = Session::with(
            host,
            inside,
            Some(&target),
            &store_a,
            &req,
            FakeFilters::default(),
            A,
        );
        let checked = block_on(session.check());
        assert!(
            matches!(&checked, Err(f) if f.kind == Kind::Broken),
            "the fake has no address inside: {checked:?}"
        );
        block_on(session.delete()).unwrap();
        assert!(session
            .host
            .log
            .borrow()
            .contains(&format!("delete #{host_index}")));
        assert!(leases(&store_a).is_empty());
    }

    #[test]
    fn lxc_user_nic_create_leaves_the_peer_unconfigured_and_delete_names_the_host_end() {
        let dir = Scratch::new("nic");
        let store = dir.store(A);
        let mut req = request(None, None);
        let (host, wired) = wire(host(), &store, &req, A);
        assert!(host
            .log
            .borrow()
            .contains(&"attach veth0a0a0a02 peer veth1 addresses 1 gateways 1".to_string()));
        req.nic = Some(Nic::Create {
            ifname: "eth0".into(),
        });
        let (host, nic) = wire(host, &store, &req, A);
        let nic = nic.unwrap();
        assert_eq!((nic.interface.as_str(), nic.addresses.len()), ("eth0", 1));
        assert!(host
            .log
            .borrow()
            .contains(&"attach veth0a0a0a03 peer eth0 addresses 0 gateways 0".to_string()));

        // delete by HOSTIF: only the lease of that name, here the second.
        let target = NetNs::current().unwrap();
        let inside = FakeLinks::default();
        for (index, name) in [(wired.unwrap().index, "veth1"), (nic.index, "eth0")] {
            inside.add(link(index, name, Some("veth")));
        }
        req.nic = Some(Nic::Delete {
            host_ifname: "veth0a0a0a03".into(),
        });
        let session = Session::with(
            host,
            Some(inside),
            Some(&target),
            &store,
            &req,
            FakeFilters::default(),
            A,
        );
        block_on(session.delete()).unwrap();
        let left: Vec<String> = leases(&store).into_iter().map(|l| l.ifname).collect();
        assert_eq!(left, ["veth0a0a0a02"]);
    }

    #[test]
    fn poststop_releases_only_the_callers_leases_of_that_container() {
        let dir = Scratch::new("release");
        let store = dir.store(A);
        let req = request(None, None);
        let target = NetNs::current().unwrap();
        let mut host = host();
        for (uid, id) in [(A, "c1"), (B, "c1"), (A, "c2")] {
            let session = Session::with(
                host,
                Some(FakeLinks::default()),
                Some(&target),
                &store,
                &req,
                FakeFilters::default(),
                uid,
            );
            block_on(session.create(Some(id.into()))).unwrap();
            host = session.host;
        }
        let session = Session::with(host, None, None, &store, &req, FakeFilters::default(), A);
        block_on(session.release("c1")).unwrap();
        let left: Vec<(u32, Option<String>)> = leases(&store)
            .into_iter()
            .map(|l| (l.uid, l.container))
            .collect();
        assert_eq!(left, vec![(B, Some("c1".into())), (A, Some("c2".into()))]);
        let deleted = session
            .host
            .log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("delete"))
            .count();
        assert_eq!(deleted, 1);
    }

    // ------------------------------------------------ publishing and guard

    const LOCAL: &str = "192.0.2.1";

    /// A request of network `default` (guard=yes, isolate=yes) publishing
    /// `publish`.
    fn publishing(publish: &[&str]) -> Request {
        let mut req = request(None, None);
        req.network.isolate = true;
        req.publish = publish
            .iter()
            .map(|p| crate::ports::Mapping::parse(p).unwrap())
            .collect();
        req
    }

    /// A host whose changes and its filters' share one log, with LOCAL as
    /// its address and udp 53 held by a socket.
    fn shared() -> (FakeLinks, FakeFilters) {
        let mut host = host();
        host.local = vec![LOCAL.parse().unwrap()];
        host.listening = vec![(netplumb::Protocol::Udp, 53)];
        let filters = FakeFilters::default();
        host.log = filters.log.clone();
        (host, filters)
    }

    fn wire_with(
        host: FakeLinks,
        filters: &FakeFilters,
        store: &Store,
        req: &Request,
        uid: u32,
        container: Option<&str>,
    ) -> (FakeLinks, Result<Wired, Failure>) {
        let target = NetNs::current().unwrap();
        let session = Session::with(
            host,
            Some(FakeLinks::default()),
            Some(&target),
            store,
            req,
            filters,
            uid,
        );
        let result = block_on(session.create(container.map(Into::into)));
        (session.host, result)
    }

    fn position(log: &[String], prefix: &str) -> usize {
        log.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {log:?}"))
    }

    fn ports_of(store: &Store, address: &str) -> Vec<String> {
        let ledger = store.lock().unwrap();
        let ports = ledger.ports_of(address.parse().unwrap()).unwrap();
        ports.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn create_records_publishes_then_guards_the_host_end_before_it_is_up() {
        let dir = Scratch::new("publish");
        let store = dir.store(A);
        let (host, filters) = shared();
        let req = publishing(&["tcp:8080:80", "udp:192.0.2.1:5353:53"]);
        let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
        let wired = wired.unwrap();
        let log = filters.log.borrow().clone();
        let tcp = position(&log, "publish tcp:8080:80 for 10.10.10.2");
        let udp = position(&log, "publish udp:192.0.2.1:5353:53 for 10.10.10.2");
        let attach = position(&log, "attach veth0a0a0a02");
        let guard = position(&log, "guard veth0a0a0a02");
        let up = position(&log, &format!("up #{}", wired.host_index));
        let hairpin = position(&log, "hairpin brg0");
        assert!(tcp < udp && udp < hairpin && hairpin < attach, "{log:?}");
        // The pair exists, its host end is still down: guarded, then up.
        assert!(attach < guard && guard < up, "{log:?}");
        assert!(filters.lines("masquerade").is_empty(), "nat=no: {log:?}");
        let mac = [0x02, 0x6e, 10, 10, 10, 2];
        assert_eq!(wired.mac, Some(mac));
        assert_eq!((wired.guard, wired.isolated), (true, true));
        assert_eq!(wired.published, req.publish);
        // Isolated, learning and unknown unicast off, the MAC pinned.
        let port = host.ports.borrow()[&wired.host_index];
        assert_eq!(port, netplumb::BridgePort::new(true, Learning::Pinned(mac)));
        assert_eq!(host.pinned.borrow()[&(1, mac)], wired.host_index);
        assert_eq!(
            ports_of(&store, "10.10.10.2"),
            ["tcp:8080:80", "udp:192.0.2.1:5353:53"]
        );
        // guard=no, isolate=no: neither; nothing published, no hairpin.
        let mut plain = request(None, None);
        plain.network.guard = false;
        let (host, wired) = wire_with(host, &filters, &store, &plain, A, None);
        let wired = wired.unwrap();
        assert_eq!((wired.guard, wired.isolated), (false, false));
        assert!(filters.lines("guard veth0a0a0a03").is_empty());
        assert!(!host.ports.borrow().contains_key(&wired.host_index));
        assert_eq!(host.pinned.borrow().len(), 1);
        assert_eq!(filters.lines("hairpin").len(), 1);
        assert!(ports_of(&store, "10.10.10.3").is_empty());
    }

    #[test]
    fn refused_publications_change_nothing() {
        let dir = Scratch::new("refused");
        let store = dir.store(A);
        for (publish, why) in [
            (
                &["tcp:8080:80", "tcp:198.51.100.1:8081:80"][..],
                "not an address of this host",
            ),
            (&["tcp:8080:80", "udp:53:53"], "listens on udp port 53"),
        ] {
            let (host, filters) = shared();
            let (host, wired) = wire_with(host, &filters, &store, &publishing(publish), A, None);
            let refused = wired.unwrap_err();
            assert_eq!(refused.kind, Kind::Refused);
            assert!(refused.message.contains(why), "{refused}");
            assert!(
                filters.log.borrow().is_empty(),
                "{:?}",
                filters.log.borrow()
            );
            assert!(host.log.borrow().is_empty());
            assert!(leases(&store).is_empty());
        }
        // Published already, by someone else: refused, and what this call
        // did before (the first publication) is undone, before any rule,
        // pair or guard chain was made; the other claim is untouched.
        let (host, filters) = shared();
        let other: std::net::Ipv4Addr = "10.10.10.77".parse().unwrap();
        filters.claims.borrow_mut().insert((6, 8081), other);
        let req = publishing(&["tcp:8080:80", "tcp:8081:80"]);
        let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
        let refused = wired.unwrap_err();
        assert!(refused.message.contains("already published"), "{refused}");
        let log = filters.log.borrow().clone();
        assert!(position(&log, "unpublish tcp:8080:80") > position(&log, "publish tcp:8080:80"));
        for never in ["guard", "hairpin", "masquerade", "attach"] {
            assert!(filters.lines(never).is_empty(), "{never}: {log:?}");
        }
        assert_eq!(filters.claims.borrow().len(), 1);
        assert_eq!(filters.claims.borrow()[&(6, 8081)], other);
        assert!(filters.guarded.borrow().is_empty());
        assert!(leases(&store).is_empty());
        assert!(ports_of(&store, "10.10.10.2").is_empty());
        drop(host);
    }

    #[test]
    fn a_call_refused_at_its_quota_makes_no_rule() {
        let dir = Scratch::new("quotarules");
        let store = dir.store(A);
        let (host, filters) = shared();
        let mut req = publishing(&[]);
        req.network.nat = true;
        req.quota = Some(1);
        let (host, first) = wire_with(host, &filters, &store, &req, A, None);
        first.unwrap();
        filters.log.borrow_mut().clear();
        req.publish = vec![crate::ports::Mapping::parse("tcp:8080:80").unwrap()];
        let (_, second) = wire_with(host, &filters, &store, &req, A, None);
        let refused = second.unwrap_err();
        assert!(refused.message.contains("1 of your 1"), "{refused}");
        let log = filters.log.borrow().clone();
        for never in ["publish", "guard", "masquerade", "hairpin"] {
            assert!(filters.lines(never).is_empty(), "{never}: {log:?}");
        }
    }

    #[test]
    fn a_failure_at_any_step_undoes_the_earlier_ones() {
        for step in ["guard", "publish tcp", "publish udp", "attach"] {
            let dir = Scratch::new("rollback");
            let store = dir.store(A);
            let (host, filters) = shared();
            if step == "attach" {
                host.fail_attach.set(true);
            } else {
                *filters.fail.borrow_mut() = Some(step.into());
            }
            let req = publishing(&["tcp:8080:80", "udp:5353:53"]);
            let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
            assert!(wired.is_err(), "{step}");
            assert!(filters.claims.borrow().is_empty(), "{step}");
            assert!(filters.guarded.borrow().is_empty(), "{step}");
            assert!(leases(&store).is_empty(), "{step}");
            assert!(ports_of(&store, "10.10.10.2").is_empty(), "{step}");
            assert!(host.index_of("veth0a0a0a02").unwrap().is_none(), "{step}");
            // And the next call succeeds.
            let (_, again) = wire_with(host, &filters, &store, &req, A, None);
            assert_eq!(again.unwrap().host_interface, "veth0a0a0a02", "{step}");
        }
    }

    #[test]
    fn garbage_collection_and_poststop_remove_only_their_leases_publications() {
        let dir = Scratch::new("gcports");
        let store = dir.store(A);
        let (host, filters) = shared();
        let (host, first) = wire_with(
            host,
            &filters,
            &store,
            &publishing(&["tcp:8080:80"]),
            A,
            None,
        );
        let (host, second) = wire_with(
            host,
            &filters,
            &store,
            &publishing(&["tcp:8081:80"]),
            B,
            Some("c1"),
        );
        let (first, _) = (first.unwrap(), second.unwrap());
        // The first container is gone (its pair with it), and its host
        // port was taken over meanwhile: the claim is another's now.
        host.links.borrow_mut().remove(&first.host_index);
        filters
            .claims
            .borrow_mut()
            .insert((6, 8080), "10.10.10.99".parse().unwrap());
        let (host, third) = wire_with(host, &filters, &store, &request(None, None), A, None);
        third.unwrap();
        assert!(filters.lines("unpublish tcp:8080:80").is_empty());
        assert_eq!(filters.lines("unguard veth0a0a0a02").len(), 1);
        // The freed address went to the third container, guarded afresh.
        let log = filters.log.borrow().clone();
        let unguard = position(&log, "unguard veth0a0a0a02");
        assert_eq!(filters.lines("guard veth0a0a0a02").len(), 2);
        assert!(log[unguard + 1..].contains(&"guard veth0a0a0a02".to_string()));
        assert!(ports_of(&store, "10.10.10.2").is_empty());
        assert_eq!(filters.claims.borrow().len(), 2, "8081 and the other 8080");
        // Poststop of B's container: its publication and guard go.
        let req = publishing(&[]);
        let session = Session::with(host, None, None, &store, &req, &filters, B);
        block_on(session.release("c1")).unwrap();
        assert_eq!(
            filters.lines("unpublish tcp:8081:80 for 10.10.10.3").len(),
            1
        );
        assert_eq!(filters.lines("unguard veth0a0a0a03").len(), 1);
        assert!(ports_of(&store, "10.10.10.3").is_empty());
        let left: Vec<String> = leases(&store).into_iter().map(|l| l.ifname).collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_ne!(left[0], "veth0a0a0a03");
    }

    #[test]
    fn a_lease_whose_publications_cannot_be_removed_is_kept_for_the_next_call() {
        let dir = Scratch::new("keep");
        let store = dir.store(A);
        let (host, filters) = shared();
        let (host, first) = wire_with(
            host,
            &filters,
            &store,
            &publishing(&["tcp:8080:80"]),
            A,
            None,
        );
        let first = first.unwrap();
        host.links.borrow_mut().remove(&first.host_index);
        *filters.fail.borrow_mut() = Some("unpublish".into());
        let (host, failed) = wire_with(host, &filters, &store, &request(None, None), A, None);
        assert!(failed.is_err());
        assert_eq!(
            leases(&store).len(),
            1,
            "the record outlives no publication"
        );
        assert_eq!(ports_of(&store, "10.10.10.2"), ["tcp:8080:80"]);
        let (_, again) = wire_with(host, &filters, &store, &request(None, None), A, None);
        again.unwrap();
        assert!(filters.claims.borrow().is_empty());
        assert!(ports_of(&store, "10.10.10.2").is_empty());
    }

    #[test]
    fn delete_and_check_cover_publications_guard_and_isolation() {
        let dir = Scratch::new("delports");
        let store = dir.store(A);
        let (host, filters) = shared();
        let req = publishing(&["tcp:8080:80"]);
        let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
        let wired = wired.unwrap();
        let target = NetNs::current().unwrap();
        let inside = FakeLinks::default();
        inside.add(link(1, "lo", None));
        let mut peer = link(2, "veth1", Some("veth"));
        peer.link = Some(wired.host_index);
        inside.add(peer);
        let session = Session::with(host, Some(inside), Some(&target), &store, &req, &filters, A);
        // Intact as made (the fake container has no addresses; nothing else
        // may be missing).
        let made = block_on(session.check()).map(drop).unwrap_err().message;
        for word in [
            "published",
            "guarded",
            "isolated",
            "learns",
            "unicast",
            "pinned",
        ] {
            assert!(!made.contains(word), "{made}");
        }
        filters.claims.borrow_mut().clear();
        filters.guarded.borrow_mut().clear();
        session.host.ports.borrow_mut().clear();
        session.host.pinned.borrow_mut().clear();
        let broken = block_on(session.check()).unwrap_err();
        for missing in [
            "publication tcp:8080:80 is missing",
            "the guard of host end veth0a0a0a02 is missing",
            "run `netsetgo -restore` as root",
            "host end veth0a0a0a02 is not isolated",
            "bridge port veth0a0a0a02 learns source MACs",
            "bridge port veth0a0a0a02 gets unknown unicast",
            "MAC 02:6e:0a:0a:0a:02 is not pinned to bridge port veth0a0a0a02",
        ] {
            assert!(broken.message.contains(missing), "{broken}");
        }
        filters
            .claims
            .borrow_mut()
            .insert((6, 8080), "10.10.10.2".parse().unwrap());
        filters.guarded.borrow_mut().push("veth0a0a0a02".into());
        block_on(session.delete()).unwrap();
        assert!(filters.claims.borrow().is_empty());
        assert!(filters.guarded.borrow().is_empty());
        assert!(leases(&store).is_empty());
        assert!(ports_of(&store, "10.10.10.2").is_empty());
    }

    // ------------------------------------------------------------ restore

    /// Ports 8000-8999 for every owner but root, whom nothing binds.
    fn granted(uid: u32, _: &Network) -> Result<Covered, Failure> {
        Ok((uid != 0).then(|| {
            vec![Ports {
                protocol: netplumb::Protocol::Tcp,
                first: 8000,
                last: 8999,
            }]
        }))
    }

    /// What a firewall restart does to our objects: all gone.
    fn flush(filters: &FakeFilters) {
        filters.claims.borrow_mut().clear();
        filters.guarded.borrow_mut().clear();
    }

    fn restore_one(
        host: FakeLinks,
        filters: &FakeFilters,
        request: Request,
        store: Store,
        grants: &Grants<'_>,
    ) -> Restored {
        let networks = [Restorable {
            request,
            store: Ok(store),
        }];
        let mut done = block_on(restore_all(host, filters, &networks, grants));
        assert_eq!(done.len(), 1);
        done.remove(0)
    }

    /// Three containers on a nat=yes guard=yes network: A's publishing
    /// 8080, B's, and A's third whose interface is gone.
    fn three(dir: &Scratch, filters: &FakeFilters) -> (FakeLinks, Request) {
        let (mut host, _) = shared();
        host.log = filters.log.clone();
        let mut req = publishing(&["tcp:8080:80"]);
        req.network.nat = true;
        let (host, _) = wire_with(host, filters, &dir.store(A), &req, A, None);
        let mut plain = req.clone();
        plain.publish.clear();
        let (host, _) = wire_with(host, filters, &dir.store(B), &plain, B, None);
        let (host, dead) = wire_with(host, filters, &dir.store(A), &plain, A, None);
        host.links.borrow_mut().remove(&dead.unwrap().host_index);
        (host, plain)
    }

    #[test]
    fn restore_recreates_what_the_firewall_lost_and_a_second_run_changes_nothing() {
        let dir = Scratch::new("restore");
        let filters = FakeFilters::default();
        let (host, req) = three(&dir, &filters);
        flush(&filters);
        let done = restore_one(host.clone(), &filters, req.clone(), dir.store(0), &granted);
        assert_eq!(
            done,
            Restored {
                network: "default".into(),
                bridge: "brg0".into(),
                leases: 2,
                guarded: 2,
                guards_restored: 2,
                publications: 1,
                publications_restored: 1,
                masquerade: true,
                hairpin: true,
                collected: 1,
                ..Restored::default()
            }
        );
        assert_eq!(
            filters.claims.borrow()[&(6, 8080)],
            "10.10.10.2".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(*filters.guarded.borrow(), ["veth0a0a0a02", "veth0a0a0a03"]);
        assert_eq!(
            leases(&dir.store(A)).len(),
            2,
            "the dead lease is collected"
        );
        // Again: everything is in place; nothing is added.
        let before = filters.log.borrow().len();
        let again = restore_one(host, &filters, req, dir.store(0), &granted);
        assert_eq!((again.guards_restored, again.publications_restored), (0, 0));
        assert_eq!((again.leases, again.guarded, again.publications), (2, 2, 1));
        let added: Vec<String> = filters.log.borrow()[before..]
            .iter()
            .filter(|l| l.starts_with("guard") || l.starts_with("publish") || l.starts_with("un"))
            .cloned()
            .collect();
        assert!(added.is_empty(), "{added:?}");
        assert!(
            again.line().contains("nothing was missing"),
            "{}",
            again.line()
        );
    }

    #[test]
    fn restore_removes_publications_no_grant_covers_and_keeps_roots() {
        let dir = Scratch::new("revoke");
        let filters = FakeFilters::default();
        let (host, req) = three(&dir, &filters);
        // Root's own publication on the same network, outside any grant.
        let root = publishing(&["tcp:80:80"]);
        let (host, _) = wire_with(host, &filters, &dir.store(0), &root, 0, None);
        let revoked = |uid: u32, _: &Network| Ok((uid != 0).then(Vec::new));
        let done = restore_one(host, &filters, req, dir.store(0), &revoked);
        assert_eq!(done.revoked, ["tcp:8080:80 of 10.10.10.2"]);
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        assert_eq!((done.publications, done.leases), (1, 3));
        assert!(!filters.claims.borrow().contains_key(&(6, 8080)));
        assert!(filters.claims.borrow().contains_key(&(6, 80)));
        assert!(ports_of(&dir.store(A), "10.10.10.2").is_empty());
        assert_eq!(ports_of(&dir.store(0), "10.10.10.4"), ["tcp:80:80"]);
        // The lease itself stays: its interface lives.
        assert_eq!(leases(&dir.store(A)).len(), 3);
        assert!(done
            .line()
            .contains("removed (no grant covers them): tcp:8080:80 of 10.10.10.2"));
    }

    #[test]
    fn grants_that_cannot_be_judged_revoke_nothing_and_are_reported() {
        let dir = Scratch::new("unjudged");
        let filters = FakeFilters::default();
        let (host, req) = three(&dir, &filters);
        flush(&filters);
        let unreadable = |_: u32, _: &Network| Err(Failure::refused("/etc/group: unreadable"));
        let done = restore_one(host, &filters, req, dir.store(0), &unreadable);
        assert!(done.revoked.is_empty());
        assert_eq!((done.publications_restored, done.guards_restored), (1, 2));
        assert_eq!(
            done.failed,
            [
                format!("the grants of uid {A}: /etc/group: unreadable"),
                format!("the grants of uid {B}: /etc/group: unreadable")
            ]
        );
    }

    #[test]
    fn restore_of_a_network_that_left_the_policy_frees_its_ports_and_guards_what_lives() {
        let dir = Scratch::new("retired");
        let filters = FakeFilters::default();
        let (host, _) = three(&dir, &filters);
        flush(&filters);
        // Its port is claimed again (the flush freed it), as before.
        filters
            .claims
            .borrow_mut()
            .insert((6, 8080), "10.10.10.2".parse().unwrap());
        let gateway = "10.10.10.1/24".parse().unwrap();
        let req = Request::restoring(Network::retired("brg0", gateway), true);
        let done = restore_one(host, &filters, req, dir.store(0), &granted);
        assert!(done.retired);
        assert_eq!(done.revoked, ["tcp:8080:80 of 10.10.10.2"]);
        assert!(filters.claims.borrow().is_empty(), "the claim is freed");
        assert!(ports_of(&dir.store(A), "10.10.10.2").is_empty());
        // Live leases stay, guarded; nothing is published or masqueraded.
        assert_eq!((done.leases, done.guarded, done.collected), (2, 2, 1));
        assert_eq!(
            (done.masquerade, done.hairpin, done.publications),
            (false, false, 0)
        );
        assert!(filters.lines("unguard veth0a0a0a02").is_empty());
        assert!(filters.lines("unguard veth0a0a0a03").is_empty());
        assert_eq!(leases(&dir.store(A)).len(), 2);
        assert!(done
            .line()
            .starts_with("restore: bridge brg0 (no longer in the policy): 2 leases kept"));
    }

    #[test]
    fn restore_reports_what_it_could_not_restore_and_restores_the_rest() {
        let dir = Scratch::new("claimed");
        let filters = FakeFilters::default();
        let (host, req) = three(&dir, &filters);
        flush(&filters);
        let other: Ipv4Addr = "10.20.0.9".parse().unwrap();
        filters.claims.borrow_mut().insert((6, 8080), other);
        let broken = Restorable {
            request: Request::restoring(
                Network::retired("brg9", "10.9.0.1/24".parse().unwrap()),
                true,
            ),
            store: Err(Failure::refused("state of brg9 is not private")),
        };
        let networks = [
            broken,
            Restorable {
                request: req,
                store: Ok(dir.store(0)),
            },
        ];
        let done = block_on(restore_all(host, &filters, &networks, &granted));
        assert_eq!(done[0].failed, ["state of brg9 is not private"]);
        assert!(done[0].not_restored, "{:?}", done[0]);
        let default = &done[1];
        assert!(!default.not_restored, "{default:?}");
        assert_eq!(default.failed.len(), 1, "{:?}", default.failed);
        assert!(
            default.failed[0].starts_with("publication tcp:8080:80 of 10.10.10.2: ")
                && default.failed[0].contains("already published"),
            "{:?}",
            default.failed
        );
        assert_eq!(
            filters.claims.borrow()[&(6, 8080)],
            other,
            "another's claim untouched"
        );
        assert_eq!(default.guards_restored, 2, "the rest is restored");
        let outcome = Outcome::Restored(done);
        let failure = outcome.failure().unwrap();
        assert!(failure.message.contains("network brg9 (brg9)"), "{failure}");
        assert!(
            failure
                .message
                .contains("network default (brg0): publication"),
            "{failure}"
        );
    }

    #[test]
    fn check_names_what_the_firewall_lost_and_the_restore() {
        let dir = Scratch::new("checkrestore");
        let store = dir.store(A);
        let (host, filters) = shared();
        let req = publishing(&["tcp:8080:80"]);
        let (host, wired) = wire_with(host, &filters, &store, &req, A, None);
        let wired = wired.unwrap();
        let target = NetNs::current().unwrap();
        let inside = FakeLinks::default();
        inside.add(link(1, "lo", None));
        let mut peer = link(2, "veth1", Some("veth"));
        peer.link = Some(wired.host_index);
        inside.add(peer);
        flush(&filters);
        let session = Session::with(host, Some(inside), Some(&target), &store, &req, &filters, A);
        let broken = block_on(session.check()).unwrap_err();
        assert!(
            broken
                .message
                .contains("publication tcp:8080:80 is missing"),
            "{broken}"
        );
        assert!(
            broken
                .message
                .contains("the guard of host end veth0a0a0a02 is missing"),
            "{broken}"
        );
        assert!(
            broken.message.contains("run `netsetgo -restore` as root"),
            "{broken}"
        );
    }
}
