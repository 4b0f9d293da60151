//! Publications on a living container (issue 19), end to end: nsg-a's
//! `netsetgo -pid PID -publish ...` on a container it wired already (with
//! `-pid`, or with lxc-user-nic's `create` as rootlesskit does) adds the
//! mappings to that interface's lease and changes nothing else (links,
//! addresses, routes, leases of the world and the container exactly as
//! before); clients in another namespace reach the port, TCP and UDP,
//! IPv4 and IPv6, and the server sees their own address; asked twice is
//! no error; `-unpublish` removes one's own mapping only; the mappings go
//! with the lease. Every refusal leaves the world, its leases, its whole
//! ruleset and the ports state as they were. A hostile caller: publish
//! racing delete, a namespace replaced under the same pid, a forged
//! `veth1` pointing at another's host end. An addition is audited as
//! `action=publish`, restored by `-restore` after a flushed ruleset, and
//! collected with its lease when the container exits.

use std::time::Duration;

use netsetgo_e2e::checks::{
    assert_refused_nft, assert_unchanged, assert_unchanged_nft, json_object, wire, wire_with,
};
use netsetgo_e2e::fixtures::{uid, world_with, A, B};
use netsetgo_e2e::nft::{Kind, NftTable};
use netsetgo_e2e::traffic::{
    netns_prefix, request, request_retrying, token, Outside, Server, OUTSIDE4, OUTSIDE6, UPLINK4,
    UPLINK6,
};
use netsetgo_e2e::{
    ns_of, require_root, signal, wait_until, Container, Output, SyslogSink, Trace, Wired, World,
};

/// brg0 is dual-stack; nsg-a may publish TCP and UDP 8000-8999, nsg-b
/// TCP 8000-8099.
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64
allow nsg-a default 16
allow nsg-b default 4
publish nsg-a default tcp 8000-8999
publish nsg-a default udp 8000-8999
publish nsg-b default tcp 8000-8099
";

const TRIES: u32 = 15;
const PEER: Duration = Duration::from_secs(5);

/// `user`'s call on the container of pid `pid` with `args`.
fn call(world: &World, user: &str, pid: u32, args: &[&str]) -> Output {
    let pid = pid.to_string();
    let mut all = vec!["-pid", pid.as_str()];
    all.extend_from_slice(args);
    world.netsetgo(user, &all)
}

/// A request from `prefix` must reach `server`, which saw `peer`.
#[track_caller]
fn assert_reaches(
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
        "{proto} {addr} port {port} not answered:\n{out}"
    );
    assert_eq!(
        server.peer_of(&token, PEER).as_deref(),
        Some(peer),
        "the server saw another client address ({proto} {addr} port {port})"
    );
}

#[track_caller]
fn assert_unanswered(prefix: &[String], proto: &str, addr: &str, port: u16) {
    let out = request(prefix, proto, addr, port, &token());
    assert!(
        !out.success() && !out.stdout.contains("hello"),
        "{proto} {addr} port {port} was answered:\n{out}"
    );
}

/// The publishing table's claims (`tcp . 8080 : 10.10.10.2`), sorted.
fn claims(world: &World) -> Vec<String> {
    let Some(table) = NftTable::publishing(world) else {
        return Vec::new();
    };
    let mut all = table
        .elements()
        .remove(&Kind::Published)
        .unwrap_or_default();
    all.sort();
    all
}

/// A call that must succeed changing no link, address, route or lease of
/// the world or of `c` (only the ruleset and the ports state may change).
#[track_caller]
fn adds(world: &World, c: &Container, args: &[&str]) -> String {
    let out = assert_unchanged(world, &[c], || call(world, c.user(), c.pid(), args));
    assert_eq!(out.code(), Some(0), "{args:?}:\n{out}");
    assert_eq!(out.stderr, "", "{out}");
    out.stdout.trim_end().to_string()
}

/// Both kinds of server in `c`, on every address.
fn servers(c: &Container) -> (Server, Server) {
    (
        Server::start(&c.enter(), "tcp", "::", 80),
        Server::start(&c.enter(), "udp", "::", 53),
    )
}

