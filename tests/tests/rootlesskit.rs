//! Real clients: Debian's `rootlesskit` (1.1.0) with `--net=lxc-user-nic`
//! and the installed setuid netsetgo as its `--lxc-user-nic-binary`, as an
//! unprivileged user with /etc/subuid and /etc/subgid ranges, in a world
//! (its own network namespace and /run).
//!
//! rootlesskit calls `netsetgo create /dev/null dummy PID veth brg0 eth0`,
//! brings eth0 up, runs its own DHCP client inside, adds the address and
//! the default route itself and writes a resolv.conf from the DNS option.
//! Each instance's command writes what it sees to files of the user's and
//! fetches a page from `busybox httpd` in the world.
//!
//! A port of rootlesskit's namespace is published by naming its child's
//! pid (from its state directory) to `netsetgo -pid ... -publish`, and
//! reached from an outside namespace with the client's own address.
//!
//! Needs the packages `rootlesskit`, `uidmap` (newuidmap, newgidmap) and
//! `busybox-static`.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use netsetgo_e2e::checks::{assert_unchanged, wire_line};
use netsetgo_e2e::dhcp::mac_in;
use netsetgo_e2e::fixtures::{http_server, wait_for_ports, world_with, A, GATEWAY};
use netsetgo_e2e::frames::link_local;
use netsetgo_e2e::traffic::{
    netns_prefix, request, request_retrying, token, Outside, Server, OUTSIDE4, UPLINK4,
};
use netsetgo_e2e::{
    ensure_user, installed_binary, require_root, scratch_dir, Proc, Snapshot, User, World,
};

const USER: &str = "nsg-rk";
const QUOTA: usize = 3;
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-rk default 3
";
const PORT: &str = "8081";
const PAGE: &str = "hello from the host namespace\n";

/// What each instance runs inside: record its view, fetch the page, then
/// stay alive. `$1` is the prefix of its files. (Debian 12's busybox wget
/// crashes with `-q -T 5`; the test's own bound is the wait for `.done`.)
const SCRIPT: &str = "o=$1
ip -4 -o addr show dev eth0 > $o.addr
ip route > $o.route
cat /etc/resolv.conf > $o.resolv
busybox wget -O $o.page http://10.10.10.1:8081/page 2>/dev/null
echo $? > $o.tmp && mv $o.tmp $o.done
exec sleep 120";

/// The user's files: a directory it owns, and its XDG_RUNTIME_DIR in the
/// world's /run.
struct Home {
    user: User,
    dir: PathBuf,
    runtime: String,
}

impl Home {
    fn new(world: &World) -> Home {
        let user = ensure_user(USER);
        let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
        let subgid = fs::read_to_string("/etc/subgid").unwrap_or_default();
        let listed = |text: &str| text.lines().any(|l| l.starts_with(&format!("{USER}:")));
        assert!(
            listed(&subuid) && listed(&subgid),
            "{USER} has no /etc/subuid or /etc/subgid range (useradd adds them)"
        );
        let dir = scratch_dir("rootlesskit");
        chown(&dir, Some(user.uid), Some(user.gid)).expect("chown the user's directory");
        let runtime = format!("/run/user/{}", user.uid);
        let inside = world.path(&runtime);
        fs::create_dir_all(&inside).expect("XDG_RUNTIME_DIR");
        chown(&inside, Some(user.uid), Some(user.gid)).expect("chown XDG_RUNTIME_DIR");
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o700)).expect("chmod");
        Home { user, dir, runtime }
    }

    /// The rootlesskit command line, as the user's environment would have
    /// it, running `command`.
    fn rootlesskit<'a>(&'a self, bin: &'a str, command: &[&'a str]) -> Vec<String> {
        let mut argv = vec![
            "env".to_string(),
            format!("HOME={}", self.dir.display()),
            format!("XDG_RUNTIME_DIR={}", self.runtime),
            "rootlesskit".into(),
            "--net=lxc-user-nic".into(),
            format!("--lxc-user-nic-binary={bin}"),
            "--lxc-user-nic-bridge=brg0".into(),
        ];
        argv.extend(command.iter().map(|s| s.to_string()));
        argv
    }

    /// Starts instance `name` in the background; its rootlesskit's stderr
    /// goes to `<name>.err`.
    fn start(&self, world: &World, name: &str) -> Proc {
        let bin = installed_binary().to_string_lossy().into_owned();
        let prefix = self.dir.join(name).to_string_lossy().into_owned();
        let state = format!("--state-dir={}", self.state_dir(name));
        let mut argv = self.rootlesskit(&bin, &["sh", "-c", SCRIPT, "sh", &prefix]);
        argv.insert(4, state);
        let line = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let wrapped = format!("exec {line} 2> '{prefix}.err'");
        world.spawn_as(USER, &["sh", "-c", &wrapped])
    }

    /// Instance `name`'s `--state-dir`, in the world's /run.
    fn state_dir(&self, name: &str) -> String {
        format!("{}/rk-{name}", self.runtime)
    }

    /// The pid of instance `name`'s child (rootlesskit's `child_pid`), in
    /// the network namespace that rootlesskit made.
    fn child_pid(&self, world: &World, name: &str) -> u32 {
        let path = world.path(&format!("{}/child_pid", self.state_dir(name)));
        let text = fs::read_to_string(&path).unwrap_or_default();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: no pid in {text:?}", path.display()))
    }

    fn file(&self, name: &str, ext: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default()
    }
}

