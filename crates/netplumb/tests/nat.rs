//! `Nftables` against the real kernel. Needs root; every test works in its
//! own throwaway namespaces (`ip netns add nt-nat-...`, deleted on drop, also
//! on panic) and reads the result back with `nft -j` (package nftables).
//! Nothing here touches the namespace the tests run in.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Barrier;
use std::thread;

use common::{net, TestNs};
use netplumb::{Error, NetNs, Nftables, RawSocket, Step};
use serde_json::{json, Value};

const TABLE: &str = "nsgnat";

/// A throwaway named network namespace ([`TestNs`], deleted on drop) with
/// nf_tables helpers.
struct Ns(TestNs);

impl Deref for Ns {
    type Target = TestNs;

    fn deref(&self) -> &TestNs {
        &self.0
    }
}

impl Ns {
    fn new(tag: &str) -> Ns {
        Ns(TestNs::new(&format!("nat-{tag}")))
    }

    fn handle(&self) -> NetNs {
        self.open()
    }

    fn ruleset(&self) -> Value {
        serde_json::from_str(&self.run(&["nft", "-j", "list", "ruleset"]))
            .expect("nft -j prints JSON")
    }
}

/// The objects of one kind ("table", "chain", "rule") in `nft -j` output.
fn objects<'a>(listing: &'a Value, kind: &str) -> Vec<&'a Value> {
    listing["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get(kind))
        .collect()
}

fn rules<'a>(listing: &'a Value, chain: &str) -> Vec<&'a Value> {
    objects(listing, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain)
        .collect()
}

fn chain<'a>(listing: &'a Value, name: &str) -> Option<&'a Value> {
    objects(listing, "chain")
        .into_iter()
        .find(|c| c["name"] == name)
}

/// `<proto> saddr <addr>/<len> oifname != "<bridge>" masquerade` as nft
/// decodes it from the kernel.
fn masquerade_expr(proto: &str, addr: &str, len: u8, bridge: &str) -> Value {
    json!([
        {"match": {"op": "==",
                   "left": {"payload": {"protocol": proto, "field": "saddr"}},
                   "right": {"prefix": {"addr": addr, "len": len}}}},
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": bridge}},
        {"masquerade": null}
    ])
}

fn jump_expr(bridge: &str) -> Value {
    json!([{"jump": {"target": format!("net-{bridge}")}}])
}

/// Asserts the base chain is what `masquerade().add()` promises.
fn assert_base_chain(listing: &Value) {
    let base = chain(listing, "postrouting").expect("postrouting chain");
    assert_eq!(base["type"], "nat", "{base}");
    assert_eq!(base["hook"], "postrouting", "{base}");
    assert_eq!(base["prio"], 100, "{base}");
    assert_eq!(base["policy"], "accept", "{base}");
}

/// The expressions of every rule in `chain`.
fn exprs(listing: &Value, chain: &str) -> Vec<Value> {
    rules(listing, chain)
        .into_iter()
        .map(|r| r["expr"].clone())
        .collect()
}

#[test]
fn ensure_creates_table_chains_and_one_rule() {
    require_root!("ensure_creates_table_chains_and_one_rule");
    let ns = Ns::new("create");
    let nft = ns.nftables();

    // Host bits of the subnet are ignored.
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.1/24"))
        .execute()
        .unwrap());

    let listing = ns.list("inet", TABLE);
    assert_base_chain(&listing);
    assert!(chain(&listing, "net-br0").is_some(), "{listing}");
    assert_eq!(exprs(&listing, "postrouting"), vec![jump_expr("br0")]);
    assert_eq!(
        exprs(&listing, "net-br0"),
        vec![masquerade_expr("ip", "10.77.0.0", 24, "br0")]
    );
    // Only our table exists in the namespace.
    let tables = objects(&ns.ruleset(), "table")
        .into_iter()
        .map(|t| format!("{} {}", t["family"], t["name"]).replace('"', ""))
        .collect::<Vec<_>>();
    assert_eq!(tables, vec![format!("inet {TABLE}")]);
}

