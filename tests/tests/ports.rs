//! Published ports (issue 11), end to end: `-publish` as an unprivileged
//! user against the installed 4755 copy, in throwaway worlds joined to an
//! "outside" namespace by their uplink. A client outside, the host itself
//! and other containers reach a server in the container on the world's
//! local addresses, and the server sees the client's real address (a
//! container on the same bridge is masqueraded to the gateway: hairpin);
//! TCP and UDP, IPv4 and IPv6; a mapping bound to one host address works
//! only there. A mapping lives and dies with its lease (poststop, `-delete`,
//! exit plus garbage collection) and leaves the helper's tables as they
//! were and every other table byte for byte unchanged; `-json` lists the
//! mappings and `-check` notices one removed behind its back. Every
//! refusal is proven to change nothing, the world's whole nftables
//! ruleset included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netsetgo_e2e::checks::{
    assert_refused_nft, assert_refused_unchanged_nft, json_object, wire, wire_line, wire_with,
};
use netsetgo_e2e::fixtures::{wait_for_ports, world_with, A, B, GATEWAY};
use netsetgo_e2e::nft::{delete_element, table_text, Kind, NftTable, GUARD_COMMON_CHAIN};
use netsetgo_e2e::traffic::{
    netns_prefix, request, request_retrying, token, Outside, Server, OUTSIDE4, OUTSIDE6, UPLINK4,
    UPLINK6,
};
use netsetgo_e2e::{
    add_to_group, ensure_group, ensure_user, require_root, Container, Output, Wired, World,
};
use serde_json::{json, Value};

/// brg0 is dual-stack (so every mapping without a host address has IPv4
/// and IPv6 targets); labbr0 is another bridge, IPv4 only. nsg-a may
/// publish TCP and UDP 8000-8999 on brg0, nsg-b TCP 8000-8099; nobody may
/// publish anything below 1024.
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64
network lab bridge=labbr0 gateway=10.20.0.1/24
allow nsg-a default 16
allow nsg-b default 4
allow nsg-a lab 4
publish nsg-a default tcp 8000-8999
publish nsg-a default udp 8000-8999
publish nsg-b default tcp 8000-8099
publish nsg-a lab tcp 8000-8999
";

/// How long a request is retried before a published port counts as
/// unreachable (neighbour resolution, DAD of fresh IPv6 addresses).
const TRIES: u32 = 15;

/// How long a server may take to report a peer it answered.
const PEER: Duration = Duration::from_secs(5);

/// Wires `c` as its own user with one `-publish` per mapping.
#[track_caller]
fn publish(world: &World, c: &Container, mappings: &[&str]) -> Wired {
    let mut args = Vec::new();
    for m in mappings {
        args.extend(["-publish", m]);
    }
    wire_with(world, c, &args)
}

/// The prefix that runs a command in the world's own network namespace.
fn host(world: &World) -> Vec<String> {
    netns_prefix(world.pid())
}

/// A server in container `c` on every address (IPv4 and IPv6), `port`.
fn serve(c: &Container, proto: &str, port: u16) -> Server {
    Server::start(&c.enter(), proto, "::", port)
}

/// A request from `prefix` to `addr`:`port` must be answered by `server`,
/// which must have seen the client as `peer`.
#[track_caller]
fn assert_reaches(
    who: &str,
    prefix: &[String],
    server: &mut Server,
    proto: &str,
    addr: &str,
    port: u16,
    peer: &str,
) {
    let token = token();
    let out = request_retrying(prefix, proto, addr, port, &token, TRIES);
    assert!(
        out.success() && out.stdout.trim_end().ends_with(" hello"),
        "{who}: {proto} {addr} port {port} not answered:\n{out}"
    );
    assert_eq!(
        server.peer_of(&token, PEER).as_deref(),
        Some(peer),
        "{who}: the server saw another client address ({proto} {addr} port {port})"
    );
}

/// A request from `prefix` to `addr`:`port` must not be answered.
#[track_caller]
fn assert_unanswered(who: &str, prefix: &[String], proto: &str, addr: &str, port: u16) {
    let out = request(prefix, proto, addr, port, &token());
    assert!(
        !out.success() && !out.stdout.contains("hello"),
        "{who}: {proto} {addr} port {port} was answered:\n{out}"
    );
}

/// The elements of the helper's publishing maps that mention host port
/// `port`, by kind (an empty map if the table does not exist).
fn mapped(world: &World, port: u16) -> Vec<(Kind, String)> {
    let Some(table) = NftTable::publishing(world) else {
        return Vec::new();
    };
    let needle = format!(" . {port} ");
    table
        .elements()
        .into_iter()
        .flat_map(|(kind, elems)| elems.into_iter().map(move |e| (kind, e)))
        .filter(|(_, e)| format!("{e} ").contains(&needle))
        .collect()
}

/// The helper's two tables, normalised (see [`NftTable::normalised`]).
fn own_tables(world: &World) -> (Option<Vec<Value>>, Option<Vec<Value>>) {
    (
        NftTable::publishing(world).map(|t| t.normalised()),
        // The guard's ports' chains and rules: its tables and their shared
        // chains are shared structure, and those a call made stay after
        // the call's lease is gone.
        NftTable::guard(world).map(|t| {
            t.normalised()
                .into_iter()
                .filter(|item| {
                    item.get("table").is_none() && !in_common_chain(item) && !empty_set(item)
                })
                .collect()
        }),
    )
}

/// Whether `item` is a set without elements: of a guard table, one of the
/// sets its shared chain looks ports up in (the hybrid guard),
/// shared structure too, once no port of the table is left.
fn empty_set(item: &Value) -> bool {
    item.get("set").is_some_and(|set| set.get("elem").is_none())
}

