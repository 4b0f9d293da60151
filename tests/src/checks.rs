//! Assertions shared by the end-to-end tests: a call that must wire, a
//! container that must be wired as the call said, and a call that must be
//! refused while the world, its leases and the named containers stay
//! exactly as they were.

use std::time::Instant;

use crate::cmd::Output;
use crate::snapshot::{has_flag, link_kind, name as link_name, Snapshot};
use crate::users::ensure_user;
use crate::world::{Container, World};
use crate::Wired;
use serde_json::Value;

/// The default network's gateway (brg0's address, in
/// [`POLICY`](crate::fixtures::POLICY)), which [`wire`] expects.
pub const GATEWAY: &str = "10.10.10.1";

/// Wires `c` as its own user with `extra` flags; panics unless that
/// succeeds with exactly one line on stdout and nothing on stderr. Returns
/// that line without its newline.
#[track_caller]
pub fn wire_line(world: &World, c: &Container, extra: &[&str]) -> String {
    let pid = c.pid_arg();
    let mut args = extra.to_vec();
    args.extend(["-pid", pid.as_str()]);
    let out = world.netsetgo(c.user(), &args);
    assert_eq!(
        out.code(),
        Some(0),
        "netsetgo {args:?} as {}:\n{out}",
        c.user()
    );
    assert_eq!(out.stderr, "", "a success prints nothing on stderr");
    assert_eq!(out.stdout.lines().count(), 1, "one line:\n{out}");
    out.stdout.trim_end().to_string()
}

/// [`wire_line`], parsed: panics unless the line is a success line.
#[track_caller]
pub fn wire_with(world: &World, c: &Container, extra: &[&str]) -> Wired {
    let line = wire_line(world, c, extra);
    Wired::parse(&line).unwrap_or_else(|| panic!("not one success line: {line:?}"))
}

/// [`wire_with`] without extra flags.
#[track_caller]
pub fn wire(world: &World, c: &Container) -> Wired {
    wire_with(world, c, &[])
}

/// Asserts that `out` is a refusal: exit 1, nothing on stdout, exactly one
/// line on stderr starting `netsetgo: `.
#[track_caller]
pub fn assert_refusal_line(out: &Output) {
    assert_eq!(out.code(), Some(1), "expected exit 1:\n{out}");
    assert_eq!(out.stdout, "", "a refusal prints nothing on stdout:\n{out}");
    assert!(
        out.stderr.starts_with("netsetgo: ") && out.stderr.lines().count() == 1,
        "a refusal is one line on stderr:\n{out}"
    );
}

/// How [`assert_unchanged_with`] compares the bridges' maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maps {
    /// Every map's bitmap, and the set of maps, exactly as before.
    Exact,
    /// As [`Maps::Exact`], except that a map which did not exist before
    /// may appear if it has no bit set (the binary writes an empty map for
    /// a bridge name it then refuses; see `refuses_an_existing_non_bridge_as_bridge`).
    AllowNewEmpty,
}

/// Runs `call` and proves that the world's links, addresses and routes,
/// every lease file, every map's bitmap, and the network namespaces of
/// `containers` are exactly as before. Returns the call's output.
#[track_caller]
pub fn assert_unchanged(
    world: &World,
    containers: &[&Container],
    call: impl FnOnce() -> Output,
) -> Output {
    assert_unchanged_with(world, containers, Maps::Exact, call)
}

/// [`assert_unchanged`], comparing the maps as `maps` says.
#[track_caller]
pub fn assert_unchanged_with(
    world: &World,
    containers: &[&Container],
    maps: Maps,
    call: impl FnOnce() -> Output,
) -> Output {
    unchanged(world, containers, maps, false, call)
}

/// [`assert_unchanged`], and also the world's whole nftables ruleset
/// (`nft list ruleset`, byte for byte) and every network's `ports` state
/// file are as before: for calls that publish ports or guard containers.
#[track_caller]
pub fn assert_unchanged_nft(
    world: &World,
    containers: &[&Container],
    call: impl FnOnce() -> Output,
) -> Output {
    unchanged(world, containers, Maps::Exact, true, call)
}