#[test]
fn publish_on_a_wired_container_adds_to_its_lease_and_changes_nothing_else() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    let w = wire_with(&world, &c, &["-publish", "tcp:8000:80"]);
    assert_eq!(w.ip(), "10.10.10.2");
    let (mut tcp, mut udp) = servers(&c);
    let out = outside.enter();

    let line = adds(
        &world,
        &c,
        &["-publish", "tcp:8080:80", "-publish", "udp:8053:53"],
    );
    let again = Wired::parse(&line).expect("a success line");
    assert_eq!(
        (again.interface.as_str(), again.host.as_str()),
        ("veth1", w.host.as_str())
    );
    assert!(
        line.ends_with("publish=tcp:8000:80 publish=tcp:8080:80 publish=udp:8053:53"),
        "{line}"
    );
    assert_reaches(&out, &mut tcp, "tcp", UPLINK4, 8080, OUTSIDE4);
    assert_reaches(&out, &mut tcp, "tcp", UPLINK6, 8080, OUTSIDE6);
    assert_reaches(&out, &mut udp, "udp", UPLINK4, 8053, OUTSIDE4);
    assert_reaches(&out, &mut udp, "udp", UPLINK6, 8053, OUTSIDE6);
    assert_reaches(&out, &mut tcp, "tcp", UPLINK4, 8000, OUTSIDE4);

    // Asked twice: no error, and not even the ruleset changes.
    let twice = assert_unchanged_nft(&world, &[&c], || {
        call(
            &world,
            A,
            c.pid(),
            &[
                "-json",
                "-publish",
                "udp:8053:53",
                "-publish",
                "tcp:8080:80",
            ],
        )
    });
    let json = json_object(&twice);
    assert_eq!(json["host_interface"], w.host.as_str(), "{json:?}");
    assert_eq!(
        json["published"].as_array().map(Vec::len),
        Some(3),
        "{json:?}"
    );
    assert_eq!(twice.code(), Some(0), "{twice}");

    // -json and -check list all three.
    let json = json_object(&call(&world, A, c.pid(), &["-check", "-json"]));
    let listed: Vec<u64> = json["published"]
        .as_array()
        .expect("published")
        .iter()
        .map(|m| m["host_port"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [8000, 8080, 8053], "{json:?}");

    // -unpublish: that one goes, the others stay.
    let line = adds(&world, &c, &["-unpublish", "tcp:8080"]);
    assert!(
        line.ends_with("publish=tcp:8000:80 publish=udp:8053:53"),
        "{line}"
    );
    assert_unanswered(&out, "tcp", UPLINK4, 8080);
    assert_reaches(&out, &mut udp, "udp", UPLINK4, 8053, OUTSIDE4);
    assert_eq!(
        claims(&world),
        ["tcp . 8000 : 10.10.10.2", "udp . 8053 : 10.10.10.2"]
    );

    // The lease ends: every mapping goes with it, the added one too.
    let gone = call(&world, A, c.pid(), &["-delete"]);
    assert_eq!(gone.code(), Some(0), "{gone}");
    assert_eq!(claims(&world), Vec::<String>::new());
    assert_unanswered(&out, "udp", UPLINK4, 8053);
    assert!(world.leases("brg0").is_empty());
}

