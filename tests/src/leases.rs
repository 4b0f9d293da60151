//! Reading netsetgo's lease records the way an administrator would.
//!
//! `/run/netsetgo/<bridge>/leases` holds one 128-byte text record per
//! address of the subnet, at offset `128 * (address - network)`; a record is
//! `addr uid ifindex ifname container`, padded with spaces and ending in a
//! newline. Empty slots are all NUL (holes in a sparse file).

use std::net::Ipv4Addr;

/// Size of one record.
pub(crate) const SLOT: usize = 128;

/// One lease record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lease {
    /// Index of the 128-byte slot the record is in.
    pub slot: usize,
    /// The leased IPv4 address.
    pub address: Ipv4Addr,
    /// The uid that holds it.
    pub uid: u32,
    /// Host-side interface index; 0 while pending.
    pub ifindex: u32,
    /// Host-side interface name.
    pub ifname: String,
    /// OCI container id, if taken by a hook.
    pub container: Option<String>,
}

/// Parses a whole leases file. A slot that is neither empty nor one
/// well-formed record is an error: the file was corrupted (e.g. output
/// written onto it).
pub fn parse_leases(bytes: &[u8]) -> Result<Vec<Lease>, String> {
    let mut leases = Vec::new();
    for (slot, chunk) in bytes.chunks(SLOT).enumerate() {
        if chunk.iter().all(|b| *b == 0) {
            continue;
        }
        let bad = |why: &str| {
            format!(
                "leases slot {slot}: {why}: {:?}",
                String::from_utf8_lossy(chunk)
            )
        };
        if chunk.len() != SLOT {
            return Err(bad("truncated record"));
        }
        if chunk[SLOT - 1] != b'\n' {
            return Err(bad("record does not end in a newline"));
        }
        let text = std::str::from_utf8(chunk).map_err(|_| bad("not UTF-8"))?;
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let [address, uid, ifindex, ifname, container] = fields[..] else {
            return Err(bad("not 5 fields"));
        };
        leases.push(Lease {
            slot,
            address: address.parse().map_err(|_| bad("bad address"))?,
            uid: uid.parse().map_err(|_| bad("bad uid"))?,
            ifindex: ifindex.parse().map_err(|_| bad("bad ifindex"))?,
            ifname: ifname.to_string(),
            container: (container != "-").then(|| container.to_string()),
        });
    }
    Ok(leases)
}

/// Size of the map's header (magic "NSG1", subnet, cursor) before its bitmap.
pub(crate) const MAP_HEADER: usize = 16;

/// The offsets (slots) whose bit is set in a map file's bitmap: the
/// addresses netsetgo considers leased. A record in a slot whose bit is
/// clear is free to netsetgo.
pub fn parse_map_bits(map: &[u8]) -> std::collections::BTreeSet<usize> {
    let bitmap = map.get(MAP_HEADER..).unwrap_or(&[]);
    let mut set = std::collections::BTreeSet::new();
    for (byte, bits) in bitmap.iter().enumerate() {
        for bit in 0..8 {
            if bits & (1 << bit) != 0 {
                set.insert(byte * 8 + bit);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Vec<u8> {
        let mut slot = vec![b' '; SLOT];
        slot[..text.len()].copy_from_slice(text.as_bytes());
        slot[SLOT - 1] = b'\n';
        slot
    }

    #[test]
    fn parses_records_and_holes() {
        let mut file = vec![0u8; 2 * SLOT];
        file.extend(record("10.10.10.2 1001 7 veth0a0a0a02 -"));
        file.extend(vec![0u8; SLOT]);
        file.extend(record("10.10.10.4 1002 0 veth0a0a0a04 abc"));
        let leases = parse_leases(&file).unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].slot, 2);
        assert_eq!(leases[0].address, Ipv4Addr::new(10, 10, 10, 2));
        assert_eq!(leases[0].uid, 1001);
        assert_eq!(leases[0].ifindex, 7);
        assert_eq!(leases[0].container, None);
        assert_eq!(leases[1].slot, 4);
        assert_eq!(leases[1].container.as_deref(), Some("abc"));
    }

    #[test]
    fn reads_map_bits() {
        let mut map = vec![0u8; MAP_HEADER];
        map[..4].copy_from_slice(b"NSG1");
        map.extend([0b0000_0100, 0, 0b1000_0001]);
        let bits: Vec<usize> = parse_map_bits(&map).into_iter().collect();
        assert_eq!(bits, vec![2, 16, 23]);
        assert!(parse_map_bits(&map[..10]).is_empty());
    }

    #[test]
    fn rejects_garbage() {
        let mut file = b"veth1 address=10.10.10.2/24\n".to_vec();
        file.resize(SLOT, 0);
        assert!(parse_leases(&file).is_err());
        assert!(parse_leases(&record("10.10.10.2 x 7 v -")).is_err());
        assert!(parse_leases(&record("10.10.10.2 1 7 v - extra")).is_err());
    }
}