/// [`assert_refused_unchanged`], comparing the ruleset and the ports state
/// too (see [`assert_unchanged_nft`]).
#[track_caller]
pub fn assert_refused_unchanged_nft(
    world: &World,
    containers: &[&Container],
    code: i32,
    call: impl FnOnce() -> Output,
) -> Output {
    let out = assert_unchanged_nft(world, containers, call);
    assert_eq!(out.code(), Some(code), "expected exit {code}:\n{out}");
    assert_eq!(out.stdout, "", "a refusal prints nothing on stdout:\n{out}");
    out
}

/// [`assert_refused`], comparing the ruleset and the ports state too (see
/// [`assert_unchanged_nft`]).
#[track_caller]
pub fn assert_refused_nft(
    world: &World,
    containers: &[&Container],
    user: &str,
    args: &[&str],
) -> Output {
    let out = assert_refused_unchanged_nft(world, containers, 1, || world.netsetgo(user, args));
    assert_refusal_line(&out);
    out
}

#[track_caller]
fn unchanged(
    world: &World,
    containers: &[&Container],
    maps: Maps,
    nft: bool,
    call: impl FnOnce() -> Output,
) -> Output {
    let ruleset_before = nft.then(|| crate::nft::ruleset(world));
    let ports_before = nft.then(|| all_ports(world));
    let before = world.settled_snapshot();
    let leases_before = world.all_leases();
    let bits_before = all_bits(world);
    let inside_before: Vec<_> = containers.iter().map(|c| c.snapshot()).collect();
    let out = call();
    let after = world.settled_snapshot();
    assert!(
        before == after,
        "the world changed:\n{}\ncall:\n{out}",
        before.diff(&after)
    );
    assert_eq!(
        leases_before,
        world.all_leases(),
        "leases changed; call:\n{out}"
    );
    let mut bits_after = all_bits(world);
    if maps == Maps::AllowNewEmpty {
        bits_after.retain(|(bridge, bits)| {
            !bits.is_empty() || bits_before.iter().any(|(b, _)| b == bridge)
        });
    }
    assert_eq!(bits_before, bits_after, "a map changed; call:\n{out}");
    if let Some(ruleset_before) = ruleset_before {
        let ruleset = crate::nft::ruleset(world);
        assert!(
            ruleset_before == ruleset,
            "the world's ruleset changed:\n--- before\n{ruleset_before}\n--- after\n{ruleset}\ncall:\n{out}"
        );
    }
    if let Some(ports_before) = ports_before {
        assert_eq!(
            ports_before,
            all_ports(world),
            "ports state changed; call:\n{out}"
        );
    }
    for (c, inside) in containers.iter().zip(inside_before) {
        let now = c.snapshot();
        assert!(
            inside == now,
            "container {} changed:\n{}\ncall:\n{out}",
            c.pid(),
            inside.diff(&now)
        );
    }
    out
}

/// Runs `call`, which must be refused with exit `code` and nothing on
/// stdout, and proves that it changed nothing (see [`assert_unchanged`]).
#[track_caller]
pub fn assert_refused_unchanged(
    world: &World,
    containers: &[&Container],
    code: i32,
    call: impl FnOnce() -> Output,
) -> Output {
    let out = assert_unchanged(world, containers, call);
    assert_eq!(out.code(), Some(code), "expected exit {code}:\n{out}");
    assert_eq!(out.stdout, "", "a refusal prints nothing on stdout:\n{out}");
    out
}

/// A refusal of `user` with `args` (exit 1, one line) that changes nothing
/// (see [`assert_unchanged`]).
#[track_caller]
pub fn assert_refused(
    world: &World,
    containers: &[&Container],
    user: &str,
    args: &[&str],
) -> Output {
    let out = assert_refused_unchanged(world, containers, 1, || world.netsetgo(user, args));
    assert_refusal_line(&out);
    out
}

