//! Requirements 15 and 16 and the findings of issue 9 that are not races:
//! one namespace, one state; no hostages; the route-overlap check a killed
//! call cannot skip; the OCI state's deadline; the system user; a container
//! replaced at the quota. Each runs as an unprivileged user against the
//! installed 4755 copy and checks the world from outside.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use netsetgo_e2e::checks::{
    assert_refusal_line, assert_refused, assert_refused_unchanged, assert_unchanged_with, wire,
    Maps,
};
use netsetgo_e2e::fixtures::{busy_world, wait_for_ports, world_with, A, B, POLICY};
use netsetgo_e2e::{
    ensure_user, ensure_worker, installed_binary, require_root, time_scale, Container, Wired, World,
};

fn bin() -> String {
    installed_binary().to_string_lossy().into_owned()
}

/// The leased addresses of brg0 in the world's own state, with their users.
fn leased(world: &World) -> Vec<(String, u32, String)> {
    world
        .leases("brg0")
        .into_iter()
        .map(|l| (l.address.to_string(), l.uid, l.ifname))
        .collect()
}

// ---------------------------------------------------------------------------
// 15. One namespace, one state

#[test]
fn a_call_from_another_network_namespace_has_state_of_its_own() {
    require_root!();
    let (world, first, w) = busy_world(POLICY);
    let before = leased(&world);
    assert_eq!(before.len(), 1, "{before:?}");

    // A service started by root with a private network, run as nsg-b:
    // `ip netns exec X setpriv ... netsetgo -pid`.
    world
        .run(&["ip", "netns", "add", "other"])
        .expect_success("ip netns add");
    let c = world.container(B);
    let mut argv: Vec<String> = ["ip", "netns", "exec", "other"].map(String::from).to_vec();
    argv.extend(World::as_user(B));
    argv.extend([bin(), "-pid".into(), c.pid_arg()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = world.run(&argv);
    assert_eq!(out.code(), Some(0), "{out}");
    let there = Wired::parse(&out.stdout).expect("one success line");
    // Its own brg0 in its own namespace, its own leases: the first address.
    assert_eq!(there.address, w.address, "{out}");
    let other_brg0 = world.run(&["ip", "-n", "other", "-j", "link", "show", "brg0"]);
    assert!(other_brg0.success(), "{other_brg0}");

    // The world's own state is untouched, and the world's next call does
    // not hand out the address its first container holds.
    assert_eq!(leased(&world), before);
    let d = world.container(A);
    let next = wire(&world, &d);
    assert_ne!(next.address, w.address);
    assert!(first.pings("10.10.10.1"), "the first container still works");
    world
        .run(&["ip", "netns", "del", "other"])
        .expect_success("ip netns del");
}

#[test]
fn a_call_with_another_run_is_refused_at_the_bridge() {
    require_root!();
    let (world, first, _) = busy_world(POLICY);
    let c = world.container(B);
    // Root gave nsg-b's service a private /run (same network namespace):
    // its state would be empty and hand out the addresses in use.
    let mut argv: Vec<String> = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs tmpfs /run && exec \"$@\"",
        "sh",
    ]
    .map(String::from)
    .to_vec();
    argv.extend(World::as_user(B));
    argv.extend([bin(), "-pid".into(), c.pid_arg()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = assert_refused_unchanged(&world, &[&first, &c], 1, || world.run(&argv));
    assert_refusal_line(&out);
    assert!(out.stderr.contains("another /run"), "{out}");
    // And the world's own callers go on as before.
    let d = world.container(B);
    wire(&world, &d);
}

#[test]
fn a_bridge_the_cni_plugin_manages_is_refused_untouched() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    // The plugin's mark, which only root can set in the host's namespace.
    world
        .run(&["ip", "link", "add", "brg0", "type", "bridge"])
        .expect_success("ip link add brg0");
    world
        .run(&["ip", "link", "set", "brg0", "alias", "netplumb-cni"])
        .expect_success("ip link set brg0 alias");
    let out = assert_unchanged_with(&world, &[&c], Maps::AllowNewEmpty, || {
        world.netsetgo(A, &["-pid", &c.pid_arg()])
    });
    assert_eq!(out.code(), Some(1), "{out}");
    assert_refusal_line(&out);
    assert!(
        out.stderr.contains("brg0") && out.stderr.contains("CNI plugin netplumb-bridge"),
        "{out}"
    );
    let alias = world.run(&["ip", "-j", "link", "show", "brg0"]);
    assert!(
        alias.stdout.contains("\"ifalias\":\"netplumb-cni\""),
        "{alias}"
    );
}

// ---------------------------------------------------------------------------
// 6 / finding 3c. The overlap check cannot be skipped by a killed call

#[test]
fn a_subnet_routed_elsewhere_is_refused_before_the_bridge_exists_and_when_it_lacks_its_address() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    for cmd in [
        &[
            "ip", "link", "add", "other0", "type", "veth", "peer", "name", "other1",
        ][..],
        &["ip", "addr", "add", "10.10.10.200/24", "dev", "other0"],
        &["ip", "link", "set", "other1", "up"],
        &["ip", "link", "set", "other0", "up"],
    ] {
        world
            .run(cmd)
            .expect_success("route 10.10.10.0/24 via other0");
    }
    // No bridge yet: refused before one is made. (The refusal comes under
    // the network's lock, so the network's empty state files may appear.)
    let refused = || {
        let out = assert_unchanged_with(&world, &[&c], Maps::AllowNewEmpty, || {
            world.netsetgo(A, &["-pid", &c.pid_arg()])
        });
        assert_eq!(out.code(), Some(1), "{out}");
        assert_refusal_line(&out);
        assert!(out.stderr.contains("overlaps"), "{out}");
    };
    refused();
    assert!(world.snapshot().link("brg0").is_none());
    // A bridge without its address, as a call killed right after creating
    // it leaves one: refused too, bridge untouched.
    world
        .run(&["ip", "link", "add", "brg0", "type", "bridge"])
        .expect_success("bridge without address");
    refused();
    // Without the other route, the same call works.
    world
        .run(&["ip", "link", "del", "other0"])
        .expect_success("del other0");
    wire(&world, &c);
}

// ---------------------------------------------------------------------------
// 3 / finding 3d. The OCI state is read with a deadline, by a reader that
// holds nothing

#[test]
fn an_oci_hook_whose_stdin_never_ends_is_refused_after_the_deadline() {
    require_root!();
    let (world, first, _) = busy_world(POLICY);
    let bin = bin();
    let start = Instant::now();
    // stdin: a pipe whose only writer is the helper's own stdout, so it
    // never ends (the helper closes every other fd it inherits).
    let never_ending = "import os, sys\n\
        r, w = os.pipe()\n\
        os.dup2(r, 0)\n\
        os.dup2(w, 1)\n\
        os.execv(sys.argv[1], [sys.argv[1], '-oci-hook'])\n";
    let out = assert_refused_unchanged(&world, &[&first], 1, || {
        world.run_as(A, &["python3", "-c", never_ending, bin.as_str()])
    });
    let took = start.elapsed();
    assert!(
        out.stderr.contains("no OCI state on stdin within 5 s"),
        "{out}"
    );
    // The 5 s deadline, and the time a process start takes here.
    let bound = Duration::from_secs(5) + Duration::from_secs(7) * time_scale();
    assert!(took < bound, "took {took:?}");
}

// ---------------------------------------------------------------------------
// 16. No hostages: the system user, the reset timing

#[test]
fn without_the_system_user_only_root_is_served() {
    require_root!();
    let (world, first, _) = busy_world(POLICY);
    // The world's /etc/passwd without _netsetgo (a bind mount in the
    // world's private mount namespace).
    world
        .run(&[
            "sh",
            "-c",
            "grep -v '^_netsetgo:' /etc/passwd > /run/passwd.test && \
             chmod 0644 /run/passwd.test && mount --bind /run/passwd.test /etc/passwd",
        ])
        .expect_success("passwd without _netsetgo");
    let c = world.container(A);
    let out = assert_refused(&world, &[&first, &c], A, &["-pid", &c.pid_arg()]);
    assert!(
        out.stderr.contains("_netsetgo") && out.stderr.contains("useradd --system"),
        "{out}"
    );
    let out = world.run(&[bin().as_str(), "-pid", &c.pid_arg()]);
    assert_eq!(out.code(), Some(0), "root is still served:\n{out}");
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n - 3).map(str::to_string)
}

