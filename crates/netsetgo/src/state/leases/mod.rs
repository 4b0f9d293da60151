//! Address leases: who holds which address of a network, kept so that every
//! call costs the same whether 1 or 1000 containers are on the bridge.
//!
//! Layout, under a root-only directory (0700) opened without following
//! symlinks and checked on the opened fd:
//!
//! ```text
//! /run/netsetgo/net-<ino>/<bridge>/map        header + one bit per address of the subnet
//! /run/netsetgo/net-<ino>/<bridge>/leases     one 128-byte text record per address (sparse)
//! /run/netsetgo/net-<ino>/<bridge>/ports      one 1024-byte text record per address (sparse):
//!                                             the lease's published ports
//! /run/netsetgo/net-<ino>/<bridge>/users/UID  that user's interface count on this network
//! /run/netsetgo/net-<ino>/ports+claimed       set once `inet netsetgo` has held claims ([`Claimed`])
//! ```
//!
//! One namespace, one state: `<ino>` is the inode of the host network
//! namespace the helper runs in, so a call from another network namespace
//! judges and changes only that namespace's leases. The other direction, a
//! call from the same network namespace with another `/run` (another mount
//! namespace), is caught at the bridge: [`Store::token`] names this state,
//! the bridge carries the token of the state that manages it (its alias),
//! and a call whose state is not the bridge's is refused.
//!
//! All three are opened as root before privileges are dropped and used only
//! through their fds afterwards. `flock` on `map` serialises every
//! check-and-create on one network.
//!
//! Kill safety: a lease is written *before* its interface is created
//! (pending, ifindex 0) and completed after; its published ports are
//! written after the lease and before anything is published, and erased
//! after they are unpublished and before the lease is freed; the count is raised before the
//! record and lowered after it is erased. A SIGKILL at any point leaves at
//! worst a pending record (whose interface, if it got made, is deleted by the
//! next call that looks at it) or a count that is too high (recounted
//! exactly when it would refuse). Nothing that would break the next call.
//!
//! Garbage collection is bounded per call: each call checks the next
//! [`WINDOW`] leases after a rotating cursor; the caller's own are all
//! checked when its count reaches its quota; every lease is checked when
//! the subnet looks full. Checks are one `SIOCGIFINDEX` each.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ipnetwork::Ipv4Network;
use netplumb::NsId;
use nix::sys::stat::fstat;

use crate::error::Failure;

/// Where the root-only state lives (a build may choose another for tests).
pub const STATE_DIR: &str = match option_env!("NETSETGO_STATE_DIR") {
    Some(dir) => dir,
    None => "/run/netsetgo",
};

/// How a bridge's alias says which state manages it.
pub const TOKEN_PREFIX: &str = netplumb::marks::NETSETGO_MARK;
const MAGIC: &[u8; 4] = b"NSG1";
const HEADER: usize = 16;
const SLOT: usize = 128;
/// A `ports` record: the address and up to 16 mappings in `-publish`
/// syntax (57 bytes at the most each).
const PORTS_SLOT: usize = 1024;
/// Leases checked per call besides those a decision depends on.
pub const WINDOW: usize = 8;
const LOCK_TIMEOUT_SECS: u32 = 10;

/// One address's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub address: Ipv4Addr,
    /// The uid that holds it.
    pub uid: u32,
    /// The host-side interface's index; 0 while the call that took the
    /// lease has not yet made the interface (pending).
    pub ifindex: u32,
    /// The host-side interface's name.
    pub ifname: String,
    /// The OCI container id, when the lease was taken by a hook.
    pub container: Option<String>,
}

impl Lease {
    fn encode(&self) -> [u8; SLOT] {
        let text = format!(
            "{} {} {} {} {}",
            self.address,
            self.uid,
            self.ifindex,
            self.ifname,
            self.container.as_deref().unwrap_or("-")
        );
        let mut slot = [b' '; SLOT];
        let len = text.len().min(SLOT - 1);
        slot[..len].copy_from_slice(&text.as_bytes()[..len]);
        slot[SLOT - 1] = b'\n';
        slot
    }

