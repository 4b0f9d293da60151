//! The crate's examples, run for real: their code (the very files the crate
//! docs show) is compiled into this test and run inside throwaway
//! namespaces, entered by this thread only; the results are checked from
//! outside with `ip -j` and `nft -j`. Needs root; skips loudly otherwise.

mod common;

// The examples' `main`s parse a command line; these tests call the
// functions they call. Those are `pub` as a reader of the example would
// write them, which a module of this test cannot export.
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/attach.rs"]
mod attach;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/masquerade.rs"]
mod masquerade;

use common::{is_up, net, ping_from, TestNs};

#[test]
fn attach_example_wires_a_namespace_to_a_bridge() {
    require_root!("attach_example_wires_a_namespace_to_a_bridge");
    let host = TestNs::new("exh");
    let container = TestNs::new("exc");
    let target = container.open();
    let attached = host
        .open()
        .enter(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .expect("tokio runtime");
            runtime.block_on(attach::wire(
                &target,
                "brdemo0",
                net("10.20.0.1/24"),
                net("10.20.0.2/24"),
            ))
        })
        .expect("enter the host namespace")
        .expect("the example wires the namespace");

    assert_eq!(attached.peer.name, "eth0");
    let bridge = host.must_link("brdemo0");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    assert!(host.addr("brdemo0", "10.20.0.1").is_some());
    let end = host.must_link("veth-demo0");
    assert_eq!(end["master"], "brdemo0");
    assert_eq!(common::ifindex(&end), attached.host_index);
    assert!(is_up(&end));
    let eth0 = container.must_link("eth0");
    assert!(is_up(&eth0));
    assert_eq!(
        container.addr("eth0", "10.20.0.2").expect("address")["prefixlen"],
        24
    );
    assert_eq!(container.default_routes("-4")[0]["gateway"], "10.20.0.1");
    assert!(
        ping_from(&container, "10.20.0.1", 3),
        "no reply from the bridge"
    );
}

#[test]
fn masquerade_example_adds_once_and_removes() {
    require_root!("masquerade_example_adds_once_and_removes");
    let host = TestNs::new("exm");
    let ns = host.open();
    let apply = |what: &str| {
        ns.enter(|| masquerade::apply("exdemo", "brdemo0", what).map_err(|e| e.to_string()))
            .expect("enter the namespace")
            .expect("the example applies")
    };
    let nft = || {
        let mut args = vec!["netns", "exec", host.name.as_str()];
        args.extend(["nft", "-j", "list", "ruleset"]);
        common::run("ip", &args)
    };

    assert!(apply("10.20.0.0/24"), "the first call changes the ruleset");
    let rules = nft();
    assert!(rules.contains("\"masquerade\""), "{rules}");
    assert!(rules.contains("10.20.0.0"), "{rules}");
    assert!(!apply("10.20.0.0/24"), "the second call finds it in place");
    assert_eq!(nft().matches("\"masquerade\"").count(), 1);
    assert!(apply("--remove"));
    let rules = nft();
    assert!(!rules.contains("\"masquerade\""), "{rules}");
    assert!(!rules.contains("net-brdemo0"), "{rules}");
}