#[test]
fn repeated_calls_change_nothing() {
    require_root!("repeated_calls_change_nothing");
    let ns = Ns::new("repeat");
    let nft = ns.nftables();
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.0/24"))
        .execute()
        .unwrap());
    let first = ns.list_raw("inet", TABLE);

    // As for 100 containers on the same network, from one session...
    for _ in 0..100 {
        assert!(!nft
            .masquerade(TABLE)
            .add("br0", net("10.77.0.0/24"))
            .execute()
            .unwrap());
    }
    // ...and from a fresh one.
    assert!(!ns
        .nftables()
        .masquerade(TABLE)
        .add("br0", net("10.77.0.9/24"))
        .execute()
        .unwrap());

    assert_eq!(ns.list_raw("inet", TABLE), first, "the table changed");
    let listing = ns.list("inet", TABLE);
    assert_eq!(rules(&listing, "net-br0").len(), 1);
    assert_eq!(rules(&listing, "postrouting").len(), 1);
}

/// Eight sessions add `subnet` ten times each, all
/// starting at once; returns how many calls reported a change.
fn race(ns: &Ns, subnet: &str) -> usize {
    let path = format!("/run/netns/{}", ns.name);
    let start = Barrier::new(8);
    thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (path, start) = (path.clone(), &start);
                s.spawn(move || {
                    let nft = Nftables::open_in(&NetNs::from_path(&path).unwrap()).unwrap();
                    start.wait();
                    (0..10)
                        .filter(|_| {
                            nft.masquerade(TABLE)
                                .add("br0", net(subnet))
                                .execute()
                                .unwrap()
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

#[test]
fn concurrent_callers_add_one_rule() {
    require_root!("concurrent_callers_add_one_rule");
    let ns = Ns::new("race");
    // Racing to create the network's chain...
    assert_eq!(race(&ns, "10.77.0.0/24"), 1, "exactly one call creates");
    // ...and racing to add a subnet to a chain that exists.
    assert_eq!(race(&ns, "fd00:77::/64"), 1, "exactly one call adds");
    let listing = ns.list("inet", TABLE);
    assert_eq!(
        exprs(&listing, "net-br0"),
        vec![
            masquerade_expr("ip", "10.77.0.0", 24, "br0"),
            masquerade_expr("ip6", "fd00:77::", 64, "br0"),
        ]
    );
    assert_eq!(exprs(&listing, "postrouting"), vec![jump_expr("br0")]);
}

#[test]
fn two_networks_get_one_rule_each() {
    require_root!("two_networks_get_one_rule_each");
    let ns = Ns::new("two");
    let nft = ns.nftables();
    for _ in 0..2 {
        nft.masquerade(TABLE)
            .add("br0", net("10.77.0.0/24"))
            .execute()
            .unwrap();
        // A prefix that does not end on a byte boundary.
        nft.masquerade(TABLE)
            .add("br1", net("10.78.16.0/20"))
            .execute()
            .unwrap();
    }
    let listing = ns.list("inet", TABLE);
    assert_base_chain(&listing);
    assert_eq!(
        exprs(&listing, "postrouting"),
        vec![jump_expr("br0"), jump_expr("br1")]
    );
    assert_eq!(
        exprs(&listing, "net-br0"),
        vec![masquerade_expr("ip", "10.77.0.0", 24, "br0")]
    );
    assert_eq!(
        exprs(&listing, "net-br1"),
        vec![masquerade_expr("ip", "10.78.16.0", 20, "br1")]
    );
}

#[test]
fn ipv6_subnet_next_to_ipv4() {
    require_root!("ipv6_subnet_next_to_ipv4");
    let ns = Ns::new("v6");
    let nft = ns.nftables();
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.1/24"))
        .execute()
        .unwrap());
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("fd00:77::1/64"))
        .execute()
        .unwrap());
    assert!(!nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.1/24"))
        .execute()
        .unwrap());
    assert!(!nft
        .masquerade(TABLE)
        .add("br0", net("fd00:77::1/64"))
        .execute()
        .unwrap());

    let listing = ns.list("inet", TABLE);
    assert_eq!(exprs(&listing, "postrouting"), vec![jump_expr("br0")]);
    assert_eq!(
        exprs(&listing, "net-br0"),
        vec![
            masquerade_expr("ip", "10.77.0.0", 24, "br0"),
            masquerade_expr("ip6", "fd00:77::", 64, "br0"),
        ]
    );
}

#[test]
fn other_tables_are_left_alone() {
    require_root!("other_tables_are_left_alone");
    let ns = Ns::new("other");
    ns.run(&["nft", "add", "table", "ip", "other"]);
    ns.run(&["nft", "add", "chain", "ip", "other", "c"]);
    ns.run(&["nft", "add", "rule", "ip", "other", "c", "counter"]);
    // Same table name, other family: not ours either.
    ns.run(&["nft", "add", "table", "ip", TABLE]);
    ns.run(&["nft", "add", "chain", "ip", TABLE, "postrouting"]);
    let other = ns.list_raw("ip", "other");
    let same_name = ns.list_raw("ip", TABLE);

    let nft = ns.nftables();
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.0/24"))
        .execute()
        .unwrap());
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("fd00:77::/64"))
        .execute()
        .unwrap());
    assert!(nft
        .masquerade(TABLE)
        .add("br1", net("10.78.0.0/16"))
        .execute()
        .unwrap());
    assert!(nft.masquerade(TABLE).remove("br1").execute().unwrap());

    assert_eq!(ns.list_raw("ip", "other"), other);
    assert_eq!(ns.list_raw("ip", TABLE), same_name);
}

