//! Real clients: Debian's rootless Docker (docker.io 20.10,
//! `dockerd-rootless.sh`, rootlesskit 1.1.0) with
//! `DOCKERD_ROOTLESS_ROOTLESSKIT_NET=lxc-user-nic` and the installed setuid
//! netsetgo as rootlesskit's `--lxc-user-nic-binary`, as the unprivileged
//! `nsg-dk`, offline, in a world (see `netsetgo_e2e::docker`).
//!
//! rootlesskit calls `netsetgo create /dev/null dummy CHILD veth brg0 eth0`
//! for its child, whose namespace dockerd, containerd and the containers
//! share (docker0 and Docker's NAT live there). rootlesskit never calls
//! `delete`: when the daemon stops, the kernel removes the pair with the
//! namespace, and the lease (with its port's guard chain) is freed by the
//! next netsetgo call on the network.

use std::time::{Duration, Instant};

use netsetgo_e2e::docker::{busybox_image, require_packages, Rootless, BRIDGE, IMAGE};
use netsetgo_e2e::fixtures::{wait_for_ports, world_with, GATEWAY};
use netsetgo_e2e::nft::{ruleset, NftTable};
use netsetgo_e2e::traffic::{
    netns_prefix, request_retrying, token, Outside, Server, OUTSIDE4, OUTSIDE_TRIES, UPLINK4,
};
use netsetgo_e2e::{require_root, scratch_dir, Lease, Snapshot, World};

const USER: &str = "nsg-dk";
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-dk default 1
publish nsg-dk default tcp 8000-8099
publish nsg-dk default udp 8000-8099
";

/// How long a stop may take (dockerd stops containerd, rootlesskit its
/// child).
const STOP: Duration = Duration::from_secs(30);

/// Docker's default bridge address inside rootlesskit's namespace: what a
/// container's server sees behind rootlesskit's builtin port driver and
/// Docker's userland proxy.
const DOCKER0: &str = "172.17.0.1";

/// Exactly one lease on the bridge, the user's; exactly one host end on
/// the bridge, the lease's; rootlesskit's child has the lease's address on
/// `eth0`. Returns the lease.
#[track_caller]
fn assert_one_lease(world: &World, rootless: &Rootless) -> Lease {
    let leases = world.leases(BRIDGE);
    assert_eq!(leases.len(), 1, "leases: {leases:#?}");
    let lease = leases[0].clone();
    assert_eq!(lease.uid, rootless.user.uid, "{lease:?}");
    let snap = world.snapshot();
    let ports: Vec<&str> = snap
        .ports_of(BRIDGE)
        .iter()
        .map(|l| netsetgo_e2e::link_name(l))
        .collect();
    assert_eq!(ports, vec![lease.ifname.as_str()], "host ends on {BRIDGE}");
    let child = Snapshot::of_pid(rootless.child_pid());
    assert_eq!(
        child.ipv4_of("eth0"),
        vec![format!("{}/24", lease.address)],
        "rootlesskit's eth0 (DHCP from netsetgo's responder)"
    );
    lease
}

/// The names of the guard's chains in the world (one per guarded port).
fn guard_chains(world: &World) -> Vec<String> {
    NftTable::guard(world)
        .map(|t| t.port_chains().into_keys().collect())
        .unwrap_or_default()
}

/// Waits (bounded) until the kernel has removed the host end of a
/// stopped daemon's namespace (its cleanup runs after the last process
/// has gone, later under load); returns how long that took.
fn wait_for_no_host_end(world: &World) -> Duration {
    let start = Instant::now();
    wait_for_ports(world, 0);
    start.elapsed()
}

