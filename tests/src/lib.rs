//! End-to-end test harness for netsetgo.
//!
//! Every test builds a [`World`]: a root process in its own mount and
//! network namespace (`unshare --mount --net`), with private tmpfs mounts on
//! `/run` (so `/run/netsetgo` is the world's own) and `/etc/netsetgo` (so
//! the policy is the world's own). Unprivileged users start containers in
//! it and call the installed setuid copy of the binary
//! ([`installed_binary`]) from it. Everything is checked from outside with
//! `ip -j`. The machine's own network namespace is never touched.
//!
//! Tests need root; without it they print a loud `SKIPPED` line and return
//! (see [`require_root!`]).

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod binary;
pub mod checks;
mod cmd;
pub mod dhcp;
pub mod docker;
pub mod fixtures;
pub mod frames;
mod leases;
pub mod nft;
mod race;
pub mod reaper;
mod snapshot;
mod syslog;
pub mod traffic;
mod users;
mod world;

pub use binary::{install_program, installed_binary, scratch_dir, write_program};
pub use cmd::{time_scale, Output, TIMEOUT_SECS};
pub use leases::{parse_leases, parse_map_bits, Lease};
pub use race::{holds_flock, signal, Trace, Traced};
pub use snapshot::{has_flag, link_kind, name as link_name, Snapshot};
pub use syslog::SyslogSink;
pub use users::{add_to_group, ensure_group, ensure_user, ensure_worker, User};
pub use world::{ns_of, wait_until, Call, Container, Proc, World};

/// Is this process root (euid 0)?
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the calling test, loudly, unless it runs as root. With
/// `NETSETGO_E2E_REQUIRE_ROOT=1` (set it in CI) a missing root is a failure
/// instead.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            if std::env::var_os("NETSETGO_E2E_REQUIRE_ROOT").is_some_and(|v| v == "1") {
                panic!("NETSETGO_E2E_REQUIRE_ROOT=1 but this test does not run as root");
            }
            // Straight to fd 2, past the test harness's output capture.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "\n*** SKIPPED: needs root: {}::{} (run the e2e suite as root) ***\n",
                    module_path!(),
                    std::thread::current().name().unwrap_or("?")
                )
                .as_bytes(),
            );
            println!("SKIPPED: needs root");
            return;
        }
    };
}

/// A successful netsetgo line:
/// `veth1 address=10.10.10.2/24 gateway=10.10.10.1 host=veth0a0a0a02 bridge=brg0 mtu=1500`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wired {
    /// The interface inside the container (`veth1`).
    pub interface: String,
    /// The container's IPv4 address with prefix, e.g. `10.10.10.2/24`.
    pub address: String,
    /// The gateway's address (`10.10.10.1`).
    pub gateway: String,
    /// The host end's name (`veth0a0a0a02`).
    pub host: String,
    /// The bridge's name.
    pub bridge: String,
}

impl Wired {
    /// The container's IPv4 address without the prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or("")
    }

    /// Parses the one line a successful call prints; `None` if the output
    /// is not exactly one such line.
    pub fn parse(stdout: &str) -> Option<Wired> {
        let mut lines = stdout.lines();
        let line = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let interface = line.split_ascii_whitespace().next()?.to_string();
        let field = |key: &str| -> Option<String> {
            line.split_ascii_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Wired {
            address: field("address")?,
            gateway: field("gateway")?,
            host: field("host")?,
            bridge: field("bridge")?,
            interface,
        })
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parses_the_success_line() {
        let w = Wired::parse(
            "veth1 address=10.10.10.2/24 gateway=10.10.10.1 host=veth0a0a0a02 bridge=brg0 mtu=1500\n",
        )
        .unwrap();
        assert_eq!(w.interface, "veth1");
        assert_eq!(w.ip(), "10.10.10.2");
        assert_eq!(w.gateway, "10.10.10.1");
        assert_eq!(w.host, "veth0a0a0a02");
        assert_eq!(w.bridge, "brg0");
        assert_eq!(Wired::parse("a\nb\n"), None);
        assert_eq!(Wired::parse("netsetgo: refused\n"), None);
    }
}
