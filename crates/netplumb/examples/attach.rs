//! Wires a network namespace to a bridge with [`Netlink::attach`], the one
//! transaction that leaves nothing behind when a step fails.
//!
//! ```text
//! attach NETNS_PATH BRIDGE GATEWAY/PREFIX ADDRESS/PREFIX
//! ip netns add demo
//! cargo run -p netplumb --example attach -- /run/netns/demo brdemo0 10.20.0.1/24 10.20.0.2/24
//! ```
//!
//! Run it as root (CAP_NET_ADMIN, and CAP_SYS_ADMIN to open a socket inside
//! the target namespace). It acts in the namespace it runs in: the bridge
//! and the host end live there.

use std::os::fd::AsFd;

use netplumb::{Attached, Attachment, IpNetwork, NetNs, Netlink};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, bridge, gateway, address] = args.as_slice() else {
        eprintln!("usage: attach NETNS_PATH BRIDGE GATEWAY/PREFIX ADDRESS/PREFIX");
        std::process::exit(2);
    };
    let (gateway, address): (IpNetwork, IpNetwork) = (gateway.parse()?, address.parse()?);
    let target = NetNs::from_path(path)?;
    // A one-shot tool needs no more than a current-thread runtime; the
    // netlink sockets need its I/O driver (tokio features "rt" and "net").
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let attached = runtime.block_on(wire(&target, bridge, gateway, address))?;
    println!(
        "{} in {path}: {address} via {}; host end #{} on {bridge}",
        attached.peer.name,
        gateway.ip(),
        attached.host_index
    );
    Ok(())
}

/// The bridge (created if missing, never a device of that name that is not
/// a bridge) with its gateway address, then the pair: `eth0` inside
/// `target` with `address` and a default route, `veth-demo0` on the bridge.
pub async fn wire(
    target: &NetNs,
    bridge: &str,
    gateway: IpNetwork,
    address: IpNetwork,
) -> netplumb::Result<Attached> {
    let host = Netlink::connect()?;
    let inside = Netlink::connect_in(target)?;
    let bridge = host.ensure_bridge(bridge, None).await?;
    host.ensure_address(bridge.link.index, gateway).await?;
    host.attach(
        &inside,
        &Attachment {
            bridge: bridge.link.index,
            host_name: "veth-demo0",
            peer_name: "eth0",
            peer_netns: target.as_fd(),
            mtu: None,
            addresses: &[address],
            gateways: &[gateway.ip()],
            peer_link_local: false,
            peer_mac: None,
            isolated: false,
            learning: netplumb::Learning::On,
        },
    )
    .await
}
