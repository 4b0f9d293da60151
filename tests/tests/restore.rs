//! `netsetgo -restore` (security.md 20, issue 17), end to end: a firewall
//! restart (`nft flush ruleset` in the world, as `nftables.service` does
//! with a config that begins with `flush ruleset`) takes the helper's
//! tables with it; `-check` says what is missing and names `-restore`;
//! root's `netsetgo -restore`, as the packaged unit runs it, brings back
//! every publication (a client on another "machine" is answered and seen
//! with its own address) and every guard (`-check` exit 0); a second run
//! changes nothing; a non-root `-restore` is refused and changes nothing.
//! And the state follows the policy: a network removed from it frees its
//! ports at the next restore (another user may publish them) and its
//! owner's `-delete` still works; a revoked `publish` grant takes its
//! publication with it.

use std::time::Duration;

use netsetgo_e2e::checks::{assert_refused_unchanged_nft, wire, wire_with};
use netsetgo_e2e::fixtures::{uid, world_with, A, B};
use netsetgo_e2e::nft::{guard_tables, NftTable, GUARD_COMMON_CHAIN, GUARD_COMMON_RULES};
use netsetgo_e2e::traffic::{Outside, Server};
use netsetgo_e2e::{require_root, Container, Output, SyslogSink, World};

/// brg0 with masquerading and the guard (the default); nsg-a may publish
/// TCP 8000-8999 there, nsg-b has no publish grant.
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 nat=yes
allow nsg-a default 8
allow nsg-b default 4
publish nsg-a default tcp 8000-8999
";

/// `netsetgo -restore` as root in the world, as the unit runs it.
fn restore(world: &World) -> Output {
    world.netsetgo("root", &["-restore"])
}

/// `nft -j list ruleset` in the world.
fn ruleset_json(world: &World) -> serde_json::Value {
    let out = world.run(&["nft", "-j", "list", "ruleset"]);
    out.expect_success("nft -j list ruleset");
    serde_json::from_str(&out.stdout).expect("nft -j prints JSON")
}

/// `-check` of `c` as its owner.
fn check(world: &World, c: &Container) -> Output {
    world.netsetgo(c.user(), &["-check", "-pid", &c.pid_arg()])
}

/// An isolated network (nat=yes, so that the host forwards).
const ISOLATED: &str = "\
network iso bridge=isobr0 gateway=10.60.0.1/24 nat=yes isolate=yes
allow nsg-a iso 4
";

#[test]
fn restore_brings_back_the_isolation_rule_after_a_flushed_ruleset() {
    require_root!();
    let world = world_with(ISOLATED);
    let attacker = world.container(A);
    let from = wire_with(&world, &attacker, &["-bridgeName", "isobr0"]);
    let victim = world.container(A);
    let to = wire_with(&world, &victim, &["-bridgeName", "isobr0"]);
    // Both route to the other through the gateway (so that a ping gets
    // its answer) and ignore the host's redirects.
    for (c, other) in [(&attacker, to.ip()), (&victim, from.ip())] {
        let route = format!("{other}/32");
        let add = ["ip", "route", "add", &route, "via", "10.60.0.1"];
        c.exec(&add).expect_success("the route through the gateway");
        let quiet = ["sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0"];
        c.exec(&quiet).expect_success("no redirects");
    }
    let (a, b) = (from.ip(), to.ip());
    assert!(!attacker.pings(b), "{a} reaches {b} through the gateway");
    let isolate_chain = ["nft", "list", "chain", "inet", "netsetgo", "isolate"];
    assert!(world.run(&isolate_chain).success());

    // The firewall restarts: the rule is gone, and the route works.
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");
    assert!(
        attacker.pings(b),
        "the flush did not open the way: the test proves nothing"
    );
    let out = world.netsetgo(
        A,
        &[
            "-check",
            "-bridgeName",
            "isobr0",
            "-pid",
            &attacker.pid_arg(),
        ],
    );
    assert_eq!(out.code(), Some(1), "{out}");
    for part in [
        "the isolation rule of bridge isobr0 is missing",
        "run `netsetgo -restore` as root",
    ] {
        assert!(out.stderr.contains(part), "{part:?} not said:\n{out}");
    }

    // -restore brings it back; the way is closed again, -check is content.
    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains(", masquerade, isolation;"), "{out}");
    assert!(world.run(&isolate_chain).success());
    assert!(!attacker.pings(b), "{a} reaches {b} after -restore");
    let out = world.netsetgo(
        A,
        &[
            "-check",
            "-bridgeName",
            "isobr0",
            "-pid",
            &attacker.pid_arg(),
        ],
    );
    assert_eq!(out.code(), Some(0), "-check after -restore:\n{out}");
}

