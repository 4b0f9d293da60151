//! The state's records, bit scans and layout, in a temporary directory.

use super::ledger::{decode_ports, encode_ports, next_clear, next_set};
use super::*;
use crate::ports::Mapping;

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
    let dir = std::env::temp_dir().join(format!("netsetgo-unit-recorded-{}", std::process::id()));
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