/// After a stop: no host end on the bridge (once the kernel has removed
/// the namespace), no docker0 or other device of Docker's in the world.
/// The reaper of rootlesskit's `create` frees the lease and its guard
/// chain with no call (within 5 s); then the next call on the network (a
/// container of the user's, wired and deleted) finds nothing stale: no
/// lease, no host end, no guard chain and no nftables rule naming the
/// daemon's lease (`daemons`) address or host end is left.
#[track_caller]
fn assert_nothing_left(world: &World, daemons: &Lease) {
    wait_for_no_host_end(world);
    let snap = world.settled_snapshot();
    assert!(
        snap.ports_of(BRIDGE).is_empty(),
        "host ends left:\n{snap:?}"
    );
    let names = snap.link_names();
    assert!(
        names
            .iter()
            .all(|n| ["lo", "up0", BRIDGE].contains(&n.as_str())),
        "devices in the world after the stop: {names:?}"
    );
    let freed = netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        world.leases(BRIDGE).is_empty() && guard_chains(world).is_empty()
    });
    let (stale, chains) = (world.leases(BRIDGE), guard_chains(world));
    assert!(
        freed,
        "after the stop, before the next call: leases {stale:?}, guard chains {chains:?}"
    );
    let c = world.container(USER);
    let out = world.netsetgo(USER, &["-pid", &c.pid_arg()]);
    assert_eq!(out.code(), Some(0), "the next call:\n{out}");
    let out = world.netsetgo(USER, &["-delete", "-pid", &c.pid_arg()]);
    assert_eq!(out.code(), Some(0), "-delete:\n{out}");
    assert_eq!(world.leases(BRIDGE), vec![], "leases after the next call");
    assert_eq!(guard_chains(world), Vec::<String>::new(), "guard chains");
    assert!(world.settled_snapshot().ports_of(BRIDGE).is_empty());
    let rules = ruleset(world);
    assert!(
        !rules.contains(&daemons.address.to_string()) && !rules.contains(&daemons.ifname),
        "the ruleset still names {daemons:?}:\n{rules}"
    );
}

/// The daemon comes up on the lxc-user-nic network, a container reaches
/// the world (ping and TCP, masqueraded by Docker to the lease's
/// address), `docker run -p` works from another machine through
/// rootlesskit's `builtin` port driver (which hides the client), and a
/// stop leaves nothing behind: the reaper frees the lease with no call.
#[test]
fn rootless_docker_runs_containers_on_its_lease_and_publishes_with_builtin() {
    require_root!();
    require_packages();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let rootless = Rootless::new(&world, USER);
    let image = busybox_image(&scratch_dir("docker-image"));
    let daemon = rootless.start("builtin", &[]);
    eprintln!("rootless dockerd answered after {:?}", daemon.ready_after);

    let info = rootless.rootlessctl(&["info", "--json"]);
    info.expect_success("rootlessctl info");
    let info: serde_json::Value = serde_json::from_str(&info.stdout).expect("rootlessctl JSON");
    assert_eq!(info["networkDriver"]["driver"], "lxc-user-nic", "{info}");
    let lease = assert_one_lease(&world, &rootless);
    assert!(
        Snapshot::of_pid(rootless.child_pid())
            .link("docker0")
            .is_some(),
        "docker0 lives in rootlesskit's namespace"
    );
    assert!(world.snapshot().link("docker0").is_none());

    rootless
        .docker(&["load", "-i", &image.to_string_lossy()])
        .expect_success("docker load");
    let mut server = Server::start(&netns_prefix(world.pid()), "tcp", GATEWAY, 7000);
    let t = token();
    let script = format!("ping -c1 -W5 {GATEWAY} && echo ping {t} | nc -w 5 {GATEWAY} 7000");
    let out = rootless.docker(&["run", "--rm", IMAGE, "sh", "-c", &script]);
    assert!(
        out.success() && out.stdout.contains("1 packets received") && out.stdout.contains("hello"),
        "docker run --rm did not reach the world:\n{out}"
    );
    assert_eq!(
        server.peer_of(&t, Duration::from_secs(5)),
        Some(lease.address.to_string()),
        "the world sees the container as the lease's address"
    );

    rootless
        .docker(&[
            "run", "-d", "--name", "web", "-p", "8080:80", IMAGE, "sleep", "600",
        ])
        .expect_success("docker run -p 8080:80");
    let pid = rootless.container_pid("web");
    let mut web = Server::start(&netns_prefix(pid), "tcp", "0.0.0.0", 80);
    let t = token();
    let out = request_retrying(&outside.enter(), "tcp", UPLINK4, 8080, &t, OUTSIDE_TRIES);
    assert!(
        out.success() && out.stdout.trim_end().ends_with(" hello"),
        "-p 8080:80 not answered from the outside:\n{out}"
    );
    assert_eq!(
        web.peer_of(&t, Duration::from_secs(5)).as_deref(),
        Some(DOCKER0),
        "behind the builtin port driver the container sees docker0, not {OUTSIDE4}"
    );

    rootless
        .docker(&["rm", "-f", "web"])
        .expect_success("docker rm -f");
    let took = daemon.stop(STOP);
    eprintln!("rootless dockerd stopped in {took:?}");
    assert_nothing_left(&world, &lease);
}