#[test]
fn restore_brings_back_publications_and_guards_after_a_flushed_ruleset() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let publisher = world.container(A);
    wire_with(&world, &publisher, &["-publish", "tcp:8080:80"]);
    let guarded = world.container(B);
    assert_eq!(wire(&world, &guarded).ip(), "10.10.10.3");
    let mut server = Server::start(&publisher.enter(), "tcp", "::", 80);
    outside.assert_reaches(&mut server, 8080);
    for c in [&publisher, &guarded] {
        assert_eq!(check(&world, c).code(), Some(0), "{}", check(&world, c));
    }

    // The firewall restarts.
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");
    outside.assert_unanswered(8080);
    let out = check(&world, &publisher);
    assert_eq!(out.code(), Some(1), "{out}");
    for part in [
        "publication tcp:8080:80 is missing",
        "the guard of host end veth0a0a0a02 is missing",
        "run `netsetgo -restore` as root",
    ] {
        assert!(out.stderr.contains(part), "{part:?} not said:\n{out}");
    }
    let out = check(&world, &guarded);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("the guard of host end veth0a0a0a03 is missing")
            && out.stderr.contains("netsetgo -restore"),
        "{out}"
    );

    // Not by a user: refused, audited, nothing changes.
    let empty = ruleset_json(&world);
    for user in [A, B] {
        let out = world.netsetgo(user, &["-restore"]);
        assert_eq!(out.code(), Some(1), "{out}");
        assert!(
            out.stderr
                .starts_with("netsetgo: netsetgo -restore is for root only"),
            "{out}"
        );
        assert_eq!(out.stdout, "", "{out}");
    }
    assert_eq!(
        ruleset_json(&world),
        empty,
        "a refused -restore changed the ruleset"
    );
    outside.assert_unanswered(8080);

    // Root, as the unit does it.
    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(
        out.stdout,
        "restore: network default (brg0): 2 leases, 2 guarded, 1 publication, masquerade, hairpin; \
         re-created 2 guards and 1 publication\n",
        "{out}"
    );
    assert_eq!(out.stderr, "", "{out}");
    outside.assert_reaches(&mut server, 8080);
    for c in [&publisher, &guarded] {
        let out = check(&world, c);
        assert_eq!(out.code(), Some(0), "-check after -restore:\n{out}");
    }

    // Again: nothing was missing, nothing changes.
    let before = ruleset_json(&world);
    let out = world.netsetgo("root", &["-restore", "-json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one object");
    let default = &json["restored"][0];
    assert_eq!(
        (
            &default["network"],
            &default["leases"],
            &default["guards_restored"],
            &default["publications"],
            &default["publications_restored"]
        ),
        (
            &serde_json::json!("default"),
            &serde_json::json!(2),
            &serde_json::json!(0),
            &serde_json::json!(1),
            &serde_json::json!(0)
        ),
        "{out}"
    );
    assert_eq!(
        ruleset_json(&world),
        before,
        "a second -restore changed the ruleset"
    );
    outside.assert_reaches(&mut server, 8080);
}

/// Root empties a guard table's shared chain (`nft flush chain`; a
/// container's owner cannot, and deleting it is refused while ports jump
/// to it): the port's own chain is whole, but what the shared chain drops
/// passes. `-check` names the shared chain and `-restore`; root's
/// `-restore` fills it again, and a second run changes nothing.
#[test]
fn restore_refills_the_guard_tables_shared_chain_that_check_names() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    assert_eq!(wire(&world, &c).ip(), "10.10.10.2");
    let tables = guard_tables(&world);
    assert_eq!(tables.len(), 1, "{tables:?}");
    let table = &tables[0];
    let chains = || {
        NftTable::of(&world, "bridge", table)
            .expect("the table")
            .chains()
    };
    let whole = chains();
    assert_eq!(whole.get(GUARD_COMMON_CHAIN), Some(&GUARD_COMMON_RULES));
    assert_eq!(check(&world, &c).code(), Some(0));

    world
        .run(&["nft", "flush", "chain", "bridge", table, GUARD_COMMON_CHAIN])
        .expect_success("nft flush chain in the world");
    assert_eq!(chains().get(GUARD_COMMON_CHAIN), Some(&0));
    let out = check(&world, &c);
    assert_eq!(out.code(), Some(1), "{out}");
    for part in [
        format!("the guard of host end veth0a0a0a02 is missing: chain bridge {table} {GUARD_COMMON_CHAIN}"),
        "run `netsetgo -restore` as root".to_string(),
    ] {
        assert!(out.stderr.contains(&part), "{part:?} not said:\n{out}");
    }
    assert!(!out.stderr.contains("port_veth0a0a0a02"), "{out}");

    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("re-created 1 guard"), "{out}");
    assert_eq!(chains(), whole, "the guard table after -restore");
    assert_eq!(check(&world, &c).code(), Some(0));
    let before = ruleset_json(&world);
    assert_eq!(restore(&world).code(), Some(0));
    assert_eq!(ruleset_json(&world), before, "a second -restore changed it");
}

