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
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ipnetwork::Ipv4Network;
use netplumb::NsId;
use nix::fcntl::Flock;
use nix::sys::stat::{fstat, FileStat};

use crate::error::Failure;
use crate::ports::{Mapping, MAX_MAPPINGS};
use crate::secure::{self, Access, Refusal, Rule};

pub const STATE_DIR: &str = match option_env!("NETSETGO_STATE_DIR") {
    Some(dir) => dir,
    None => "/run/netsetgo",
};

/// How a bridge's alias says which state manages it.
pub const TOKEN_PREFIX: &str = "netsetgo:";
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
    pub address: Ipv4Addr,
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
    Live,
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

/// The locked state of one network. Dropping it releases the lock (and the
/// kernel releases it when the process ends, however it ends), so nothing
/// after the locked work (output, audit) can hold others up.
pub struct Ledger<'a> {
    store: &'a Store,
    _lock: Flock<File>,
    bitmap: Vec<u8>,
    cursor: u32,
    size: u32,
}

impl Ledger<'_> {
    fn offset_of(&self, address: Ipv4Addr) -> Option<u32> {
        let gw = self.store.gateway;
        gw.contains(address)
            .then(|| u32::from(address) - u32::from(gw.network()))
    }

    pub fn address_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.store.gateway.network()) + offset)
    }

    fn is_leased(&self, offset: u32) -> bool {
        self.bitmap[(offset / 8) as usize] & (1 << (offset % 8)) != 0
    }

    fn mark(&mut self, offset: u32, leased: bool) -> Result<(), Failure> {
        let byte = (offset / 8) as usize;
        if leased {
            self.bitmap[byte] |= 1 << (offset % 8);
        } else {
            self.bitmap[byte] &= !(1 << (offset % 8));
        }
        self.store
            .map
            .write_all_at(&self.bitmap[byte..=byte], (HEADER + byte) as u64)
            .map_err(io_failure)
    }

    /// Can this offset ever be leased: not the network, broadcast or gateway?
    fn assignable(&self, offset: u32) -> bool {
        offset != 0
            && offset != self.size - 1
            && Some(offset) != self.offset_of(self.store.gateway.ip())
    }

    fn read(&self, offset: u32) -> Result<Option<Lease>, Failure> {
        let mut slot = [0u8; SLOT];
        let at = u64::from(offset) * SLOT as u64;
        match self.store.leases.read_exact_at(&mut slot, at) {
            Ok(()) => Ok(Lease::decode(&slot)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_failure(e)),
        }
    }

    fn write(&self, offset: u32, slot: &[u8; SLOT]) -> Result<(), Failure> {
        let at = u64::from(offset) * SLOT as u64;
        self.store.leases.write_all_at(slot, at).map_err(io_failure)
    }

    /// The caller's interface count on this network (an upper bound: see
    /// the module comment).
    pub fn count(&self) -> Result<u32, Failure> {
        let mut buf = [0u8; 12];
        let n = self.store.count.read_at(&mut buf, 0).map_err(io_failure)?;
        Ok(std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0))
    }

    fn set_count(&self, count: u32) -> Result<(), Failure> {
        let text = format!("{count:<10}\n");
        self.store
            .count
            .write_all_at(text.as_bytes(), 0)
            .map_err(io_failure)
    }

    /// The lease of `address`, if it is leased.
    pub fn lease_of(&self, address: Ipv4Addr) -> Result<Option<Lease>, Failure> {
        match self.offset_of(address) {
            Some(offset) if self.is_leased(offset) => self.read(offset),
            _ => Ok(None),
        }
    }

    /// The next [`WINDOW`] leases after the rotating cursor.
    pub fn window(&mut self) -> Result<Vec<Lease>, Failure> {
        let mut found: Vec<u32> = Vec::with_capacity(WINDOW);
        let mut from = self.cursor + 1;
        while found.len() < WINDOW {
            // Wrap around once; stop when the window comes back on itself.
            let Some(offset) = next_set(&self.bitmap, from, self.size)
                .or_else(|| next_set(&self.bitmap, 0, self.size))
            else {
                break;
            };
            if found.contains(&offset) {
                break;
            }
            found.push(offset);
            from = offset + 1;
        }
        if let Some(last) = found.last() {
            self.cursor = *last;
            self.store
                .map
                .write_all_at(&self.cursor.to_le_bytes(), 12)
                .map_err(io_failure)?;
        }
        self.leases_at(found)
    }

    /// Every lease (read in one pass over the records).
    pub fn all(&mut self) -> Result<Vec<Lease>, Failure> {
        let offsets = std::iter::successors(next_set(&self.bitmap, 0, self.size), |o| {
            next_set(&self.bitmap, o + 1, self.size)
        })
        .collect();
        self.leases_at(offsets)
    }

    /// Leases at these offsets; a set bit without a readable record (a
    /// call killed half way through releasing) is cleared on the spot.
    fn leases_at(&mut self, offsets: Vec<u32>) -> Result<Vec<Lease>, Failure> {
        let mut out = Vec::with_capacity(offsets.len());
        for offset in offsets {
            match self.read(offset)? {
                Some(lease) if self.offset_of(lease.address) == Some(offset) => out.push(lease),
                _ => self.mark(offset, false)?,
            }
        }
        Ok(out)
    }

    /// The first assignable address not leased.
    pub fn first_free(&self) -> Option<Ipv4Addr> {
        let mut from = 1;
        loop {
            let offset = next_clear(&self.bitmap, from, self.size - 1)?;
            if self.assignable(offset) {
                return Some(self.address_at(offset));
            }
            from = offset + 1;
        }
    }

    /// Whether `address` may be leased now.
    pub fn is_free(&self, address: Ipv4Addr) -> bool {
        self.offset_of(address)
            .is_some_and(|o| self.assignable(o) && !self.is_leased(o))
    }

    /// Takes a lease, pending, before its interface is created.
    pub fn reserve(&mut self, lease: &Lease) -> Result<(), Failure> {
        let offset = self
            .offset_of(lease.address)
            .expect("address checked by the caller");
        if lease.uid == self.store.uid {
            self.set_count(self.count()?.saturating_add(1))?;
        }
        self.write(offset, &lease.encode())?;
        self.mark(offset, true)
    }

    /// Completes a reserved lease with its interface index.
    pub fn complete(&mut self, lease: &Lease) -> Result<(), Failure> {
        let offset = self
            .offset_of(lease.address)
            .expect("address of a reserved lease");
        self.write(offset, &lease.encode())
    }

    /// Frees a lease: record, then bit, then (for the caller's own) count.
    pub fn release(&mut self, lease: &Lease) -> Result<(), Failure> {
        let Some(offset) = self.offset_of(lease.address) else {
            return Ok(());
        };
        self.write(offset, &[0u8; SLOT])?;
        self.mark(offset, false)?;
        if lease.uid == self.store.uid {
            self.set_count(self.count()?.saturating_sub(1))?;
        }
        Ok(())
    }

    /// The published ports recorded for the lease of `address`.
    pub fn ports_of(&self, address: Ipv4Addr) -> Result<Vec<Mapping>, Failure> {
        let Some(offset) = self.offset_of(address) else {
            return Ok(Vec::new());
        };
        let mut slot = [0u8; PORTS_SLOT];
        let at = u64::from(offset) * PORTS_SLOT as u64;
        match self.store.ports.read_exact_at(&mut slot, at) {
            Ok(()) => Ok(decode_ports(&slot, address)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Vec::new()),
            Err(e) => Err(io_failure(e)),
        }
    }

    /// Records the lease's published ports, before any is published (an
    /// empty list erases the record).
    pub fn set_ports(&self, address: Ipv4Addr, mappings: &[Mapping]) -> Result<(), Failure> {
        let offset = self
            .offset_of(address)
            .expect("address of a reserved lease");
        let slot = if mappings.is_empty() {
            [0u8; PORTS_SLOT]
        } else {
            encode_ports(address, mappings)
        };
        let at = u64::from(offset) * PORTS_SLOT as u64;
        self.store.ports.write_all_at(&slot, at).map_err(io_failure)
    }

    /// Resets the caller's count to what a full recount found.
    pub fn recount(&self, live: u32) -> Result<(), Failure> {
        self.set_count(live)
    }
}

