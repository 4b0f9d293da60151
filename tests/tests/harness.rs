//! Tests of the harness itself: its checks can fail, its worlds are
//! private, and it leaves nothing behind.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use netsetgo_e2e::frames::{ether, BROADCAST};
use netsetgo_e2e::{ensure_user, installed_binary, ns_of, require_root, World};

fn ns(pid: u32, kind: &str) -> String {
    ns_of(pid, kind).unwrap_or_default()
}

#[test]
fn snapshots_are_stable_and_see_every_kind_of_change() {
    require_root!();
    let world = World::new();
    let before = world.settled_snapshot();
    assert_eq!(
        before,
        world.settled_snapshot(),
        "an untouched world changed"
    );
    assert!(before.link("lo").is_some(), "{before:?}");

    world
        .run(&[
            "ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1",
        ])
        .expect_success("add veth");
    let links = world.settled_snapshot();
    assert_ne!(before, links);
    assert!(
        before.diff(&links).contains("\"x0\""),
        "{}",
        before.diff(&links)
    );

    world
        .run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "x0"])
        .expect_success("add address");
    let addrs = world.settled_snapshot();
    assert_ne!(links.addrs, addrs.addrs);
    assert_eq!(addrs.ipv4_of("x0"), vec!["192.0.2.1/24".to_string()]);

    world
        .run(&["ip", "link", "set", "x0", "up"])
        .expect_success("set up");
    world
        .run(&["ip", "link", "set", "x1", "up"])
        .expect_success("set up");
    world
        .run(&["ip", "route", "add", "default", "via", "192.0.2.254"])
        .expect_success("add route");
    let routes = world.settled_snapshot();
    assert_ne!(addrs.routes, routes.routes);
    assert_eq!(
        routes.default_route(),
        Some(("192.0.2.254".to_string(), "x0".to_string()))
    );
}

#[test]
fn worlds_are_private_and_leave_nothing_behind() {
    require_root!();
    let me = std::process::id();
    let world = World::new();
    let holder = world.pid();
    assert_ne!(ns(holder, "net"), ns(me, "net"));
    assert_ne!(ns(holder, "mnt"), ns(me, "mnt"));

    // Its /run and /etc/netsetgo are its own.
    let marker = format!("nsg-e2e-private-{me}");
    fs::write(world.path(&format!("/run/{marker}")), "x").unwrap();
    assert!(!Path::new(&format!("/run/{marker}")).exists());
    let text = format!("# nsg-e2e policy of {me}\n");
    world.set_policy(&text);
    let policy = fs::metadata(world.path("/etc/netsetgo/netsetgo.conf")).unwrap();
    assert_eq!((policy.uid(), policy.mode() & 0o7777), (0, 0o644));
    let machine = fs::read_to_string("/etc/netsetgo/netsetgo.conf").unwrap_or_default();
    assert_ne!(machine, text, "the policy landed on the machine's /etc");

    let container = world.container("nsg-a");
    let pid = container.pid();
    assert_ne!(
        ns(pid, "net"),
        ns(holder, "net"),
        "container shares the world's netns"
    );
    assert_ne!(
        ns(pid, "user"),
        ns(me, "user"),
        "container has no user namespace"
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = ensure_user("nsg-a").uid;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "container does not run as nsg-a:\n{status}"
    );
    let bystander = world.host_process("nsg-b");
    let bystander_pid = bystander.pid();
    std::mem::forget(bystander); // left for the world's Drop to kill

    drop(container);
    drop(world);
    for p in [holder, pid, bystander_pid] {
        let gone = (0..200).any(|_| {
            let state = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for us to reap it.
            let done = state.is_empty() || state.contains(") Z ");
            if !done {
                std::thread::sleep(Duration::from_millis(10));
            }
            done
        });
        assert!(gone, "process {p} outlived its world");
    }
}

#[test]
fn the_installed_binary_is_setuid_root_and_runs() {
    require_root!();
    let bin = installed_binary();
    let meta = fs::metadata(bin).unwrap();
    assert_eq!(meta.uid(), 0);
    assert_eq!(meta.gid(), 0);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);
    let dir = fs::metadata(bin.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o755));
    let world = World::new();
    let out = world.netsetgo("nsg-a", &["-help"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("-pid"), "{out}");
}