/// Whether `item` of a guard table is its shared chain or one of that
/// chain's rules.
fn in_common_chain(item: &Value) -> bool {
    let common = Some(GUARD_COMMON_CHAIN);
    item.get("chain").and_then(|c| c["name"].as_str()) == common
        || item.get("rule").and_then(|r| r["chain"].as_str()) == common
}

/// Tables of someone else, made before the helper runs: a NAT table with a
/// set and a DNAT rule of its own, and a bridge table.
const FOREIGN: &str = "\
table inet foreign {
    set friends {
        type ipv4_addr
        elements = { 192.0.2.77, 192.0.2.78 }
    }
    chain pre {
        type nat hook prerouting priority -150; policy accept;
        ip saddr @friends tcp dport 7000 dnat ip to 10.99.0.1:7000
    }
}
table bridge foreignbr {
    chain pre {
        type filter hook prerouting priority 50; policy accept;
        ether type arp accept
    }
}
";

/// The foreign tables as `nft -a list table` prints them (with handles).
fn foreign_tables(world: &World) -> Vec<Option<String>> {
    vec![
        table_text(world, "inet", "foreign"),
        table_text(world, "bridge", "foreignbr"),
    ]
}

/// An OCI state for the hook, as a runtime writes it.
fn oci_state(id: &str, status: &str, pid: Option<u32>) -> Vec<u8> {
    let mut state = json!({"ociVersion": "1.0.2", "id": id, "status": status,
                           "bundle": "/nonexistent"});
    if let Some(pid) = pid {
        state["pid"] = json!(pid);
    }
    state.to_string().into_bytes()
}

fn unique_id(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("nsg-e2e-{tag}-{}-{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------
// Traffic

#[test]
fn clients_reach_a_published_tcp_port_with_their_own_address() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    let w = publish(&world, &c, &["tcp:8080:80"]);
    assert_eq!(w.ip(), "10.10.10.2");
    let other = world.container(A);
    assert_eq!(wire(&world, &other).ip(), "10.10.10.3");
    let far = world.container(A);
    assert_eq!(
        wire_with(&world, &far, &["-bridgeName", "labbr0"]).ip(),
        "10.20.0.2"
    );
    let mut server = serve(&c, "tcp", 80);

    for (who, prefix, addr, peer) in [
        ("the outside", outside.enter(), UPLINK4, OUTSIDE4),
        ("the outside over IPv6", outside.enter(), UPLINK6, OUTSIDE6),
        (
            "the host, to its uplink address",
            host(&world),
            UPLINK4,
            UPLINK4,
        ),
        (
            "the host, to its IPv6 uplink",
            host(&world),
            UPLINK6,
            UPLINK6,
        ),
        ("the host, to the gateway", host(&world), GATEWAY, GATEWAY),
        (
            "a container on another bridge",
            far.enter(),
            UPLINK4,
            "10.20.0.2",
        ),
        // Hairpin: the reply would bypass the host, so the request is
        // masqueraded to the gateway.
        (
            "a container on the same bridge",
            other.enter(),
            UPLINK4,
            GATEWAY,
        ),
        (
            "a container on the same bridge, to the gateway",
            other.enter(),
            GATEWAY,
            GATEWAY,
        ),
    ] {
        assert_reaches(who, &prefix, &mut server, "tcp", addr, 8080, peer);
    }

    // Only the published port is translated, and never loopback: the
    // outside has no route to the container itself.
    assert_unanswered(
        "the outside, another port",
        &outside.enter(),
        "tcp",
        UPLINK4,
        8081,
    );
    assert_unanswered(
        "the host, on loopback",
        &host(&world),
        "tcp",
        "127.0.0.1",
        8080,
    );
    let route = outside.run(&["ip", "route", "get", "10.10.10.2"]);
    assert!(
        !route.success(),
        "the outside has a route to the container:\n{route}"
    );
    assert_eq!(
        server.peers_within(Duration::from_millis(300)),
        Vec::<String>::new(),
        "the server saw requests it should not have"
    );
}

#[test]
fn clients_reach_a_published_udp_port_with_their_own_address() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    publish(&world, &c, &["udp:8053:53"]);
    let other = world.container(A);
    wire(&world, &other);
    let mut server = serve(&c, "udp", 53);

    for (who, prefix, addr, peer) in [
        ("the outside", outside.enter(), UPLINK4, OUTSIDE4),
        ("the outside over IPv6", outside.enter(), UPLINK6, OUTSIDE6),
        ("the host", host(&world), UPLINK4, UPLINK4),
        (
            "a container on the same bridge",
            other.enter(),
            UPLINK4,
            GATEWAY,
        ),
    ] {
        assert_reaches(who, &prefix, &mut server, "udp", addr, 8053, peer);
    }
    // TCP on the same port is not published.
    assert_unanswered("the outside, TCP", &outside.enter(), "tcp", UPLINK4, 8053);
}

