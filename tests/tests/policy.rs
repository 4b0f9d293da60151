//! Who may ask for what (security.md 6 and 8, cli.md "Who may ask for
//! what"): grants match users and groups exactly and add up, a caller picks
//! only among what its grants allow, and only a root-owned, strictly
//! parsed policy is trusted. Every call runs as an unprivileged user
//! against the installed 4755 copy; every refusal is proven to change
//! nothing (world links/addresses/routes, leases, maps, the container).

use netsetgo_e2e::checks::{assert_refused, wire, wire_line, wire_with};
use netsetgo_e2e::fixtures::{world_with, A, B};
use netsetgo_e2e::{add_to_group, ensure_group, ensure_user, require_root, Container, World};

const PATH: &str = "/etc/netsetgo/netsetgo.conf";
const DEFAULT_NET: &str = "network default bridge=brg0 gateway=10.10.10.1/24\n";

fn container_is_bare(c: &Container) {
    let inside = c.snapshot();
    assert_eq!(inside.link_names(), vec!["lo".to_string()], "{inside:?}");
}

/// Nothing of netsetgo exists in the world yet: no bridge, no veth, no
/// state directory.
#[track_caller]
fn assert_untouched(world: &World) {
    let snap = world.settled_snapshot();
    assert!(snap.link("brg0").is_none(), "{snap:?}");
    assert!(snap.links_of_kind("veth").is_empty(), "{snap:?}");
    assert!(
        !world.state_dir().exists(),
        "{} was created by a refused call",
        world.state_dir().display()
    );
}

/// `user`'s request for `target` is refused, changing nothing (also of
/// `others`), with a message naming the policy file, `line` and `what`.
#[track_caller]
fn assert_refused_naming(
    world: &World,
    user: &str,
    target: &Container,
    others: &[&Container],
    line: usize,
    what: &str,
) {
    let mut all = vec![target];
    all.extend_from_slice(others);
    let out = assert_refused(world, &all, user, &["-pid", &target.pid_arg()]);
    assert!(
        out.stderr.contains(PATH)
            && out.stderr.contains(&format!("line {line}"))
            && out.stderr.contains(what),
        "expected {PATH}, line {line} and {what:?}:\n{out}"
    );
}

// ---------------------------------------------------------------------------
// Grants

#[test]
fn no_grant_is_refused_naming_the_policy_file() {
    require_root!();
    // No policy file at all (the world's /etc/netsetgo is empty).
    let world = World::new();
    let c = world.container(A);
    let pid = c.pid_arg();
    let out = assert_refused(&world, &[&c], A, &["-pid", &pid]);
    assert!(out.stderr.contains(PATH), "{out}");
    // An empty one, and one that grants only another user.
    for policy in [
        String::new(),
        format!("{DEFAULT_NET}allow nsg-b default 4\n"),
    ] {
        world.set_policy(&policy);
        let out = assert_refused(&world, &[&c], A, &["-pid", &pid]);
        assert!(out.stderr.contains(PATH), "policy {policy:?}:\n{out}");
    }
    assert_untouched(&world);
    // The same file does grant nsg-b.
    let theirs = world.container(B);
    let w = wire(&world, &theirs);
    assert_eq!(w.address, "10.10.10.2/24");
    container_is_bare(&c);
}

#[test]
fn a_grant_for_bobby_gives_bob_nothing_and_back() {
    require_root!();
    let (bob, bobby) = ("nsg-bob", "nsg-bobby");
    ensure_user(bob);
    ensure_user(bobby);
    // Neither a longer name, a prefix nor another case is the same user.
    let world = world_with(&format!(
        "{DEFAULT_NET}allow nsg-bobby default 2\nallow nsg-bo default 2\nallow NSG-BOB default 2\n"
    ));
    let bob_c = world.container(bob);
    let out = assert_refused(&world, &[&bob_c], bob, &["-pid", &bob_c.pid_arg()]);
    assert!(out.stderr.contains(PATH), "{out}");
    assert_untouched(&world);
    let bobby_c = world.container(bobby);
    wire(&world, &bobby_c);

    world.set_policy(&format!("{DEFAULT_NET}allow nsg-bob default 2\n"));
    let bobby_2 = world.container(bobby);
    assert_refused(&world, &[&bobby_2], bobby, &["-pid", &bobby_2.pid_arg()]);
    wire(&world, &bob_c);
    let leases = world.leases("brg0");
    let uids: Vec<u32> = leases.iter().map(|l| l.uid).collect();
    assert_eq!(
        uids,
        vec![ensure_user(bobby).uid, ensure_user(bob).uid],
        "{leases:?}"
    );
}