/// A map's header for `gateway`: the magic, the subnet, the prefix and
/// the gateway's last three bytes (its first is the subnet's: prefixes are
/// /16 at the most), then the cursor.
fn header_of(gateway: Ipv4Network) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4..8].copy_from_slice(&gateway.network().octets());
    header[8] = gateway.prefix();
    header[9..12].copy_from_slice(&gateway.ip().octets()[1..]);
    header
}

/// The gateway a map's header records, if it is one.
fn header_gateway(header: &[u8; HEADER]) -> Option<Ipv4Network> {
    if header[..4] != *MAGIC {
        return None;
    }
    let ip = Ipv4Addr::new(header[4], header[9], header[10], header[11]);
    let gateway = Ipv4Network::new(ip, header[8]).ok()?;
    (header_of(gateway)[..12] == header[..12]).then_some(gateway)
}

fn encode_ports(address: Ipv4Addr, mappings: &[Mapping]) -> [u8; PORTS_SLOT] {
    let mut text = address.to_string();
    for m in mappings.iter().take(MAX_MAPPINGS) {
        text.push(' ');
        text.push_str(&m.to_string());
    }
    let mut slot = [b' '; PORTS_SLOT];
    let len = text.len().min(PORTS_SLOT - 1);
    slot[..len].copy_from_slice(&text.as_bytes()[..len]);
    slot[PORTS_SLOT - 1] = b'\n';
    slot
}

