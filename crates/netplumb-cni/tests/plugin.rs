//! The plugin driven the way engines drive it: `CNI_*` in the environment,
//! the network configuration on stdin, run from inside a throwaway "host"
//! network namespace, with containers as throwaway named namespaces
//! (`CNI_NETNS=/run/netns/NAME`, as podman passes them) and Debian's
//! host-local (`/usr/lib/cni`) as IPAM, its leases in a private directory.
//! Everything is checked from outside with `ip -j` and `nft -j`. Needs root;
//! skips loudly otherwise.

#[path = "../../netplumb/tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{add_plain_device, ifindex, is_up, ns_shape, ping_from, unique, TestNs};
use serde_json::{json, Value};
use support::{fetch, OUTSIDE, UPLINK};

const PLUGIN: &str = env!("CARGO_BIN_EXE_netplumb-bridge");
const CNI_PATH: &str = "/usr/lib/cni";
const NETWORK: &str = "cnitest";
const BRIDGE: &str = "cnibr0";
const SUBNET: &str = "10.77.5.0/24";
const GATEWAY: &str = "10.77.5.1";

/// One test's world: the host namespace the plugin runs in and host-local's
/// lease directory, both removed on drop.
struct World {
    host: TestNs,
    leases: PathBuf,
}

/// What one plugin run printed and how it exited.
#[derive(Debug)]
struct Outcome {
    ok: bool,
    out: Value,
}

impl World {
    fn new(tag: &str) -> World {
        assert!(
            Path::new(CNI_PATH).join("host-local").is_file(),
            "host-local is missing: install containernetworking-plugins"
        );
        let leases = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir(&leases).expect("lease directory");
        World {
            host: TestNs::new(tag),
            leases,
        }
    }

    /// A configuration in `version` with every option of the plugin and a
    /// key no one knows (passed through, ignored).
    fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": NETWORK,
            "type": "netplumb-bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": true,
            "mtu": 1400,
            "someFutureKey": {"nested": [1, 2, 3]},
            "ipam": {
                "type": "host-local",
                "dataDir": self.leases,
                "subnet": SUBNET,
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        })
    }

    /// Runs the plugin in the host namespace with only `env` in its
    /// environment (bounded by `timeout`).
    fn run(&self, env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
        let mut child = Command::new("timeout")
            .args(["30", "nsenter"])
            .arg(format!("--net={}", self.host.path().display()))
            .arg(PLUGIN)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the plugin");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin)
            .expect("write stdin");
        let output = child.wait_with_output().expect("wait for the plugin");
        let text = String::from_utf8_lossy(&output.stdout);
        let out = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Outcome {
            ok: output.status.success(),
            out,
        }
    }

    /// `cmd` for the attachment (`id`, `eth0`) in `container`.
    fn call(&self, cmd: &str, conf: &Value, container: &TestNs, id: &str) -> Outcome {
        let netns = container.path();
        let netns = netns.to_str().expect("utf-8 path");
        self.run(&env(cmd, id, netns, "eth0"), conf.to_string().as_bytes())
    }

    fn must(&self, cmd: &str, conf: &Value, container: &TestNs, id: &str) -> Value {
        let outcome = self.call(cmd, conf, container, id);
        assert!(outcome.ok, "{cmd} failed: {}", outcome.out);
        outcome.out
    }

    /// The addresses host-local has leased.
    fn leases(&self) -> Vec<String> {
        let dir = self.leases.join(NETWORK);
        let mut leased: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.expect("lease entry").file_name().into_string().unwrap())
                    .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        leased.sort();
        leased
    }

    /// Names of the ports of the bridge.
    fn ports(&self) -> Vec<String> {
        let mut ports: Vec<String> = self
            .host
            .links()
            .iter()
            .filter(|l| l["master"] == BRIDGE)
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        ports.sort();
        ports
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.leases);
    }
}

/// The environment an engine gives the plugin for one attachment.
fn env<'a>(cmd: &'a str, id: &'a str, netns: &'a str, ifname: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", CNI_PATH),
    ]
}

