//! The host-wide settings a `nat=yes` network asks for, and only those:
//! forwarding switched on, and a masquerade rule for the network's subnets
//! leaving through any other interface, in the nftables table `inet
//! netsetgo` that only we write (spoken over netlink in-process: no `nft`
//! is executed). With `nat=no` nothing host-wide changes.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use netplumb::Nftables;

use crate::error::Failure;
use crate::policy::Network;

/// Our table; never any other.
pub const TABLE: &str = "netsetgo";

const IPV4_FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Host-wide IPv6 forwarding also makes the host ignore router
/// advertisements unless accept_ra=2: asked for only by nat=yes with
/// gateway6 (documented in netsetgo.conf(5)).
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Before privileges are dropped (the sysctls are root's files): switches
/// forwarding on and opens the nftables session, for a nat=yes network.
pub fn prepare(network: &Network) -> Result<Option<Nftables>, Failure> {
    if !network.nat {
        return Ok(None);
    }
    enable(IPV4_FORWARDING)?;
    if network.gateway6.is_some() {
        enable(IPV6_FORWARDING)?;
    }
    Ok(Some(Nftables::open()?))
}

/// Under the network's lock: the masquerade rules, created once.
pub fn masquerade(nft: &Nftables, network: &Network) -> Result<(), Failure> {
    for subnet in network.bridge_addresses() {
        nft.masquerade(TABLE)
            .add(&network.bridge, subnet)
            .execute()?;
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