/// `netsetgo create /dev/null dummy PID veth brg0 eth0` as nsg-a; then,
/// as rootlesskit's DHCP client would, eth0 gets its lease's address and
/// the default route (on this dual-stack network `create` itself gave it
/// its IPv6 address and route). Returns the host end's name.
fn create_lxc_style(world: &World, c: &Container) -> String {
    let pid = c.pid_arg();
    let out = world.netsetgo(
        A,
        &["create", "/dev/null", "dummy", &pid, "veth", "brg0", "eth0"],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    let host = out
        .stdout
        .trim_end()
        .split(':')
        .nth(2)
        .expect("host ifname")
        .to_string();
    for argv in [
        &["ip", "link", "set", "eth0", "up"][..],
        &["ip", "addr", "add", "10.10.10.2/24", "dev", "eth0"],
        &["ip", "route", "add", "default", "via", "10.10.10.1"],
    ] {
        c.exec(argv).expect_success(&argv.join(" "));
    }
    host
}

#[test]
fn publish_on_an_interface_made_by_the_lxc_user_nic_form() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    let host = create_lxc_style(&world, &c);
    let (mut tcp, mut udp) = servers(&c);
    let out = outside.enter();

    let line = adds(
        &world,
        &c,
        &["-publish", "tcp:8081:80", "-publish", "udp:8081:53"],
    );
    let found = Wired::parse(&line).expect("a success line");
    assert_eq!(
        (found.interface.as_str(), found.host.as_str()),
        ("eth0", host.as_str())
    );
    assert_eq!(c.snapshot().link_names().len(), 2, "lo and eth0 only");
    for (server, proto) in [(&mut tcp, "tcp"), (&mut udp, "udp")] {
        assert_reaches(&out, server, proto, UPLINK4, 8081, OUTSIDE4);
        assert_reaches(&out, server, proto, UPLINK6, 8081, OUTSIDE6);
    }
    // Asked twice: no error, nothing changes.
    let again = assert_unchanged_nft(&world, &[&c], || {
        call(&world, A, c.pid(), &["-publish", "tcp:8081:80"])
    });
    assert_eq!(again.code(), Some(0), "{again}");

    // lxc-user-nic's delete ends the lease, and the mappings with it.
    let nspath = format!("/proc/{}/ns/net", c.pid());
    let del = world.netsetgo(
        A,
        &[
            "delete",
            "/dev/null",
            "dummy",
            &nspath,
            "veth",
            "brg0",
            &host,
        ],
    );
    assert_eq!(del.code(), Some(0), "{del}");
    assert_eq!(claims(&world), Vec::<String>::new());
    assert_unanswered(&out, "tcp", UPLINK4, 8081);
}

#[test]
fn refusals_on_a_living_container_change_nothing() {
    require_root!();
    let world = world_with(POLICY);
    let mine = world.container(A);
    let theirs = world.container(B);
    wire_with(&world, &mine, &["-publish", "tcp:8000:80"]);
    wire_with(&world, &theirs, &["-publish", "tcp:8001:80"]);
    world
        .run(&["ip", "link", "set", "lo", "up"])
        .expect_success("lo up in the world");
    let _listener = Server::start(&netns_prefix(world.pid()), "tcp", "0.0.0.0", 8002);
    let all = [&mine, &theirs];
    let (m, t) = (mine.pid_arg(), theirs.pid_arg());
    for (user, pid, args, why) in [
        (A, &m, &["-publish", "tcp:7000:80"][..], "publish grants"),
        (A, &m, &["-publish", "tcp:8001:80"], "already published"),
        (A, &m, &["-publish", "tcp:8002:80"], "listens"),
        (A, &m, &["-publish", "tcp:127.0.0.1:8003:80"], "loopback"),
        (
            A,
            &m,
            &["-publish", "tcp:8000:81"],
            "-unpublish tcp:8000 first",
        ),
        (
            A,
            &m,
            &["-publish", "tcp:8004:80", "-publish", "tcp:8001:80"],
            "already published",
        ),
        (A, &t, &["-publish", "tcp:8004:80"], ""),
        (A, &m, &["-unpublish", "tcp:8001"], "does not publish"),
        (A, &m, &["-unpublish", "tcp:8099"], "does not publish"),
        (
            A,
            &m,
            &["-unpublish", "tcp:192.0.2.1:8000"],
            "does not publish",
        ),
        (A, &t, &["-unpublish", "tcp:8001"], ""),
        (B, &m, &["-unpublish", "tcp:8000"], ""),
    ] {
        let mut argv = args.to_vec();
        argv.extend(["-pid", pid.as_str()]);
        let out = assert_refused_nft(&world, &all, user, &argv);
        assert!(out.stderr.contains(why), "{argv:?}: {out}");
    }
    assert_eq!(
        claims(&world),
        ["tcp . 8000 : 10.10.10.2", "tcp . 8001 : 10.10.10.3"]
    );
}