fn assert_error(outcome: &Outcome, code: u64) {
    assert!(
        !outcome.ok,
        "expected error {code}, got success: {}",
        outcome.out
    );
    assert_eq!(outcome.out["code"], code, "{}", outcome.out);
    assert!(
        outcome.out["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        outcome.out
    );
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut conf = conf.clone();
    conf["prevResult"] = prev.clone();
    conf
}

#[test]
fn version_lists_what_engines_ask_for() {
    // VERSION touches nothing: no namespace needed, but run it like the rest.
    require_root!("version_lists_what_engines_ask_for");
    let world = World::new("ver");
    let out = world.run(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"1.0.0"}"#);
    assert!(out.ok, "{}", out.out);
    assert_eq!(out.out["cniVersion"], "1.1.0");
    assert_eq!(
        out.out["supportedVersions"],
        json!(["0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn add_check_del_del() {
    require_root!("add_check_del_del");
    let world = World::new("acd");
    let container = TestNs::new("acdc");
    let conf = world.conf("1.0.0");

    let result = world.must("ADD", &conf, &container, "ctr1");
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    let address = result["ips"][0]["address"].as_str().expect("an address");
    assert_eq!(address, "10.77.5.2/24");
    assert_eq!(result["ips"][0]["gateway"], GATEWAY);
    assert_eq!(result["ips"][0]["interface"], 2);
    let interfaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(interfaces[0]["name"], BRIDGE);
    assert_eq!(interfaces[2]["name"], "eth0");
    assert_eq!(interfaces[2]["sandbox"], container.path().to_str().unwrap());
    let host_end = interfaces[1]["name"]
        .as_str()
        .expect("host end")
        .to_string();
    assert_eq!(world.leases(), vec!["10.77.5.2".to_string()]);

    // From outside: the bridge with its gateway, the host end on it, the
    // container's end with its address, default route and MTU.
    let bridge = world.host.must_link(BRIDGE);
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    assert!(world.host.addr(BRIDGE, GATEWAY).is_some());
    let end = world.host.must_link(&host_end);
    assert_eq!(end["linkinfo"]["info_kind"], "veth");
    assert_eq!(end["master"], BRIDGE);
    assert_eq!(end["mtu"], 1400);
    assert!(is_up(&end));
    let eth0 = container.must_link("eth0");
    assert!(is_up(&eth0));
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], interfaces[2]["mac"]);
    assert_eq!(end["address"], interfaces[1]["mac"]);
    // The host end has no IPv6 of its own: no multicast route, no address.
    let six = world
        .host
        .ip(&["-6", "route", "show", "table", "all", "dev", &host_end]);
    assert_eq!(six.trim(), "", "IPv6 routes of {host_end}");
    let inside = container.addr("eth0", "10.77.5.2").expect("address inside");
    assert_eq!(inside["prefixlen"], 24);
    let defaults = container.default_routes("-4");
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert_eq!(defaults[0]["gateway"], GATEWAY);
    assert!(is_up(&container.must_link("lo")));
    assert!(
        ping_from(&container, GATEWAY, 3),
        "container cannot reach the gateway"
    );

    // ipMasq: the network's rule in the plugin's own nftables table.
    let nft = run_in(
        &world.host,
        &["nft", "-j", "list", "table", "inet", "netplumb-cni"],
    );
    assert!(nft.contains("masquerade"), "{nft}");
    assert!(nft.contains("10.77.5.0"), "{nft}");

    // CHECK passes on what ADD made, and fails once an address is gone.
    let checked = with_prev(&conf, &result);
    assert!(world.call("CHECK", &checked, &container, "ctr1").ok);
    // A second ADD of the same attachment is refused and takes nothing away.
    assert_error(&world.call("ADD", &conf, &container, "ctr1"), 100);
    assert_eq!(world.leases(), vec!["10.77.5.2".to_string()]);
    assert!(world.call("CHECK", &checked, &container, "ctr1").ok);
    container.ip(&["addr", "del", address, "dev", "eth0"]);
    assert_error(&world.call("CHECK", &checked, &container, "ctr1"), 102);

    // DEL removes the pair and the lease; a second DEL is fine.
    world.must("DEL", &conf, &container, "ctr1");
    assert!(world.host.link(&host_end).is_none());
    assert!(container.link("eth0").is_none());
    assert!(world.leases().is_empty());
    world.must("DEL", &conf, &container, "ctr1");
    // And so is DEL once the container's namespace is gone.
    let netns = container.path();
    drop(container);
    let netns = netns.to_str().unwrap();
    let gone = world.run(
        &env("DEL", "ctr1", netns, "eth0"),
        conf.to_string().as_bytes(),
    );
    assert!(gone.ok, "{}", gone.out);
}

fn run_in(ns: &TestNs, args: &[&str]) -> String {
    let mut all = vec!["netns", "exec", ns.name.as_str()];
    all.extend_from_slice(args);
    common::run("ip", &all)
}

#[test]
fn results_in_the_configurations_version() {
    require_root!("results_in_the_configurations_version");
    let world = World::new("vers");
    // Debian 12's host-local speaks up to 1.0.0 and refuses a 1.1.0
    // configuration, so 1.1.0 is tried on a network without IPAM (layer 2
    // only: the pair on the bridge, no address).
    let mut layer2 = world.conf("1.1.0");
    layer2.as_object_mut().unwrap().remove("ipam");
    let confs = [world.conf("0.4.0"), world.conf("1.0.0"), layer2];
    for (n, conf) in confs.iter().enumerate() {
        let container = TestNs::new("versc");
        let id = format!("v{n}");
        let version = conf["cniVersion"].as_str().unwrap();
        let result = world.must("ADD", conf, &container, &id);
        assert_eq!(result["cniVersion"], version, "{result}");
        assert_eq!(result["interfaces"][2]["name"], "eth0", "{result}");
        assert!(is_up(&container.must_link("eth0")));
        // The 0.4.0 layout marks each address's family; 1.x has no such key.
        let family = &result["ips"][0]["version"];
        match version {
            "0.4.0" => assert_eq!(family, "4", "{result}"),
            "1.0.0" => assert!(family.is_null() && result["ips"][0]["address"].is_string()),
            _ => assert!(result["ips"].is_null() && container.addrs("eth0").is_empty()),
        }
        // CHECK exists from 0.4.0 on and reads its version's prevResult.
        assert!(
            world
                .call("CHECK", &with_prev(conf, &result), &container, &id)
                .ok
        );
        world.must("DEL", conf, &container, &id);
        assert!(container.link("eth0").is_none());
    }
    assert!(world.leases().is_empty());
    assert!(world.ports().is_empty());
}

#[test]
fn bad_input_gets_the_specs_error_codes_and_changes_nothing() {
    require_root!("bad_input_gets_the_specs_error_codes_and_changes_nothing");
    let world = World::new("bad");
    let container = TestNs::new("badc");
    let conf = world.conf("1.0.0");
    // One good ADD and DEL first, so that what a network has anyway (the
    // bridge, `lo` up in the container) is in the picture before.
    world.must("ADD", &conf, &container, "ctr");
    world.must("DEL", &conf, &container, "ctr");
    let before = (ns_shape(&world.host), ns_shape(&container));

    // 4: a missing or malformed variable, an unknown command.
    let missing = world.run(
        &[("CNI_COMMAND", "ADD"), ("CNI_PATH", CNI_PATH)],
        conf.to_string().as_bytes(),
    );
    assert_error(&missing, 4);
    let details = missing.out["details"].as_str().unwrap();
    assert!(
        details.contains("CNI_CONTAINERID") && details.contains("CNI_NETNS"),
        "{details}"
    );
    assert_error(&world.run(&[("CNI_COMMAND", "FROB")], b"{}"), 4);
    let netns = container.path();
    let netns = netns.to_str().unwrap();
    let bad_ifname = env("ADD", "ctr", netns, "eth0/../x");
    assert_error(&world.run(&bad_ifname, conf.to_string().as_bytes()), 4);
    assert_error(&world.call("ADD", &conf, &container, "bad id!"), 4);

    // 6: not JSON; a known key of the wrong type.
    let add = env("ADD", "ctr", netns, "eth0");
    assert_error(&world.run(&add, b"{not json"), 6);
    let mut wrong_type = conf.clone();
    wrong_type["mtu"] = json!("big");
    assert_error(&world.call("ADD", &wrong_type, &container, "ctr"), 6);

    // 1: a version it does not speak; CHECK before 0.4.0; GC before 1.1.0.
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.3.1");
    assert_error(&world.call("ADD", &old, &container, "ctr"), 1);
    assert_error(&world.call("CHECK", &old, &container, "ctr"), 1);
    assert_error(&world.call("GC", &conf, &container, "ctr"), 1);

    // 7: a bridge name the kernel would refuse, an MTU out of range, no
    // name, GC with no list of what to keep.
    let mut bad_bridge = conf.clone();
    bad_bridge["bridge"] = json!("a/b");
    assert_error(&world.call("ADD", &bad_bridge, &container, "ctr"), 7);
    let mut bad_mtu = conf.clone();
    bad_mtu["mtu"] = json!(20);
    assert_error(&world.call("ADD", &bad_mtu, &container, "ctr"), 7);
    let mut unnamed = conf.clone();
    unnamed.as_object_mut().unwrap().remove("name");
    assert_error(&world.call("ADD", &unnamed, &container, "ctr"), 7);
    let v11 = world.conf("1.1.0");
    assert_error(&world.call("GC", &v11, &container, "ctr"), 7);

    // 8: a namespace that does not exist, or a file that is not one.
    for netns in ["/run/netns/netplumb-cni-no-such-ns", "/proc/self/ns/mnt"] {
        let add = env("ADD", "ctr", netns, "eth0");
        assert_error(&world.run(&add, conf.to_string().as_bytes()), 8);
    }

    // 101: an IPAM plugin that is not in CNI_PATH, or a name that is a path.
    let mut no_ipam = conf.clone();
    no_ipam["ipam"]["type"] = json!("no-such-ipam");
    assert_error(&world.call("ADD", &no_ipam, &container, "ctr"), 101);
    no_ipam["ipam"]["type"] = json!("../bin/sh");
    assert_error(&world.call("ADD", &no_ipam, &container, "ctr"), 7);

    // Nothing was left by any of it: the one good ADD was deleted.
    let after = (ns_shape(&world.host), ns_shape(&container));
    assert_eq!(before, after, "links changed after failed calls");
    assert!(world.ports().is_empty(), "{:?}", world.ports());
    assert!(world.leases().is_empty(), "{:?}", world.leases());
}

#[test]
fn failed_add_leaves_nothing_and_releases_the_lease() {
    require_root!("failed_add_leaves_nothing_and_releases_the_lease");
    let world = World::new("rb");
    let container = TestNs::new("rbc");
    let conf = world.conf("1.0.0");

    // A device of the bridge's name that is not a bridge: never touched.
    add_plain_device(&world.host, BRIDGE);
    let before = world.host.ip(&["-j", "-d", "link", "show", BRIDGE]);
    let refused = world.call("ADD", &conf, &container, "ctr");
    assert_error(&refused, 100);
    let details = refused.out["details"].as_str().unwrap();
    assert!(details.contains("not a bridge"), "{details}");
    assert_eq!(world.host.ip(&["-j", "-d", "link", "show", BRIDGE]), before);
    assert!(
        world.leases().is_empty(),
        "lease kept: {:?}",
        world.leases()
    );
    assert_eq!(container.link_names(), vec!["lo".to_string()]);
    // STATUS says the plugin cannot serve this network.
    let v11 = world.conf("1.1.0");
    assert_error(&world.call("STATUS", &v11, &container, "ctr"), 50);
    world.host.ip(&["link", "del", BRIDGE]);
    assert!(world.call("STATUS", &v11, &container, "ctr").ok);

    // The container already has an eth0: attach fails after IPAM, and
    // neither a host end nor a lease is left.
    add_plain_device(&container, "eth0");
    let eth0 = ifindex(&container.must_link("eth0"));
    let refused = world.call("ADD", &conf, &container, "ctr");
    assert_error(&refused, 100);
    assert!(world.ports().is_empty(), "{:?}", world.ports());
    assert!(
        world.leases().is_empty(),
        "lease kept: {:?}",
        world.leases()
    );
    assert_eq!(ifindex(&container.must_link("eth0")), eth0);
    assert!(container.must_link("eth0")["linkinfo"]["info_kind"] != "veth");
}

#[test]
fn gc_removes_only_what_is_not_listed() {
    require_root!("gc_removes_only_what_is_not_listed");
    let world = World::new("gc");
    // Attachments made at 1.0.0 (what Debian 12's host-local speaks), then
    // GC, which exists from 1.1.0 on; host-local is not asked to GC then.
    let conf = world.conf("1.0.0");
    let v11 = world.conf("1.1.0");
    let containers: Vec<TestNs> = (0..3).map(|_| TestNs::new("gcc")).collect();
    let ids = ["gc-a", "gc-b", "gc-c"];
    let mut ends = Vec::new();
    for (container, id) in containers.iter().zip(ids) {
        let result = world.must("ADD", &conf, container, id);
        ends.push(
            result["interfaces"][1]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // A port someone else put on the bridge, and a veth elsewhere.
    world.host.ip(&[
        "link", "add", "foreign0", "type", "veth", "peer", "foreign1",
    ]);
    world
        .host
        .ip(&["link", "set", "foreign0", "master", BRIDGE]);
    let mut expected = world.ports();
    assert_eq!(expected.len(), 4);

    // Keep a and c: b's pair goes, everything else stays.
    let mut gc = v11.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "gc-a", "ifname": "eth0"},
        {"containerID": "gc-c", "ifname": "eth0"}
    ]);
    let outcome = world.call("GC", &gc, &containers[0], "unused");
    assert!(outcome.ok, "{}", outcome.out);
    expected.retain(|p| *p != ends[1]);
    assert_eq!(world.ports(), expected);
    assert!(containers[1].link("eth0").is_none());
    assert!(containers[0].link("eth0").is_some() && containers[2].link("eth0").is_some());
    assert!(world.host.link("foreign1").is_some());

    // The older key: keep only a.
    let mut old = v11.clone();
    old["cni.dev/attachments"] = json!([{"containerID": "gc-a", "ifname": "eth0"}]);
    assert!(world.call("GC", &old, &containers[0], "unused").ok);
    expected.retain(|p| *p != ends[2]);
    assert_eq!(world.ports(), expected);
    assert!(containers[2].link("eth0").is_none());

    // The survivor still works.
    let result = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.77.5.2/24", "gateway": GATEWAY, "interface": 2}],
        "interfaces": [{"name": BRIDGE}, {"name": ends[0]}, {"name": "eth0"}], "routes": [{"dst": "0.0.0.0/0"}]});
    assert!(
        world
            .call("CHECK", &with_prev(&conf, &result), &containers[0], "gc-a")
            .ok
    );
}