/// [`assert_wired_in`] against a fresh snapshot of the world.
#[track_caller]
pub fn assert_wired(world: &World, c: &Container, wired: &Wired) {
    assert_wired_in(world, &world.snapshot(), c, wired);
}

/// Checks, from outside, that `c` is wired on the default network as
/// `wired` says: `veth1` up with the address, lo up, default route via the
/// gateway; its peer in `snap` (a snapshot of `world`) is an up veth on
/// brg0 named `wired.host`; and brg0 has a lease of `c`'s user for that
/// veth with the address.
#[track_caller]
pub fn assert_wired_in(world: &World, snap: &Snapshot, c: &Container, wired: &Wired) {
    assert_eq!(wired.interface, "veth1");
    assert_eq!(wired.gateway, GATEWAY);
    assert_eq!(wired.bridge, "brg0");
    let inside = c.snapshot();
    let veth1 = inside
        .link("veth1")
        .unwrap_or_else(|| panic!("no veth1 in container {}:\n{inside:?}", c.pid()));
    assert!(has_flag(veth1, "UP"), "veth1 down: {veth1}");
    assert_eq!(inside.ipv4_of("veth1"), vec![wired.address.clone()]);
    let lo = inside.link("lo").expect("lo");
    assert!(has_flag(lo, "UP"), "lo down in container {}: {lo}", c.pid());
    assert_eq!(
        inside.default_route(),
        Some((GATEWAY.to_string(), "veth1".to_string())),
        "default route in container {}:\n{inside:?}",
        c.pid()
    );
    let peer = veth1["link_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("veth1 has no peer index: {veth1}"));
    let host = snap
        .link_by_index(peer)
        .unwrap_or_else(|| panic!("peer {peer} of container {} not in the world", c.pid()));
    assert_eq!(link_name(host), wired.host, "host-side name");
    assert_eq!(link_kind(host), Some("veth"));
    assert_eq!(host["master"], "brg0", "host veth not on brg0: {host}");
    assert!(has_flag(host, "UP"), "host veth down: {host}");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.ifname == wired.host)
        .unwrap_or_else(|| panic!("no lease for {}", wired.host));
    assert_eq!(lease.uid, ensure_user(c.user()).uid);
    assert_eq!(u64::from(lease.ifindex), peer);
    assert_eq!(lease.address.to_string(), wired.ip());
}

/// The set bits of every bridge's map in the world's state.
fn all_bits(world: &World) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(world.state_dir()) {
        for entry in entries.flatten() {
            let bridge = entry.file_name().to_string_lossy().into_owned();
            if let Some(bits) = world.map_bits(&bridge) {
                out.push((bridge, bits.into_iter().collect()));
            }
        }
    }
    out.sort();
    out
}

/// Every network's `ports` state file, by bridge, without its trailing
/// NUL bytes (so that a missing file and one of empty slots compare equal).
fn all_ports(world: &World) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(world.state_dir()) {
        for entry in entries.flatten() {
            let bridge = entry.file_name().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(entry.path().join("ports")).unwrap_or_default();
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            if !bytes.is_empty() {
                out.push((bridge, bytes));
            }
        }
    }
    out.sort();
    out
}

/// The one JSON object a `-json` call printed on its one line of stdout.
#[track_caller]
pub fn json_object(out: &Output) -> serde_json::Map<String, Value> {
    assert_eq!(out.stdout.lines().count(), 1, "one line:\n{out}");
    match serde_json::from_str(out.stdout.trim()) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object ({other:?}):\n{out}"),
    }
}

/// Prints what a table-driven test did (`what`, how many `table` lines of
/// `unit` in how long since `started`, then each line) and fails with every
/// violation found.
pub fn assert_no_violations(
    what: &str,
    unit: &str,
    started: Instant,
    table: &[String],
    violations: &[String],
) {
    eprintln!(
        "{what}: {} {unit} in {:.1} s",
        table.len(),
        started.elapsed().as_secs_f64()
    );
    for line in table {
        eprintln!("  {line}");
    }
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
