//! The host-wide settings a call asks for, and only those: forwarding
//! switched on for a `nat=yes` network or a call that publishes ports, and
//! the nf_tables session through which our own tables (`inet netsetgo`,
//! and the guard's `bridge netsetgo_guard`, shared chains and the guarded
//! host ends as set elements) are written
//! (spoken over netlink in-process: no `nft` is executed; see
//! [`crate::filters`]). Without nat, publishing or the
//! guard, nothing host-wide changes.

use netplumb::sysctl::{enable_forwarding, IpVersion};
use netplumb::Nftables;

use crate::error::Failure;
use crate::policy::Network;
use crate::ports::Mapping;

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
/// as root, before the drop. Host-wide IPv6 forwarding also makes the host
/// ignore router advertisements unless accept_ra=2: asked for only by
/// nat=yes with gateway6 (documented in netsetgo.conf(5)).
pub fn forward(network: &Network, publish: &[Mapping]) -> Result<(), Failure> {
    if network.nat || !publish.is_empty() {
        enable_forwarding(IpVersion::V4)?;
    }
    let publishes_ipv6 = publish
        .iter()
        .any(|m| !m.host_address.is_some_and(|a| a.is_ipv4()));
    if network.gateway6.is_some() && (network.nat || publishes_ipv6) {
        enable_forwarding(IpVersion::V6)?;
    }
    Ok(())
}