/// `conf` with the portMappings capability and these mappings (host port,
/// container port, TCP) in its runtimeConfig, as an engine injects them.
fn with_ports(conf: &Value, mappings: &[(u16, u16)]) -> Value {
    let mut conf = conf.clone();
    conf["capabilities"] = json!({"portMappings": true});
    let mappings: Vec<Value> = mappings
        .iter()
        .map(|(host, container)| {
            json!({"hostPort": host, "containerPort": container, "protocol": "tcp", "hostIP": ""})
        })
        .collect();
    conf["runtimeConfig"] = json!({ "portMappings": mappings });
    conf
}

/// `conf` as network `name` on `subnet` (host-local's lease directory
/// follows the name), with `extra` keys set.
fn network_of(conf: &Value, name: &str, subnet: &str, extra: Value) -> Value {
    let mut conf = conf.clone();
    conf["name"] = json!(name);
    conf["ipam"]["subnet"] = json!(subnet);
    for (key, value) in extra.as_object().expect("an object") {
        conf[key] = value.clone();
    }
    conf
}

/// The claims of published ports in the plugin's table, as `nft -j`
/// lists them (empty without the table or the map).
fn claims(world: &World) -> Vec<Value> {
    let out = world.host.output(&[
        "nft",
        "-j",
        "list",
        "map",
        "inet",
        "netplumb-cni",
        "published",
    ]);
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["map"]["elem"].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// The plugin's `inet` table as `nft` prints it (empty without one).
fn table_text(world: &World) -> String {
    let out = world
        .host
        .output(&["nft", "list", "table", "inet", "netplumb-cni"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (at most 5 s) until the host has no link `name`: the kernel
/// removes a dead namespace's veth pair asynchronously.
fn wait_gone(world: &World, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while world.host.link(name).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} outlived its namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn host_end_of(result: &Value) -> String {
    result["interfaces"][1]["name"]
        .as_str()
        .expect("host end")
        .to_string()
}

fn address_of(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().expect("an address");
    cidr.split('/').next().unwrap().to_string()
}

#[test]
fn published_ports_keep_the_clients_address_hairpin_and_go_with_del_and_gc() {
    require_root!("published_ports_keep_the_clients_address_hairpin_and_go_with_del_and_gc");
    let world = World::new("pm");
    let outside = support::outside_machine(&world.host);
    let plain = world.conf("1.0.0");
    let conf = with_ports(&plain, &[(8080, 80)]);
    let server_ns = TestNs::new("pmc");
    let result = world.must("ADD", &conf, &server_ns, "p1");
    let _server = support::echo_peer_server(&server_ns, 80);

    // Another machine reaches the container through the host's address,
    // and the container sees the client's own address.
    assert_eq!(fetch(&outside, UPLINK, 8080).as_deref(), Some(OUTSIDE));
    // Hairpin: a container of the same bridge through the host's address;
    // its answer must come back through the translation, so it is
    // masqueraded to the gateway (as netsetgo does it).
    let neighbour = TestNs::new("pmc");
    world.must("ADD", &plain, &neighbour, "p2");
    assert_eq!(fetch(&neighbour, UPLINK, 8080).as_deref(), Some(GATEWAY));
    assert_eq!(claims(&world).len(), 1, "{:?}", claims(&world));

    // CHECK sees the publication, and the loss of a rule or an element.
    let checked = with_prev(&conf, &result);
    assert!(world.call("CHECK", &checked, &server_ns, "p1").ok);
    let chain = run_in(
        &world.host,
        &[
            "nft",
            "-a",
            "list",
            "chain",
            "inet",
            "netplumb-cni",
            "prerouting",
        ],
    );
    let handle = chain
        .lines()
        .find(|l| l.contains("jump publish"))
        .and_then(|l| l.rsplit("handle ").next())
        .expect("the jump rule's handle")
        .trim()
        .to_string();
    run_in(
        &world.host,
        &[
            "nft",
            "delete",
            "rule",
            "inet",
            "netplumb-cni",
            "prerouting",
            "handle",
            &handle,
        ],
    );
    assert_error(&world.call("CHECK", &checked, &server_ns, "p1"), 102);
    assert_eq!(fetch(&outside, UPLINK, 8080), None, "no jump, no DNAT");
    run_in(
        &world.host,
        &[
            "nft",
            "add",
            "rule",
            "inet",
            "netplumb-cni",
            "prerouting",
            "jump",
            "publish",
        ],
    );
    assert!(world.call("CHECK", &checked, &server_ns, "p1").ok);
    assert_eq!(fetch(&outside, UPLINK, 8080).as_deref(), Some(OUTSIDE));
    run_in(
        &world.host,
        &[
            "nft",
            "delete",
            "element",
            "inet",
            "netplumb-cni",
            "dnat4",
            "{ tcp . 8080 }",
        ],
    );
    let broken = world.call("CHECK", &checked, &server_ns, "p1");
    assert_error(&broken, 102);
    assert!(
        broken.out["details"].as_str().unwrap().contains("8080"),
        "{}",
        broken.out
    );
    assert_eq!(fetch(&outside, UPLINK, 8080), None);

    // DEL takes the claim and what is left of the publication.
    world.must("DEL", &conf, &server_ns, "p1");
    assert!(claims(&world).is_empty(), "{:?}", claims(&world));
    assert!(
        !table_text(&world).contains("8080"),
        "{}",
        table_text(&world)
    );

    // A container that vanishes without DEL: GC of any network of the
    // plugin releases its port, since its owner is no host end any more.
    let vanishing = TestNs::new("pmc");
    let result = world.must("ADD", &conf, &vanishing, "p3");
    assert_eq!(fetch(&outside, UPLINK, 8080), None, "no server in p3 yet");
    assert_eq!(claims(&world).len(), 1);
    drop(vanishing);
    wait_gone(&world, &host_end_of(&result));
    let mut gc = world.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "p2", "ifname": "eth0"}]);
    let outcome = world.call("GC", &gc, &neighbour, "unused");
    assert!(outcome.ok, "{}", outcome.out);
    assert!(claims(&world).is_empty(), "{:?}", claims(&world));
    assert!(neighbour.link("eth0").is_some());
}

#[test]
fn a_taken_host_port_is_refused_with_code_7_and_nothing_is_left() {
    require_root!("a_taken_host_port_is_refused_with_code_7_and_nothing_is_left");
    let world = World::new("pt");
    let conf = with_ports(&world.conf("1.0.0"), &[(8080, 80)]);
    let first = TestNs::new("ptc");
    world.must("ADD", &conf, &first, "t1");
    let _program = support::listener(&world.host, 9090);
    let before = (
        ns_shape(&world.host),
        world.leases(),
        claims(&world),
        table_text(&world),
    );

    // Published by another container; listened on by a host program; a
    // second mapping that is taken after a first that is free (the free
    // one must not stay published).
    for (mappings, taken_by) in [
        (vec![(8080, 80)], "already published"),
        (vec![(9090, 80)], "listened on"),
        (vec![(8081, 81), (8080, 80)], "already published"),
    ] {
        let second = TestNs::new("ptc");
        let refused = world.call(
            "ADD",
            &with_ports(&world.conf("1.0.0"), &mappings),
            &second,
            "t2",
        );
        assert_error(&refused, 7);
        let details = refused.out["details"].as_str().unwrap();
        assert!(details.contains(taken_by), "{details}");
        let after = (
            ns_shape(&world.host),
            world.leases(),
            claims(&world),
            table_text(&world),
        );
        assert_eq!(before, after, "{mappings:?} left something");
        assert_eq!(second.link_names(), vec!["lo".to_string()]);
    }
}

#[test]
fn the_guard_stops_forged_sources_and_macs_and_its_twin_does_not() {
    require_root!("the_guard_stops_forged_sources_and_macs_and_its_twin_does_not");
    for guard in [true, false] {
        let world = World::new("gd");
        let conf = network_of(
            &world.conf("1.0.0"),
            NETWORK,
            SUBNET,
            json!({"guard": guard}),
        );
        let (attacker, victim) = (TestNs::new("gda"), TestNs::new("gdv"));
        let attacker_result = world.must("ADD", &conf, &attacker, "a");
        let victim_result = world.must("ADD", &conf, &victim, "v");
        let checked = with_prev(&conf, &victim_result);
        assert!(world.call("CHECK", &checked, &victim, "v").ok);
        let mac = |r: &Value| r["interfaces"][2]["mac"].as_str().unwrap().to_string();
        let (attacker_mac, victim_mac) = (mac(&attacker_result), mac(&victim_result));
        let (attacker_ip, victim_ip) = (address_of(&attacker_result), address_of(&victim_result));
        let bridge_mac = world.host.must_link(BRIDGE)["address"]
            .as_str()
            .unwrap()
            .to_string();

        let receiver = support::udp_sources(&world.host, GATEWAY, 5555, 10);
        let to_host = (bridge_mac.as_str(), GATEWAY);
        // The victim's MAC and address; the attacker's MAC with the
        // victim's address; and an honest datagram that must pass.
        for (macs, ips) in [
            (
                (victim_mac.as_str(), to_host.0),
                (victim_ip.as_str(), to_host.1),
            ),
            (
                (attacker_mac.as_str(), to_host.0),
                (victim_ip.as_str(), to_host.1),
            ),
            (
                (attacker_mac.as_str(), to_host.0),
                (attacker_ip.as_str(), to_host.1),
            ),
        ] {
            support::send_forged_udp(&attacker, "eth0", macs, ips, 5555);
        }
        let sources = receiver.finish();
        let sources: Vec<&str> = sources.lines().collect();
        assert!(
            sources.contains(&attacker_ip.as_str()),
            "guard={guard}: {sources:?}"
        );
        let victims_port = support::fdb_port(&world.host, BRIDGE, &victim_mac);
        if guard {
            assert!(!sources.contains(&victim_ip.as_str()), "{sources:?}");
            assert_eq!(victims_port, Some(host_end_of(&victim_result)));
            assert!(world.call("CHECK", &checked, &victim, "v").ok);
            // The guard is part of the attachment: CHECK misses it, DEL
            // removes it.
            let victims = guard_element("delete", &host_end_of(&victim_result));
            run_in(
                &world.host,
                &victims.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            assert_error(&world.call("CHECK", &checked, &victim, "v"), 102);
            world.must("DEL", &conf, &attacker, "a");
            let attackers = guard_element("get", &host_end_of(&attacker_result));
            assert!(!world
                .host
                .exec_succeeds(&attackers.iter().map(String::as_str).collect::<Vec<_>>()));
        } else {
            // The twin: the attack works without the guard.
            assert!(sources.contains(&victim_ip.as_str()), "{sources:?}");
            assert_eq!(victims_port, Some(host_end_of(&attacker_result)));
        }
    }
}

#[test]
fn isolated_containers_reach_the_gateway_not_each_other() {
    require_root!("isolated_containers_reach_the_gateway_not_each_other");
    let world = World::new("iso");
    for (isolate, bridge, subnet, gateway) in [
        (true, BRIDGE, SUBNET, GATEWAY),
        (false, "cnibr1", "10.77.6.0/24", "10.77.6.1"),
    ] {
        let name = format!("iso{isolate}");
        let extra = json!({"isolate": isolate, "bridge": bridge});
        let conf = network_of(&world.conf("1.0.0"), &name, subnet, extra);
        let (one, two) = (TestNs::new("isoc"), TestNs::new("isoc"));
        let (id1, id2) = (format!("{name}-1"), format!("{name}-2"));
        let first = world.must("ADD", &conf, &one, &id1);
        let second = world.must("ADD", &conf, &two, &id2);
        assert!(ping_from(&one, gateway, 3), "isolate={isolate}: no gateway");
        assert_eq!(ping_from(&one, &address_of(&second), 2), !isolate);
        let flags = common::run(
            "bridge",
            &[
                "-n",
                &world.host.name,
                "-d",
                "-j",
                "link",
                "show",
                "dev",
                &host_end_of(&first),
            ],
        );
        let flags: Value = serde_json::from_str(&flags).unwrap();
        assert_eq!(flags[0]["isolated"], isolate, "{flags}");
        assert!(
            world
                .call("CHECK", &with_prev(&conf, &first), &one, &id1)
                .ok
        );
        if isolate {
            // Turned off behind the plugin's back: CHECK says so.
            let end = host_end_of(&first);
            common::run(
                "bridge",
                &[
                    "-n",
                    &world.host.name,
                    "link",
                    "set",
                    "dev",
                    &end,
                    "isolated",
                    "off",
                ],
            );
            assert_error(
                &world.call("CHECK", &with_prev(&conf, &first), &one, &id1),
                102,
            );
        }
    }
}

#[test]
fn a_bridge_netsetgo_manages_is_refused_and_left_untouched() {
    require_root!("a_bridge_netsetgo_manages_is_refused_and_left_untouched");
    let world = World::new("own");
    let container = TestNs::new("ownc");
    world.host.ip(&["link", "add", BRIDGE, "type", "bridge"]);
    // netsetgo's mark (root alone can set it in the host's namespace).
    world
        .host
        .ip(&["link", "set", BRIDGE, "alias", "netsetgo:803:1a"]);
    // A port that looks like one of the plugin's, recorded for this network.
    world.host.ip(&[
        "link",
        "add",
        "np0123456789abc",
        "type",
        "veth",
        "peer",
        "name",
        "np-peer",
    ]);
    world
        .host
        .ip(&["link", "set", "np0123456789abc", "master", BRIDGE]);
    world.host.ip(&[
        "link",
        "set",
        "np0123456789abc",
        "alias",
        &format!("netplumb-cni net {NETWORK}"),
    ]);
    let shape = || {
        (
            ns_shape(&world.host),
            world.host.ip(&["-d", "link", "show", BRIDGE]),
            ns_shape(&container),
        )
    };
    let before = shape();

    let refused = world.call(
        "ADD",
        &with_ports(&world.conf("1.0.0"), &[(8080, 80)]),
        &container,
        "x",
    );
    assert_error(&refused, 7);
    let details = refused.out["details"].as_str().unwrap();
    assert!(
        details.contains(BRIDGE) && details.contains("netsetgo"),
        "{details}"
    );
    let v11 = world.conf("1.1.0");
    let status = world.call("STATUS", &v11, &container, "x");
    assert_error(&status, 50);
    assert!(status.out["details"].as_str().unwrap().contains("netsetgo"));
    let mut gc = v11.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    assert_error(&world.call("GC", &gc, &container, "x"), 7);
    assert_eq!(before, shape(), "a refusal changed the host");
    assert!(world.leases().is_empty(), "{:?}", world.leases());
    assert!(claims(&world).is_empty());
}

#[test]
fn the_plugins_own_namespace_is_refused_and_nothing_changes() {
    require_root!("the_plugins_own_namespace_is_refused_and_nothing_changes");
    let world = World::new("self");
    let before = (
        ns_shape(&world.host),
        world.host.ip(&["-j", "addr"]),
        world.host.ip(&["-j", "route"]),
    );
    let own = world.host.path();
    let own = own.to_str().unwrap();
    let conf = world.conf("1.0.0");
    for cmd in ["ADD", "CHECK"] {
        let conf = with_prev(&conf, &json!({"cniVersion": "1.0.0"}));
        let refused = world.run(&env(cmd, "self", own, "eth0"), conf.to_string().as_bytes());
        assert_error(&refused, 8);
        let details = refused.out["details"].as_str().unwrap();
        assert!(
            details.contains("own network namespace"),
            "{cmd}: {details}"
        );
    }
    let after = (
        ns_shape(&world.host),
        world.host.ip(&["-j", "addr"]),
        world.host.ip(&["-j", "route"]),
    );
    assert_eq!(before, after);
    assert!(world.leases().is_empty(), "{:?}", world.leases());
}

#[test]
fn gc_of_one_network_leaves_another_networks_attachments_on_the_same_bridge() {
    require_root!("gc_of_one_network_leaves_another_networks_attachments_on_the_same_bridge");
    let world = World::new("gc2");
    let x = network_of(&world.conf("1.0.0"), "netx", SUBNET, json!({}));
    let y = network_of(&world.conf("1.0.0"), "nety", "10.77.6.0/24", json!({}));
    let (cx, cy) = (TestNs::new("gcx"), TestNs::new("gcy"));
    let on_x = world.must("ADD", &x, &cx, "cx");
    let on_y = world.must("ADD", &y, &cy, "cy");
    assert_eq!(world.ports().len(), 2);

    // GC for X, keeping nothing of X: X's attachment goes, Y's stays and
    // still works.
    let mut gc = network_of(&world.conf("1.1.0"), "netx", SUBNET, json!({}));
    gc["cni.dev/valid-attachments"] = json!([]);
    let outcome = world.call("GC", &gc, &cx, "unused");
    assert!(outcome.ok, "{}", outcome.out);
    assert_eq!(world.ports(), vec![host_end_of(&on_y)]);
    assert!(cx.link("eth0").is_none());
    assert!(ping_from(&cy, "10.77.6.1", 3));
    // DEL of X for Y's attachment name is not X's to do either.
    let del = world.call("DEL", &x, &cy, "cy");
    assert!(del.ok, "{}", del.out);
    assert_eq!(world.ports(), vec![host_end_of(&on_y)]);
    // GC for Y, keeping it: nothing changes.
    let mut gc = network_of(&world.conf("1.1.0"), "nety", "10.77.6.0/24", json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "cy", "ifname": "eth0"}]);
    assert!(world.call("GC", &gc, &cy, "unused").ok);
    assert_eq!(world.ports(), vec![host_end_of(&on_y)]);
    assert!(world.host.link(&host_end_of(&on_x)).is_none());
}