#[test]
fn servers_report_the_peer_and_sniffers_see_forged_frames() {
    use netsetgo_e2e::dhcp::Client;
    use netsetgo_e2e::traffic::{
        netns_prefix, request, request_retrying, token, Outside, Server, OUTSIDE4, OUTSIDE6,
        UPLINK4, UPLINK6,
    };
    require_root!();
    let world = World::new();
    let outside = Outside::new(&world);
    let host = netns_prefix(world.pid());
    // TCP and UDP, IPv4 and IPv6 (one dual-stack server each), both ways.
    for proto in ["tcp", "udp"] {
        let mut server = Server::start(&outside.enter(), proto, "::", 7001);
        for addr in [OUTSIDE4, OUTSIDE6] {
            let t = token();
            let out = request_retrying(&host, proto, addr, 7001, &t, 10);
            assert!(out.success(), "{proto} {addr}:\n{out}");
            let own = if addr == OUTSIDE4 { UPLINK4 } else { UPLINK6 };
            assert_eq!(out.stdout.trim(), format!("{own} hello"), "{out}");
            assert_eq!(
                server.peer_of(&t, Duration::from_secs(5)).as_deref(),
                Some(own)
            );
        }
        let mut back = Server::start(&host, proto, UPLINK4, 7002);
        let out = request(&outside.enter(), proto, UPLINK4, 7002, "x");
        assert!(out.success(), "{out}");
        assert_eq!(
            back.next_peer(Duration::from_secs(5)).as_deref(),
            Some(OUTSIDE4)
        );
        assert!(back.peers_within(Duration::from_millis(200)).is_empty());
    }
    // Nothing listens: not answered, and nothing reported.
    let out = request(&host, "tcp", OUTSIDE4, 7003, "y");
    assert!(!out.success(), "{out}");

    // A frame sent raw on one end of the uplink arrives at the other.
    let sender = Client::on(world.pid(), "up0");
    let sniffer = Client::on(outside.pid(), "eth0");
    let frame = ether(
        BROADCAST,
        [0x02, 0, 0, 0, 0, 0x99],
        0x88b5,
        b"nsg-e2e harness frame, padded to sixty bytes......",
    );
    sender.send_frame(&frame);
    let seen = sniffer.frames(Duration::from_millis(500));
    assert!(seen.contains(&frame), "{} frames, not ours", seen.len());
    assert!(
        !sender.frames(Duration::from_millis(100)).contains(&frame),
        "the sender read its own frame back"
    );
}

#[test]
fn the_nft_checks_see_a_changed_ruleset_and_ports_state() {
    use netsetgo_e2e::checks::assert_unchanged_nft;
    require_root!();
    let world = World::new();
    // Unchanged: passes.
    assert_unchanged_nft(&world, &[], || world.run(&["nft", "list", "ruleset"]));
    // A table, or an element, added by the call: caught.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_unchanged_nft(&world, &[], || {
            world.run(&["nft", "add", "table", "inet", "nsg-e2e-x"])
        })
    }));
    assert!(caught.is_err(), "a new table went unnoticed");
    world
        .run(&[
            "nft",
            "add",
            "set",
            "inet",
            "nsg-e2e-x",
            "s",
            "{ type inet_service; }",
        ])
        .expect_success("add set");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_unchanged_nft(&world, &[], || {
            world.run(&[
                "nft",
                "add",
                "element",
                "inet",
                "nsg-e2e-x",
                "s",
                "{ 8080 }",
            ])
        })
    }));
    assert!(caught.is_err(), "a new element went unnoticed");
    // A ports state file written by the call: caught.
    let dir = world.state_dir().join("brg0");
    fs::create_dir_all(&dir).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_unchanged_nft(&world, &[], || {
            fs::write(dir.join("ports"), b"10.10.10.2 tcp:8080:80\n").unwrap();
            world.run(&["true"])
        })
    }));
    assert!(caught.is_err(), "a written ports file went unnoticed");
}