#[test]
fn group_grants_cover_members_only() {
    require_root!();
    ensure_group("nsg-grp");
    ensure_user("nsg-gm");
    add_to_group("nsg-gm", "nsg-grp");
    // Without the @ it is a user name, which gives the group nothing.
    let world = world_with(&format!("{DEFAULT_NET}allow nsg-grp default 2\n"));
    let member_c = world.container("nsg-gm");
    assert_refused(
        &world,
        &[&member_c],
        "nsg-gm",
        &["-pid", &member_c.pid_arg()],
    );
    assert_untouched(&world);

    world.set_policy(&format!("{DEFAULT_NET}allow @nsg-grp default 2\n"));
    let other = world.container(A);
    let out = assert_refused(&world, &[&other], A, &["-pid", &other.pid_arg()]);
    assert!(out.stderr.contains(PATH), "{out}");
    assert_untouched(&world);
    let w = wire(&world, &member_c);
    let leases = world.leases("brg0");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].uid, ensure_user("nsg-gm").uid);
    assert_eq!(leases[0].ifname, w.host);
}

#[test]
fn grants_for_one_user_and_network_add_up() {
    require_root!();
    let world = world_with(&format!(
        "{DEFAULT_NET}allow nsg-a default 1\nallow nsg-b default 5\nallow nsg-a default 1\n"
    ));
    let first = world.container(A);
    let second = world.container(A);
    wire(&world, &first);
    wire(&world, &second);
    let third = world.container(A);
    let out = assert_refused(&world, &[&third], A, &["-pid", &third.pid_arg()]);
    assert!(out.stderr.contains("2 of your 2"), "{out}");
    assert_eq!(world.leases("brg0").len(), 2);
}

/// The policy for the request tests: two networks, nsg-a granted only
/// `default` (brg0, 10.10.10.1/24).
const TWO_NETWORKS: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
network lab bridge=labbr0 gateway=10.20.0.1/24
allow nsg-a default 4
allow nsg-b lab 4
";

/// Flags that ask for something outside nsg-a's grants.
const OUTSIDE_THE_GRANTS: [[&str; 2]; 11] = [
    ["-bridgeName", "labbr0"],                // defined, but not for nsg-a
    ["-bridgeName", "other0"],                // not defined at all
    ["-bridgeAddress", "10.10.10.254/24"],    // another gateway
    ["-bridgeAddress", "10.20.0.1/24"],       // lab's gateway
    ["-bridgeAddress", "10.10.10.1/16"],      // another subnet
    ["-containerAddress", "10.20.0.5/24"],    // another network's subnet
    ["-containerAddress", "10.10.11.5/24"],   // outside the subnet
    ["-containerAddress", "10.10.10.1/24"],   // the gateway itself
    ["-containerAddress", "10.10.10.255/24"], // the broadcast address
    ["-containerAddress", "10.10.10.0/24"],   // the network address
    ["-containerAddress", "10.10.10.5/16"],   // another prefix length
];

#[test]
fn requests_outside_the_grants_are_refused_before_anything_is_created() {
    require_root!();
    let world = world_with(TWO_NETWORKS);
    let c = world.container(A);
    let pid = c.pid_arg();
    for flags in OUTSIDE_THE_GRANTS {
        let mut args = flags.to_vec();
        args.extend(["-pid", &pid]);
        let out = assert_refused(&world, &[&c], A, &args);
        assert!(!out.stderr.is_empty(), "{flags:?}");
    }
    // Nothing was created: no bridge, no veth, no state (not even for the
    // bridges named).
    assert_untouched(&world);
    assert!(world.snapshot().link("labbr0").is_none());
    assert!(world.snapshot().link("other0").is_none());

    // With the network in use: an address someone holds is refused too.
    let holder = world.container(A);
    let held = wire(&world, &holder);
    assert_eq!(held.address, "10.10.10.2/24");
    let out = assert_refused(
        &world,
        &[&c, &holder],
        A,
        &["-containerAddress", &held.address, "-pid", &pid],
    );
    assert!(out.stderr.contains("in use"), "{out}");
    // A few of the policy refusals again, now that brg0 exists.
    for flags in [
        OUTSIDE_THE_GRANTS[0],
        OUTSIDE_THE_GRANTS[2],
        OUTSIDE_THE_GRANTS[7],
    ] {
        let mut args = flags.to_vec();
        args.extend(["-pid", &pid]);
        assert_refused(&world, &[&c, &holder], A, &args);
    }
    container_is_bare(&c);
}