#[test]
fn a_mapping_on_one_host_address_works_only_there() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    world
        .run(&["ip", "addr", "add", "192.0.2.5/24", "dev", "up0"])
        .expect_success("a second uplink address");
    let c = world.container(A);
    publish(
        &world,
        &c,
        &["tcp:192.0.2.1:8080:80", "tcp:[2001:db8:2::1]:8082:82"],
    );
    let any = world.container(A);
    publish(&world, &any, &["tcp:8081:81"]);
    let mut server = serve(&c, "tcp", 80);
    let mut server6 = serve(&c, "tcp", 82);
    let mut control = serve(&any, "tcp", 81);

    let out = outside.enter();
    assert_reaches(
        "the outside, bound address",
        &out,
        &mut server,
        "tcp",
        UPLINK4,
        8080,
        OUTSIDE4,
    );
    assert_reaches(
        "the outside, bound IPv6",
        &out,
        &mut server6,
        "tcp",
        UPLINK6,
        8082,
        OUTSIDE6,
    );
    // The other local address is reachable (a mapping without an address
    // works on it), but the bound mappings do not answer there.
    assert_reaches(
        "the outside, unbound mapping",
        &out,
        &mut control,
        "tcp",
        "192.0.2.5",
        8081,
        OUTSIDE4,
    );
    assert_unanswered("the outside, other address", &out, "tcp", "192.0.2.5", 8080);
    assert_unanswered(
        "the outside, IPv4 of an IPv6 mapping",
        &out,
        "tcp",
        UPLINK4,
        8082,
    );
    assert_unanswered("the host, the gateway", &host(&world), "tcp", GATEWAY, 8080);
    assert_unanswered(
        "the host, IPv6 gateway",
        &host(&world),
        "tcp",
        "fd00:10::1",
        8082,
    );
    assert_eq!(
        server.peers_within(Duration::from_millis(300)),
        Vec::<String>::new()
    );
    assert_eq!(
        server6.peers_within(Duration::from_millis(300)),
        Vec::<String>::new()
    );

    // The kernel holds them in the per-address maps.
    let table = NftTable::publishing(&world).expect("table inet netsetgo");
    let by_addr4 = table.set(Kind::Dnat4Addr).texts();
    assert_eq!(
        by_addr4,
        ["tcp . 192.0.2.1 . 8080 : 10.10.10.2 . 80"],
        "{table:?}"
    );
    let by_addr6 = table.set(Kind::Dnat6Addr).texts();
    assert_eq!(
        by_addr6,
        ["tcp . 2001:db8:2::1 . 8082 : fd00:10::2 . 82"],
        "{table:?}"
    );
}

// ---------------------------------------------------------------------------
// A mapping lives and dies with its lease

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// The container was wired by an OCI createRuntime hook; it exits and
    /// the poststop hook runs.
    Poststop,
    /// `-delete -pid` while it runs.
    Delete,
    /// It exits; a later call's garbage collection frees its lease.
    ExitAndCollect,
}

fn the_mapping_is_removed_by(teardown: Teardown) {
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    nft_apply(&world, FOREIGN);
    let foreign_before = foreign_tables(&world);
    assert!(
        foreign_before.iter().all(Option::is_some),
        "{foreign_before:?}"
    );

    // Someone else's mapping, before and after.
    let keeper = world.container(B);
    assert_eq!(
        publish(&world, &keeper, &["tcp:8090:80"]).ip(),
        "10.10.10.2"
    );
    let mut keeper_server = serve(&keeper, "tcp", 80);
    let baseline = own_tables(&world);
    assert!(baseline.0.is_some() && baseline.1.is_some(), "{baseline:?}");

    let mut c = world.container(A);
    let mappings = ["tcp:8080:80", "udp:8053:53"];
    let id = unique_id("ports");
    let mut hook_args = vec!["-oci-hook"];
    for m in mappings {
        hook_args.extend(["-publish", m]);
    }
    if teardown == Teardown::Poststop {
        let out = world.netsetgo_stdin(A, &hook_args, &oci_state(&id, "creating", Some(c.pid())));
        assert_eq!(out.code(), Some(0), "createRuntime hook:\n{out}");
        let wired = Wired::parse(&out.stdout).expect("one success line");
        assert_eq!(wired.ip(), "10.10.10.3", "{out}");
        let leases = world.leases("brg0");
        assert!(
            leases
                .iter()
                .any(|l| l.container.as_deref() == Some(id.as_str())),
            "no lease recorded for {id}: {leases:?}"
        );
    } else {
        assert_eq!(publish(&world, &c, &mappings).ip(), "10.10.10.3");
    }

    // It works, and the kernel holds exactly its elements.
    let mut server = serve(&c, "tcp", 80);
    let mut udp = serve(&c, "udp", 53);
    let out = outside.enter();
    assert_reaches(
        "the outside",
        &out,
        &mut server,
        "tcp",
        UPLINK4,
        8080,
        OUTSIDE4,
    );
    assert_reaches(
        "the outside",
        &out,
        &mut udp,
        "udp",
        UPLINK6,
        8053,
        OUTSIDE6,
    );
    let held = |world: &World| {
        let mut all = mapped(world, 8080);
        all.extend(mapped(world, 8053));
        all.sort();
        all
    };
    let expected = vec![
        (Kind::Published, "tcp . 8080 : 10.10.10.3".to_string()),
        (Kind::Published, "udp . 8053 : 10.10.10.3".to_string()),
        (Kind::Dnat4, "tcp . 8080 : 10.10.10.3 . 80".to_string()),
        (Kind::Dnat4, "udp . 8053 : 10.10.10.3 . 53".to_string()),
        (Kind::Dnat6, "tcp . 8080 : fd00:10::3 . 80".to_string()),
        (Kind::Dnat6, "udp . 8053 : fd00:10::3 . 53".to_string()),
    ];
    let mut expected = expected;
    expected.sort();
    assert_eq!(held(&world), expected, "{:?}", NftTable::publishing(&world));
    drop(server);
    drop(udp);

    // The administrator revokes nsg-a's publish grants meanwhile: what
    // was published still goes with its lease.
    let revoked: String = POLICY
        .lines()
        .filter(|l| !l.starts_with("publish nsg-a "))
        .map(|l| format!("{l}\n"))
        .collect();
    world.set_policy(&revoked);

    match teardown {
        Teardown::Poststop => {
            c.kill();
            wait_for_ports(&world, 1);
            assert_eq!(
                held(&world),
                expected,
                "the kernel alone removed the mapping"
            );
            let out = world.netsetgo_stdin(A, &hook_args, &oci_state(&id, "stopped", None));
            assert_eq!(out.code(), Some(0), "poststop hook:\n{out}");
        }
        Teardown::Delete => {
            let out = world.netsetgo(A, &["-delete", "-pid", &c.pid_arg()]);
            assert_eq!(out.code(), Some(0), "-delete:\n{out}");
        }
        Teardown::ExitAndCollect => {
            c.kill();
            wait_for_ports(&world, 1);
            assert_eq!(held(&world), expected, "removed before any call");
            let later = world.container(B);
            wire(&world, &later);
            assert_eq!(held(&world), Vec::new(), "the next call did not collect it");
            let out = world.netsetgo(B, &["-delete", "-pid", &later.pid_arg()]);
            assert_eq!(out.code(), Some(0), "-delete of the later one:\n{out}");
        }
    }

    // Gone: from the kernel, from the traffic, from the state; the
    // helper's tables are as before it, every other table byte for byte.
    assert_eq!(
        held(&world),
        Vec::new(),
        "{:?}",
        NftTable::publishing(&world)
    );
    let leases = world.leases("brg0");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(
        own_tables(&world),
        baseline,
        "the helper's tables differ from before"
    );
    assert_eq!(
        foreign_tables(&world),
        foreign_before,
        "a foreign table changed"
    );
    assert_unanswered("the outside, after", &out, "tcp", UPLINK4, 8080);
    assert_unanswered("the outside, after", &out, "udp", UPLINK4, 8053);
    assert_reaches(
        "the outside, to the keeper",
        &out,
        &mut keeper_server,
        "tcp",
        UPLINK4,
        8090,
        OUTSIDE4,
    );
    // And the port is free for anyone granted it.
    let next = world.container(B);
    publish(&world, &next, &["tcp:8080:80"]);
}