/// 20 restarts in a row: each time exactly one lease (the same address)
/// and one host end; the stale lease of the previous run is freed by
/// rootlesskit's next `create`. Each start waits until the kernel has
/// removed the previous namespace's pair: with a quota of 1, a `create`
/// that comes while the kernel's cleanup of the old namespace is still
/// pending (it can take longer than netsetgo's 200 ms of quota retries on
/// a loaded machine) is refused at the quota.
#[test]
fn rootless_docker_restarted_twenty_times_holds_one_lease() {
    require_root!();
    require_packages();
    let world = world_with(POLICY);
    let rootless = Rootless::new(&world, USER);
    let (mut ready, mut stops, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = None;
    let mut last = None;
    for round in 0..20 {
        let daemon = rootless.start("builtin", &[]);
        ready.push(daemon.ready_after);
        let lease = assert_one_lease(&world, &rootless);
        let address = *first.get_or_insert(lease.address);
        assert_eq!(lease.address, address, "round {round}");
        last = Some(lease);
        stops.push(daemon.stop(STOP));
        gone.push(wait_for_no_host_end(&world));
    }
    for times in [&mut ready, &mut stops, &mut gone] {
        times.sort();
    }
    eprintln!(
        "20 starts until docker info answered: min {:?} median {:?} max {:?}; \
         stops: min {:?} median {:?} max {:?}; host end gone after the stop: \
         median {:?} max {:?}",
        ready[0], ready[10], ready[19], stops[0], stops[10], stops[19], gone[10], gone[19]
    );
    assert_nothing_left(&world, &last.expect("20 rounds"));
}

/// The client-address recipe: rootlesskit's port driver `none` and
/// dockerd's `--userland-proxy=false` (without it, `docker run -p` fails:
/// "Error starting userland proxy", as rootlesskit-docker-proxy finds no
/// port driver), then `netsetgo -pid CHILD -publish` on rootlesskit's
/// child and `docker run -p CPORT:CPORT`: netsetgo's DNAT brings the
/// outside's connection to the child's address, Docker's own DNAT in the
/// child to the container, and the container's server sees the client's
/// real address, over TCP and UDP.
#[test]
fn rootless_docker_published_by_netsetgo_sees_the_client_address() {
    require_root!();
    require_packages();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let rootless = Rootless::new(&world, USER);
    let image = busybox_image(&scratch_dir("docker-image"));
    let daemon = rootless.start("none", &["--userland-proxy=false"]);
    let lease = assert_one_lease(&world, &rootless);
    let child = rootless.child_pid().to_string();
    let links = Snapshot::of_pid(rootless.child_pid()).link_names();

    let out = world.netsetgo(
        USER,
        &[
            "-pid",
            &child,
            "-publish",
            "tcp:8080:8080",
            "-publish",
            "udp:8081:8081",
        ],
    );
    assert_eq!(
        out.code(),
        Some(0),
        "-publish on rootlesskit's child:\n{out}"
    );
    assert_eq!(assert_one_lease(&world, &rootless), lease, "the same lease");
    assert_eq!(
        Snapshot::of_pid(rootless.child_pid()).link_names(),
        links,
        "no new interface in rootlesskit's namespace"
    );

    rootless
        .docker(&["load", "-i", &image.to_string_lossy()])
        .expect_success("docker load");
    rootless
        .docker(&[
            "run",
            "-d",
            "--name",
            "svc",
            "-p",
            "8080:8080",
            "-p",
            "8081:8081/udp",
            IMAGE,
            "sleep",
            "600",
        ])
        .expect_success("docker run -p 8080:8080 -p 8081:8081/udp");
    let pid = rootless.container_pid("svc");
    for (proto, port) in [("tcp", 8080), ("udp", 8081)] {
        let mut server = Server::start(&netns_prefix(pid), proto, "0.0.0.0", port);
        let t = token();
        let out = request_retrying(&outside.enter(), proto, UPLINK4, port, &t, OUTSIDE_TRIES);
        assert!(
            out.success() && out.stdout.trim_end().ends_with(" hello"),
            "{proto} {UPLINK4}:{port} not answered from the outside:\n{out}"
        );
        assert_eq!(
            server.peer_of(&t, Duration::from_secs(5)).as_deref(),
            Some(OUTSIDE4),
            "{proto}: the container saw another client address"
        );
    }

    rootless
        .docker(&["rm", "-f", "svc"])
        .expect_success("docker rm -f");
    daemon.stop(STOP);
    assert_nothing_left(&world, &lease);
    outside.assert_unanswered(8080);
}