/// A flushed ruleset after the last publication went: the host's claims
/// mark says claims were made, so the next `-publish` (another network's
/// port could be among the lost ones) is refused and changes nothing;
/// root's `-restore`, with no publication to restore, gives the claims
/// back and the same call is published.
#[test]
fn after_a_flushed_ruleset_publishing_waits_for_restore_even_with_nothing_to_restore() {
    require_root!();
    let world = world_with(POLICY);
    let first = world.container(A);
    wire_with(&world, &first, &["-publish", "tcp:8080:80"]);
    let out = world.netsetgo(A, &["-delete", "-pid", &first.pid_arg()]);
    assert_eq!(out.code(), Some(0), "{out}");
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");

    let second = world.container(A);
    let pid = second.pid_arg();
    let args = ["-pid", pid.as_str(), "-publish", "tcp:8081:80"];
    let out =
        assert_refused_unchanged_nft(&world, &[&first, &second], 1, || world.netsetgo(A, &args));
    assert!(
        out.stderr.contains("ruleset was flushed") && out.stderr.contains("netsetgo -restore"),
        "{out}"
    );

    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    let listed = world.run(&["nft", "list", "table", "inet", "netsetgo"]);
    assert!(listed.stdout.contains("map published"), "{listed}");
    let wired = wire_with(&world, &second, &["-publish", "tcp:8081:80"]);
    assert_eq!(wired.ip(), "10.10.10.2");

    // Its owner asking again for its own publication after another flush:
    // refused as well, until -restore brings it back.
    world
        .run(&["nft", "flush", "ruleset"])
        .expect_success("nft flush ruleset in the world");
    let out = assert_refused_unchanged_nft(&world, &[&second], 1, || world.netsetgo(A, &args));
    assert!(out.stderr.contains("netsetgo -restore"), "{out}");
    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.contains("re-created 1 guard and 1 publication"),
        "{out}"
    );
    let out = world.netsetgo(A, &args);
    assert_eq!(out.code(), Some(0), "asked again after -restore:\n{out}");
}

#[test]
fn restore_without_state_or_with_flags_says_so() {
    require_root!();
    let world = world_with(POLICY);
    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("nothing to restore"), "{out}");
    for bad in [
        &["-restore", "-pid", "1"][..],
        &["-restore", "-bridgeName", "brg0"],
        &["-restore", "-check"],
    ] {
        let out = world.netsetgo("root", bad);
        assert_eq!(out.code(), Some(2), "{bad:?}: {out}");
    }
}

/// Two networks: `old` (nsg-a may publish TCP 8000-8999 there) and
/// `default` (nsg-b may publish the same ports). The claim on a host port
/// is shared by every network.
const TWO: &str = "\
network old bridge=oldbr0 gateway=10.30.0.1/24
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a old 4
allow nsg-b default 4
publish nsg-a old tcp 8000-8999
publish nsg-b default tcp 8000-8999
";

/// `TWO` after the administrator removed network `old` and its grants.
const WITHOUT_OLD: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-b default 4
publish nsg-b default tcp 8000-8999
";