/// What one instance saw, once it is done.
#[derive(Debug)]
struct Seen {
    address: String,
    route: String,
    resolv: String,
    page: String,
    wget: String,
}

/// Starts `names` at once and waits (at most 60 s) until each is done;
/// the instances (alive) and what they saw.
fn run_instances(world: &World, home: &Home, names: &[String]) -> (Vec<Proc>, Vec<Seen>) {
    let start = Instant::now();
    let procs: Vec<Proc> = names.iter().map(|n| home.start(world, n)).collect();
    let done = netsetgo_e2e::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
        names
            .iter()
            .all(|n| home.dir.join(format!("{n}.done")).exists())
    });
    let errors: Vec<String> = names.iter().map(|n| home.file(n, "err")).collect();
    assert!(done, "not every instance got its network:\n{errors:#?}");
    eprintln!(
        "{} rootlesskit instances networked and fetched the page in {:?}",
        names.len(),
        start.elapsed()
    );
    let seen = names
        .iter()
        .map(|n| Seen {
            address: home
                .file(n, "addr")
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .unwrap_or_default()
                .to_string(),
            route: home.file(n, "route"),
            resolv: home.file(n, "resolv"),
            page: home.file(n, "page"),
            wget: home.file(n, "done").trim().to_string(),
        })
        .collect();
    (procs, seen)
}

/// Each instance has its own lease's address, the default route, the
/// gateway as its resolver, and fetched the page; the user's leases are
/// exactly those addresses.
#[track_caller]
fn assert_networked(world: &World, home: &Home, seen: &[Seen]) {
    let mut addresses: Vec<String> = seen.iter().map(|s| s.address.clone()).collect();
    for s in seen {
        assert!(
            s.address.starts_with("10.10.10.") && s.address.ends_with("/24"),
            "{s:#?}"
        );
        assert!(
            s.route.contains(&format!("default via {GATEWAY} dev eth0")),
            "{s:#?}"
        );
        assert!(
            s.resolv.contains(&format!("nameserver {GATEWAY}")),
            "{s:#?}"
        );
        assert_eq!((s.wget.as_str(), s.page.as_str()), ("0", PAGE), "{s:#?}");
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), seen.len(), "distinct addresses: {seen:#?}");
    let mut leased: Vec<String> = world
        .leases("brg0")
        .into_iter()
        .filter(|l| l.uid == home.user.uid)
        .map(|l| format!("{}/24", l.address))
        .collect();
    leased.sort();
    assert_eq!(leased, addresses, "the leases are what the instances got");
}

fn www() -> PathBuf {
    let www = scratch_dir("rootlesskit-www");
    fs::write(www.join("page"), PAGE).expect("write the page");
    fs::set_permissions(www.join("page"), fs::Permissions::from_mode(0o644)).expect("chmod");
    www
}

fn names(round: &str) -> Vec<String> {
    (0..QUOTA).map(|i| format!("{round}{i}")).collect()
}

#[test]
fn rootlesskit_instances_get_their_leases_by_dhcp_and_reach_the_host() {
    require_root!();
    assert!(
        Path::new("/usr/bin/rootlesskit").is_file(),
        "/usr/bin/rootlesskit is missing: install rootlesskit"
    );
    let world = world_with(POLICY);
    let home = Home::new(&world);
    let _server = http_server(&world, USER, &www(), PORT);

    // As many instances as the quota, at once.
    let (procs, seen) = run_instances(&world, &home, &names("a"));
    assert_networked(&world, &home, &seen);

    // One more is refused by netsetgo, and nothing changes.
    let bin = installed_binary().to_string_lossy().into_owned();
    let argv = home.rootlesskit(&bin, &["true"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = assert_unchanged(&world, &[], || world.run_as(USER, &argv));
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "you already hold {QUOTA} of your {QUOTA} interfaces"
        )),
        "{out}"
    );

    // Once they exit, their leases serve the next ones.
    drop(procs);
    wait_for_ports(&world, 0);
    let (_procs, seen) = run_instances(&world, &home, &names("b"));
    assert_networked(&world, &home, &seen);
}

