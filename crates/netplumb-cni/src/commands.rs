//! The operations: ADD, DEL, CHECK, GC and STATUS.
//!
//! The plugin runs in the host's network namespace: the bridge and the host
//! ends live there, the container's end in `CNI_NETNS`. The host end of an
//! attachment is named from its container id and interface name
//! ([`host_end_name`]), so DEL and GC find it with no state of their own.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;

use netplumb::sysctl::{enable_forwarding, IpVersion};
use netplumb::{Attachment, AttachmentCheck, IpNetwork, Link, Missing, NetNs, Netlink, Nftables};
use rscni_types::error::Error;
use rscni_types::ipnet::IpNet;
use rscni_types::legacy;
use rscni_types::types::{
    CNIResult, CNIResultWithVersion, Cmd, GcAttachment, Interface, IpConfig, NetConf, Route,
};

use crate::ipam::Ipam;
use crate::{to_json, Request};

/// Error code for a request the kernel refused; the details name the step,
/// the object and the errno.
pub(crate) const PLUMBING_FAILED: u32 = 100;
/// Error code for a CHECK that found the attachment not as ADD left it.
pub(crate) const NOT_INTACT: u32 = 102;

/// The nftables table (family `inet`) that holds the ipMasq rules; no other
/// table is read or written.
const NAT_TABLE: &str = "netplumb-cni";
/// Host ends are named this prefix and 13 hex digits.
const HOST_PREFIX: &str = "np";
/// The older spelling of `cni.dev/valid-attachments` in GC's configuration.
const OLD_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// Runs the operation of `req`.
pub(crate) async fn run(req: &Request<'_>) -> Result<Option<String>, Error> {
    let ipam = Ipam::of(&req.conf, &req.env, req.stdin)?;
    let ipam = ipam.as_ref();
    match req.cmd {
        Cmd::Add => add(req, ipam).await.map(Some),
        Cmd::Del => del(req, ipam).await.map(|()| None),
        Cmd::Check => check(req, ipam).await.map(|()| None),
        Cmd::Gc => gc(req, ipam).await.map(|()| None),
        Cmd::Status => status(req, ipam).await.map(|()| None),
        Cmd::Version => unreachable!("VERSION is answered before the configuration is read"),
    }
}

