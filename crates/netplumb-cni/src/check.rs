//! CHECK: the attachment as ADD left it, from the host side: the bridge
//! (and that the plugin manages it), both ends up and on the bridge, the
//! addresses and default routes of `prevResult` inside, and what the
//! network's options add: the bridge port's isolation, the guard and the
//! published ports.

use netplumb::marks::Manager;
use netplumb::{
    AttachmentCheck, BridgePort, GuardedPort, IpNetwork, Learning, Link, Missing, Netlink, Nftables,
};
use rscni_types::error::Error;
use rscni_types::types::{CNIResult, IpConfig};

use crate::attachment::{host_end_name, mac_of, owner};
use crate::host::{existing_bridge, is_veth, network, not_intact, open_target, plumbing, TABLE};
use crate::ipam::Ipam;
use crate::routes::default_gateways;
use crate::{ports, Request};

/// CHECK: IPAM's check, then the attachment; the first thing it lacks is
/// the error (code 102).
pub(crate) async fn check(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let prev = req
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::InvalidNetworkConfig("CHECK needs prevResult".to_string()))?;
    let netns = open_target(&req.env.netns)?;
    if let Some(ipam) = ipam {
        ipam.call("CHECK")?;
    }
    let host = Netlink::connect().map_err(plumbing)?;
    let inside = Netlink::connect_in(&netns).map_err(plumbing)?;
    let bridge_name = &req.options.bridge;
    let bridge = existing_bridge(&host, bridge_name)
        .await?
        .ok_or_else(|| not_intact(format!("bridge {bridge_name} does not exist")))?;
    if Manager::of(&bridge) != Some(Manager::CniPlugin) {
        return Err(not_intact(format!(
            "bridge {bridge_name} is not marked as this plugin's (its alias is {:?})",
            bridge.alias.as_deref().unwrap_or_default()
        )));
    }
    let host_name = host_end_name(&req.env.container_id, &req.env.ifname);
    let host_end_broken = || {
        not_intact(format!(
            "host end {host_name} is not an up veth on bridge {bridge_name}"
        ))
    };
    let host_end = match host.link_by_name(&host_name).await.map_err(plumbing)? {
        Some(end) if is_veth(&end) => end,
        _ => return Err(host_end_broken()),
    };
    let ifname = &req.env.ifname;
    let peer = inside
        .link_by_name(ifname)
        .await
        .map_err(plumbing)?
        .filter(is_veth);
    let addresses = addresses_of(prev, ifname);
    let gateways = default_gateways(&prev.routes, &prev.ips)?;
    let check = AttachmentCheck {
        bridge: Some(bridge.index),
        host_end: &host_end,
        peer: peer.as_ref(),
        addresses: &addresses,
        gateways: &gateways,
    };
    let missing = inside.verify_attachment(&check).await.map_err(plumbing)?;
    match missing.first() {
        None => options_hold(req, &host_end, &addresses).await,
        Some(Missing::NotOnBridge | Missing::HostEndDown) => Err(host_end_broken()),
        Some(Missing::Peer | Missing::PeerDown) => Err(not_intact(format!(
            "{ifname} is not an up veth in {}",
            req.env.netns
        ))),
        Some(Missing::Address(address)) => {
            Err(not_intact(format!("{ifname} lacks its address {address}")))
        }
        Some(Missing::DefaultRoute(gateway)) => Err(not_intact(format!(
            "{ifname} lacks its default route via {gateway}"
        ))),
    }
}

/// The addresses of `prev` that are `ifname`'s.
fn addresses_of(prev: &CNIResult, ifname: &str) -> Vec<IpNetwork> {
    let ours = |ip: &&IpConfig| {
        ip.interface
            .and_then(|i| prev.interfaces.get(i as usize))
            .is_none_or(|interface| interface.name == *ifname)
    };
    prev.ips
        .iter()
        .filter(ours)
        .map(|ip| network(ip.address))
        .collect()
}

/// The bridge port's flags, the isolation rule, the guard and the
/// published ports, as the network's options and `runtimeConfig` ask.
async fn options_hold(
    req: &Request<'_>,
    host_end: &Link,
    addresses: &[IpNetwork],
) -> Result<(), Error> {
    let options = &req.options;
    let name = &host_end.name;
    let mac = mac_of(name);
    let learning = match options.guard {
        true => Learning::Pinned(mac),
        false => Learning::On,
    };
    let want = BridgePort::new(options.isolate, learning);
    // The host end's own look-up carried its bridge-port flags.
    let port = host_end.port;
    if port != Some(want) {
        return Err(not_intact(format!(
            "bridge port {name} has flags {port:?}, not {want:?}"
        )));
    }
    if !options.guard && !options.isolate && options.mappings.is_empty() {
        return Ok(());
    }
    let nft = Nftables::open().map_err(plumbing)?;
    if options.isolate && !nft.isolated(TABLE, &options.bridge).map_err(plumbing)? {
        return Err(not_intact(format!(
            "the isolation rule of bridge {} is missing",
            options.bridge
        )));
    }
    if options.guard {
        let guard = GuardedPort::new(name, mac, addresses).at(host_end.index);
        let missing = nft.guard(TABLE).missing(&guard).map_err(plumbing)?;
        if !missing.is_empty() {
            return Err(not_intact(format!(
                "the guard of {name} is missing: {}",
                missing.join(", ")
            )));
        }
    }
    match ports::missing(&nft, &options.mappings, owner(name), addresses)? {
        Some(m) => Err(not_intact(format!("published port {m} is missing"))),
        None => Ok(()),
    }
}