#[test]
fn a_network_removed_from_the_policy_frees_its_ports_at_restore_and_its_owner_can_delete() {
    require_root!();
    let world = world_with(TWO);
    let old = world.container(A);
    let w = wire_with(
        &world,
        &old,
        &["-bridgeName", "oldbr0", "-publish", "tcp:8080:80"],
    );
    assert_eq!(w.ip(), "10.30.0.2");
    let roots = world.container("root");
    assert_eq!(
        wire_with(&world, &roots, &["-bridgeName", "oldbr0"]).ip(),
        "10.30.0.3"
    );
    world.set_policy(WITHOUT_OLD);

    // Before the restore the dead network's claim refuses another user's
    // granted port.
    let other = world.container(B);
    let pid = other.pid_arg();
    let out = world.netsetgo(B, &["-publish", "tcp:8080:80", "-pid", &pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("already published"), "{out}");

    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.contains(
            "restore: bridge oldbr0 (no longer in the policy): 2 leases kept until their interfaces are gone, 2 guarded"
        ) && out
            .stdout
            .contains("removed (the network left the policy): tcp:8080:80 of 10.30.0.2"),
        "{out}"
    );
    // The leases stay while their interfaces live.
    assert_eq!(world.leases("oldbr0").len(), 2);

    // Now the port is free for nsg-b on its own network.
    let w = wire_with(&world, &other, &["-publish", "tcp:8080:80"]);
    assert_eq!(w.ip(), "10.10.10.2");

    // nsg-a, who has no grant at all any more, still removes its own
    // interface from the network that is gone.
    let pid = old.pid_arg();
    let out = world.netsetgo(A, &["-delete", "-bridgeName", "oldbr0", "-pid", &pid]);
    assert_eq!(out.code(), Some(0), "-delete on a removed network:\n{out}");
    assert!(
        out.stdout.starts_with("removed 1 host=veth0a1e0002"),
        "{out}"
    );
    assert_eq!(world.leases("oldbr0").len(), 1);
    // And root its own, without naming the subnet the network had.
    let pid = roots.pid_arg();
    let out = world.netsetgo("root", &["-delete", "-bridgeName", "oldbr0", "-pid", &pid]);
    assert_eq!(
        out.code(),
        Some(0),
        "root's -delete on a removed network:\n{out}"
    );
    assert!(
        out.stdout.starts_with("removed 1 host=veth0a1e0003"),
        "{out}"
    );
    assert!(world.leases("oldbr0").is_empty());
    assert!(
        world.snapshot().link("veth0a1e0002").is_none(),
        "the host end is gone"
    );
    // And not someone else's: nsg-a cannot delete nsg-b's.
    let pid = other.pid_arg();
    let out = world.netsetgo(A, &["-delete", "-bridgeName", "brg0", "-pid", &pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(world.leases("brg0").len(), 1);
}

#[test]
fn a_revoked_publish_grant_takes_its_publication_at_restore() {
    require_root!();
    let world = world_with(POLICY);
    let outside = Outside::new(&world);
    let c = world.container(A);
    wire_with(&world, &c, &["-publish", "tcp:8080:80"]);
    let mut server = Server::start(&c.enter(), "tcp", "::", 80);
    outside.assert_reaches(&mut server, 8080);
    world.set_policy(&POLICY.replace("publish nsg-a default tcp 8000-8999\n", ""));
    let out = restore(&world);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout
            .contains("removed (no grant covers them): tcp:8080:80 of 10.10.10.2"),
        "{out}"
    );
    outside.assert_unanswered(8080);
    // The container stays wired, intact, without the publication.
    let out = check(&world, &c);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(!out.stdout.contains("publish="), "{out}");
}

#[test]
fn restore_is_audited_granted_for_root_and_refused_for_a_user() {
    require_root!();
    let world = world_with(POLICY);
    world.mount_private_dev();
    let sink = SyslogSink::bind(&world);
    let out = world.run_as(A, &["logger", "-u", "/dev/log", "nsg-e2e-probe"]);
    out.expect_success("logger to the world's /dev/log");
    assert_eq!(
        sink.records(Duration::from_millis(500)).len(),
        1,
        "the probe"
    );
    assert_eq!(world.netsetgo(A, &["-restore"]).code(), Some(1));
    assert_eq!(restore(&world).code(), Some(0));
    let records = sink.records(Duration::from_millis(500));
    assert_eq!(records.len(), 2, "one record per call: {records:?}");
    for (record, who, result) in [
        (&records[0], uid(A), "result=refused"),
        (&records[1], 0, "result=granted"),
    ] {
        let fields: Vec<&str> = record.split_whitespace().collect();
        for field in [&format!("uid={who}"), "action=restore", result] {
            assert!(fields.contains(&field), "{field} missing in {record:?}");
        }
    }
}
