//! The benchmark's floor (bench/run): the kernel's own work to give a
//! container's network namespace a working network, timed per container,
//! with no policy, no lease file and no process start.
//!
//! Run as root inside a throwaway network namespace that holds BRIDGE with
//! GATEWAY (for example `nsgb0 10.77.0.1/16`); reads one container pid per
//! line on standard input. Container number i (from 0) gets the address
//! GATEWAY + 1 + i. For each container it times, in one process:
//!
//! * `open`: pin the pid and open its netns, a netlink socket here and one
//!   inside the namespace (entering it for the `socket()` call);
//! * `veth`: one RTM_NEWLINK creating the pair, the peer born inside the
//!   namespace as `veth1`, the host end born on the bridge;
//! * `up`: look the peer up by name and bring both ends up with IPv6
//!   address generation off (`set_up_quiet`), the same kernel work
//!   `Netlink::attach` does for an IPv4-only network;
//! * `addr`: add the address; `route`: add the default route;
//! * `lo`: bring loopback up.
//!
//! With `--host-lookup` it also looks the host end up by name right after
//! creating the pair (counted in `veth`): a way to measure what that one
//! request costs (attach no longer makes it).
//!
//! Answers one line per pid: `total_ns open veth up addr route lo` (ns).
//! A failure prints `error <pid> <message>` and the program goes on.
//!
//! Build (static, as bench/run does):
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release
//!  --target x86_64-unknown-linux-gnu -p netplumb-bench --bin floor`

#![warn(missing_docs)]
#![deny(unreachable_pub)]

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::time::Instant;

use netplumb::{IpNetwork, Ipv4Network, NetNs, Netlink, VethPair};

fn usage() -> ! {
    eprintln!("usage: floor [--host-lookup] BRIDGE GATEWAY/PREFIX < pids");
    std::process::exit(2);
}

async fn wire(
    pid: u32,
    bridge: u32,
    address: Ipv4Network,
    gateway: Ipv4Addr,
    host_lookup: bool,
) -> netplumb::Result<[u128; 7]> {
    let start = Instant::now();
    let mut marks = [0u128; 7];
    let mut lap = |i: usize| marks[i] = start.elapsed().as_nanos();

    let target = NetNs::from_pid(pid)?;
    let host = Netlink::connect()?;
    let inside = Netlink::connect_in(&target)?;
    lap(1);
    let host_name = format!("fl{:08x}", u32::from(address.ip()));
    host.create_veth_pair(&VethPair {
        name: &host_name,
        peer_name: "veth1",
        peer_netns: Some(target.as_fd()),
        master: Some(bridge),
        mtu: None,
        peer_mac: None,
        up: false,
    })
    .await?;
    if host_lookup {
        host.link_by_name(&host_name)
            .await?
            .expect("the host end was just created");
    }
    lap(2);
    let peer = inside
        .link_by_name("veth1")
        .await?
        .expect("the peer was just created");
    host.set_up_quiet(peer.link.expect("a veth reports its peer"))
        .await?;
    inside.set_up_quiet(peer.index).await?;
    lap(3);
    inside
        .add_address(peer.index, IpNetwork::V4(address))
        .await?;
    lap(4);
    inside
        .add_default_route(IpAddr::V4(gateway), peer.index)
        .await?;
    lap(5);
    inside.loopback_up().await?;
    lap(6);
    // Turn the cumulative marks into the duration of each step.
    let mut out = [0u128; 7];
    out[0] = marks[6];
    out[1] = marks[1];
    for i in 2..7 {
        out[i] = marks[i] - marks[i - 1];
    }
    Ok(out)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let host_lookup = args.first().map(String::as_str) == Some("--host-lookup");
    if host_lookup {
        args.remove(0);
    }
    if args.len() != 2 {
        usage();
    }
    let bridge_name = &args[0];
    let gateway_net: Ipv4Network = args[1].parse().unwrap_or_else(|_| usage());
    let gateway = gateway_net.ip();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        let host = Netlink::connect().expect("netlink socket");
        let bridge = match host.link_by_name(bridge_name).await {
            Ok(Some(link)) => link.index,
            other => {
                eprintln!("floor: no bridge {bridge_name}: {other:?}");
                std::process::exit(1);
            }
        };
        let stdin = std::io::stdin();
        for (i, line) in stdin.lock().lines().enumerate() {
            let Ok(line) = line else { break };
            let Ok(pid) = line.trim().parse::<u32>() else {
                let _ = writeln!(out, "error {line:?} not a pid");
                continue;
            };
            let host_part = u32::try_from(i + 1).expect("few containers");
            let ip = Ipv4Addr::from(u32::from(gateway) + host_part);
            let address = Ipv4Network::new(ip, gateway_net.prefix()).expect("valid prefix");
            let line = match wire(pid, bridge, address, gateway, host_lookup).await {
                Ok(t) => format!(
                    "{} {} {} {} {} {} {}",
                    t[0], t[1], t[2], t[3], t[4], t[5], t[6]
                ),
                Err(e) => format!("error {pid} {e}"),
            };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    });
}