/// Starts rootlesskit as the user with its `--state-dir` in the user's
/// directory (`state-<name>`), running `sleep 120`, and waits (at most
/// 30 s each) until its child is written, its lease complete and eth0 has
/// its address by DHCP; rootlesskit's process and its child's pid.
fn start_kit(world: &World, home: &Home, name: &str) -> (Proc, String) {
    let state = home.dir.join(format!("state-{name}"));
    let bin = installed_binary().to_string_lossy().into_owned();
    let state_flag = format!("--state-dir={}", state.display());
    let mut argv = home.rootlesskit(&bin, &["sleep", "120"]);
    argv.insert(4, state_flag);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let kit = world.spawn_as(USER, &argv);
    let child_pid = state.join("child_pid");
    let uid = home.user.uid;
    let ready =
        netsetgo_e2e::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            fs::read_to_string(&child_pid).is_ok_and(|p| !p.trim().is_empty())
                && world
                    .leases("brg0")
                    .iter()
                    .any(|l| l.uid == uid && l.ifindex != 0)
        });
    assert!(ready, "rootlesskit never started its child");
    let child = fs::read_to_string(&child_pid).expect("child_pid");
    let child = child.trim().to_string();
    let dhcp = netsetgo_e2e::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        std::process::Command::new("timeout")
            .args([
                "5", "nsenter", "-t", &child, "-n", "ip", "-4", "-o", "addr", "show", "dev", "eth0",
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("10.10.10."))
    });
    assert!(dhcp, "eth0 never got its address");
    (kit, child)
}

/// The README's recipe (issue 19): rootlesskit's child's pid, from its
/// state directory, named to `netsetgo -pid ... -publish`: an outside
/// client reaches a server in rootlesskit's network namespace over TCP
/// and UDP, seen with its own address; `-unpublish` takes one away; the
/// publications go with the interface once rootlesskit exits, freed by
/// the reaper of its `create`.
#[test]
fn a_port_of_rootlesskits_namespace_is_published_with_the_clients_address() {
    require_root!();
    let world = world_with(&format!(
        "{POLICY}publish {USER} default tcp 8080\npublish {USER} default udp 8053\n"
    ));
    let home = Home::new(&world);
    let outside = Outside::new(&world);
    let (kit, child) = start_kit(&world, &home, "p");
    let child = child.as_str();
    let inside = netns_prefix(child.parse().expect("a pid"));

    let out = world.netsetgo(
        USER,
        &[
            "-pid",
            child,
            "-publish",
            "tcp:8080:80",
            "-publish",
            "udp:8053:53",
        ],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.starts_with("eth0 "), "{out}");
    assert_eq!(world.leases("brg0").len(), 1, "no second interface");
    let mut tcp = Server::start(&inside, "tcp", "0.0.0.0", 80);
    let mut udp = Server::start(&inside, "udp", "0.0.0.0", 53);
    for (server, proto, port) in [(&mut tcp, "tcp", 8080), (&mut udp, "udp", 8053)] {
        let token = token();
        let reply = request_retrying(&outside.enter(), proto, UPLINK4, port, &token, 15);
        assert!(
            reply.success() && reply.stdout.contains("hello"),
            "{proto}: {reply}"
        );
        assert_eq!(
            server.peer_of(&token, Duration::from_secs(5)).as_deref(),
            Some(OUTSIDE4),
            "{proto}: the server saw another address"
        );
    }
    let out = world.netsetgo(USER, &["-pid", child, "-unpublish", "tcp:8080"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let reply = request(&outside.enter(), "tcp", UPLINK4, 8080, &token());
    assert!(!reply.stdout.contains("hello"), "still answered: {reply}");

    // rootlesskit exits (and the servers that entered its namespace): its
    // reaper frees the lease and its port, with no call.
    let table = netsetgo_e2e::nft::NftTable::publishing(&world).expect("the table");
    assert!(format!("{table:?}").contains("8053"), "{table:?}");
    drop((tcp, udp, kit));
    wait_for_ports(&world, 0);
    let freed = netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        let after = netsetgo_e2e::nft::NftTable::publishing(&world).expect("the table");
        world.leases("brg0").is_empty() && !format!("{after:?}").contains("8053")
    });
    assert!(freed, "not freed: {:?}", world.leases("brg0"));
}

