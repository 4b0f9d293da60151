//! `Netlink::bridge_ports` against the kernel: exactly the links attached to
//! the bridge, in a throwaway namespace, compared with `ip -j link show
//! master`. Needs root; skips loudly otherwise.

mod common;

use common::{add_plain_device, as_vec, TestNs};

#[tokio::test(flavor = "current_thread")]
async fn bridge_ports_lists_exactly_the_bridges_ports() {
    require_root!("bridge_ports_lists_exactly_the_bridges_ports");
    let host = TestNs::new("ports");
    let nl = host.session();
    let bridge = nl.ensure_bridge("brp0", None).await.unwrap().link;
    let other = nl.ensure_bridge("brp1", None).await.unwrap().link;
    assert!(nl.bridge_ports(bridge.index).await.unwrap().is_empty());

    host.ip(&["link", "add", "pa0", "type", "veth", "peer", "pa1"]);
    host.ip(&["link", "add", "pb0", "type", "veth", "peer", "pb1"]);
    add_plain_device(&host, "pc0");
    host.ip(&["link", "set", "pa0", "master", "brp0"]);
    host.ip(&["link", "set", "pc0", "master", "brp0"]);
    host.ip(&["link", "set", "pb0", "master", "brp1"]);

    let mut ours: Vec<String> = nl
        .bridge_ports(bridge.index)
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            assert_eq!(l.master, Some(bridge.index), "{l:?}");
            l.name
        })
        .collect();
    ours.sort();
    let mut seen: Vec<String> = as_vec(host.ip_json(&["link", "show", "master", "brp0"]))
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(ours, vec!["pa0".to_string(), "pc0".to_string()]);
    assert_eq!(ours, seen);
    let theirs = nl.bridge_ports(other.index).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].name, "pb0");
    assert_eq!(theirs[0].kind.as_deref(), Some("veth"));
}
