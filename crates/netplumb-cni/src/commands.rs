//! The operations ADD and DEL, and what every operation shares.
//!
//! The plugin runs in the host's network namespace: the bridge and the host
//! ends live there, the container's end in `CNI_NETNS`. The host end of an
//! attachment is named from its container id and interface name
//! ([`host_end_name`]), so DEL and GC find it with no state of their own;
//! it carries the network it belongs to as its alias ([`record_of`]).
//! CHECK is in `check.rs`, GC and STATUS in `gc.rs`, what they all share
//! on the host side in `host.rs`.

use std::os::fd::AsFd;

use netplumb::marks::CNI_MARK;
use netplumb::sysctl::{enable_forwarding, IpVersion};
use netplumb::{
    Attached, Attachment, GuardedPort, IpNetwork, Learning, Link, NetNs, Netlink, Nftables,
};
use rscni_types::error::Error;
use rscni_types::legacy;
use rscni_types::types::{CNIResult, CNIResultWithVersion, Cmd, Interface};

use crate::attachment::{belongs_to, host_end_name, mac_of, owner, record_of, sharing_owner};
use crate::host::{
    delete_pair, existing_bridge, is_veth, network, not_intact, open_target, plumbing,
    plumbing_failed, refuse_foreign, TABLE,
};
use crate::ipam::Ipam;
use crate::routes::{add_default_routes, default_gateways};
use crate::{ports, to_json, Request};

/// Runs the operation of `req`.
pub(crate) async fn run(req: &Request<'_>) -> Result<Option<String>, Error> {
    let ipam = Ipam::of(&req.conf, &req.env, req.stdin)?;
    let ipam = ipam.as_ref();
    match req.cmd {
        Cmd::Add => add(req, ipam).await.map(Some),
        Cmd::Del => del(req, ipam).await.map(|()| None),
        Cmd::Check => crate::check::check(req, ipam).await.map(|()| None),
        Cmd::Gc => crate::gc::gc(req, ipam).await.map(|()| None),
        Cmd::Status => crate::gc::status(req, ipam).await.map(|()| None),
        Cmd::Version => unreachable!("VERSION is answered before the configuration is read"),
    }
}