#[test]
fn a_caller_can_neither_slow_nor_stop_its_helper_while_it_holds_the_lock() {
    require_root!();
    let (world, _first, _) = busy_world(POLICY);
    let worker = ensure_worker();
    let map = format!(
        "/run/netsetgo/{}/brg0/map",
        world
            .state_dir()
            .file_name()
            .expect("net-<ino>")
            .to_string_lossy()
    );
    // Root holds brg0's lock, so the helper stops in it and can be looked at.
    let mut holder = world.spawn(&[
        "sh",
        "-c",
        "exec 9<\"$1\" && flock -x 9 && exec sleep 30",
        "sh",
        &map,
    ]);
    holder.wait_for_exec("sleep");

    let c = world.container(A);
    let bin = bin();
    let pid_arg = c.pid_arg();
    // The caller asks for the lowest priority it can: nice 19, SCHED_IDLE,
    // pinned to one CPU.
    let mut call = world.spawn_as(
        A,
        &[
            "taskset", "-c", "0", "nice", "-n", "19", "chrt", "--idle", "0", &bin, "-pid", &pid_arg,
        ],
    );
    let pid = call.pid();
    let uid_line = format!("{0}\t{0}\t{0}\t{0}", worker.uid);
    let blocked =
        netsetgo_e2e::wait_until(Duration::from_secs(8), Duration::from_millis(20), || {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.contains("Name:\tnetsetgo")
                && status.contains("State:\tS")
                && status.contains(&format!("Uid:\t{uid_line}"))
        });
    assert!(blocked, "the helper never waited for the lock as _netsetgo");
    // Nice value (field 19) and scheduling policy (field 41) are reset.
    assert_eq!(stat_field(pid, 19).as_deref(), Some("0"), "nice");
    assert_eq!(stat_field(pid, 41).as_deref(), Some("0"), "SCHED_OTHER");
    let cpus = |pid: &str| {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(cpus(&pid.to_string()), cpus("self"), "CPU affinity");
    // The caller may not signal it: neither stop nor kill.
    for signal in ["-STOP", "-KILL"] {
        let out = world.run_as(A, &["kill", signal, &pid.to_string()]);
        assert_ne!(out.code(), Some(0), "kill {signal} as the caller:\n{out}");
    }
    let state = stat_field(pid, 3);
    assert_eq!(state.as_deref(), Some("S"), "still waiting, not stopped");

    holder.kill();
    let done = netsetgo_e2e::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        call.has_exited()
    });
    assert!(done, "the helper did not finish once the lock was free");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.ifname.ends_with("0a0a0a03"))
        .expect("the second container's lease");
    assert_eq!(lease.uid, ensure_user(A).uid);
    assert_ne!(lease.ifindex, 0, "completed: {lease:?}");
}