#[test]
fn publish_racing_delete_leaves_no_mapping_without_its_lease() {
    require_root!();
    let world = world_with(POLICY);
    for round in 0..6 {
        let c = world.container(A);
        wire(&world, &c);
        let pid = c.pid_arg();
        let mut publish = world.start_netsetgo(A, &["-pid", &pid, "-publish", "tcp:8100:80"]);
        let mut delete = world.start_netsetgo(A, &["-pid", &pid, "-delete"]);
        let limit = Duration::from_secs(20);
        let (p, d) = (publish.finish(limit), delete.finish(limit));
        assert!(
            p.code() == Some(0) && d.code() == Some(0),
            "round {round}:\n{p}\n{d}"
        );
        // Either the publication went with the deleted lease, or it came
        // after and made the container an interface of its own with it.
        let leases = world.leases("brg0");
        let held = claims(&world);
        match leases.as_slice() {
            [] => assert_eq!(held, Vec::<String>::new(), "round {round}"),
            [lease] => {
                assert_eq!(
                    held,
                    [format!("tcp . 8100 : {}", lease.address)],
                    "round {round}"
                );
                let out = call(&world, A, c.pid(), &["-delete"]);
                assert_eq!(out.code(), Some(0), "round {round}: {out}");
            }
            more => panic!("round {round}: {more:?}"),
        }
        assert_eq!(claims(&world), Vec::<String>::new(), "round {round}");
        assert!(world.leases("brg0").is_empty(), "round {round}");
    }
}