/// ADD: the refusals first (the plugin's own namespace, another manager's
/// bridge, an attachment that exists, a host port that is taken), then
/// addresses from IPAM, the bridge, the gateway address, NAT, the
/// attachment and its published ports. On failure nothing of the
/// attachment is left and the IPAM lease is released.
async fn add(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<String, Error> {
    let netns = open_target(&req.env.netns)?;
    let host = Netlink::connect().map_err(plumbing)?;
    if let Some(bridge) = existing_bridge(&host, &req.options.bridge).await? {
        refuse_foreign(&bridge)?;
    }
    // A second ADD of one attachment must fail before IPAM: releasing its
    // lease on failure would release the first ADD's.
    let host_name = host_end_name(&req.env.container_id, &req.env.ifname);
    if host
        .link_by_name(&host_name)
        .await
        .map_err(plumbing)?
        .is_some()
    {
        return Err(plumbing_failed(format!(
            "{host_name} exists: container {} already has {} on this host",
            req.env.container_id, req.env.ifname
        )));
    }
    // Nor may it share an owner (or a MAC) with another attachment's.
    let links = host.links().await.map_err(plumbing)?;
    if let Some(other) = sharing_owner(&host_name, &links) {
        return Err(plumbing_failed(format!(
            "{host_name} would share its port owner and MAC with {}: container id {} \
             collides with another attachment's; nothing was changed, retry with another id",
            other.name, req.env.container_id
        )));
    }
    ports::check_host(&host, &req.options.mappings).await?;
    let mut result = match ipam {
        Some(ipam) => ipam.add()?,
        None => CNIResult::default(),
    };
    if let Err(e) = wire(req, &host, &host_name, &netns, &mut result).await {
        if let Some(ipam) = ipam {
            if let Err(release) = ipam.call("DEL") {
                eprintln!("netplumb-bridge: release the IPAM lease after a failed ADD: {release}");
            }
        }
        return Err(e);
    }
    if let Some(dns) = &req.conf.dns {
        result.dns = Some(dns.clone());
    }
    if req.version.is_legacy() {
        to_json(&legacy::CNIResult::new(req.version, result))
    } else {
        to_json(&CNIResultWithVersion::new(req.version, result))
    }
}

/// The network-wide steps (idempotent, kept on failure: other attachments
/// share them) and then the attachment, one transaction.
async fn wire(
    req: &Request<'_>,
    host: &Netlink,
    host_name: &str,
    netns: &NetNs,
    result: &mut CNIResult,
) -> Result<(), Error> {
    let options = &req.options;
    if options.is_default_gateway {
        add_default_routes(result);
    }
    let gateways = default_gateways(&result.routes, &result.ips)?;
    let inside = Netlink::connect_in(netns).map_err(plumbing)?;
    let bridge = host
        .ensure_bridge(&options.bridge, options.mtu)
        .await
        .map_err(plumbing)?
        .link;
    claim_bridge(host, &bridge).await?;
    if options.is_gateway {
        for ip in &result.ips {
            let Some(gateway) = ip.gateway else { continue };
            let address = IpNetwork::new(gateway, ip.address.prefix_len()).map_err(|e| {
                Error::InvalidNetworkConfig(format!("gateway {gateway} of {}: {e}", ip.address))
            })?;
            host.ensure_address(bridge.index, address)
                .await
                .map_err(plumbing)?;
            // isGateway: the host forwards for the containers (as the
            // reference plugin does), in the plugin's own namespace.
            enable_forwarding(IpVersion::of(gateway)).map_err(plumbing)?;
        }
    }
    let addresses: Vec<IpNetwork> = result.ips.iter().map(|ip| network(ip.address)).collect();
    let nft = Nftables::open().map_err(plumbing)?;
    if req.conf.ip_masq == Some(true) {
        for address in &addresses {
            nft.masquerade(TABLE)
                .add(&options.bridge, *address)
                .execute()
                .map_err(plumbing)?;
        }
    }
    if options.isolate {
        // Bridge port isolation holds at layer 2; this, at layer 3.
        nft.isolate(TABLE, &options.bridge).map_err(plumbing)?;
    }
    let made = Made {
        host_name,
        addresses: &addresses,
        gateways: &gateways,
    };
    let attached = attach(req, host, &inside, &nft, &bridge, netns, &made).await?;
    let host_end = match finish(req, host, &nft, &attached, &made).await {
        Ok(host_end) => host_end,
        Err(e) => {
            // The attachment is one transaction: undo it whole.
            let _ = host.delete_link(attached.host_index).await;
            forget_guard(req, &nft, host_name, attached.host_index, &addresses);
            return Err(e);
        }
    };
    result.interfaces = vec![
        interface(&bridge, None),
        interface(&host_end, None),
        interface(&attached.peer, Some(req.env.netns.clone())),
    ];
    for ip in &mut result.ips {
        ip.interface = Some(2);
    }
    Ok(())
}

/// What an attachment is made of.
struct Made<'a> {
    host_name: &'a str,
    addresses: &'a [IpNetwork],
    gateways: &'a [std::net::IpAddr],
}

/// netplumb's `attach`: the pair, with the bridge port isolated
/// (`isolate`) and, with `guard`, the container's MAC fixed and pinned to
/// its port and the bridge guard's elements of the host end (keyed by its
/// index) added before it is up.
async fn attach(
    req: &Request<'_>,
    host: &Netlink,
    inside: &Netlink,
    nft: &Nftables,
    bridge: &Link,
    netns: &NetNs,
    made: &Made<'_>,
) -> Result<Attached, Error> {
    let options = &req.options;
    let mac = mac_of(made.host_name);
    let guard = options
        .guard
        .then(|| GuardedPort::new(made.host_name, mac, made.addresses));
    let attachment = Attachment {
        bridge: bridge.index,
        host_name: made.host_name,
        peer_name: &req.env.ifname,
        peer_netns: netns.as_fd(),
        mtu: options.mtu,
        addresses: made.addresses,
        gateways: made.gateways,
        peer_link_local: made.addresses.iter().any(IpNetwork::is_ipv6),
        peer_mac: options.guard.then_some(mac),
        isolated: options.isolate,
        learning: match options.guard {
            true => Learning::Pinned(mac),
            false => Learning::On,
        },
    };
    // Keyed by the host end's index: given when it exists, still down.
    let index = std::cell::Cell::new(0);
    // The host end has no IPv6 of its own (the plugin runs in the host's
    // namespace, where it was just made; see disable_ipv6).
    let before_up = |host_end: &Link| {
        netplumb::sysctl::disable_ipv6(&host_end.name)?;
        match &guard {
            Some(port) => {
                index.set(host_end.index);
                nft.guard(TABLE)
                    .allow(&port.clone().at(host_end.index))
                    .execute()
            }
            None => Ok(()),
        }
    };
    let attached = host.attach_with(inside, &attachment, before_up).await;
    attached.map_err(|e| {
        forget_guard(req, nft, made.host_name, index.get(), made.addresses);
        plumbing(e)
    })
}