/// ADD: addresses from IPAM, then the bridge, the gateway address, NAT and
/// the attachment. On failure nothing of the attachment is left and the
/// IPAM lease is released.
async fn add(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<String, Error> {
    let netns = open_netns(&req.env.netns)?;
    let host = Netlink::connect().map_err(plumbing)?;
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
    if req.conf.ip_masq == Some(true) {
        let nft = Nftables::open().map_err(plumbing)?;
        for address in &addresses {
            nft.masquerade(NAT_TABLE)
                .add(&options.bridge, *address)
                .execute()
                .map_err(plumbing)?;
        }
    }
    let attached = host
        .attach(
            &inside,
            &Attachment {
                bridge: bridge.index,
                host_name,
                peer_name: &req.env.ifname,
                peer_netns: netns.as_fd(),
                mtu: options.mtu,
                addresses: &addresses,
                gateways: &gateways,
                peer_link_local: addresses.iter().any(IpNetwork::is_ipv6),
                peer_mac: None,
                isolated: false,
                learning: netplumb::Learning::On,
            },
        )
        .await
        .map_err(plumbing)?;
    let host_end = match host.link_by_index(attached.host_index).await {
        Ok(Some(link)) => link,
        failed => {
            // The attachment is one transaction: undo it whole.
            let _ = host.delete_link(attached.host_index).await;
            return Err(match failed {
                Err(e) => plumbing(e),
                _ => not_intact(format!("host end {host_name} vanished after ADD")),
            });
        }
    };
    let peer = attached.peer;
    result.interfaces = vec![
        interface(&bridge, None),
        interface(&host_end, None),
        interface(&peer, Some(req.env.netns.clone())),
    ];
    for ip in &mut result.ips {
        ip.interface = Some(2);
    }
    Ok(())
}

/// DEL: releases the IPAM lease, then deletes the pair through its host
/// end. Whatever is already gone is not an error.
async fn del(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    if let Some(ipam) = ipam {
        ipam.call("DEL")?;
    }
    let host = Netlink::connect().map_err(plumbing)?;
    let name = host_end_name(&req.env.container_id, &req.env.ifname);
    match host.link_by_name(&name).await.map_err(plumbing)? {
        Some(end) if is_veth(&end) => delete_pair(&host, &end).await,
        _ => Ok(()),
    }
}

/// CHECK: IPAM's check, then the bridge, both ends up, and the addresses
/// and default routes of `prevResult` inside the container.
async fn check(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let prev = req
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::InvalidNetworkConfig("CHECK needs prevResult".to_string()))?;
    if let Some(ipam) = ipam {
        ipam.call("CHECK")?;
    }
    let netns = open_netns(&req.env.netns)?;
    let host = Netlink::connect().map_err(plumbing)?;
    let inside = Netlink::connect_in(&netns).map_err(plumbing)?;
    let bridge_name = &req.options.bridge;
    let bridge = existing_bridge(&host, bridge_name)
        .await?
        .ok_or_else(|| not_intact(format!("bridge {bridge_name} does not exist")))?;
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
    let ours = |ip: &&IpConfig| {
        ip.interface
            .and_then(|i| prev.interfaces.get(i as usize))
            .is_none_or(|interface| interface.name == *ifname)
    };
    let addresses: Vec<IpNetwork> = prev
        .ips
        .iter()
        .filter(ours)
        .map(|ip| network(ip.address))
        .collect();
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
        None => Ok(()),
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

/// GC: deletes this plugin's host ends on the bridge that belong to no
/// valid attachment, then lets IPAM free the leases of the others (if it
/// speaks GC: plugins from before 1.1.0 do not).
async fn gc(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let keep: HashSet<String> = valid_attachments(&req.conf)?
        .iter()
        .map(|a| host_end_name(&a.container_id, &a.ifname))
        .collect();
    let host = Netlink::connect().map_err(plumbing)?;
    if let Some(bridge) = existing_bridge(&host, &req.options.bridge).await? {
        for port in host.bridge_ports(bridge.index).await.map_err(plumbing)? {
            if is_veth(&port) && is_host_end_name(&port.name) && !keep.contains(&port.name) {
                delete_pair(&host, &port).await?;
            }
        }
    }
    match ipam {
        Some(ipam) if ipam.speaks(req.version)? => ipam.call("GC"),
        _ => Ok(()),
    }
}

/// STATUS: ready unless the bridge's name is taken by another device or
/// the IPAM plugin says it is not ready.
async fn status(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let host = Netlink::connect().map_err(plumbing)?;
    existing_bridge(&host, &req.options.bridge)
        .await
        .map_err(|e| Error::PluginNotAvailable(e.details().to_string()))?;
    match ipam {
        Some(ipam) if ipam.speaks(req.version)? => ipam.call("STATUS"),
        _ => Ok(()),
    }
}

/// The host end of the attachment (`container_id`, `ifname`): `np` and 13
/// hex digits (52 bits) of the 64-bit FNV-1a hash of both. The same
/// attachment always gets the same name.
pub(crate) fn host_end_name(container_id: &str, ifname: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{HOST_PREFIX}{:013x}", hash >> 12)
}

/// Whether `name` has the shape of [`host_end_name`]'s names.
fn is_host_end_name(name: &str) -> bool {
    name.len() == HOST_PREFIX.len() + 13
        && name.starts_with(HOST_PREFIX)
        && name[HOST_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What GC must keep: `cni.dev/valid-attachments`, or the older
/// `cni.dev/attachments`. A configuration with neither keeps nothing and is
/// refused rather than read as "delete everything".
fn valid_attachments(conf: &NetConf) -> Result<Vec<GcAttachment>, Error> {
    if let Some(valid) = &conf.valid_attachments {
        return Ok(valid.clone());
    }
    let old = conf.custom.get(OLD_ATTACHMENTS_KEY).ok_or_else(|| {
        Error::InvalidNetworkConfig(
            "GC needs cni.dev/valid-attachments (or cni.dev/attachments)".to_string(),
        )
    })?;
    serde_json::from_value(old.clone())
        .map_err(|e| Error::FailedToDecode(format!("{OLD_ATTACHMENTS_KEY}: {e}")))
}

/// isDefaultGateway: a default route through each subnet's gateway, for
/// each family that has none yet.
fn add_default_routes(result: &mut CNIResult) {
    for ip in &result.ips {
        let Some(gateway) = ip.gateway else { continue };
        let dst = match gateway {
            IpAddr::V4(_) => IpNet::V4(Default::default()),
            IpAddr::V6(_) => IpNet::V6(Default::default()),
        };
        if !result.routes.iter().any(|r| r.dst == dst) {
            result.routes.push(Route {
                dst,
                gw: Some(gateway),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            });
        }
    }
}

/// The container's default gateways, one per family, from IPAM's routes: a
/// route's own `gw`, else the gateway of an address of its family. Other
/// routes than default routes, and route attributes, are refused (code 2).
fn default_gateways(routes: &[Route], ips: &[IpConfig]) -> Result<Vec<IpAddr>, Error> {
    let mut gateways: Vec<IpAddr> = Vec::new();
    for route in routes {
        let unsupported = |what: &str| {
            Err(Error::UnsupportedNetworkConfiguration(format!(
                "route to {}: {what}",
                route.dst
            )))
        };
        if route.dst.prefix_len() != 0 {
            return unsupported("only default routes are supported");
        }
        let extras = [
            route.mtu,
            route.advmss,
            route.priority,
            route.table,
            route.scope,
        ];
        if extras.iter().any(Option::is_some) {
            return unsupported("mtu, advmss, priority, table and scope are not supported");
        }
        let v6 = route.dst.addr().is_ipv6();
        let Some(gateway) = route.gw.or_else(|| {
            ips.iter()
                .filter_map(|ip| ip.gateway)
                .find(|g| g.is_ipv6() == v6)
        }) else {
            return unsupported("no gateway for it");
        };
        match gateways.iter().find(|g| g.is_ipv6() == v6) {
            None => gateways.push(gateway),
            Some(first) if *first == gateway => {}
            Some(first) => {
                return unsupported(&format!(
                    "a second default route (the first is via {first})"
                ))
            }
        }
    }
    Ok(gateways)
}

/// The bridge `name`, if it exists; a device of that name that is not a
/// bridge is an error and is left alone.
async fn existing_bridge(host: &Netlink, name: &str) -> Result<Option<Link>, Error> {
    match host.link_by_name(name).await.map_err(plumbing)? {
        Some(link) if link.kind.as_deref() != Some("bridge") => Err(plumbing_failed(format!(
            "device {name} exists and is {}, not a bridge; it was left untouched",
            link.describe_kind()
        ))),
        found => Ok(found),
    }
}

/// Deletes a veth pair through its host end; one already gone is fine.
async fn delete_pair(host: &Netlink, end: &Link) -> Result<(), Error> {
    match host.delete_link(end.index).await {
        Err(e) if e.errno() != Some(libc::ENODEV) => Err(plumbing(e)),
        _ => Ok(()),
    }
}

fn open_netns(path: &str) -> Result<NetNs, Error> {
    NetNs::from_path(path).map_err(|e| Error::InvalidNetNS(format!("CNI_NETNS: {e}")))
}

fn is_veth(link: &Link) -> bool {
    link.kind.as_deref() == Some("veth")
}

fn network(net: IpNet) -> IpNetwork {
    IpNetwork::new(net.addr(), net.prefix_len()).expect("an IpNet's prefix fits its family")
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

fn plumbing(e: netplumb::Error) -> Error {
    plumbing_failed(e.to_string())
}

fn plumbing_failed(details: String) -> Error {
    Error::Custom(
        PLUMBING_FAILED,
        "network plumbing failed".to_string(),
        details,
    )
}

fn not_intact(details: String) -> Error {
    Error::Custom(NOT_INTACT, "attachment not intact".to_string(), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(address: &str, gateway: Option<&str>) -> IpConfig {
        IpConfig {
            interface: None,
            address: address.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
        }
    }

    fn route(dst: &str, gw: Option<&str>) -> Route {
        serde_json::from_value(serde_json::json!({"dst": dst, "gw": gw})).unwrap()
    }

    #[test]
    fn host_end_names_are_stable_distinct_and_recognised() {
        let a = host_end_name("c1", "eth0");
        assert_eq!(a, host_end_name("c1", "eth0"));
        assert_ne!(a, host_end_name("c1", "eth1"));
        // The separator keeps ("c1e", "th0") apart from ("c1", "eth0").
        assert_ne!(a, host_end_name("c1e", "th0"));
        assert_eq!(a.len(), 15);
        assert!(is_host_end_name(&a), "{a}");
        netplumb::check_name(&a).unwrap();
        for other in ["veth0a0a0a02", "np", "np0123456789abg", "xp0123456789abc"] {
            assert!(!is_host_end_name(other), "{other}");
        }
    }

    #[test]
    fn default_gateways_from_routes_and_addresses() {
        let ips = [
            ip("10.1.0.5/24", Some("10.1.0.1")),
            ip("fd00::5/64", Some("fd00::1")),
        ];
        let gws = default_gateways(&[route("0.0.0.0/0", None)], &ips).unwrap();
        assert_eq!(gws, vec!["10.1.0.1".parse::<IpAddr>().unwrap()]);
        let both = [route("0.0.0.0/0", Some("10.1.0.254")), route("::/0", None)];
        let gws = default_gateways(&both, &ips).unwrap();
        assert_eq!(
            gws,
            vec![
                "10.1.0.254".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn default_gateways_refuse_what_attach_cannot_do() {
        let ips = [ip("10.1.0.5/24", Some("10.1.0.1"))];
        for routes in [
            vec![route("10.9.0.0/16", Some("10.1.0.1"))],
            vec![
                route("0.0.0.0/0", Some("10.1.0.1")),
                route("0.0.0.0/0", Some("10.1.0.2")),
            ],
            vec![route("::/0", None)],
        ] {
            let err = default_gateways(&routes, &ips).unwrap_err();
            assert_eq!(u32::from(&err), 2, "{routes:?}: {err}");
        }
    }

    #[test]
    fn is_default_gateway_adds_one_route_per_family() {
        let mut result = CNIResult {
            ips: vec![ip("10.1.0.5/24", Some("10.1.0.1"))],
            routes: vec![],
            ..Default::default()
        };
        add_default_routes(&mut result);
        add_default_routes(&mut result);
        assert_eq!(result.routes, vec![route("0.0.0.0/0", Some("10.1.0.1"))]);
    }
}