#[test]
fn a_free_requested_address_and_a_granted_bridge_are_honoured() {
    require_root!();
    let world = world_with(&format!("{TWO_NETWORKS}allow nsg-a lab 1\n"));
    let first = world.container(A);
    wire(&world, &first);
    // Explicitly the granted bridge and gateway, and a free address.
    let c = world.container(A);
    let w = wire_with(
        &world,
        &c,
        &[
            "-bridgeName",
            "brg0",
            "-bridgeAddress",
            "10.10.10.1/24",
            "-containerAddress",
            "10.10.10.77/24",
        ],
    );
    assert_eq!(w.address, "10.10.10.77/24");
    assert_eq!(w.host, "veth0a0a0a4d");
    assert_eq!(c.snapshot().ipv4_of("veth1"), vec![w.address.clone()]);
    let snap = world.settled_snapshot();
    let host = snap.link(&w.host).expect("host veth");
    assert_eq!(host["master"], "brg0");
    let lease = world
        .leases("brg0")
        .into_iter()
        .find(|l| l.address.to_string() == "10.10.10.77")
        .expect("a lease for .77");
    assert_eq!(lease.uid, ensure_user(A).uid);
    assert_eq!(lease.ifname, w.host);

    // The second network nsg-a holds a grant for, chosen by name.
    let d = world.container(A);
    let lab = wire_with(&world, &d, &["-bridgeName", "labbr0"]);
    assert_eq!(
        (lab.address.as_str(), lab.bridge.as_str()),
        ("10.20.0.2/24", "labbr0")
    );
    assert_eq!(d.snapshot().ipv4_of("veth1"), vec![lab.address.clone()]);
    let snap = world.settled_snapshot();
    assert_eq!(snap.ipv4_of("labbr0"), vec!["10.20.0.1/24".to_string()]);
    assert_eq!(snap.link(&lab.host).expect("lab veth")["master"], "labbr0");
    // Its grant is 1: a second one on lab is refused.
    let e = world.container(A);
    let out = assert_refused(
        &world,
        &[&e],
        A,
        &["-bridgeName", "labbr0", "-pid", &e.pid_arg()],
    );
    assert!(out.stderr.contains("1 of your 1"), "{out}");
}

// ---------------------------------------------------------------------------
// Trusting the policy file (security.md 8)

const GOOD: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a default 8
allow nsg-b default 8
";

#[test]
fn an_untrusted_policy_file_is_refused() {
    require_root!();
    let world = world_with(GOOD);
    let first = world.container(A);
    wire(&world, &first);
    let dir = "/etc/netsetgo";
    // (what, break it, expected words, restore it)
    let cases = [
        (
            "world-writable",
            format!("chmod 666 {PATH}"),
            "writable",
            format!("chmod 644 {PATH}"),
        ),
        (
            "group-writable",
            format!("chmod 664 {PATH}"),
            "writable",
            format!("chmod 644 {PATH}"),
        ),
        (
            "a symlink to a good root-owned file",
            format!("mv {PATH} {dir}/real.conf && ln -s real.conf {PATH}"),
            "symbolic link",
            format!("rm {PATH} && mv {dir}/real.conf {PATH}"),
        ),
        (
            "owned by nsg-a",
            format!("chown nsg-a {PATH}"),
            "owned by root",
            format!("chown root {PATH}"),
        ),
        (
            "in a group-writable directory",
            format!("chmod 775 {dir}"),
            "directory",
            format!("chmod 755 {dir}"),
        ),
        (
            "in a world-writable directory",
            format!("chmod 757 {dir}"),
            "directory",
            format!("chmod 755 {dir}"),
        ),
    ];
    for (what, breakage, words, restore) in cases {
        let c = world.container(A);
        world
            .run(&["sh", "-c", &breakage])
            .expect_success(&breakage);
        let out = assert_refused(&world, &[&c, &first], A, &["-pid", &c.pid_arg()]);
        assert!(
            out.stderr.contains(PATH) && out.stderr.contains(words),
            "policy {what}: expected {PATH} and {words:?} in:\n{out}"
        );
        world.run(&["sh", "-c", &restore]).expect_success(&restore);
        // The same request works once the file is trustworthy again.
        wire(&world, &c);
    }
}