/// After the pair: the host end's record of its network, then the
/// published ports (all or none, the last step). Returns the host end as
/// the host reports it.
async fn finish(
    req: &Request<'_>,
    host: &Netlink,
    nft: &Nftables,
    attached: &Attached,
    made: &Made<'_>,
) -> Result<Link, Error> {
    host.set_alias(attached.host_index, &record_of(&req.conf.name))
        .await
        .map_err(plumbing)?;
    let host_end = host
        .link_by_index(attached.host_index)
        .await
        .map_err(plumbing)?
        .ok_or_else(|| not_intact(format!("host end {} vanished after ADD", made.host_name)))?;
    let owner = owner(made.host_name);
    let mappings = &req.options.mappings;
    ports::publish(nft, &req.options.bridge, mappings, owner, made.addresses)?;
    Ok(host_end)
}

/// DEL: releases the IPAM lease, then the attachment's published ports and
/// guard (by its host end's index; when the host end is gone, every
/// element of a gone device, pruned), then deletes the pair through its
/// host end. Whatever is already
/// gone is not an error; a host end that another network records is not
/// this DEL's.
async fn del(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    if let Some(ipam) = ipam {
        ipam.call("DEL")?;
    }
    let host = Netlink::connect().map_err(plumbing)?;
    let name = host_end_name(&req.env.container_id, &req.env.ifname);
    let end = host.link_by_name(&name).await.map_err(plumbing)?;
    if end
        .as_ref()
        .is_some_and(|end| !is_veth(end) || !belongs_to(end, &req.conf.name))
    {
        return Ok(());
    }
    let needs_nft = req.options.guard || !req.options.mappings.is_empty();
    if needs_nft {
        let nft = Nftables::open().map_err(plumbing)?;
        // A host end gone with its container left elements under an index
        // no device has: pruned, the sets dumped before the links are
        // listed (see `Guard::prune`).
        let guard = nft.guard(TABLE);
        let dumped = match (&end, req.options.guard) {
            (None, true) => Some(guard.elements().map_err(plumbing)?),
            _ => None,
        };
        // Claims of an owner another host end carries are that one's (an
        // ADD refused for sharing it leaves its DEL nothing to release).
        let links = host.links().await.map_err(plumbing)?;
        if sharing_owner(&name, &links).is_none() {
            ports::unpublish(&nft, &req.options.mappings, owner(&name))?;
        }
        forget_guard(req, &nft, &name, end.as_ref().map_or(0, |e| e.index), &[]);
        if let Some(dumped) = dumped {
            let live: Vec<u32> = links.iter().map(|link| link.index).collect();
            guard.prune(dumped, &live).map_err(plumbing)?;
        }
    }
    match end {
        Some(end) => delete_pair(&host, &end).await,
        None => Ok(()),
    }
}

/// Stops guarding a host end (on a guarded network), the device of index
/// `index` (0: gone, unknown); errors are reported on stderr only, as
/// this runs on the way out of a failure or a DEL whose pair may be gone
/// already.
fn forget_guard(
    req: &Request<'_>,
    nft: &Nftables,
    host_name: &str,
    index: u32,
    addresses: &[IpNetwork],
) {
    if req.options.guard {
        let port = GuardedPort::new(host_name, mac_of(host_name), addresses).at(index);
        if let Err(e) = nft.guard(TABLE).forget(&port).execute() {
            eprintln!("netplumb-bridge: {e}");
        }
    }
}

/// Marks the bridge as the plugin's (its alias), unless another manager's.
async fn claim_bridge(host: &Netlink, bridge: &Link) -> Result<(), Error> {
    refuse_foreign(bridge)?;
    if bridge.alias.as_deref() != Some(CNI_MARK) {
        host.set_alias(bridge.index, CNI_MARK)
            .await
            .map_err(plumbing)?;
    }
    Ok(())
}

fn interface(link: &Link, sandbox: Option<String>) -> Interface {
    let mac = link.mac.map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    });
    Interface {
        name: link.name.clone(),
        mac: mac.unwrap_or_default(),
        mtu: link.mtu,
        sandbox,
        socket_path: None,
        pci_id: None,
    }
}