#[test]
fn the_example_conflists_work() {
    require_root!("the_example_conflists_work");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conflists");
    for name in ["podman", "nerdctl", "containerd-cri"] {
        let path = dir.join(format!("{name}.conflist"));
        let text = std::fs::read_to_string(&path).expect("conflist");
        let list: Value = serde_json::from_str(&text).expect("conflist JSON");
        // What an engine hands the plugin: the list's version and name in
        // the plugin's entry, the runtime's mappings in runtimeConfig.
        let mut conf = list["plugins"][0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        assert_eq!(conf["type"], "netplumb-bridge", "{name}");
        let world = World::new("ex");
        conf["ipam"]["dataDir"] = json!(world.leases);
        let conf = with_ports(&conf, &[(8080, 80)]);
        let container = TestNs::new("exc");
        let result = world.must("ADD", &conf, &container, "ex");
        assert!(is_up(&container.must_link("eth0")), "{name}");
        assert_eq!(claims(&world).len(), 1, "{name}");
        assert!(
            world
                .call("CHECK", &with_prev(&conf, &result), &container, "ex")
                .ok,
            "{name}"
        );
        world.must("DEL", &conf, &container, "ex");
        assert!(
            container.link("eth0").is_none() && claims(&world).is_empty(),
            "{name}"
        );
    }
}

/// `nft <verb> element` of host end `end` in the guard's set of guarded
/// ports.
fn guard_element(verb: &str, end: &str) -> Vec<String> {
    let table = netplumb::guard_table_name("netplumb-cni");
    let element = format!("{{ \"{end}\" }}");
    [
        "nft", verb, "element", "bridge", &table, "ports_v3", &element,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn del_after_the_container_vanished_takes_its_ports_and_guard() {
    require_root!("del_after_the_container_vanished_takes_its_ports_and_guard");
    let world = World::new("dv");
    let guarded = network_of(
        &world.conf("1.0.0"),
        NETWORK,
        SUBNET,
        json!({"guard": true}),
    );
    let conf = with_ports(&guarded, &[(8080, 80), (8443, 443)]);
    let container = TestNs::new("dvc");
    let result = world.must("ADD", &conf, &container, "dv");
    let end = host_end_of(&result);
    let guarded = guard_element("get", &end);
    let guarded: Vec<&str> = guarded.iter().map(String::as_str).collect();
    assert_eq!(claims(&world).len(), 2);
    assert!(world.host.exec_succeeds(&guarded));
    let netns = container.path();
    drop(container);
    wait_gone(&world, &end);
    // The engine's DEL for a container whose namespace is gone.
    let netns = netns.to_str().unwrap();
    let del = world.run(
        &env("DEL", "dv", netns, "eth0"),
        conf.to_string().as_bytes(),
    );
    assert!(del.ok, "{}", del.out);
    assert!(claims(&world).is_empty(), "{:?}", claims(&world));
    // Its elements named an index no device has now: every one is gone.
    let table = netplumb::guard_table_name("netplumb-cni");
    let listed = world.host.run(&["nft", "list", "table", "bridge", &table]);
    assert!(!listed.contains("elements"), "{listed}");
    assert!(world.leases().is_empty(), "{:?}", world.leases());
}

// Review round 3 (CNI plugin): attacks that worked, one test each (see
// SECURITY.md, "Reviews"). Each failed before its fix.

/// Sends five UDP datagrams from `ns` to `address:port` (its own source).
fn send_udp(ns: &TestNs, address: &str, port: u16) {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(5): s.sendto(b'hello', ('{address}', {port}))\n"
    );
    ns.run(&["timeout", "10", "python3", "-c", &script]);
}

/// `isolate` closed layer 2 only; the host routed a container's packets
/// for another container back out of the same bridge.
#[test]
fn redteam_isolated_containers_do_not_reach_each_other_through_the_gateway() {
    require_root!("redteam_isolated_containers_do_not_reach_each_other_through_the_gateway");
    let world = World::new("rtiso");
    let conf = network_of(
        &world.conf("1.0.0"),
        NETWORK,
        SUBNET,
        json!({"isolate": true, "guard": true}),
    );
    let (attacker, victim) = (TestNs::new("rtia"), TestNs::new("rtiv"));
    let first = world.must("ADD", &conf, &attacker, "rti-1");
    let second = world.must("ADD", &conf, &victim, "rti-2");
    let victim_ip = address_of(&second);
    let receiver = support::udp_sources(&victim, "0.0.0.0", 5005, 10);
    // Layer 2 is closed (isolated ports); the attacker routes through the
    // gateway instead: its own MAC and address, the gateway's MAC.
    let host_route = format!("{victim_ip}/32");
    attacker.run(&["ip", "route", "add", &host_route, "via", GATEWAY]);
    send_udp(&attacker, &victim_ip, 5005);
    let sources = receiver.finish();
    assert!(
        !sources.contains(address_of(&first).as_str()),
        "the isolated victim heard the attacker through the gateway: {sources:?}"
    );
    // CHECK sees the rule, and its loss.
    let checked = with_prev(&conf, &first);
    assert!(world.call("CHECK", &checked, &attacker, "rti-1").ok);
    world
        .host
        .run(&["nft", "flush", "chain", "inet", "netplumb-cni", "isolate"]);
    assert_error(&world.call("CHECK", &checked, &attacker, "rti-1"), 102);
}

/// Two container ids whose host ends (with `eth0`) differ but share the
/// last 40 bits of their names: the same container MAC on a guarded
/// network and the same owner of published ports (its last 32 bits).
/// Found by a birthday search over `rtmac-<n>` (2.6 million FNV-1a hashes);
/// random container ids collide so with many attachments over time.
const COLLIDING: [&str; 2] = ["rtmac-1461826", "rtmac-2641382"];

#[test]
fn redteam_a_failed_add_whose_owner_collides_does_not_unpublish_anothers_port() {
    require_root!("redteam_a_failed_add_whose_owner_collides_does_not_unpublish_anothers_port");
    let world = World::new("rtown");
    let conf = with_ports(&world.conf("1.0.0"), &[(8080, 80)]);
    let (victim, tenant) = (TestNs::new("rtov"), TestNs::new("rtot"));
    let first = world.must("ADD", &conf, &victim, COLLIDING[0]);
    let victims_end = host_end_of(&first);
    assert_eq!(claims(&world).len(), 1);
    // The tenant asks for the victim's host port: refused (the port is
    // taken; since the fix, first for the colliding owner), nothing made.
    let links = world.host.ip(&["-o", "link"]).lines().count();
    let refused = world.call("ADD", &conf, &tenant, COLLIDING[1]);
    assert!(!refused.ok, "{}", refused.out);
    assert_eq!(world.host.ip(&["-o", "link"]).lines().count(), links);
    assert_eq!(world.leases().len(), 1, "{:?}", world.leases());
    // The engine's DEL after a failed ADD, with the same runtimeConfig.
    let del = world.call("DEL", &conf, &tenant, COLLIDING[1]);
    assert!(del.ok, "{}", del.out);
    assert!(world.host.link(&victims_end).is_some());
    assert_eq!(
        claims(&world).len(),
        1,
        "the victim's published port went with the other attachment's DEL: {}",
        table_text(&world)
    );
}

#[test]
fn redteam_colliding_attachments_never_share_a_mac_on_a_guarded_bridge() {
    require_root!("redteam_colliding_attachments_never_share_a_mac_on_a_guarded_bridge");
    let world = World::new("rtmac");
    let conf = network_of(
        &world.conf("1.0.0"),
        NETWORK,
        SUBNET,
        json!({"guard": true}),
    );
    let (victim, attacker) = (TestNs::new("rtmv"), TestNs::new("rtma"));
    let first = world.must("ADD", &conf, &victim, COLLIDING[0]);
    let victims_end = host_end_of(&first);
    let mac = first["interfaces"][2]["mac"].as_str().unwrap().to_string();
    let second = world.call("ADD", &conf, &attacker, COLLIDING[1]);
    assert_eq!(
        support::fdb_port(&world.host, BRIDGE, &mac).as_deref(),
        Some(victims_end.as_str()),
        "the victim's MAC moved: second ADD {}",
        second.out
    );
    assert!(ping_from(&world.host, &address_of(&first), 2));
    if second.ok {
        assert_ne!(
            second.out["interfaces"][2]["mac"].as_str(),
            Some(mac.as_str())
        );
    }
}

/// Makes in the world's host a veth named as netsetgo names a caller's
/// host end with `-vethNamePrefix np<5 hex>` (its prefix, then its IPv4
/// address in hex): the plugin's name shape, `end`'s owner (its last 32
/// bits), no alias. Root makes it here; netsetgo makes it for any user
/// granted that address.
fn netsetgo_shaped_twin(world: &World, end: &str, peer: &str) -> String {
    let high = if &end[2..7] == "fffff" {
        "eeeee"
    } else {
        "fffff"
    };
    let twin = format!("np{high}{}", &end[7..]);
    world
        .host
        .ip(&["link", "add", &twin, "type", "veth", "peer", "name", peer]);
    twin
}

#[test]
fn redteam_a_netsetgo_host_end_of_the_plugins_shape_keeps_no_claim() {
    require_root!("redteam_a_netsetgo_host_end_of_the_plugins_shape_keeps_no_claim");
    let world = World::new("rtns");
    let conf = with_ports(&world.conf("1.0.0"), &[(8080, 80)]);
    // GC: an attachment gone without DEL, a netsetgo user's twin alive.
    let vanished = TestNs::new("rtnv");
    let end = host_end_of(&world.must("ADD", &conf, &vanished, "rtns-gone"));
    let twin = netsetgo_shaped_twin(&world, &end, "rtnspeer1");
    drop(vanished);
    wait_gone(&world, &end);
    let mut gc = world.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let container = TestNs::new("rtnc");
    let outcome = world.call("GC", &gc, &container, "unused");
    assert!(outcome.ok, "{}", outcome.out);
    assert!(
        claims(&world).is_empty(),
        "a dead attachment's port stays published (to an address IPAM hands \
         out again) while {twin} lives: {}",
        table_text(&world)
    );
    assert!(world.host.link(&twin).is_some(), "GC took netsetgo's link");
    // DEL: the twin does not make the attachment's claims someone else's.
    let end = host_end_of(&world.must("ADD", &conf, &container, "rtns-del"));
    netsetgo_shaped_twin(&world, &end, "rtnspeer2");
    assert!(world.call("DEL", &conf, &container, "rtns-del").ok);
    assert!(claims(&world).is_empty(), "{}", table_text(&world));
}

#[test]
fn redteam_a_tenants_port_mappings_and_netns_are_refused_with_nothing_left() {
    require_root!("redteam_a_tenants_port_mappings_and_netns_are_refused_with_nothing_left");
    let world = World::new("rtin");
    let conf = with_ports(&world.conf("1.0.0"), &[(8080, 80)]);
    let (victim, tenant) = (TestNs::new("rtinv"), TestNs::new("rtint"));
    world.must("ADD", &conf, &victim, "rtin-victim");
    let before = (
        table_text(&world),
        world.host.ip(&["-o", "link"]).lines().count(),
    );
    let mapping = |host: u32, extra: Value| {
        let mut m = json!({"hostPort": host, "containerPort": 80, "protocol": "tcp"});
        for (key, value) in extra.as_object().unwrap() {
            m[key] = value.clone();
        }
        m
    };
    for (mappings, code) in [
        (vec![mapping(0, json!({}))], 7),
        (vec![mapping(70000, json!({}))], 7),
        (vec![mapping(9090, json!({})), mapping(9090, json!({}))], 7),
        (vec![mapping(9090, json!({})), mapping(8080, json!({}))], 7),
        (
            vec![
                mapping(9090, json!({"protocol": "TCP"})),
                mapping(8080, json!({"protocol": "Tcp"})),
            ],
            7,
        ),
        (vec![mapping(9090, json!({"hostIP": "fd00::99"}))], 7),
        (vec![mapping(9090, json!({"hostIP": "::1"}))], 2),
        (vec![mapping(9090, json!({"protocol": "sctp"}))], 2),
    ] {
        let mut asked = conf.clone();
        asked["runtimeConfig"]["portMappings"] = json!(mappings);
        let outcome = world.call("ADD", &asked, &tenant, "rtin-tenant");
        assert!(!outcome.ok, "{mappings:?}: {}", outcome.out);
        if outcome.out["code"] != 6 {
            assert_error(&outcome, code);
        }
        // The engine's DEL after the failed ADD, with the same mappings.
        assert!(world.call("DEL", &asked, &tenant, "rtin-tenant").ok);
        let after = (
            table_text(&world),
            world.host.ip(&["-o", "link"]).lines().count(),
        );
        assert_eq!(after, before, "{mappings:?}");
        assert_eq!(
            world.leases().len(),
            1,
            "{mappings:?}: {:?}",
            world.leases()
        );
    }
    // CNI_NETNS naming the plugin's own namespace, however spelled.
    for own in ["/proc/self/ns/net", "/proc/thread-self/ns/net"] {
        let outcome = world.run(
            &env("ADD", "rtin-own", own, "eth0"),
            conf.to_string().as_bytes(),
        );
        assert_error(&outcome, 8);
        assert_eq!(table_text(&world), before.0);
    }
}

/// Review r20, F4 (issue 17 step 2): DEL knows no address of the
/// attachment, and a re-ADD of the same container id and ifname (the same
/// host end name and MAC) gets another address from IPAM. The guard's
/// elements are keyed by the host end's index: DEL takes every element of
/// its index, and the re-made host end passes only its new address (with
/// the prototype's name keys the first address stayed, and passed, once
/// IPAM gave it to another container).
#[test]
fn a_re_added_attachment_keeps_none_of_its_old_address() {
    require_root!("a_re_added_attachment_keeps_none_of_its_old_address");
    let world = World::new("ra");
    let conf = network_of(
        &world.conf("1.0.0"),
        NETWORK,
        SUBNET,
        json!({"guard": true}),
    );
    let container = TestNs::new("rac");
    let first = world.must("ADD", &conf, &container, "ra");
    let (end, old) = (host_end_of(&first), address_of(&first));
    let table = netplumb::guard_table_name("netplumb-cni");
    let v4 = || {
        world
            .host
            .run(&["nft", "list", "set", "bridge", &table, "v4_v3"])
    };
    assert!(v4().contains(&format!("{old} ")), "{}", v4());
    world.must("DEL", &conf, &container, "ra");
    let listed = world.host.run(&["nft", "list", "table", "bridge", &table]);
    assert!(!listed.contains("elements"), "DEL left elements:\n{listed}");
    // Another attachment takes the next address; the first one again gets
    // the one after it.
    let other = TestNs::new("rao");
    world.must("ADD", &conf, &other, "rb");
    let again = world.must("ADD", &conf, &container, "ra");
    assert_eq!(host_end_of(&again), end);
    let new = address_of(&again);
    assert_ne!(new, old);
    let listed = v4();
    let words: Vec<&str> = listed
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .collect();
    assert!(words.contains(&new.as_str()), "{listed}");
    assert!(!words.contains(&old.as_str()), "{listed}");
    // And by frames: from its own MAC, its old address gets nothing to the
    // host, its new one does.
    let mac = again["interfaces"][2]["mac"].as_str().unwrap().to_string();
    let bridge_mac = world.host.must_link(BRIDGE)["address"]
        .as_str()
        .unwrap()
        .to_string();
    let receiver = support::udp_sources(&world.host, GATEWAY, 5556, 10);
    for ip in [&old, &new] {
        let macs = (mac.as_str(), bridge_mac.as_str());
        support::send_forged_udp(&container, "eth0", macs, (ip.as_str(), GATEWAY), 5556);
    }
    let sources = receiver.finish();
    let sources: Vec<&str> = sources.lines().collect();
    assert!(sources.contains(&new.as_str()), "{sources:?}");
    assert!(!sources.contains(&old.as_str()), "{sources:?}");
}
