//! The reaper of an lxc-user-nic `create` (SECURITY.md, "The reaper"),
//! against the installed binary: what it holds, that its caller can
//! neither end nor trace it, that it frees nothing of a living container
//! and exits quietly when its lease ends otherwise, and that a plain
//! `-pid` call leaves no reaper. (rootlesskit's exit, end to end, is in
//! `rootlesskit.rs`.)

use std::time::Duration;

use netsetgo_e2e::checks::wire_line;
use netsetgo_e2e::dhcp::gone_within;
use netsetgo_e2e::fixtures::{wait_for_ports, world_with, A, B, POLICY};
use netsetgo_e2e::reaper::{assert_reaper_holds_only_its_watch, new_reaper, reapers};
use netsetgo_e2e::{ensure_worker, require_root, Container, Lease, SyslogSink, World};

/// `netsetgo create /dev/null dummy PID veth brg0 eth0` as the
/// container's user, as rootlesskit calls it: the lease it took and the
/// reaper it left.
fn create(world: &World, c: &Container) -> (Lease, u32) {
    let before = reapers(world);
    let pid = c.pid_arg();
    let args = ["create", "/dev/null", "dummy", &pid, "veth", "brg0", "eth0"];
    let out = world.netsetgo(c.user(), &args);
    assert_eq!(out.code(), Some(0), "{out}");
    let host = out.stdout.trim_end().split(':').nth(2).expect("host end");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.ifname == host)
        .unwrap_or_else(|| panic!("no lease for {host}"));
    (lease, new_reaper(world, &before))
}

/// The world's audit records of reapers.
fn reaper_records(sink: &SyslogSink) -> Vec<String> {
    sink.records(Duration::from_millis(300))
        .into_iter()
        .filter(|r| r.contains("action=reap"))
        .collect()
}

#[test]
fn the_reaper_holds_only_its_watch_and_its_caller_can_neither_end_nor_trace_it() {
    require_root!();
    let world = world_with(POLICY);
    let mut c = world.container(A);
    let (lease, reaper) = create(&world, &c);
    let worker = ensure_worker();
    assert_reaper_holds_only_its_watch(reaper, worker.uid, worker.gid, "/run/netsetgo/net-");
    let pid = reaper.to_string();
    for argv in [
        vec!["kill", "-KILL", pid.as_str()],
        vec!["kill", "-STOP", pid.as_str()],
        vec!["kill", "-TERM", pid.as_str()],
        vec!["timeout", "5", "strace", "-p", pid.as_str()],
        vec!["timeout", "5", "gdb", "-batch", "-p", pid.as_str()],
        vec!["cat", &format!("/proc/{pid}/environ")],
    ] {
        let out = world.run_as(A, &argv);
        assert_ne!(out.code(), Some(0), "{argv:?} as the caller: {out}");
        let denied = ["Operation not permitted", "Permission denied"];
        assert!(
            denied.iter().any(|d| out.stderr.contains(d)),
            "{argv:?} failed for another reason: {out}"
        );
    }
    let state = netsetgo_e2e::dhcp::status_field(reaper, "State");
    assert!(state.starts_with('S'), "the reaper sleeps: {state}");
    assert_eq!(netsetgo_e2e::dhcp::status_field(reaper, "TracerPid"), "0");
    assert_eq!(world.leases("brg0"), vec![lease]);
    // It does its work all the same once the container exits.
    c.kill();
    wait_for_ports(&world, 0);
    assert!(
        gone_within(reaper, Duration::from_secs(5)),
        "reaper {reaper} lives on"
    );
    assert_eq!(world.leases("brg0"), vec![]);
}

/// Root deletes the host end of a second container: only that lease is
/// freed (by its own reaper), the first container's lease and reaper stay.
/// Then the first is deleted by its user: its reaper exits, freeing and
/// recording nothing more.
#[test]
fn a_reaper_frees_nothing_of_a_living_container_and_a_delete_ends_it_quietly() {
    require_root!();
    let world = world_with(POLICY);
    world.mount_private_dev();
    let sink = SyslogSink::bind(&world);
    let first = world.container(A);
    let second = world.container(B);
    let (kept, kept_reaper) = create(&world, &first);
    let (removed, removed_reaper) = create(&world, &second);
    assert!(reaper_records(&sink).is_empty());

    world
        .run(&["ip", "link", "del", &removed.ifname])
        .expect_success("delete the second host end");
    assert!(gone_within(removed_reaper, Duration::from_secs(5)));
    assert_eq!(world.leases("brg0"), vec![kept.clone()]);
    assert_eq!(
        reapers(&world),
        vec![kept_reaper],
        "the first reaper lives on"
    );
    let records = reaper_records(&sink);
    assert_eq!(records.len(), 1, "{records:?}");
    let uid_b = netsetgo_e2e::fixtures::uid(B);
    let expected = [
        format!("uid={uid_b} pid={}", second.pid()),
        format!(
            "result=granted removed 1 host={} address={}",
            removed.ifname, removed.address
        ),
    ];
    for field in expected {
        assert!(records[0].contains(&field), "{field} not in {records:?}");
    }

    let nspath = format!("/proc/{}/ns/net", first.pid());
    let args = [
        "delete",
        "/dev/null",
        "dummy",
        &nspath,
        "veth",
        "brg0",
        &kept.ifname,
    ];
    let out = world.netsetgo(A, &args);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(gone_within(kept_reaper, Duration::from_secs(5)));
    assert_eq!(world.leases("brg0"), vec![]);
    assert_eq!(
        reaper_records(&sink),
        Vec::<String>::new(),
        "no record of the reaper"
    );
}

/// Only the lxc-user-nic form leaves a reaper: after a `-pid` call's
/// container exits, its lease waits for the next call, as before.
#[test]
fn a_plain_pid_call_leaves_no_reaper() {
    require_root!();
    let world = world_with(POLICY);
    let mut c = world.container(A);
    wire_line(&world, &c, &[]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(reapers(&world), Vec::<u32>::new());
    let lease = world.leases("brg0");
    c.kill();
    wait_for_ports(&world, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(world.leases("brg0"), lease, "kept until a call");
    let d = world.container(A);
    wire_line(&world, &d, &[]);
    assert_eq!(world.leases("brg0").len(), 1, "the next call collected it");
}

/// The bridge also sends `RTM_DELLINK` (family `AF_BRIDGE`) when a port
/// only leaves it: root taking the host end off the bridge and putting it
/// back neither wakes the reaper nor frees the lease (found by review:
/// the reaper woke, found the lease live and exited for good); the
/// container's exit still frees it.
#[test]
fn a_port_leaving_the_bridge_is_not_its_deletion() {
    require_root!();
    let world = world_with(POLICY);
    let mut c = world.container(A);
    let (lease, reaper) = create(&world, &c);
    for argv in [
        &["ip", "link", "set", &lease.ifname, "nomaster"][..],
        &["ip", "link", "set", &lease.ifname, "master", "brg0"],
    ] {
        world.run(argv).expect_success("move the host end");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reapers(&world), vec![reaper], "the reaper lives on");
    assert_eq!(world.leases("brg0"), vec![lease]);
    c.kill();
    wait_for_ports(&world, 0);
    assert!(
        gone_within(reaper, Duration::from_secs(5)),
        "reaper {reaper} lives on"
    );
    assert_eq!(world.leases("brg0"), vec![]);
}
