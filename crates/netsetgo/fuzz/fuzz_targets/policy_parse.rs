//! Fuzzes `netsetgo::policy::parse` with arbitrary text.
//!
//! Beyond "does not panic", every accepted policy must keep the promises the
//! rest of the helper relies on, checked through the public API only:
//!
//! * every network has a bridge name the kernel accepts (1 to 15 bytes, not
//!   `.` or `..`, no `/`, `:` or whitespace) and a gateway whose prefix is
//!   between /16 and /30 and which is a host address of its subnet;
//! * an optional IPv6 gateway has a /64 to /120 prefix, and the IPv6
//!   address derived from every possible lease lies in its prefix and is not
//!   the gateway's own; an mtu is 68..=65535;
//! * every grant names a defined network (`Policy::allowances` would panic
//!   otherwise), and each network a grant reaches is one of those found;
//! * every granted port range is 1..=65535, first <= last, and never mixes
//!   ports below 1024 with higher ones.
//!
//! `Policy` keeps its networks private, so they are found the only way the
//! public API allows: every network comes from a `bridge=NAME` field of the
//! input, so each such field is looked up with `network_by_bridge`.

#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use netsetgo::error::Failure;
use netsetgo::policy::{self, Accounts, Network};
use netsetgo::privilege::Caller;

/// The kernel's rule for interface names (`dev_valid_name`), written out
/// independently of the parser's own check.
fn kernel_accepts(name: &str) -> bool {
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

fn check_network(net: &Network) {
    assert!(
        kernel_accepts(&net.bridge),
        "accepted bridge name the kernel refuses: {:?}",
        net.bridge
    );
    let gw = net.gateway;
    assert!(
        (16..=30).contains(&gw.prefix()),
        "accepted gateway prefix /{} for {:?}",
        gw.prefix(),
        net.name
    );
    assert!(
        gw.ip() != gw.network() && gw.ip() != gw.broadcast(),
        "accepted gateway {gw} that is not a host address"
    );
    if let Some(gw6) = net.gateway6 {
        assert!(
            (64..=120).contains(&gw6.prefix()),
            "accepted IPv6 gateway {gw6}"
        );
        // The lowest and highest lease offsets bound the derived addresses;
        // gateway6's own offset is the one that could collide.
        let first = u32::from(gw.network());
        let own = u128::from(gw6.ip()) - u128::from(gw6.network());
        let offsets = [1, gw.size() - 2].into_iter().chain(
            u32::try_from(own)
                .ok()
                .filter(|o| (1..gw.size() - 1).contains(o)),
        );
        for offset in offsets {
            let v4 = Ipv4Addr::from(first + offset);
            if v4 == gw.ip() {
                continue;
            }
            let IpAddr::V6(derived) = netsetgo::plan::container_addresses(&net, v4)[1].ip() else {
                panic!("no IPv6 address derived from {v4}");
            };
            assert!(
                gw6.contains(derived) && derived != gw6.ip(),
                "accepted gateway6 {gw6}: the lease {v4} derives {derived}"
            );
        }
    }
    if let Some(mtu) = net.mtu {
        assert!((68..=65_535).contains(&mtu), "accepted mtu {mtu}");
    }
}

/// Says yes to every grant: each word of the input is one of the caller's
/// user names, and every group exists with gid 0, which the caller is in.
struct Everyone(Vec<String>);

impl Accounts for Everyone {
    fn user_names(&self, _uid: u32) -> Result<Vec<String>, Failure> {
        Ok(self.0.clone())
    }
    fn group_id(&self, _name: &str) -> Result<Option<u32>, Failure> {
        Ok(Some(0))
    }
    fn groups_of(&self, _uid: u32) -> Result<Vec<u32>, Failure> {
        Ok(vec![0])
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = policy::parse(text) else {
        return;
    };
    // The same fields the parser sees: lines, then spaces and tabs.
    let words: Vec<&str> = text
        .lines()
        .flat_map(|l| l.split([' ', '\t']))
        .filter(|w| !w.is_empty())
        .collect();
    let mut bridges = HashSet::new();
    let mut names = HashSet::new();
    for bridge in words.iter().filter_map(|w| w.strip_prefix("bridge=")) {
        if let Some(net) = policy.network_by_bridge(bridge) {
            check_network(net);
            bridges.insert(net.bridge.clone());
            names.insert(net.name.clone());
        }
    }
    assert_eq!(bridges.len(), names.len(), "two networks share a name");
    let caller = Caller {
        uid: 1000,
        gid: 0,
        groups: vec![0],
    };
    let accounts = Everyone(words.iter().map(|w| w.to_string()).collect());
    let allowed = policy
        .allowances(&caller, &accounts)
        .expect("the fake account database never fails");
    for a in &allowed {
        assert!(
            bridges.contains(&a.network.bridge),
            "a grant reaches network {:?}, not found by its bridge",
            a.network.name
        );
        check_network(a.network);
        for ports in &a.ports {
            assert!(
                ports.first >= 1 && ports.first <= ports.last,
                "accepted port range {}-{}",
                ports.first,
                ports.last
            );
            assert!(
                ports.first >= 1024 || ports.last < 1024,
                "a range {}-{} grants privileged and unprivileged ports on one line",
                ports.first,
                ports.last
            );
        }
    }
});
