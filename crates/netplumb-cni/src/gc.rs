//! GC and STATUS.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use netplumb::marks::Manager;
use netplumb::{GuardedPort, Netlink, Nftables};
use rscni_types::error::Error;
use rscni_types::types::{GcAttachment, NetConf};

use crate::attachment::{
    host_end_name, is_attachment, is_host_end_name, mac_of, owner_of, record_of,
};
use crate::host::{delete_pair, existing_bridge, is_veth, plumbing, refuse_foreign, TABLE};
use crate::ipam::Ipam;
use crate::{ports, Request};

/// The older spelling of `cni.dev/valid-attachments` in GC's configuration.
const OLD_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// GC: deletes the host ends on the bridge that this network records and
/// that belong to no valid attachment (with their guard), prunes the
/// guard's elements of devices that are gone (a DEL after the container
/// vanished knows no index to forget), then releases
/// the published ports whose host end is gone (theirs, and those of
/// attachments that vanished without DEL: their owner is no live host
/// end of any network), then lets IPAM free the
/// leases of the others (if it speaks GC: plugins from before 1.1.0 do
/// not). Another network's attachments on the same bridge are left alone;
/// a bridge netsetgo manages is refused untouched.
pub(crate) async fn gc(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let keep: HashSet<String> = valid_attachments(&req.conf)?
        .iter()
        .map(|a| host_end_name(&a.container_id, &a.ifname))
        .collect();
    let host = Netlink::connect().map_err(plumbing)?;
    let nft = Nftables::open().map_err(plumbing)?;
    let record = record_of(&req.conf.name);
    if let Some(bridge) = existing_bridge(&host, &req.options.bridge).await? {
        refuse_foreign(&bridge)?;
        for port in host.bridge_ports(bridge.index).await.map_err(plumbing)? {
            let ours = is_veth(&port)
                && is_host_end_name(&port.name)
                && port.alias.as_deref() == Some(record.as_str());
            if ours && !keep.contains(&port.name) {
                if req.options.guard {
                    let guard =
                        GuardedPort::new(&port.name, mac_of(&port.name), &[]).at(port.index);
                    nft.guard(TABLE)
                        .forget(&guard)
                        .execute()
                        .map_err(plumbing)?;
                }
                delete_pair(&host, &port).await?;
            }
        }
    }
    let claims = ports::claims(&nft)?;
    // The guard's elements dumped before the links are listed (see
    // `Guard::prune`): those of devices gone without DEL go.
    let guard = nft.guard(TABLE);
    let dumped = match req.options.guard {
        true => Some(guard.elements().map_err(plumbing)?),
        false => None,
    };
    let links = host.links().await.map_err(plumbing)?;
    if let Some(dumped) = dumped {
        let indexes: Vec<u32> = links.iter().map(|link| link.index).collect();
        guard.prune(dumped, &indexes).map_err(plumbing)?;
    }
    let live: HashSet<Ipv4Addr> = links
        .iter()
        .filter(|link| is_attachment(link))
        .filter_map(|link| owner_of(&link.name))
        .collect();
    ports::collect(&nft, &claims, &live)?;
    match ipam {
        Some(ipam) if ipam.speaks(req.version)? => ipam.call("GC"),
        _ => Ok(()),
    }
}

/// STATUS: ready unless the bridge's name is taken by another device or a
/// bridge netsetgo manages, or the IPAM plugin says it is not ready.
pub(crate) async fn status(req: &Request<'_>, ipam: Option<&Ipam<'_>>) -> Result<(), Error> {
    let host = Netlink::connect().map_err(plumbing)?;
    let bridge = existing_bridge(&host, &req.options.bridge)
        .await
        .map_err(|e| Error::PluginNotAvailable(e.details().to_string()))?;
    if let Some(bridge) = bridge.filter(|b| Manager::of(b) == Some(Manager::Netsetgo)) {
        let refusal = refuse_foreign(&bridge).expect_err("netsetgo's bridge is refused");
        return Err(Error::PluginNotAvailable(refusal.details().to_string()));
    }
    match ipam {
        Some(ipam) if ipam.speaks(req.version)? => ipam.call("STATUS"),
        _ => Ok(()),
    }
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