#[test]
fn a_malformed_policy_refuses_every_unprivileged_request_but_not_root() {
    require_root!();
    let world = world_with(GOOD);
    let first = world.container(A);
    wire(&world, &first);
    world.set_policy(
        "# comment\nnetwork default bridge=brg0 gateway=10.10.10.1/24\n\
         allow nsg-a default 8\nallow nsg-b default oops\n",
    );
    let mine = world.container(A);
    let theirs = world.container(B);
    for (user, c) in [(A, &mine), (B, &theirs)] {
        assert_refused_naming(&world, user, c, &[&first], 4, "count");
    }
    // -delete of one's own wiring is refused as well.
    let out = assert_refused(&world, &[&first], A, &["-delete", "-pid", &first.pid_arg()]);
    assert!(out.stderr.contains("line 4"), "{out}");
    // Root still works, as with the original.
    let before = world.settled_snapshot();
    let out = world.netsetgo("root", &["-pid", &mine.pid_arg()]);
    assert_eq!(out.code(), Some(0), "root with a malformed policy:\n{out}");
    let w = netsetgo_e2e::Wired::parse(&out.stdout).expect("one success line");
    assert_eq!(mine.snapshot().ipv4_of("veth1"), vec![w.address.clone()]);
    let after = world.settled_snapshot();
    assert!(after.link(&w.host).is_some(), "{}", before.diff(&after));
}

#[test]
fn a_count_that_does_not_fit_is_a_parse_error() {
    require_root!();
    let world = world_with(GOOD);
    let first = world.container(A);
    wire(&world, &first);
    let c = world.container(A);
    for count in ["99999999999999999999", "4294967297", "-1", "+1", "1e3"] {
        world.set_policy(&format!("{DEFAULT_NET}\nallow nsg-a default {count}\n"));
        assert_refused_naming(&world, A, &c, &[&first], 3, "count");
    }
    world.set_policy(GOOD);
    wire(&world, &c);
}

#[test]
fn a_gateway6_off_the_containers_derived_addresses_is_a_parse_error() {
    require_root!();
    let world = world_with(GOOD);
    let first = world.container(A);
    wire(&world, &first);
    let c = world.container(A);
    let theirs = world.container(B);
    for (gateways, expected) in [
        // A container at offset 1 would get gateway6 itself.
        (
            "gateway=10.10.10.254/24 gateway6=fd00:10::1/64",
            "offset 1 ",
        ),
        // Offsets up to 65534 do not fit in 8 host bits.
        (
            "gateway=10.10.0.1/16 gateway6=fd00:10::1/120",
            "at most /112",
        ),
    ] {
        world.set_policy(&format!(
            "# gateway6 must stay clear of the containers\n\
             network default bridge=brg0 {gateways}\n{}",
            GOOD.split_once('\n').unwrap().1
        ));
        for (user, target) in [(A, &c), (B, &theirs)] {
            assert_refused_naming(&world, user, target, &[&first], 2, expected);
        }
    }
    // Root still works, with the original's defaults.
    let out = world.netsetgo("root", &["-pid", &theirs.pid_arg()]);
    assert_eq!(out.code(), Some(0), "root with a malformed policy:\n{out}");
    // The gateway's own offset is always clear: fixed, the next call works
    // and its IPv6 address is at its IPv4 address's offset.
    world.set_policy(&format!(
        "network default bridge=brg0 gateway=10.10.10.1/24 gateway6=fd00:10::1/64\n{}",
        GOOD.split_once('\n').unwrap().1
    ));
    let line = wire_line(&world, &c, &[]);
    let addresses: Vec<&str> = line
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("address="))
        .collect();
    let [v4, v6] = addresses[..] else {
        panic!("two addresses expected: {line}");
    };
    let offset: u8 = v4
        .trim_end_matches("/24")
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(v6, format!("fd00:10::{offset:x}/64"), "{line}");
}
