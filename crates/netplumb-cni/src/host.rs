//! What every operation shares on the host side: the plugin's nftables
//! table, its error codes, the target namespace (never the plugin's own),
//! the bridge (never another manager's) and the pairs on it. ADD and DEL
//! are in `commands.rs`, CHECK in `check.rs`, GC and STATUS in `gc.rs`;
//! each uses these.

use netplumb::marks::Manager;
use netplumb::{IpNetwork, Link, NetNs, Netlink};
use rscni_types::error::Error;
use rscni_types::ipnet::IpNet;

/// Error code for a request the kernel refused; the details name the step,
/// the object and the errno.
pub(crate) const PLUMBING_FAILED: u32 = 100;
/// Error code for a CHECK that found the attachment not intact.
pub(crate) const NOT_INTACT: u32 = 102;

/// The plugin's own nftables tables: `inet netplumb-cni` (ipMasq, published
/// ports, the hairpin) and the guard's bridge table `netplumb-cni_guard`
/// (guarded host ends as set elements); no other table is read or written.
pub(crate) const TABLE: &str = "netplumb-cni";

/// Opens `CNI_NETNS`, refusing the plugin's own network namespace (the
/// host's): the host would get the container's end, its address and
/// routes (code 8, nothing changed).
pub(crate) fn open_target(path: &str) -> Result<NetNs, Error> {
    let invalid = |e: netplumb::Error| Error::InvalidNetNS(format!("CNI_NETNS: {e}"));
    let target = NetNs::from_path(path).map_err(invalid)?;
    let own = NetNs::current().map_err(invalid)?;
    if target.id().map_err(invalid)? == own.id().map_err(invalid)? {
        return Err(Error::InvalidNetNS(format!(
            "CNI_NETNS {path} is the plugin's own network namespace (the host's), \
             not a container's; nothing was changed"
        )));
    }
    Ok(target)
}

/// Refuses a bridge that netsetgo manages, naming it (code 7): its ports
/// have leases and a guard of netsetgo's that a CNI port would bypass.
pub(crate) fn refuse_foreign(bridge: &Link) -> Result<(), Error> {
    match Manager::of(bridge) {
        Some(Manager::Netsetgo) => Err(Error::InvalidNetworkConfig(format!(
            "bridge {} is managed by {}; give this network a bridge of its own",
            bridge.name,
            Manager::Netsetgo.describe()
        ))),
        _ => Ok(()),
    }
}

/// The bridge `name`, if it exists; a device of that name that is not a
/// bridge is an error and is left alone.
pub(crate) async fn existing_bridge(host: &Netlink, name: &str) -> Result<Option<Link>, Error> {
    match host.link_by_name(name).await.map_err(plumbing)? {
        Some(link) if link.kind.as_deref() != Some("bridge") => Err(plumbing_failed(format!(
            "device {name} exists and is {}, not a bridge; it was left untouched",
            link.describe_kind()
        ))),
        found => Ok(found),
    }
}

/// Deletes a veth pair through its host end; one already gone is fine.
pub(crate) async fn delete_pair(host: &Netlink, end: &Link) -> Result<(), Error> {
    match host.delete_link(end.index).await {
        Err(e) if e.errno() != Some(libc::ENODEV) => Err(plumbing(e)),
        _ => Ok(()),
    }
}

pub(crate) fn is_veth(link: &Link) -> bool {
    link.kind.as_deref() == Some("veth")
}

pub(crate) fn network(net: IpNet) -> IpNetwork {
    IpNetwork::new(net.addr(), net.prefix_len()).expect("an IpNet's prefix fits its family")
}

pub(crate) fn plumbing(e: netplumb::Error) -> Error {
    plumbing_failed(e.to_string())
}

pub(crate) fn plumbing_failed(details: String) -> Error {
    Error::Custom(
        PLUMBING_FAILED,
        "network plumbing failed".to_string(),
        details,
    )
}

pub(crate) fn not_intact(details: String) -> Error {
    Error::Custom(NOT_INTACT, "attachment not intact".to_string(), details)
}