/// The mappings of a record, if it is one for `address`; a record that
/// does not parse (never written, or torn by a kill) holds none.
fn decode_ports(slot: &[u8], address: Ipv4Addr) -> Vec<Mapping> {
    let Ok(text) = std::str::from_utf8(slot) else {
        return Vec::new();
    };
    let mut fields = text.split_ascii_whitespace();
    if fields.next().and_then(|a| a.parse::<Ipv4Addr>().ok()) != Some(address) {
        return Vec::new();
    }
    fields
        .take(MAX_MAPPINGS)
        .map(Mapping::parse)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// The first bit at or after `from`, below `end`, that is set (`want`
/// true) or clear. Bytes without such a bit are skipped whole, so a call
/// costs the same whether a /16 holds 1 or 1000 leases, and wherever the
/// cursor stands.
fn next_bit(bitmap: &[u8], from: u32, end: u32, want: bool) -> Option<u32> {
    let mut offset = from;
    while offset < end {
        let byte = bitmap[(offset / 8) as usize];
        let byte = (if want { byte } else { !byte }) >> (offset % 8);
        if byte == 0 {
            offset = (offset / 8 + 1) * 8;
        } else {
            let found = offset + byte.trailing_zeros();
            return (found < end).then_some(found);
        }
    }
    None
}

fn next_set(bitmap: &[u8], from: u32, end: u32) -> Option<u32> {
    next_bit(bitmap, from, end, true)
}

fn next_clear(bitmap: &[u8], from: u32, end: u32) -> Option<u32> {
    next_bit(bitmap, from, end, false)
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::internal(format!("netsetgo state in {STATE_DIR}: {e}"))
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Blocks in flock(2), interrupted by an alarm after LOCK_TIMEOUT_SECS.
/// The lock is held until the returned guard is dropped (or the process
/// ends, however it ends).
fn wait_for_lock(file: &File) -> Result<Flock<File>, Failure> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // No SA_RESTART: the alarm must interrupt flock with EINTR.
    let action = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing.
    unsafe { sigaction(Signal::SIGALRM, &action) }
        .map_err(|e| Failure::internal(format!("sigaction: {e}")))?;
    // SAFETY: alarm(2) only arms a timer.
    unsafe { libc::alarm(LOCK_TIMEOUT_SECS) };
    let result = Flock::lock(
        file.try_clone().map_err(io_failure)?,
        nix::fcntl::FlockArg::LockExclusive,
    );
    // SAFETY: alarm(2) only disarms the timer.
    unsafe { libc::alarm(0) };
    match result {
        Ok(guard) => Ok(guard),
        Err((_, nix::Error::EINTR)) => Err(Failure::unavailable(format!(
            "another netsetgo call has held this network's lock for {LOCK_TIMEOUT_SECS} s; try again"
        ))),
        Err((_, e)) => Err(Failure::internal(format!("lock {STATE_DIR}: {e}"))),
    }
}

/// A state directory (0700) or file (0600, one name) of `owner`.
fn private(dir: bool, owner: u32) -> Rule {
    Rule {
        dir,
        owner,
        forbidden: 0o077,
        one_link: true,
    }
}

fn opened(fd: Result<(OwnedFd, FileStat), Refusal>, what: &str) -> Result<OwnedFd, Failure> {
    match fd {
        Ok((fd, _)) => Ok(fd),
        Err(Refusal::Open(e)) => Err(Failure::internal(format!("open {what}: {e}"))),
        Err(Refusal::Unsafe) => Err(Failure::refused(format!(
            "{what} must be owned by root and private (mode 0700/0600); an administrator must remove it"
        ))),
    }
}

/// `path` under `dir` if it exists, every component a private one of
/// `owner` (directories, then a file), creating nothing.
fn open_existing(dir: &Path, path: &str, owner: u32) -> Result<Option<OwnedFd>, Failure> {
    let mut at = match secure::open(None, dir, Access::Read, private(true, owner)) {
        Err(Refusal::Open(nix::Error::ENOENT)) => return Ok(None),
        fd => opened(fd, &dir.display().to_string())?,
    };
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let is_dir = i + 1 < parts.len() || !path.ends_with("map");
        let fd = secure::open(
            Some(at.as_fd()),
            Path::new(part),
            Access::Read,
            private(is_dir, owner),
        );
        at = match fd {
            Err(Refusal::Open(nix::Error::ENOENT)) => return Ok(None),
            fd => opened(fd, &format!("{STATE_DIR}/.../{part}"))?,
        };
    }
    Ok(Some(at))
}