#[test]
fn remove_deletes_only_that_network() {
    require_root!("remove_deletes_only_that_network");
    let ns = Ns::new("remove");
    let nft = ns.nftables();
    nft.masquerade(TABLE)
        .add("br0", net("10.77.0.0/24"))
        .execute()
        .unwrap();
    nft.masquerade(TABLE)
        .add("br0", net("fd00:77::/64"))
        .execute()
        .unwrap();
    nft.masquerade(TABLE)
        .add("br1", net("10.78.0.0/16"))
        .execute()
        .unwrap();

    assert!(nft.masquerade(TABLE).remove("br0").execute().unwrap());
    let listing = ns.list("inet", TABLE);
    assert!(chain(&listing, "net-br0").is_none(), "{listing}");
    assert_eq!(exprs(&listing, "postrouting"), vec![jump_expr("br1")]);
    assert_eq!(
        exprs(&listing, "net-br1"),
        vec![masquerade_expr("ip", "10.78.0.0", 16, "br1")]
    );
    assert!(!nft.masquerade(TABLE).remove("br0").execute().unwrap());
    // A network that never existed, in a table that does not exist.
    assert!(!nft.masquerade("absent").remove("br9").execute().unwrap());

    // And it can come back.
    assert!(nft
        .masquerade(TABLE)
        .add("br0", net("10.77.0.0/24"))
        .execute()
        .unwrap());
    let listing = ns.list("inet", TABLE);
    assert_eq!(
        exprs(&listing, "postrouting"),
        vec![jump_expr("br1"), jump_expr("br0")]
    );
}

#[test]
fn foreign_postrouting_chain_is_an_error_and_nothing_changes() {
    require_root!("foreign_postrouting_chain_is_an_error_and_nothing_changes");
    for existing in [
        "add chain inet nsgnat postrouting { type nat hook postrouting priority 50; }",
        "add chain inet nsgnat postrouting { type filter hook postrouting priority 100; }",
        "add chain inet nsgnat postrouting",
    ] {
        let ns = Ns::new("conflict");
        ns.run(&["nft", "add", "table", "inet", TABLE]);
        ns.run(&["nft", existing]);
        let before = ns.list_raw("inet", TABLE);

        let err = ns
            .nftables()
            .masquerade(TABLE)
            .add("br0", net("10.77.0.0/24"))
            .execute()
            .unwrap_err();
        eprintln!("{existing}: {err}");
        assert_eq!(err.step(), Some(Step::NftCreate), "{existing}: {err}");
        assert!(err.errno().is_some(), "{existing}: {err}");
        assert!(
            err.to_string()
                .starts_with("create nftables chain inet nsgnat postrouting: "),
            "{existing}: {err}"
        );
        // The batch was refused as a whole: no net-br0 chain, no rule.
        assert_eq!(ns.list_raw("inet", TABLE), before, "{existing}");
    }
}