// ---------------------------------------------------------------------------
// Replacing a container at the quota

/// A small deterministic generator for the moments the churn kills at.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn replacing_containers_at_the_quota_always_works() {
    require_root!();
    const QUOTA: usize = 4;
    const CYCLES: usize = 200;
    // nsg-b may hold 4 interfaces.
    let world = world_with(POLICY);
    let mut held: Vec<Container> = (0..QUOTA)
        .map(|_| {
            let c = world.container(B);
            wire(&world, &c);
            c
        })
        .collect();
    let seed = std::process::id() as u64;
    eprintln!("churn seed {seed}");
    let mut rng = Lcg(seed);
    for cycle in 0..CYCLES {
        // A runtime's restart: kill one, wire its replacement at once.
        let mut old = held.remove(rng.below(QUOTA as u64) as usize);
        old.kill();
        let c = world.container(B);
        let out = world.netsetgo(B, &["-pid", &c.pid_arg()]);
        assert_eq!(out.code(), Some(0), "cycle {cycle}: {out}");
        held.push(c);
        if cycle % 10 == 9 {
            // Among them, a call SIGKILLed at a random moment, for a
            // container that then exits too.
            let mut extra = world.container(B);
            let mut call = world.start_netsetgo(B, &["-pid", &extra.pid_arg()]);
            thread::sleep(Duration::from_micros(rng.below(8000)));
            call.sigkill();
            let _ = call.finish(Duration::from_secs(5));
            extra.kill();
        }
    }
    // Nothing leaked: once every container is gone and four new ones are
    // wired, the fifth is refused at exactly four, and that refusal's
    // recount leaves exactly the four live leases of nsg-b.
    for mut c in held.drain(..) {
        c.kill();
    }
    wait_for_ports(&world, 0);
    let last: Vec<Container> = (0..QUOTA)
        .map(|_| {
            let c = world.container(B);
            wire(&world, &c);
            c
        })
        .collect();
    let fifth = world.container(B);
    let out = world.netsetgo(B, &["-pid", &fifth.pid_arg()]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("4 of your 4"), "{out}");
    let snap = world.snapshot();
    let ports: Vec<String> = snap
        .ports_of("brg0")
        .iter()
        .map(|p| netsetgo_e2e::link_name(p).to_string())
        .collect();
    assert_eq!(ports.len(), QUOTA, "{snap:?}");
    let b = ensure_user(B).uid;
    let mut leases: Vec<String> = world
        .leases("brg0")
        .into_iter()
        .filter(|l| l.uid == b && l.ifindex != 0)
        .map(|l| l.ifname)
        .collect();
    leases.sort();
    let mut ports = ports;
    ports.sort();
    assert_eq!(leases, ports, "nsg-b's leases are exactly its live ports");
    assert_eq!(world.leases("brg0").len(), QUOTA, "no other lease is left");
    drop(last);
}
