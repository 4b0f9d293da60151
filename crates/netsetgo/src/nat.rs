//! The host-wide settings a call asks for, and only those: forwarding
//! switched on for a `nat=yes` network or a call that publishes ports, and
//! the nf_tables session through which our own tables (`inet netsetgo`,
//! `netdev netsetgo`) are written (spoken over netlink in-process: no `nft`
//! is executed; see [`crate::filters`]). Without nat, publishing or the
//! guard, nothing host-wide changes.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use netplumb::Nftables;

use crate::error::Failure;
use crate::policy::Network;
use crate::ports::Mapping;

const IPV4_FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Host-wide IPv6 forwarding also makes the host ignore router
/// advertisements unless accept_ra=2: asked for only by nat=yes with
/// gateway6 (documented in netsetgo.conf(5)).
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Before privileges are dropped (the sysctls are root's files): switches
/// forwarding on for a nat=yes network and for a call that publishes
/// (IPv6 forwarding when IPv6 is masqueraded or published to), and opens
/// the nftables session (a socket: the guard, publications and the garbage
/// collection of other leases' publications may all need it).
pub fn prepare(network: &Network, publish: &[Mapping]) -> Result<Nftables, Failure> {
    forward(network, publish)?;
    Ok(Nftables::open()?)
}

/// Switches forwarding on for a nat=yes network and for a call that
/// publishes (IPv6 forwarding when IPv6 is masqueraded or published to);
/// as root, before the drop.
pub fn forward(network: &Network, publish: &[Mapping]) -> Result<(), Failure> {
    if network.nat || !publish.is_empty() {
        enable(IPV4_FORWARDING)?;
    }
    let publishes_ipv6 = publish
        .iter()
        .any(|m| !m.host_address.is_some_and(|a| a.is_ipv4()));
    if network.gateway6.is_some() && (network.nat || publishes_ipv6) {
        enable(IPV6_FORWARDING)?;
    }
    Ok(())
}

fn enable(path: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::internal(format!("enable forwarding ({path}): {e}"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(fail)?;
    let mut current = String::new();
    file.read_to_string(&mut current).map_err(fail)?;
    if current.trim() != "1" {
        // At offset 0: sysctl ignores writes past the start of the file.
        file.write_all_at(b"1\n", 0).map_err(fail)?;
    }
    Ok(())
}