fn nft_apply(world: &World, text: &str) {
    netsetgo_e2e::nft::apply(world, &[], text).expect_success("nft -f the foreign tables");
}

#[test]
fn poststop_removes_the_mapping_and_nothing_else() {
    require_root!();
    the_mapping_is_removed_by(Teardown::Poststop);
}

#[test]
fn delete_removes_the_mapping_and_nothing_else() {
    require_root!();
    the_mapping_is_removed_by(Teardown::Delete);
}

#[test]
fn exit_and_garbage_collection_remove_the_mapping_and_nothing_else() {
    require_root!();
    the_mapping_is_removed_by(Teardown::ExitAndCollect);
}

// ---------------------------------------------------------------------------
// -json and -check

/// The `published` list of `-json`, sorted.
#[track_caller]
fn published(json: &serde_json::Map<String, Value>) -> Vec<String> {
    let list = json["published"]
        .as_array()
        .unwrap_or_else(|| panic!("no published list: {json:?}"));
    let mut all: Vec<String> = list.iter().map(Value::to_string).collect();
    all.sort();
    all
}

fn mapping(proto: &str, address: Option<&str>, host_port: u16, container_port: u16) -> String {
    json!({"protocol": proto, "host_address": address, "host_port": host_port,
           "container_port": container_port})
    .to_string()
}

