//! Assertions shared by the security and policy tests: a call that must
//! wire, and a call that must be refused while the world, its leases and
//! the named containers stay exactly as they were.

use crate::cmd::Output;
use crate::world::{Container, World};
use crate::Wired;

/// Wires `c` as its own user with `extra` flags; panics unless that
/// succeeds with exactly one line on stdout and nothing on stderr.
#[track_caller]
pub fn wire_with(world: &World, c: &Container, extra: &[&str]) -> Wired {
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
    Wired::parse(&out.stdout).unwrap_or_else(|| panic!("not one success line: {:?}", out.stdout))
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

/// Runs `call` and proves that the world's links, addresses and routes,
/// every lease file, every map's bitmap, and the network namespaces of
/// `containers` are exactly as before. Returns the call's output.
#[track_caller]
pub fn assert_unchanged(
    world: &World,
    containers: &[&Container],
    call: impl FnOnce() -> Output,
) -> Output {
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
    assert_eq!(bits_before, all_bits(world), "a map changed; call:\n{out}");
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

/// A refusal of `user` with `args` (exit 1, one line) that changes nothing
/// (see [`assert_unchanged`]).
#[track_caller]
pub fn assert_refused(
    world: &World,
    containers: &[&Container],
    user: &str,
    args: &[&str],
) -> Output {
    let out = assert_unchanged(world, containers, || world.netsetgo(user, args));
    assert_refusal_line(&out);
    out
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