/// A guarded network with IPv6; nsg-a's container is the other
/// namespace the instances reach.
const POLICY6: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes
allow nsg-rk default 3
allow nsg-a default 1
";
const GATEWAY6: &str = "fd00:10::1";

/// The IPv6 side of the namespace of `pid`, from outside: eth0's IPv6
/// addresses (link-local included) and the IPv6 default routes.
fn ipv6_side(pid: u32) -> (Vec<String>, Vec<(String, String)>) {
    (
        Snapshot::of_pid(pid).ipv6_of("eth0"),
        Snapshot::ipv6_default_routes(pid),
    )
}

/// Whether one of up to 5 `ping -6` from the namespace of `pid` reaches
/// `address`.
fn pings6(world: &World, pid: u32, address: &str) -> bool {
    let pid = pid.to_string();
    let argv = [
        "nsenter", "-t", &pid, "-n", "--", "ping", "-6", "-n", "-q", "-c1", "-W1", address,
    ];
    (0..5).any(|_| world.run(&argv).success())
}

/// rootlesskit's client speaks DHCPv4 only: on a `gateway6` network the
/// helper's `create` gives eth0 its IPv6 lease address and default route,
/// and rootlesskit leaves them alone, during its exchange and after it.
#[test]
fn rootlesskit_keeps_the_ipv6_lease_that_create_set() {
    require_root!();
    assert!(
        Path::new("/usr/bin/rootlesskit").is_file(),
        "/usr/bin/rootlesskit is missing: install rootlesskit"
    );
    let world = world_with(POLICY6);
    let home = Home::new(&world);
    let _server = http_server(&world, USER, &www(), PORT);
    let peer = world.container(A);
    let line = wire_line(&world, &peer, &[]);
    let peer6 = "fd00:10::2";
    assert!(line.contains(&format!("{peer6}/64")), "{line}");
    let mut server = Server::start(&netns_prefix(peer.pid()), "tcp", "::", 8080);

    let names: Vec<String> = vec!["v0".into(), "v1".into()];
    let (procs, seen) = run_instances(&world, &home, &names);
    assert_networked(&world, &home, &seen);
    let mut sides = Vec::new();
    for (name, s) in names.iter().zip(&seen) {
        let child = home.child_pid(&world, name);
        let v4: Ipv4Addr = s.address.trim_end_matches("/24").parse().unwrap();
        let own6 = Ipv6Addr::from(
            u128::from("fd00:10::".parse::<Ipv6Addr>().unwrap()) + u128::from(v4.octets()[3]),
        );
        let mac = mac_in(child, "eth0");
        let mut addresses = vec![
            format!("{own6}/64"),
            format!("{}/64", Ipv6Addr::from(link_local(mac))),
        ];
        addresses.sort();
        let side = ipv6_side(child);
        assert_eq!(
            side,
            (addresses, vec![(GATEWAY6.to_string(), "eth0".to_string())]),
            "{name}: eth0's IPv6 after rootlesskit's DHCP"
        );
        assert!(
            pings6(&world, child, GATEWAY6),
            "{name} cannot reach {GATEWAY6}"
        );
        assert!(pings6(&world, child, peer6), "{name} cannot reach {peer6}");
        let t = token();
        let out = request(&netns_prefix(child), "tcp", peer6, 8080, &t);
        assert!(out.success(), "{name}: TCP over IPv6: {out}");
        assert_eq!(
            server.peer_of(&t, Duration::from_secs(5)),
            Some(own6.to_string())
        );
        let check = world.netsetgo(USER, &["-check", "-pid", &child.to_string()]);
        assert_eq!(check.code(), Some(0), "{name}: {check}");
        sides.push((child, side));
    }
    // Long-running: some seconds later, rootlesskit (its DHCP client's
    // renewal routine waiting) has left it all as it was.
    thread::sleep(Duration::from_secs(5));
    for (child, side) in &sides {
        assert_eq!(&ipv6_side(*child), side, "instance {child} changed IPv6");
    }
    // Once they exit, the next call frees their leases (and with them
    // their IPv6 addresses): only the new instance's and nsg-a's remain.
    drop(procs);
    wait_for_ports(&world, 1);
    let (_procs, seen) = run_instances(&world, &home, &["w0".to_string()]);
    assert_networked(&world, &home, &seen);
    assert_eq!(world.leases("brg0").len(), 2);
}