fn open_root_dir(path: &Path, owner: u32) -> Result<OwnedFd, Failure> {
    let fd = secure::open(None, path, Access::Create(0o700), private(true, owner));
    opened(fd, &path.display().to_string())
}

fn open_dir_at(parent: &OwnedFd, name: &str, owner: u32) -> Result<OwnedFd, Failure> {
    let fd = secure::open(
        Some(parent.as_fd()),
        Path::new(name),
        Access::Create(0o700),
        private(true, owner),
    );
    opened(fd, &format!("{STATE_DIR}/.../{name}"))
}

fn open_file_at(parent: &OwnedFd, name: &str, owner: u32) -> Result<File, Failure> {
    let fd = secure::open(
        Some(parent.as_fd()),
        Path::new(name),
        Access::Create(0o600),
        private(false, owner),
    );
    opened(fd, &format!("{STATE_DIR}/.../{name}")).map(File::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_scans() {
        let mut map = vec![0u8; 8192];
        assert_eq!(next_set(&map, 0, 65536), None);
        assert_eq!(next_clear(&map, 1, 65535), Some(1));
        map[0] = 0b0000_0110;
        map[4000] = 0b1000_0000;
        assert_eq!(next_set(&map, 0, 65536), Some(1));
        assert_eq!(next_set(&map, 2, 65536), Some(2));
        assert_eq!(next_set(&map, 3, 65536), Some(32007));
        assert_eq!(next_set(&map, 32008, 65536), None);
        assert_eq!(next_set(&map, 0, 2), Some(1));
        assert_eq!(next_set(&map, 2, 2), None);
        assert_eq!(next_clear(&map, 1, 65535), Some(3));
        map.iter_mut().take(100).for_each(|b| *b = 0xff);
        assert_eq!(next_clear(&map, 1, 65535), Some(800));
        let full = vec![0xffu8; 1];
        assert_eq!(next_clear(&full, 1, 3), None);
        // A /30: 4 addresses, one byte, only bits below `end` count.
        assert_eq!(next_clear(&[0b0000_0010], 1, 3), Some(2));
        assert_eq!(next_set(&[0b1111_0000], 0, 4), None);
    }

    #[test]
    fn ports_records_round_trip() {
        let address: Ipv4Addr = "10.10.10.2".parse().unwrap();
        let mappings: Vec<Mapping> = (0..16)
            .map(|i| {
                Mapping::parse(&format!(
                    "udp:[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:{}:65535",
                    65520 + i
                ))
                .unwrap()
            })
            .collect();
        let slot = encode_ports(address, &mappings);
        assert_eq!(slot[PORTS_SLOT - 1], b'\n');
        assert_eq!(decode_ports(&slot, address), mappings);
        // Another address's record, or none, holds nothing.
        assert!(decode_ports(&slot, "10.10.10.3".parse().unwrap()).is_empty());
        assert!(decode_ports(&[0u8; PORTS_SLOT], address).is_empty());
        let one = [Mapping::parse("tcp:8080:80").unwrap()];
        assert_eq!(decode_ports(&encode_ports(address, &one), address), one);
    }

    #[test]
    fn a_states_bridges_and_subnets_are_read_back_creating_nothing() {
        let dir =
            std::env::temp_dir().join(format!("netsetgo-unit-recorded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let owner = nix::unistd::geteuid().as_raw();
        let ns = NsId { dev: 0, ino: 7 };
        assert!(Store::bridges_under(&dir, owner, &ns).unwrap().is_empty());
        assert!(!dir.exists(), "looking created nothing");
        for (bridge, gateway) in [("brg0", "10.10.10.1/24"), ("lab0", "172.30.255.254/16")] {
            let gateway: Ipv4Network = gateway.parse().unwrap();
            let store = Store::open_under(&dir, owner, &ns, bridge, gateway, 1000).unwrap();
            // A state whose map was never locked records nothing yet.
            let none = Store::recorded_gateway_under(&dir, owner, &ns, bridge).unwrap();
            assert_eq!(none, None);
            drop(store.lock().unwrap());
            let recorded = Store::recorded_gateway_under(&dir, owner, &ns, bridge).unwrap();
            assert_eq!(recorded, Some(gateway));
        }
        std::fs::create_dir(dir.join("net-7/not a bridge")).unwrap();
        assert_eq!(
            Store::bridges_under(&dir, owner, &ns).unwrap(),
            ["brg0", "lab0"]
        );
        assert_eq!(
            Store::recorded_gateway_under(&dir, owner, &ns, "gone0").unwrap(),
            None
        );
        assert!(!dir.join("net-7/gone0").exists());
        let other = NsId { dev: 0, ino: 8 };
        assert!(Store::bridges_under(&dir, owner, &other)
            .unwrap()
            .is_empty());
        assert!(Store::recorded_gateway_under(&dir, owner, &ns, "../net-7").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_round_trip() {
        let lease = Lease {
            address: "10.10.10.2".parse().unwrap(),
            uid: 1000,
            ifindex: 42,
            ifname: "veth0a0a0a02".into(),
            container: Some("abc".into()),
        };
        let slot = lease.encode();
        assert_eq!(slot[SLOT - 1], b'\n');
        assert_eq!(Lease::decode(&slot), Some(lease));
        assert_eq!(Lease::decode(&[0u8; SLOT]), None);
    }
}