    fn decode(slot: &[u8]) -> Option<Lease> {
        let text = std::str::from_utf8(slot).ok()?;
        let mut f = text.split_ascii_whitespace();
        let lease = Lease {
            address: f.next()?.parse().ok()?,
            uid: f.next()?.parse().ok()?,
            ifindex: f.next()?.parse().ok()?,
            ifname: f.next()?.to_string(),
            container: match f.next()? {
                "-" => None,
                id => Some(id.to_string()),
            },
        };
        f.next().is_none().then_some(lease)
    }

    /// Is its interface not made yet (its call has not finished)?
    pub fn is_pending(&self) -> bool {
        self.ifindex == 0
    }

    /// Is its interface still there, given the index the host namespace
    /// has for its name (if any)?
    pub fn liveness(&self, index: Option<u32>) -> Liveness {
        match (index, self.is_pending()) {
            (None, _) => Liveness::Gone,
            (Some(_), true) => Liveness::Orphan,
            (Some(i), false) if i == self.ifindex => Liveness::Live,
            (Some(_), false) => Liveness::Gone,
        }
    }
}

/// Is a lease's interface still there?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its interface is there, with the index recorded.
    Live,
    /// Its interface is gone (or another took its name).
    Gone,
    /// A pending lease whose interface exists: its call died half way.
    Orphan,
}

/// One network's state files, opened as root.
pub struct Store {
    map: File,
    leases: File,
    ports: File,
    count: File,
    gateway: Ipv4Network,
    uid: u32,
}

impl Store {
    /// Opens (creating as needed) the state of `bridge` in host network
    /// namespace `netns`, for caller `uid`. Must run as root, before
    /// privileges are dropped.
    pub fn open(
        netns: &NsId,
        bridge: &str,
        gateway: Ipv4Network,
        uid: u32,
    ) -> Result<Store, Failure> {
        Store::open_under(Path::new(STATE_DIR), 0, netns, bridge, gateway, uid)
    }

    /// [`Store::open`] under `dir`, every directory and file of which must
    /// belong to `owner` (root, except in unit tests).
    pub fn open_under(
        dir: &Path,
        owner: u32,
        netns: &NsId,
        bridge: &str,
        gateway: Ipv4Network,
        uid: u32,
    ) -> Result<Store, Failure> {
        let root = open_root_dir(dir, owner)?;
        let namespace = open_dir_at(&root, &format!("net-{}", netns.ino), owner)?;
        let net = open_dir_at(&namespace, bridge, owner)?;
        let users = open_dir_at(&net, "users", owner)?;
        Ok(Store {
            map: open_file_at(&net, "map", owner)?,
            leases: open_file_at(&net, "leases", owner)?,
            ports: open_file_at(&net, "ports", owner)?,
            count: open_file_at(&users, &uid.to_string(), owner)?,
            gateway,
            uid,
        })
    }

    /// The bridges that have state in host network namespace `netns`
    /// (none if it has no state), creating nothing. Must run as root.
    pub fn bridges(netns: &NsId) -> Result<Vec<String>, Failure> {
        Store::bridges_under(Path::new(STATE_DIR), 0, netns)
    }