#[test]
fn a_namespace_replaced_under_the_same_pid_is_not_the_wired_one() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    // The container keeps its first namespace alive with a child, then
    // replaces its own (same pid) once the trigger file exists.
    let trigger = format!("/run/nsg-replace-{}", std::process::id());
    let script = format!(
        "sleep 600 & n=0; while [ ! -e {trigger} ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; exec unshare -n -- sleep 600"
    );
    let mut proc = world.spawn_as(A, &["unshare", "-U", "-r", "-n", "--", "sh", "-c", &script]);
    proc.wait_for_exec("sh");
    let pid = proc.pid();
    let first = ns_of(pid, "net").expect("its namespace");
    let out = call(&world, A, pid, &["-publish", "tcp:8200:80"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let old = Wired::parse(&out.stdout).expect("wired");
    world.run(&["touch", &trigger]).expect_success("trigger");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            ns_of(pid, "net").is_some_and(|ns| ns != first)
                && world
                    .run(&[
                        "sh",
                        "-c",
                        &format!("test \"$(cat /proc/{pid}/comm)\" = sleep"),
                    ])
                    .success()
        }),
        "the namespace of {pid} was not replaced"
    );
    // The old namespace still lives, wired, with its lease and mapping:
    // a -publish naming the same pid is not added to it, but wires the
    // new namespace anew with the new mapping.
    let out = call(&world, A, pid, &["-publish", "tcp:8201:80"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let new = Wired::parse(&out.stdout).expect("wired");
    assert_ne!(new.host, old.host, "{out}");
    assert_eq!(
        claims(&world),
        [
            format!("tcp . 8200 : {}", old.ip()),
            format!("tcp . 8201 : {}", new.ip())
        ]
    );
    let mut server = Server::start(&netns_prefix(pid), "tcp", "::", 80);
    assert_reaches(
        &outside.enter(),
        &mut server,
        "tcp",
        UPLINK4,
        8201,
        OUTSIDE4,
    );
    assert_eq!(world.leases("brg0").len(), 2);
    drop(proc);
}

#[test]
fn a_forged_veth1_pointing_at_anothers_host_end_publishes_on_ones_own_lease() {
    require_root!();
    let world = world_with(POLICY);
    let theirs = world.container(B);
    let t = wire_with(&world, &theirs, &["-publish", "tcp:8001:80"]);
    let mine = world.container(A);
    let m = wire(&world, &mine);
    // nsg-a renames its interface and makes a veth1 whose peer has the
    // index of nsg-b's host end.
    let index = world.snapshot().link(&t.host).expect("their host end")["ifindex"].to_string();
    for argv in [
        &["ip", "link", "set", "veth1", "down"][..],
        &["ip", "link", "set", "veth1", "name", "eth9"],
        &[
            "ip", "link", "add", "veth1", "type", "veth", "peer", "name", "x0", "index", &index,
        ],
    ] {
        mine.exec(argv).expect_success(&argv.join(" "));
    }
    let out = call(&world, A, mine.pid(), &["-publish", "tcp:8002:80"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let found = Wired::parse(&out.stdout).expect("wired");
    assert_eq!(
        (found.interface.as_str(), found.host.as_str()),
        ("eth9", m.host.as_str())
    );
    assert_eq!(
        claims(&world),
        [
            format!("tcp . 8001 : {}", t.ip()),
            format!("tcp . 8002 : {}", m.ip())
        ]
    );
    // And -unpublish of nsg-b's port from there is refused, changing nothing.
    let out = assert_refused_nft(
        &world,
        &[&mine, &theirs],
        A,
        &["-unpublish", "tcp:8001", "-pid", &mine.pid_arg()],
    );
    assert!(out.stderr.contains("does not publish"), "{out}");
}

#[test]
fn added_publications_are_audited_restored_and_collected_with_their_lease() {
    require_root!();
    let world = world_with(POLICY);
    world.mount_private_dev();
    let sink = SyslogSink::bind(&world);
    let outside = Outside::new(&world);
    let c = world.container(A);
    let keeper = world.container(A);
    wire(&world, &c);
    wire(&world, &keeper);

    // One record each: the addition (action=publish) and a refusal.
    let mut added = world.start_netsetgo(A, &["-pid", &c.pid_arg(), "-publish", "tcp:8300:80"]);
    let added_pid = added.pid();
    assert_eq!(added.finish(Duration::from_secs(20)).code(), Some(0));
    let mut refused = world.start_netsetgo(A, &["-pid", &c.pid_arg(), "-unpublish", "tcp:8301"]);
    let refused_pid = refused.pid();
    assert_eq!(refused.finish(Duration::from_secs(20)).code(), Some(1));
    let records = sink.records(Duration::from_millis(500));
    for (helper, action, result) in [
        (added_pid, "action=publish", "result=granted"),
        (refused_pid, "action=unpublish", "result=refused"),
    ] {
        let tag = format!("netsetgo[{helper}]: ");
        let mine: Vec<&String> = records.iter().filter(|r| r.contains(&tag)).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        let words: Vec<&str> = mine[0].split_whitespace().collect();
        assert!(
            words.contains(&action) && words.contains(&result),
            "{mine:?}"
        );
        assert!(
            words.contains(&format!("pid={}", c.pid()).as_str()),
            "{mine:?}"
        );
    }

    // After the firewall flushed the ruleset, -check names the added
    // publication and root's -restore brings it back.
    let mut server = Server::start(&c.enter(), "tcp", "::", 80);
    assert_reaches(
        &outside.enter(),
        &mut server,
        "tcp",
        UPLINK4,
        8300,
        OUTSIDE4,
    );
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset");
    let broken = call(&world, A, c.pid(), &["-check"]);
    assert!(
        broken.code() == Some(1) && broken.stderr.contains("publication tcp:8300:80 is missing"),
        "{broken}"
    );
    let restored = world.netsetgo("root", &["-restore"]);
    assert_eq!(restored.code(), Some(0), "{restored}");
    assert_reaches(
        &outside.enter(),
        &mut server,
        "tcp",
        UPLINK4,
        8300,
        OUTSIDE4,
    );
    drop(server);

    // The container exits: the next call's garbage collection takes the
    // added publication with the lease.
    drop(c);
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            world.snapshot().ports_of("brg0").len() == 1
        }),
        "the exited container's pair is still there"
    );
    assert_eq!(claims(&world), ["tcp . 8300 : 10.10.10.2"]);
    let later = world.container(B);
    wire(&world, &later);
    assert_eq!(claims(&world), Vec::<String>::new());
    let owners: Vec<u32> = world.leases("brg0").iter().map(|l| l.uid).collect();
    assert_eq!(
        owners.len(),
        2,
        "the keeper's and the later one's: {owners:?}"
    );
    assert!(
        owners.contains(&uid(A)) && owners.contains(&uid(B)),
        "{owners:?}"
    );
    drop(keeper);
}

