//! Settings of the calling thread's network namespace that container
//! networking needs: forwarding, switched on safely; IPv6 switched off on
//! a bridge port of ours.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use crate::error::{Error, Result, Step};

/// An IP version, for the settings that come one per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of `address`.
    pub fn of(address: std::net::IpAddr) -> IpVersion {
        match address {
            std::net::IpAddr::V4(_) => IpVersion::V4,
            std::net::IpAddr::V6(_) => IpVersion::V6,
        }
    }

    /// The sysctl that switches forwarding on for this version, host-wide
    /// in the namespace (for IPv6 `conf/all`, which also makes the
    /// namespace ignore router advertisements unless `accept_ra` is 2).
    pub fn forwarding_path(self) -> &'static str {
        match self {
            IpVersion::V4 => "/proc/sys/net/ipv4/ip_forward",
            IpVersion::V6 => "/proc/sys/net/ipv6/conf/all/forwarding",
        }
    }
}

/// Switches forwarding of `version` on in the network namespace the
/// calling thread is in (the sysctls under `/proc/sys/net` are that
/// namespace's), as root or with CAP_NET_ADMIN over it.
///
/// The file is opened with `O_NOFOLLOW` (a symbolic link there is an
/// error, not followed), read first, and written only when forwarding is
/// off, with `1` at offset 0 (sysctl ignores a write past the start): a
/// call that finds forwarding on changes nothing. An error is
/// [`Step::EnableForwarding`] on the sysctl's path, with the errno.
pub fn enable_forwarding(version: IpVersion) -> Result<()> {
    let path = version.forwarding_path();
    let fail = |e| Error::os(Step::EnableForwarding, path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(fail)?;
    let mut current = String::new();
    file.read_to_string(&mut current).map_err(fail)?;
    if current.trim() != "1" {
        file.write_all_at(b"1\n", 0).map_err(fail)?;
    }
    Ok(())
}

/// Switches IPv6 off on link `name` of the calling thread's network
/// namespace (`net.ipv6.conf.<name>.disable_ipv6`), as root or with
/// CAP_NET_ADMIN over it. For the host end of a pair while it is down:
/// a bridge port needs no IPv6 of its own, and without it the kernel
/// makes no multicast route or address for it when it comes up, and
/// nothing that reaches the port's own stack rather than the bridge (a
/// router advertisement, were the port taken off its bridge) is taken.
///
/// The caller must have made `name` itself in this namespace: the sysctl
/// names a link by its name in the namespace of the thread that opens it.
/// The file is opened with `O_NOFOLLOW` and written with `1`. A link
/// without the file has no IPv6 to switch off: a kernel without IPv6, or
/// a link whose MTU is below IPv6's minimum, 1280 (the kernel gives such a
/// link no IPv6 state at all). An error is [`Step::DisableIpv6`] on the
/// sysctl's path, with the errno.
pub fn disable_ipv6(name: &str) -> Result<()> {
    crate::links::check_name(name)?;
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    let fail = |e| Error::os(Step::DisableIpv6, &path, e);
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(fail)?,
    };
    file.write_all_at(b"1\n", 0).map_err(fail)
}