#[test]
fn json_lists_the_mappings_and_check_verifies_them() {
    require_root!();
    let world = world_with(POLICY);
    let _outside = Outside::new(&world);
    let c = world.container(A);
    let pid = c.pid_arg();
    let out = world.netsetgo(
        A,
        &[
            "-json",
            "-publish",
            "tcp:8080:80",
            "-publish",
            "udp:8053:53",
            "-publish",
            "tcp:192.0.2.1:8081:81",
            "-publish",
            "tcp:[2001:db8:2::1]:8082:82",
            "-pid",
            &pid,
        ],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    let wired = json_object(&out);
    let mut expected = vec![
        mapping("tcp", None, 8080, 80),
        mapping("udp", None, 8053, 53),
        mapping("tcp", Some("192.0.2.1"), 8081, 81),
        mapping("tcp", Some("2001:db8:2::1"), 8082, 82),
    ];
    expected.sort();
    assert_eq!(published(&wired), expected, "{out}");
    assert_eq!(wired["guard"], json!(true), "guard is on by default: {out}");
    assert_eq!(wired["isolated"], json!(false), "{out}");

    // -check -json: intact, and the same facts.
    let out = world.netsetgo(A, &["-check", "-json", "-pid", &pid]);
    assert_eq!(out.code(), Some(0), "{out}");
    let mut checked = json_object(&out);
    assert_eq!(checked.remove("intact"), Some(json!(true)), "{out}");
    assert_eq!(checked, wired, "-check -json vs the creating call");

    // Without -publish: an empty list.
    let plain = world.container(A);
    let out = world.netsetgo(A, &["-json", "-pid", &plain.pid_arg()]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(json_object(&out)["published"], json!([]), "{out}");

    // A second mapped container, to break its claim rather than a target.
    let claimed = world.container(A);
    publish(&world, &claimed, &["tcp:8085:80"]);
    let claimed_pid = claimed.pid_arg();
    let out = world.netsetgo(A, &["-check", "-pid", &claimed_pid]);
    assert_eq!(out.code(), Some(0), "{out}");

    // One target element of the first removed behind its back: broken.
    let table = NftTable::publishing(&world).expect("table inet netsetgo");
    let by_addr = table.set(Kind::Dnat4Addr);
    let key = by_addr
        .keys()
        .into_iter()
        .find(|k| k.to_string().contains("8081"))
        .unwrap_or_else(|| panic!("no element for 8081: {by_addr:?}"));
    delete_element(&world, &by_addr, &key);
    assert_broken(&world, &pid);
    // The other container is still intact.
    let out = world.netsetgo(A, &["-check", "-pid", &claimed_pid]);
    assert_eq!(out.code(), Some(0), "{out}");

    // Its claim removed behind its back: broken too.
    let claims = table.set(Kind::Published);
    let key = claims
        .keys()
        .into_iter()
        .find(|k| k.to_string().contains("8085"))
        .unwrap_or_else(|| panic!("no claim of 8085: {claims:?}"));
    delete_element(&world, &claims, &key);
    assert_broken(&world, &claimed_pid);
}

/// `-check` and `-check -json` of `pid` say it is broken (exit 1).
#[track_caller]
fn assert_broken(world: &World, pid: &str) {
    let out = world.netsetgo(A, &["-check", "-pid", pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.starts_with("netsetgo: ") && out.stderr.lines().count() == 1,
        "{out}"
    );
    let out = world.netsetgo(A, &["-check", "-json", "-pid", pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(json_object(&out)["error"], json!("broken"), "{out}");
}

#[test]
fn the_publishing_table_can_be_saved_and_restored() {
    require_root!();
    let world = world_with(POLICY);
    let _outside = Outside::new(&world);
    let c = world.container(A);
    publish(&world, &c, &["tcp:8080:80", "udp:192.0.2.1:8053:53"]);
    let saved = table_text(&world, "inet", "netsetgo").expect("table inet netsetgo");
    // `nft -c -f`: parsed and checked, nothing committed.
    let out = netsetgo_e2e::nft::apply(&world, &["-c"], &saved);
    assert!(
        out.success(),
        "nft -f of the listed table fails:\n{out}\n{saved}"
    );
}

// ---------------------------------------------------------------------------
// Refusals: each changes nothing, the world's whole ruleset included.

/// A world with its uplink and a container of nsg-a that published TCP
/// 8080 (so the helper's tables exist); and a fresh container of nsg-a.
fn busy_ports_world() -> (World, Outside, Container, Container) {
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let keeper = world.container(A);
    publish(&world, &keeper, &["tcp:8080:80"]);
    let target = world.container(A);
    (world, outside, keeper, target)
}

/// `user` publishing `mapping` for `target` is refused and changes nothing.
#[track_caller]
fn assert_publish_refused(
    world: &World,
    others: &[&Container],
    user: &str,
    target: &Container,
    mapping: &str,
) -> Output {
    let mut all = vec![target];
    all.extend_from_slice(others);
    let pid = target.pid_arg();
    let out = assert_refused_nft(world, &all, user, &["-publish", mapping, "-pid", &pid]);
    assert_eq!(target.snapshot().link_names(), ["lo"], "{mapping}: {out}");
    out
}

#[test]
fn refuses_ports_outside_the_grants() {
    require_root!();
    let (world, _outside, keeper, target) = busy_ports_world();
    for mapping in ["tcp:9000:80", "tcp:7999:80", "udp:9000:53", "tcp:1024:80"] {
        assert_publish_refused(&world, &[&keeper], A, &target, mapping);
    }
    let theirs = world.container(B);
    for mapping in ["tcp:8100:80", "udp:8050:53"] {
        assert_publish_refused(&world, &[&keeper, &target], B, &theirs, mapping);
    }
    // One refused mapping among granted ones refuses the whole call.
    let pid = target.pid_arg();
    assert_refused_nft(
        &world,
        &[&keeper, &target],
        A,
        &[
            "-publish",
            "tcp:8081:80",
            "-publish",
            "tcp:9001:81",
            "-pid",
            &pid,
        ],
    );

    // A grant to a group serves its members.
    ensure_group("nsg-grp");
    ensure_user("nsg-gm");
    add_to_group("nsg-gm", "nsg-grp");
    let world = world_with(&format!(
        "{POLICY}allow @nsg-grp default 2\npublish @nsg-grp default tcp 8200-8209\n"
    ));
    let member = world.container("nsg-gm");
    let refused = assert_publish_refused(&world, &[], "nsg-gm", &member, "tcp:8210:80");
    assert!(refused.stderr.contains("8210"), "{refused}");
    // Before any mapping exists, a refusal made no table either.
    assert!(
        NftTable::publishing(&world).is_none(),
        "a refusal made table inet netsetgo"
    );
    publish(&world, &member, &["tcp:8205:80"]);
}

#[test]
fn root_publishes_any_port_but_never_loopback() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    let pid = c.pid_arg();
    let out = assert_refused_nft(
        &world,
        &[&c],
        "root",
        &["-publish", "tcp:127.0.0.1:443:443", "-pid", &pid],
    );
    assert!(out.stderr.contains("loopback"), "{out}");
    let out = world.netsetgo("root", &["-publish", "tcp:443:8443", "-pid", &pid]);
    assert_eq!(
        out.code(),
        Some(0),
        "root, a port granted to nobody:\n{out}"
    );
    let mut server = serve(&c, "tcp", 8443);
    assert_reaches(
        "the outside",
        &outside.enter(),
        &mut server,
        "tcp",
        UPLINK4,
        443,
        OUTSIDE4,
    );
}

#[test]
fn privileged_ports_need_a_line_of_their_own() {
    require_root!();
    let world = world_with(&format!("{POLICY}publish nsg-a default tcp 80\n"));
    let outside = Outside::new(&world);
    let c = world.container(A);
    publish(&world, &c, &["tcp:80:8080"]);
    let mut server = serve(&c, "tcp", 8080);
    assert_reaches(
        "the outside",
        &outside.enter(),
        &mut server,
        "tcp",
        UPLINK4,
        80,
        OUTSIDE4,
    );
    let target = world.container(A);
    for mapping in ["tcp:81:80", "tcp:1023:80", "udp:80:53", "tcp:443:443"] {
        assert_publish_refused(&world, &[&c], A, &target, mapping);
    }
    let theirs = world.container(B);
    assert_publish_refused(&world, &[&c, &target], B, &theirs, "tcp:80:80");

    // A range that mixes ports below 1024 with others is a malformed line:
    // everything is refused, naming the line.
    let world = world_with(&format!("{POLICY}publish nsg-a default tcp 1000-2000\n"));
    let c = world.container(A);
    let out = assert_refused_nft(&world, &[&c], A, &["-pid", &c.pid_arg()]);
    let line = POLICY.lines().count() + 1;
    assert!(
        out.stderr.contains(&format!("line {line}")) && out.stderr.contains("1024"),
        "expected line {line} and why:\n{out}"
    );
}

#[test]
fn refuses_a_port_already_published() {
    require_root!();
    let (world, _outside, keeper, target) = busy_ports_world();
    // Another user, granted it too.
    let theirs = world.container(B);
    let out = assert_publish_refused(&world, &[&keeper, &target], B, &theirs, "tcp:8080:80");
    assert!(out.stderr.contains("8080"), "{out}");
    // The same user for another container, and on one host address.
    assert_publish_refused(&world, &[&keeper, &theirs], A, &target, "tcp:8080:81");
    assert_publish_refused(
        &world,
        &[&keeper, &theirs],
        A,
        &target,
        "tcp:192.0.2.1:8080:81",
    );
    // Two containers of one call cannot share a port: a usage error.
    let pid = target.pid_arg();
    let out = assert_refused_unchanged_nft(&world, &[&keeper, &target, &theirs], 2, || {
        world.netsetgo(
            A,
            &[
                "-publish",
                "tcp:8081:80",
                "-publish",
                "tcp:8081:81",
                "-pid",
                &pid,
            ],
        )
    });
    assert!(out.stderr.starts_with("netsetgo: "), "{out}");
    // UDP 8080 is another port.
    publish(&world, &target, &["udp:8080:53"]);
}

#[test]
fn refuses_ports_a_host_socket_listens_on() {
    require_root!();
    let (world, _outside, keeper, target) = busy_ports_world();
    // The world's loopback, for a listener bound to it.
    world
        .run(&["ip", "link", "set", "lo", "up"])
        .expect_success("lo up in the world");
    let on_host = host(&world);
    let tcp_any = Server::start(&on_host, "tcp", "0.0.0.0", 8081);
    let _udp_any = Server::start(&on_host, "udp", "0.0.0.0", 8082);
    let _tcp6 = Server::start(&on_host, "tcp", "::", 8083);
    let _tcp_lo = Server::start(&on_host, "tcp", "127.0.0.1", 8084);
    let _udp_one = Server::start(&on_host, "udp", UPLINK4, 8086);
    for mapping in [
        "tcp:8081:80",
        "udp:8082:53",
        "tcp:8083:80",
        "tcp:8084:80",
        "udp:8086:53",
        "tcp:192.0.2.1:8081:80",
    ] {
        let out = assert_publish_refused(&world, &[&keeper], A, &target, mapping);
        assert!(out.stderr.contains("listen"), "{mapping}: {out}");
    }
    // Once that listener is gone, the same port is published.
    drop(tcp_any);
    let free = netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        world
            .run(&["ss", "-Hltn", "sport = :8081"])
            .stdout
            .trim()
            .is_empty()
    });
    assert!(free, "the listener on 8081 did not go away");
    publish(&world, &target, &["tcp:8081:80"]);
}

#[test]
fn refuses_loopback_and_non_local_host_addresses() {
    require_root!();
    let (world, _outside, keeper, target) = busy_ports_world();
    for mapping in [
        "tcp:127.0.0.1:8086:80",
        "tcp:127.1.2.3:8086:80",
        "tcp:[::1]:8086:80",
        "udp:127.0.0.1:8086:53",
        // Not the world's: the outside's address, and addresses nowhere.
        "tcp:192.0.2.2:8086:80",
        "tcp:203.0.113.9:8086:80",
        "tcp:[2001:db8:2::2]:8086:80",
        "tcp:10.10.10.2:8086:80",
    ] {
        assert_publish_refused(&world, &[&keeper], A, &target, mapping);
    }
    // An IPv6 host address on a network without gateway6.
    let lab = world.container(A);
    let pid = lab.pid_arg();
    assert_refused_nft(
        &world,
        &[&keeper, &target, &lab],
        A,
        &[
            "-bridgeName",
            "labbr0",
            "-publish",
            "tcp:[2001:db8:2::1]:8086:80",
            "-pid",
            &pid,
        ],
    );
    // The world's own addresses are fine.
    publish(&world, &target, &["tcp:192.0.2.1:8086:80"]);
    wire_line(
        &world,
        &lab,
        &[
            "-bridgeName",
            "labbr0",
            "-publish",
            "tcp:10.10.10.1:8087:80",
        ],
    );
}

#[test]
fn publish_is_a_usage_error_with_other_modes_and_when_malformed() {
    require_root!();
    let (world, _outside, keeper, target) = busy_ports_world();
    let kpid = keeper.pid_arg();
    let tpid = target.pid_arg();
    let seventeen: Vec<String> = (0..17).map(|i| format!("tcp:{}:80", 8100 + i)).collect();
    let mut too_many: Vec<&str> = Vec::new();
    for m in &seventeen {
        too_many.extend(["-publish", m.as_str()]);
    }
    too_many.extend(["-pid", &tpid]);
    let cases: Vec<Vec<&str>> = vec![
        vec!["-delete", "-pid", &kpid, "-publish", "tcp:8080:80"],
        vec!["-check", "-pid", &kpid, "-publish", "tcp:8080:80"],
        // lxc-user-nic mode, either way round.
        vec![
            "-publish",
            "tcp:8081:80",
            "create",
            "/dev/null",
            "x",
            &tpid,
            "veth",
            "brg0",
        ],
        vec![
            "create",
            "/dev/null",
            "x",
            &tpid,
            "veth",
            "brg0",
            "eth0",
            "-publish",
            "tcp:8081:80",
        ],
        vec!["-publish", "tcp:8081", "-pid", &tpid],
        vec!["-publish", "sctp:8081:80", "-pid", &tpid],
        vec!["-publish", "tcp:0:80", "-pid", &tpid],
        vec!["-publish", "tcp:8081:0", "-pid", &tpid],
        vec!["-publish", "tcp:65536:80", "-pid", &tpid],
        vec!["-publish", "tcp:8081:80:9", "-pid", &tpid],
        vec!["-publish", "tcp:[::1:8081:80", "-pid", &tpid],
        vec!["-publish", "tcp:2001:db8:2::1:8081:80", "-pid", &tpid],
        vec!["-publish", "tcp:http:80", "-pid", &tpid],
        vec!["-publish", "", "-pid", &tpid],
        vec!["-publish", "-pid", &tpid],
        too_many,
    ];
    for args in &cases {
        let out = assert_refused_unchanged_nft(&world, &[&keeper, &target], 2, || {
            world.netsetgo(A, args)
        });
        assert!(out.stderr.starts_with("netsetgo: "), "{args:?}:\n{out}");
    }
    // Sixteen are fine.
    let sixteen: Vec<&str> = seventeen[..16].iter().map(String::as_str).collect();
    publish(&world, &target, &sixteen);
    assert_eq!(
        mapped(&world, 8115).len(),
        3,
        "{:?}",
        NftTable::publishing(&world)
    );
}

// ---------------------------------------------------------------------------
// A failed call leaves the ruleset as it was (issue 17, SECURITY.md 10)

/// Networks whose first call is refused or fails in each way that comes
/// after the helper has opened its nftables session. Every network
/// masquerades (nat=yes) and guards (the default), and those where a
/// call is refused are isolated: a call that got far enough would add its
/// masquerade, isolation and hairpin rules, the publishing structure and
/// the guard's.
const FIRST_CALLS: &str = "\
network open bridge=openbr0 gateway=10.71.0.1/24 guard=no
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 nat=yes isolate=yes
network quota bridge=quotabr0 gateway=10.73.0.1/24 nat=yes isolate=yes
network tiny bridge=tinybr0 gateway=10.72.0.1/30 nat=yes isolate=yes
network fresh bridge=freshbr0 gateway=10.74.0.1/24 gateway6=fd00:74::1/64 nat=yes
allow nsg-a open 2
allow nsg-a default 2
allow nsg-b quota 1
allow nsg-a tiny 1
allow nsg-b tiny 1
allow nsg-a fresh 2
publish nsg-a open tcp 8000-8999
publish nsg-a default tcp 8000-8999
publish nsg-b quota tcp 8000-8999
publish nsg-a tiny tcp 8000-8999
publish nsg-a fresh tcp 8000-8999
";

/// The world's whole ruleset, as `nft -j list ruleset` gives it.
fn ruleset_json(world: &World) -> Value {
    let out = world.run(&["nft", "-j", "list", "ruleset"]);
    out.expect_success("nft -j list ruleset");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("nft -j: {e}:\n{out}"))
}

/// The ruleset's set and map elements, by family, table and set.
fn elements_json(ruleset: &Value) -> Vec<(String, Value)> {
    ruleset["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("set").or_else(|| o.get("map")))
        .map(|s| {
            (
                format!("{} {} {}", s["family"], s["table"], s["name"]),
                s.get("elem").cloned().unwrap_or(json!([])),
            )
        })
        .collect()
}

/// Runs `args` for `c` as `user` (`-pid` added): `None` if it failed
/// with a stderr containing `why` and left the world's whole ruleset as it
/// was, else what went wrong.
fn fails_changing_no_rule(
    world: &World,
    user: &str,
    c: &Container,
    args: &[&str],
    why: &str,
) -> Option<String> {
    let pid = c.pid_arg();
    let mut all = args.to_vec();
    all.extend(["-pid", &pid]);
    let before = ruleset_json(world);
    let out = world.netsetgo(user, &all);
    let after = ruleset_json(world);
    if out.code() == Some(0) || !out.stderr.contains(why) {
        Some(format!(
            "{all:?} as {user}: expected a failure naming {why:?}:\n{out}"
        ))
    } else if before != after {
        Some(format!(
            "{all:?} as {user} failed ({}) but changed the ruleset:\n{}",
            out.stderr.trim(),
            ruleset_diff(&before, &after)
        ))
    } else {
        None
    }
}

/// The objects (tables, chains, rules, sets) only in `before` (`-`) or
/// only in `after` (`+`), one a line, cut at 200 characters.
fn ruleset_diff(before: &Value, after: &Value) -> String {
    let objects = |r: &Value| -> Vec<String> {
        r["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o.get("metainfo").is_none())
            .map(|o| o.to_string())
            .collect()
    };
    let (b, a) = (objects(before), objects(after));
    let cut = |o: &String| o.chars().take(200).collect::<String>();
    b.iter()
        .filter(|o| !a.contains(o))
        .map(|o| format!("- {}", cut(o)))
        .chain(
            a.iter()
                .filter(|o| !b.contains(o))
                .map(|o| format!("+ {}", cut(o))),
        )
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_refused_or_failed_call_leaves_the_ruleset_as_it_was() {
    require_root!();
    let world = world_with(FIRST_CALLS);
    let mut wrong = Vec::new();
    // The very first call, refused as a host listener's port: the ruleset
    // stays empty.
    let _listener = Server::start(&host(&world), "tcp", "0.0.0.0", 8400);
    let first = world.container(A);
    wrong.extend(fails_changing_no_rule(
        &world,
        A,
        &first,
        &["-bridgeName", "brg0", "-publish", "tcp:8400:80"],
        "listens on tcp port 8400",
    ));
    // Host port 8080 is published on a network without the guard: the
    // publishing structure exists, the guard's does not.
    let keeper = world.container(A);
    wire_with(
        &world,
        &keeper,
        &["-bridgeName", "openbr0", "-publish", "tcp:8080:80"],
    );
    assert!(
        NftTable::guard(&world).is_none(),
        "guard=no made the guard's table"
    );

    // The first call on brg0 that gets that far, refused as already published, with no other
    // mapping and after a first mapping that is free (published, then
    // taken back).
    let c = world.container(A);
    wrong.extend(fails_changing_no_rule(
        &world,
        A,
        &c,
        &["-bridgeName", "brg0", "-publish", "tcp:8080:80"],
        "already published",
    ));
    wrong.extend(fails_changing_no_rule(
        &world,
        A,
        &c,
        &[
            "-bridgeName",
            "brg0",
            "-publish",
            "tcp:8081:80",
            "-publish",
            "tcp:8080:81",
        ],
        "already published",
    ));
    // At the quota: nsg-b holds its one interface on quotabr0 (wired
    // without publishing), and its next call publishes.
    let held = world.container(B);
    wire_with(&world, &held, &["-bridgeName", "quotabr0"]);
    let more = world.container(B);
    wrong.extend(fails_changing_no_rule(
        &world,
        B,
        &more,
        &["-bridgeName", "quotabr0", "-publish", "tcp:8100:80"],
        "you already hold",
    ));
    // No free address: tinybr0's one address is nsg-b's.
    let tiny = world.container(B);
    wire_with(&world, &tiny, &["-bridgeName", "tinybr0"]);
    wrong.extend(fails_changing_no_rule(
        &world,
        A,
        &c,
        &["-bridgeName", "tinybr0", "-publish", "tcp:8200:80"],
        "free",
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    // A call that fails after it has begun: the container already has a
    // device of the peer's name, so the pair cannot be made. Its
    // publications and guard elements are taken back; what it keeps of
    // the ruleset on purpose is exactly what a successful call keeps
    // after its container is gone (freshbr0's masquerade and hairpin
    // rules): the same call made to succeed and then deleted leaves the
    // same ruleset.
    let blocked = world.container(A);
    blocked
        .exec(&[
            "ip", "link", "add", "veth1", "type", "veth", "peer", "name", "other1",
        ])
        .expect_success("a veth1 inside");
    let fresh = ["-bridgeName", "freshbr0", "-publish", "tcp:8300:80"];
    let before = ruleset_json(&world);
    let mut args = fresh.to_vec();
    let pid = blocked.pid_arg();
    args.extend(["-pid", &pid]);
    let out = world.netsetgo(A, &args);
    assert_eq!(out.code(), Some(1), "a veth1 inside yet:\n{out}");
    let after_failure = ruleset_json(&world);
    assert_eq!(
        elements_json(&after_failure),
        elements_json(&before),
        "the failed call left elements:\n{out}"
    );
    // Only freshbr0's own rules (its masquerade chain and rules, its
    // hairpin rule) are new.
    let added = ruleset_diff(&before, &after_failure);
    assert!(
        added.lines().all(|l| l.starts_with("+ ")
            && ["freshbr0", "10.74.0.0", "fd00:74::"]
                .iter()
                .any(|n| l.contains(n))),
        "the failed call left more than freshbr0's masquerade and hairpin rules:\n{added}"
    );
    let ok = world.container(A);
    wire_with(&world, &ok, &fresh);
    let out = world.netsetgo(
        A,
        &["-bridgeName", "freshbr0", "-delete", "-pid", &ok.pid_arg()],
    );
    assert_eq!(out.code(), Some(0), "-delete:\n{out}");
    // The successful call may also have made one of the guard's shared
    // tables, its shared chain and sets, which stay after its -delete; the
    // failed call never got as far as the guard.
    let kept = ruleset_json(&world);
    let diff = ruleset_diff(&after_failure, &kept);
    let is_shared_guard = |object: &Value| {
        // The guard's bridge table: every chain and rule of it is shared,
        // and its sets (without elements once no port is left).
        let in_guard_table = |o: &Value, table: &str| {
            o["family"] == "bridge" && o[table].as_str() == Some("netsetgo_guard")
        };
        in_guard_table(&object["table"], "name")
            || ["chain", "rule"]
                .iter()
                .any(|k| in_guard_table(&object[k], "table"))
            || in_guard_table(&object["set"], "table") && empty_set(object)
    };
    let objects = |r: &Value| r["nftables"].as_array().cloned().unwrap_or_default();
    let (failed, succeeded) = (objects(&after_failure), objects(&kept));
    assert!(
        failed.iter().all(|o| succeeded.contains(o))
            && succeeded
                .iter()
                .all(|o| failed.contains(o) || o.get("metainfo").is_some() || is_shared_guard(o)),
        "the failed call left other than a successful call keeps (- after the failure, + after a call and its -delete):\n{diff}"
    );
}