/// The mappings the ports record of the lease of `address` holds.
fn recorded(world: &World, address: &str) -> Vec<String> {
    let bytes = std::fs::read(world.state_dir().join("brg0").join("ports")).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let prefix = format!("{address} ");
    text.split(['\n', '\0'])
        .find_map(|record| record.strip_prefix(&prefix))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// An addition killed (by root: it runs after the drop) at each of its
/// netlink and nf_tables steps leaves no claim its lease's record lacks,
/// so the lease's end removes all of it; the same call again completes
/// it, and the lease's end takes everything.
#[test]
fn an_addition_killed_at_any_step_leaves_no_claim_outside_its_record() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    wire_with(&world, &c, &["-publish", "tcp:8400:80"]);
    let pid = c.pid_arg();
    let add = [
        "-pid",
        &pid,
        "-publish",
        "tcp:8401:80",
        "-publish",
        "udp:8402:53",
    ];
    let reset = [
        "-pid",
        &pid,
        "-unpublish",
        "tcp:8401",
        "-unpublish",
        "udp:8402",
    ];
    let trace = |pause_at| Trace {
        user: A,
        syscall: "sendto",
        pause_at,
        wrap: &[],
    };
    let mut t = world.start_traced(&trace(None), &add);
    let out = t.finish(Duration::from_secs(20));
    assert_eq!(out.code(), Some(0), "an undisturbed addition:\n{out}");
    let steps = t.calls("sendto").len();
    assert!(steps >= 3, "too few steps: {}", t.log());
    let out = world.netsetgo(A, &reset);
    assert_eq!(out.code(), Some(0), "{out}");
    let mut killed = 0;
    for step in 1..=steps {
        let mut t = world.start_traced(&trace(Some(step)), &add);
        if let Some(helper) = t.wait_paused(Duration::from_secs(10)) {
            assert!(signal(helper, libc::SIGKILL), "step {step}");
            killed += 1;
        }
        t.finish(Duration::from_secs(20));
        let record = recorded(&world, "10.10.10.2");
        for claim in claims(&world) {
            let (proto, port) = claim
                .split_once(" . ")
                .map(|(p, rest)| {
                    (
                        p.to_string(),
                        rest.split(' ').next().unwrap_or("").to_string(),
                    )
                })
                .expect("a claim");
            let prefix = format!("{proto}:{port}:");
            assert!(
                record.iter().any(|m| m.starts_with(&prefix)),
                "step {step}: {claim} is not in the record {record:?}"
            );
        }
        let again = world.netsetgo(A, &add);
        assert_eq!(again.code(), Some(0), "step {step}: {again}");
        assert_eq!(
            claims(&world),
            [
                "tcp . 8400 : 10.10.10.2",
                "tcp . 8401 : 10.10.10.2",
                "udp . 8402 : 10.10.10.2"
            ],
            "step {step}"
        );
        assert_eq!(
            recorded(&world, "10.10.10.2"),
            ["tcp:8400:80", "tcp:8401:80", "udp:8402:53"]
        );
        let out = world.netsetgo(A, &reset);
        assert_eq!(out.code(), Some(0), "step {step}: {out}");
    }
    eprintln!("an addition killed at {killed} of its {steps} sendto steps");
    assert!(killed >= 3, "killed at {killed} of {steps} steps");
    let out = call(&world, A, c.pid(), &["-delete"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(claims(&world), Vec::<String>::new());
    assert!(world.leases("brg0").is_empty());
}