    /// [`Store::bridges`] under `dir`, owned by `owner`.
    pub fn bridges_under(dir: &Path, owner: u32, netns: &NsId) -> Result<Vec<String>, Failure> {
        let Some(namespace) = open_existing(dir, &format!("net-{}", netns.ino), owner)? else {
            return Ok(Vec::new());
        };
        let listed = std::fs::read_dir(format!("/proc/self/fd/{}", namespace.as_raw_fd()))
            .map_err(io_failure)?;
        let mut out = Vec::new();
        for entry in listed {
            let name = entry.map_err(io_failure)?.file_name();
            // Only what could be a bridge's name: nothing else is ours.
            if let Some(name) = name.to_str().filter(|n| netplumb::check_name(n).is_ok()) {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The subnet (and gateway) the leases of `bridge`'s state are for, as
    /// its map records it; `None` if it has no state, creating nothing.
    /// What a network that left the policy is known by.
    pub fn recorded_gateway(netns: &NsId, bridge: &str) -> Result<Option<Ipv4Network>, Failure> {
        Store::recorded_gateway_under(Path::new(STATE_DIR), 0, netns, bridge)
    }

    /// [`Store::recorded_gateway`] under `dir`, owned by `owner`.
    pub fn recorded_gateway_under(
        dir: &Path,
        owner: u32,
        netns: &NsId,
        bridge: &str,
    ) -> Result<Option<Ipv4Network>, Failure> {
        netplumb::check_name(bridge).map_err(Failure::from)?;
        let path = format!("net-{}/{bridge}/map", netns.ino);
        let Some(map) = open_existing(dir, &path, owner)? else {
            return Ok(None);
        };
        let mut header = [0u8; HEADER];
        match File::from(map).read_exact_at(&mut header, 0) {
            Ok(()) => Ok(header_gateway(&header)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_failure(e)),
        }
    }

    /// This state's name, unique on the machine while the state exists (the
    /// device and inode of its map file), as the alias of the bridge it
    /// manages carries it.
    pub fn token(&self) -> Result<String, Failure> {
        let st = fstat(&self.map).map_err(|e| Failure::internal(format!("{STATE_DIR}: {e}")))?;
        Ok(format!("{TOKEN_PREFIX}{:x}:{:x}", st.st_dev, st.st_ino))
    }

    /// The descriptors the store holds (its lock and its ledger's files),
    /// for a process that keeps nothing else (the reaper).
    pub fn fds(&self) -> [RawFd; 4] {
        [&self.map, &self.leases, &self.ports, &self.count].map(AsRawFd::as_raw_fd)
    }

    /// Takes the network's exclusive lock, waiting at most 10 s.
    pub fn lock(&self) -> Result<Ledger<'_>, Failure> {
        let lock = wait_for_lock(&self.map)?;
        let size = 1u32 << (32 - self.gateway.prefix());
        let bitmap_len = (size as usize).div_ceil(8);
        let mut header = [0u8; HEADER];
        let len = self.map.metadata().map_err(io_failure)?.len();
        if len >= HEADER as u64 {
            self.map.read_exact_at(&mut header, 0).map_err(io_failure)?;
        }
        let expected = header_of(self.gateway);
        if header[..4] != *MAGIC {
            // New (or never finished): size it first, then write the magic.
            self.map
                .set_len((HEADER + bitmap_len) as u64)
                .map_err(io_failure)?;
            self.map.write_all_at(&expected, 0).map_err(io_failure)?;
            header = expected;
        } else if header[4..12] != expected[4..12] {
            let old = Ipv4Addr::new(header[4], header[5], header[6], header[7]);
            return Err(Failure::refused(format!(
                "this bridge's leases are for {old}/{}, not {}: use that subnet or another bridge",
                header[8], self.gateway
            )));
        }
        let mut bitmap = vec![0u8; bitmap_len];
        self.map
            .read_exact_at(&mut bitmap, HEADER as u64)
            .map_err(io_failure)?;
        let cursor = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) % size;
        Ok(Ledger {
            store: self,
            _lock: lock,
            bitmap,
            cursor,
            size,
        })
    }
}

mod claimed;
mod files;
mod ledger;

pub use claimed::Claimed;
use files::{io_failure, open_dir_at, open_existing, open_file_at, open_root_dir, wait_for_lock};
pub use ledger::Ledger;
use ledger::{header_gateway, header_of};

#[cfg(test)]
mod tests;
