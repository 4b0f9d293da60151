//! `-check`: the caller's own interface in the target, found from the host
//! side, compared with the plan of its lease.

use netplumb::{AttachmentCheck, Learning, Link, Missing};

use crate::cli::Nic;
use crate::error::Failure;
use crate::filters::Filters;
use crate::leases::{Lease, Ledger};
use crate::links::Links;
use crate::output::{Outcome, Wired};
use crate::plan::{self, Plan};

use super::Session;

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// Says whether the caller's wiring of the target is intact: both ends
    /// up, the host end on the bridge, the address, the default route, lo.
    ///
    /// Only what the ledger decides is read under the lock: which interface
    /// is the caller's (look-ups by name and index) and its publications.
    /// The rest is read after the lock is released (security.md 16): the
    /// container's addresses and routes, whose number its owner chooses,
    /// and the bridge's forwarding entries for the lease's MAC (a get per
    /// VLAN, netplumb's `fdb_entries`, not a dump of every entry).
    pub async fn check(&self) -> Result<Outcome, Failure> {
        let (peer, host, lease, published) = {
            let mut ledger = self.store.lock()?;
            let (peer, host, lease) = self.own_interface(&mut ledger).await?;
            let published = ledger.ports_of(lease.address)?;
            (peer, host, lease, published)
        };
        let plan = Plan::of_lease(self.request, &lease, &published);
        let mut missing = self.check_links(&peer, &host, &plan).await?;
        missing.extend(self.check_filters(&host, &plan)?);
        // The host end's own look-up reported its bridge port's flags.
        let port = host.port;
        if plan.isolated && !port.is_some_and(|p| p.isolated) {
            missing.push(format!("host end {} is not isolated", host.name));
        }
        if let Learning::Pinned(mac) = plan.learning {
            let lacking = self.check_pinned(&host, mac, port).await?;
            if !lacking.is_empty() {
                missing.extend(lacking);
                missing.push(
                    "run `netsetgo -restore` as root to set the bridge port's flags and pinned MAC again"
                        .into(),
                );
            }
        }
        if !missing.is_empty() {
            return Err(Failure::broken(format!(
                "wiring is broken: {}",
                missing.join("; ")
            )));
        }
        Ok(Outcome::Wired {
            intact: true,
            wired: self.found(peer, host, &plan),
        })
    }

    /// What a call reports of the caller's interface it found (`peer`
    /// inside, `host` its host end) and the plan of its lease.
    pub(super) fn found(&self, peer: Link, host: Link, plan: &Plan) -> Wired {
        let network = &self.request.network;
        Wired {
            interface: peer.name,
            index: peer.index,
            host_index: host.index,
            mac: peer.mac,
            host_interface: host.name,
            bridge: network.bridge.clone(),
            mtu: peer.mtu,
            dns: network.dns_servers(),
            published: plan.mappings(),
            addresses: plan.addresses.clone(),
            gateways: plan.gateways.clone(),
            guard: network.guard,
            isolated: network.isolate,
            existing: true,
        }
    }

    /// What the links lack of `plan`: the host end on the bridge, both
    /// ends up, the addresses and default routes inside, lo up.
    async fn check_links(
        &self,
        peer: &Link,
        host: &Link,
        plan: &Plan,
    ) -> Result<Vec<String>, Failure> {
        let (inside, _) = self.inside()?;
        let network = &self.request.network;
        // Its index alone, by an ioctl: no link look-up of the bridge.
        let bridge = self.sockets.host.index_of(&network.bridge)?;
        let check = AttachmentCheck {
            bridge,
            host_end: host,
            peer: Some(peer),
            addresses: &plan.addresses,
            gateways: &plan.gateways,
        };
        let present = inside.addresses_of(peer.index).await?;
        let mut routes = Vec::new();
        for gateway in &plan.gateways {
            routes.extend(inside.default_gateways(gateway.is_ipv6()).await?);
        }
        let mut missing: Vec<String> = check
            .missing(&present, &routes)
            .into_iter()
            .map(|m| match m {
                Missing::NotOnBridge => {
                    format!("host end {} is not on bridge {}", host.name, network.bridge)
                }
                Missing::HostEndDown => format!("host end {} is down", host.name),
                Missing::Peer | Missing::PeerDown => format!("{} is down", peer.name),
                Missing::Address(address) => format!("{} lacks address {address}", peer.name),
                Missing::DefaultRoute(gateway) => format!("no default route via {gateway}"),
            })
            .collect();
        if !inside.link_by_index(1).await?.is_some_and(|lo| lo.up) {
            missing.push("lo is down".to_string());
        }
        Ok(missing)
    }

    /// What the firewall lacks of `plan`: its publications, its guard,
    /// its network's isolation rule.
    fn check_filters(&self, host: &Link, plan: &Plan) -> Result<Vec<String>, Failure> {
        let mut lost = Vec::new();
        let network = &self.request.network;
        if plan.isolated && !self.sockets.filters.isolated(network)? {
            lost.push(format!(
                "the isolation rule of bridge {} is missing",
                network.bridge
            ));
        }
        for p in &plan.publications {
            if !self.sockets.filters.published(p)? {
                lost.push(format!("publication {} is missing", p.mapping));
            }
        }
        if let Some(port) = &plan.guard {
            let missing = self.sockets.filters.guard_missing(port)?;
            if !missing.is_empty() {
                lost.push(format!(
                    "the guard of host end {} is missing: {}",
                    host.name,
                    missing.join(", ")
                ));
            }
            // An upgrade from the netdev guard, not migrated yet.
            let legacy = self.sockets.filters.legacy_guard()?;
            if !legacy.is_empty() {
                lost.push(format!(
                    "the netdev guard of an older netsetgo is still there: {}",
                    legacy.join(", ")
                ));
            }
        }
        if !lost.is_empty() {
            // What lives in the firewall's ruleset, which a firewall
            // restart flushes: -restore re-creates it from the leases.
            lost.push(
                "run `netsetgo -restore` as root to re-create them (the firewall's ruleset was probably flushed)"
                    .into(),
            );
        }
        Ok(lost)
    }

    /// What a guarded lease's bridge port lacks of its layer 2 guard: the
    /// bridge learns nothing from it and floods no unknown unicast to it,
    /// sends its link-local frames through prerouting (the group
    /// forwarding mask, without which they would skip the layer 3 guard),
    /// and the lease's MAC is pinned to it and to no other port.
    async fn check_pinned(
        &self,
        host: &Link,
        mac: [u8; 6],
        port: Option<netplumb::BridgePort>,
    ) -> Result<Vec<String>, Failure> {
        let mut missing = Vec::new();
        if port.is_none_or(|p| p.learning) {
            missing.push(format!("bridge port {} learns source MACs", host.name));
        }
        if port.is_none_or(|p| p.unicast_flood) {
            missing.push(format!("bridge port {} gets unknown unicast", host.name));
        }
        if port.is_none_or(|p| p.group_fwd_mask != netplumb::LINK_LOCAL_FORWARDED) {
            missing.push(format!(
                "bridge port {} hands link-local frames past the guard (group_fwd_mask)",
                host.name
            ));
        }
        let entries = match host.master {
            Some(bridge) => self.sockets.host.fdb_entries(bridge, mac).await?,
            None => Vec::new(),
        };
        let pinned = |e: &netplumb::FdbEntry| e.port == host.index && e.is_static;
        if !entries.iter().any(pinned) || entries.iter().any(|e| e.port != host.index) {
            missing.push(format!(
                "MAC {} is not pinned to bridge port {}",
                plan::mac_text(mac),
                host.name
            ));
        }
        Ok(missing)
    }

    /// The caller's interface in the target, found from the host side
    /// ([`Session::find_own`]); refused when there is none.
    pub(super) async fn own_interface(
        &self,
        ledger: &mut Ledger<'_>,
    ) -> Result<(Link, Link, Lease), Failure> {
        self.find_own(ledger).await?.ok_or_else(|| self.not_yours())
    }

    /// The refusal of a call that needs the caller's interface in the
    /// target, where it has none on this network.
    pub(super) fn not_yours(&self) -> Failure {
        Failure::refused(format!(
            "no interface of yours from network {} is in that container",
            self.request.network.name
        ))
    }

    /// The caller's interface in the target, found from the host side: a
    /// lease of this caller on this network, with this call's name prefix,
    /// whose host end (matched exactly: the lease's name and index, a veth)
    /// has its peer in the target's namespace (the peer's namespace as the
    /// host's kernel names it, `IFLA_LINK_NETNSID`, against the host's id
    /// for the namespace pinned at stage 7: a namespace that replaced it,
    /// under a reused pid, has another id, and one that never had a peer
    /// of the host has none). Only then is the peer looked at, by the index
    /// the host end gives, inside. `None` when the caller has none there.
    /// (Whether the host end is still on the bridge is for `check` to say.)
    pub(super) async fn find_own(
        &self,
        ledger: &mut Ledger<'_>,
    ) -> Result<Option<(Link, Link, Lease)>, Failure> {
        let (inside, target) = self.inside()?;
        let Some(target_id) = self.sockets.host.nsid_of(target).await? else {
            return Ok(None);
        };
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
        // The peer is the link inside at the index the host end gives;
        // `seen` is one already looked up inside, taken when it has that
        // index (no second look-up of the same link).
        let peer_of = |host: Link, lease: Lease, seen: Option<Link>| async move {
            let index = host.link.ok_or_else(|| self.not_yours())?;
            let peer = match seen.filter(|p| p.index == index) {
                Some(peer) => peer,
                None => inside
                    .link_by_index(index)
                    .await?
                    .ok_or_else(|| self.not_yours())?,
            };
            Ok::<_, Failure>(Some((peer, host, lease)))
        };
        // Where to look first: the host end the interface inside points at
        // (or lxc-user-nic's HOSTIF). Only a hint, since the container may
        // forge it; it is matched to a lease like any other, and when it
        // does not match, every lease of the caller is tried.
        let (hint, seen) = match &self.request.nic {
            Some(Nic::Delete { host_ifname }) => {
                (self.sockets.host.link_by_name(host_ifname).await?, None)
            }
            _ => match inside.link_by_name(&plan::peer_name(self.request)).await? {
                Some(peer @ Link { link: Some(h), .. }) => {
                    (self.sockets.host.link_by_index(h).await?, Some(peer))
                }
                _ => (None, None),
            },
        };
        if let Some(host) = hint {
            let address = plan::address_of_host_name(prefix, &host.name);
            if let Some(lease) = address.map(|a| ledger.lease_of(a)).transpose()?.flatten() {
                if ours(&host, &lease) {
                    return peer_of(host, lease, seen).await;
                }
            }
        }
        let own: Vec<Lease> = ledger
            .all()?
            .into_iter()
            .filter(|l| l.uid == self.uid && !l.is_pending() && named(l))
            .collect();
        for lease in own {
            let Some(host) = self.sockets.host.link_by_index(lease.ifindex).await? else {
                continue;
            };
            if ours(&host, &lease) {
                return peer_of(host, lease, None).await;
            }
        }
        Ok(None)
    }
}