/// A guarded dual-stack network where the user publishes ports, and
/// nsg-a holds a lease with a publication of its own.
const POLICY_EXIT: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64 guard=yes
allow nsg-rk default 3
allow nsg-a default 1
publish nsg-rk default tcp 8080
publish nsg-rk default udp 8053
publish nsg-a default tcp 8090
";

/// What one lease leaves in the world, seen from outside: its record, its
/// ports record, its DNAT and claim elements, its guard chain, its IPv6
/// address in the guard's elements.
#[derive(Debug, PartialEq, Eq)]
struct Traces {
    leases: Vec<netsetgo_e2e::Lease>,
    ports_record: String,
    publications: Vec<String>,
    guard_chains: Vec<String>,
    guard_elements: Vec<String>,
}

impl Traces {
    fn of(world: &World) -> Traces {
        let ports = fs::read(world.state_dir().join("brg0/ports")).unwrap_or_default();
        let ports_record = String::from_utf8_lossy(&ports)
            .split(['\0', '\n'])
            .filter(|r| !r.trim().is_empty())
            .map(|r| r.trim().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let table = netsetgo_e2e::nft::NftTable::publishing(world).expect("inet netsetgo");
        let guard = netsetgo_e2e::nft::NftTable::guard(world).expect("the guard's tables");
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        Traces {
            leases: world.leases("brg0"),
            ports_record,
            publications: sorted(table.elements().into_values().flatten().collect()),
            guard_chains: guard.port_chains().into_keys().collect(),
            guard_elements: sorted(guard.elements().into_values().flatten().collect()),
        }
    }

    /// Whether anything here names `needle`.
    fn names(&self, needle: &str) -> bool {
        format!("{self:?}").contains(needle)
    }
}

/// rootlesskit never calls `delete`: once it exits (by `signal`), the
/// reaper of its `create` frees, with no call, its lease, ports record,
/// DNAT and claim elements, guard chain and IPv6 address, within a few
/// seconds; nsg-a's lease and publication are untouched.
fn exit_releases_everything(signal: libc::c_int, name: &str) {
    require_root!();
    let world = world_with(POLICY_EXIT);
    let home = Home::new(&world);
    let other = world.container(A);
    let line = wire_line(&world, &other, &["-publish", "tcp:8090:80"]);
    assert!(line.contains("publish=tcp:8090:80"), "{line}");
    let untouched = Traces::of(&world);
    let (mut kit, child) = start_kit(&world, &home, name);
    let args = [
        "-pid",
        &child,
        "-publish",
        "tcp:8080:80",
        "-publish",
        "udp:8053:53",
    ];
    let out = world.netsetgo(USER, &args);
    assert_eq!(out.code(), Some(0), "{out}");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.uid == home.user.uid)
        .expect("the user's lease");
    let own6 = Ipv6Addr::from(
        u128::from("fd00:10::".parse::<Ipv6Addr>().unwrap())
            + u128::from(lease.address.octets()[3]),
    );
    let before = Traces::of(&world);
    for needle in [
        lease.address.to_string(),
        own6.to_string(),
        format!("port_{}", lease.ifname),
        "8053".to_string(),
        "8080".to_string(),
    ] {
        assert!(
            before.names(&needle),
            "{needle} missing before: {before:#?}"
        );
    }
    assert_eq!(before.leases.len(), 2, "{before:#?}");

    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(kit.pid() as i32, signal) }, 0);
    let exited =
        netsetgo_e2e::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            kit.has_exited()
        });
    assert!(exited, "rootlesskit outlived signal {signal}");
    let start = Instant::now();
    let released =
        netsetgo_e2e::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            Traces::of(&world) == untouched
        });
    assert!(
        released,
        "not released within 5 s of rootlesskit's exit:\n{:#?}\nexpected:\n{untouched:#?}",
        Traces::of(&world)
    );
    eprintln!("released {:?} after rootlesskit's exit", start.elapsed());
    assert!(!Traces::of(&world).names(&own6.to_string()));
    assert!(
        netsetgo_e2e::reaper::reapers(&world).is_empty(),
        "the reaper is gone"
    );
    let snap = world.snapshot();
    assert!(snap.link(&lease.ifname).is_none(), "{snap:?}");
}

#[test]
fn rootlesskit_ended_by_sigterm_leaves_nothing_behind() {
    exit_releases_everything(libc::SIGTERM, "t");
}

#[test]
fn rootlesskit_ended_by_sigkill_leaves_nothing_behind() {
    exit_releases_everything(libc::SIGKILL, "k");
}