#[test]
fn bad_names_and_sockets_are_refused() {
    require_root!("bad_names_and_sockets_are_refused");
    let ns = Ns::new("names");
    let nft = ns.nftables();
    let subnet = net("10.77.0.0/24");
    assert!(matches!(
        nft.masquerade(TABLE).add("br/0", subnet).execute(),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        nft.masquerade(TABLE)
            .add("a-bridge-name-too-long", subnet)
            .execute(),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        nft.masquerade("no spaces").add("br0", subnet).execute(),
        Err(Error::InvalidTableName(_))
    ));
    assert!(matches!(
        nft.masquerade("").remove("br0").execute(),
        Err(Error::InvalidTableName(_))
    ));
    assert_eq!(ns.run(&["nft", "list", "ruleset"]).trim(), "");

    let route = ns
        .handle()
        .enter(|| RawSocket::new(0 /* NETLINK_ROUTE */))
        .unwrap()
        .unwrap();
    let err = Nftables::from_socket(route).unwrap_err();
    assert_eq!(err.step(), Some(Step::OpenSocket), "{err}");
}

/// A one-shot TCP server in `ns` that prints the peer address of the
/// first connection it accepts. Killed on drop.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(ns: &Ns, addr: &str, port: u16) -> Server {
        let script = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{addr}', {port}))\n\
             s.listen(8)\n\
             s.settimeout(25)\n\
             print('listening', flush=True)\n\
             c, peer = s.accept()\n\
             print(peer[0], flush=True)\n\
             c.sendall(b'hello\\n')\n\
             c.close()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "timeout", "30", "python3", "-c"])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server output");
        assert_eq!(line.trim(), "listening", "server did not start");
        Server { child, stdout }
    }

    /// The next line the server prints (bounded by its own timeouts).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server output");
        line.trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects from `ns` with a 2 s timeout; the first line received, or None.
fn fetch(ns: &Ns, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket\n\
         s = socket.create_connection(('{addr}', {port}), timeout=2)\n\
         print(s.makefile().readline().strip())\n"
    );
    let out = ns.output(&["timeout", "10", "python3", "-c", &script]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn masqueraded_container_reaches_outside_as_the_host() {
    require_root!("masqueraded_container_reaches_outside_as_the_host");
    let outside = Ns::new("out");
    let host = Ns::new("host");
    let container = Ns::new("ct");

    // outside <-(192.0.2.0/24)-> host; outside has no route to 10.77.0.0/24.
    host.run(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "up1",
        "netns",
        &outside.name,
    ]);
    host.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    host.run(&["ip", "link", "set", "up0", "up"]);
    outside.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up1"]);
    outside.run(&["ip", "link", "set", "up1", "up"]);
    outside.run(&["ip", "link", "set", "lo", "up"]);

    // host: bridge br0 10.77.0.1/24 with the container's veth on it.
    host.run(&["ip", "link", "add", "br0", "type", "bridge"]);
    host.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "br0"]);
    host.run(&["ip", "link", "set", "br0", "up"]);
    host.run(&[
        "ip",
        "link",
        "add",
        "ct0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &container.name,
    ]);
    host.run(&["ip", "link", "set", "ct0", "master", "br0", "up"]);
    container.run(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    container.run(&["ip", "link", "set", "eth0", "up"]);
    container.run(&["ip", "link", "set", "lo", "up"]);
    container.run(&["ip", "route", "add", "default", "via", "10.77.0.1"]);
    // The test host namespace's own sysctl.
    host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);

    let mut server = Server::start(&outside, "192.0.2.2", 8080);

    // Without masquerading the reply has no way back.
    assert_eq!(fetch(&container, "192.0.2.2", 8080), None);

    assert!(host
        .nftables()
        .masquerade(TABLE)
        .add("br0", net("10.77.0.0/24"))
        .execute()
        .unwrap());
    assert_eq!(
        fetch(&container, "192.0.2.2", 8080).as_deref(),
        Some("hello")
    );
    assert_eq!(
        server.line(),
        "192.0.2.1",
        "the server saw the host's uplink address"
    );
}
