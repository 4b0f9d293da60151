//! The locked state of one network: the bitmap, the lease records, the
//! ports records and the caller's count, read and written under the lock.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;

use ipnetwork::Ipv4Network;
use nix::fcntl::Flock;

use super::files::io_failure;
use super::{Lease, Store, HEADER, MAGIC, PORTS_SLOT, SLOT, WINDOW};
use crate::error::Failure;
use crate::ports::{Mapping, MAX_MAPPINGS};

/// The locked state of one network. Dropping it releases the lock (and the
/// kernel releases it when the process ends, however it ends), so nothing
/// after the locked work (output, audit) can hold others up.
pub struct Ledger<'a> {
    pub(super) store: &'a Store,
    pub(super) _lock: Flock<File>,
    pub(super) bitmap: Vec<u8>,
    pub(super) cursor: u32,
    pub(super) size: u32,
}

impl Ledger<'_> {
    fn offset_of(&self, address: Ipv4Addr) -> Option<u32> {
        let gw = self.store.gateway;
        gw.contains(address)
            .then(|| u32::from(address) - u32::from(gw.network()))
    }

    /// The address at `offset` in the network's subnet.
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
pub(super) fn header_of(gateway: Ipv4Network) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4..8].copy_from_slice(&gateway.network().octets());
    header[8] = gateway.prefix();
    header[9..12].copy_from_slice(&gateway.ip().octets()[1..]);
    header
}

/// The gateway a map's header records, if it is one.
pub(super) fn header_gateway(header: &[u8; HEADER]) -> Option<Ipv4Network> {
    if header[..4] != *MAGIC {
        return None;
    }
    let ip = Ipv4Addr::new(header[4], header[9], header[10], header[11]);
    let gateway = Ipv4Network::new(ip, header[8]).ok()?;
    (header_of(gateway)[..12] == header[..12]).then_some(gateway)
}

pub(super) fn encode_ports(address: Ipv4Addr, mappings: &[Mapping]) -> [u8; PORTS_SLOT] {
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
pub(super) fn decode_ports(slot: &[u8], address: Ipv4Addr) -> Vec<Mapping> {
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

pub(super) fn next_set(bitmap: &[u8], from: u32, end: u32) -> Option<u32> {
    next_bit(bitmap, from, end, true)
}

pub(super) fn next_clear(bitmap: &[u8], from: u32, end: u32) -> Option<u32> {
    next_bit(bitmap, from, end, false)
}
