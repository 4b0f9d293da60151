//! The race harness (security.md 14 and 16): a call of `nsg-a` is paused
//! from outside at each of its netlink requests (strace's SIGSTOP
//! injection on its n-th `sendto`, as root: see `netsetgo_e2e::Trace`) and,
//! while it is paused, the container's owner acts inside its own
//! namespaces, or the caller acts on its helper (or root kills it). After
//! each scenario:
//!
//! 1. no host device but the call's own new host end (and the bridge)
//!    changed, in particular none of the veths `victim0..2` (and their
//!    peers), whose indexes the container tries to make the helper act on;
//! 2. every lease matches the host exactly (its name and index are one veth
//!    on brg0), or names an interface that no longer exists, whose index is
//!    no other device's (right after a killed call its pending lease may
//!    name the host end it made; checked again after the next calls, which
//!    must have collected it);
//! 3. nsg-a (quota 1) never has more than one port on brg0, also after one
//!    more call of its own;
//! 4. the next call of nsg-b succeeds.
//!
//! The publishing scenarios run the same way on a `guard=yes` network with
//! `-publish tcp:PORT:80` (a port of its own each), so that the pauses
//! fall also inside the guard's and the publications' nf_tables exchanges
//! (whatever they are: the steps are enumerated from an undisturbed call
//! at run time), and check as well, right after the call and again after
//! the next calls:
//!
//! 5. every claim and DNAT element belongs to a lease (its address is
//!    leased); the scenario's port is either claimed and DNATed to one
//!    lease of nsg-a (on success, to the address the call printed) or
//!    left in neither map (always so after a refusal; right after a
//!    killed call half of it may be left, belonging to its pending lease,
//!    for the next calls to collect).
//!
//! Every scenario runs; the violations are collected and reported
//! together, with a table of what each scenario did.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use netsetgo_e2e::checks::{assert_no_violations, wire};
use netsetgo_e2e::fixtures::{uid, world_with, A, B};
use netsetgo_e2e::nft::{Kind, NftTable};
use netsetgo_e2e::{
    holds_flock, link_kind, link_name, ns_of, require_root, signal, wait_until, Container, Output,
    Snapshot, Trace, Wired, World,
};

const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a default 1
allow nsg-b default 200
";
/// The publishing scenarios' network: guarded, nsg-a may publish.
const PUBLISH_POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24 guard=yes
allow nsg-a default 1
allow nsg-b default 200
publish nsg-a default tcp 8000-8999
";
/// The first host port a publishing scenario publishes; each takes the
/// next.
const FIRST_PORT: u16 = 8000;
const VICTIMS: [&str; 3] = ["victim0", "victim1", "victim2"];
/// nsg-b's containers wired before the scenarios: enough that the garbage
/// collection's window (8 leases) is full and the steps stay the same.
const B_FIRST: usize = 8;
const CALL_LIMIT: Duration = Duration::from_secs(20);

/// What is done while the helper is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    /// The owner renames veth1 away (down first: an up device cannot be
    /// renamed) and makes a new veth1 whose peer has the index of a host
    /// device (finding 1 of issue 9).
    Swap,
    /// The owner deletes veth1.
    Delete,
    /// The owner makes bridges named veth1 (the real one renamed away)
    /// and brg0 in its namespace.
    Collide,
    /// The container exits.
    Exit,
    /// The caller sends its helper SIGKILL.
    CallerKill,
    /// Root sends the helper SIGKILL (an OOM kill, a crash: requirement
    /// 10), which the caller cannot once its helper dropped to the system
    /// user.
    Kill,
    /// The caller sets its helper to SCHED_IDLE and nice 19, and stops it
    /// (the harness continues it, as root).
    CallerSlow,
}

/// A world with victims and nsg-b's containers, and what the scenarios
/// found.
struct Bench {
    world: World,
    /// Whether each call publishes a port (the next one each time).
    publish: bool,
    next_port: u16,
    b_hosts: Vec<String>,
    b_containers: Vec<Container>,
    table: Vec<String>,
    violations: Vec<String>,
}

impl Bench {
    fn new(publish: bool) -> Bench {
        let world = world_with(if publish { PUBLISH_POLICY } else { POLICY });
        for v in VICTIMS {
            world
                .run(&[
                    "ip",
                    "link",
                    "add",
                    v,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &format!("{v}p"),
                ])
                .expect_success("a victim device");
        }
        let mut bench = Bench {
            world,
            publish,
            next_port: FIRST_PORT,
            b_hosts: Vec::new(),
            b_containers: Vec::new(),
            table: Vec::new(),
            violations: Vec::new(),
        };
        for _ in 0..B_FIRST {
            let c = bench.world.container(B);
            let w = wire(&bench.world, &c);
            bench.b_hosts.push(w.host);
            bench.b_containers.push(c);
        }
        // nsg-a holds one lease of a dead container at the start of every
        // scenario, as after this.
        let mut c = bench.world.container(A);
        wire(&bench.world, &c);
        c.kill();
        bench.wait_for_no_ports_of_a();
        bench
    }

    fn trace(step: Option<usize>) -> Trace<'static> {
        Trace {
            user: A,
            syscall: "sendto",
            pause_at: step,
            wrap: &[],
        }
    }

    /// nsg-a's arguments for a call on `c`: with the next port to
    /// publish, if this bench publishes (and that port).
    fn args(&mut self, c: &Container) -> (Vec<String>, Option<u16>) {
        let mut args = vec!["-pid".to_string(), c.pid_arg()];
        if !self.publish {
            return (args, None);
        }
        let port = self.next_port;
        self.next_port += 1;
        args.extend(["-publish".to_string(), format!("tcp:{port}:80")]);
        (args, Some(port))
    }

    /// The sendto calls of a call nobody disturbs.
    fn steps(&mut self) -> Vec<String> {
        let mut c = self.world.container(A);
        let (args, _) = self.args(&c);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut t = self.world.start_traced(&Self::trace(None), &args);
        let out = t.finish(CALL_LIMIT);
        assert_eq!(out.code(), Some(0), "an undisturbed traced call:\n{out}");
        let steps = t.calls("sendto");
        c.kill();
        self.wait_for_no_ports_of_a();
        steps
    }

    /// brg0's ports that are not nsg-b's.
    fn ports_of_a(&self, snap: &Snapshot) -> Vec<String> {
        snap.ports_of("brg0")
            .into_iter()
            .map(|l| link_name(l).to_string())
            .filter(|n| !self.b_hosts.contains(n))
            .collect()
    }

    fn wait_for_no_ports_of_a(&self) {
        let gone = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            self.ports_of_a(&self.world.snapshot()).is_empty()
        });
        assert!(gone, "nsg-a's ports never went away");
    }

    /// Runs `script` with `sh -c` as the container's owner inside its user
    /// and network namespaces (root there).
    fn inside(&self, c: &Container, script: &str) -> Output {
        self.world.run_as(
            A,
            &[
                "nsenter",
                "-t",
                &c.pid_arg(),
                "-U",
                "-n",
                "--preserve-credentials",
                "--",
                "sh",
                "-c",
                script,
            ],
        )
    }

    /// Does `act` while the helper `helper` is paused; says what happened,
    /// or why the act could not be done (a failure of the harness).
    fn act(&self, act: Act, c: &mut Container, helper: u32) -> Result<String, String> {
        let pid = helper.to_string();
        let done = |out: Output| {
            if out.success() {
                Ok("done".to_string())
            } else {
                Err(out.stderr.trim().replace('\n', "; "))
            }
        };
        let allowed = |out: Output| {
            Ok(if out.success() {
                "done".to_string()
            } else {
                format!("refused: {}", out.stderr.trim().replace('\n', "; "))
            })
        };
        match act {
            Act::Swap => {
                let host = self.world.snapshot();
                let used: Vec<u64> = c
                    .snapshot()
                    .links
                    .iter()
                    .filter_map(|l| l["ifindex"].as_u64())
                    .collect();
                // The highest: the peer, created first, takes the next
                // free index.
                let index = VICTIMS
                    .iter()
                    .filter_map(|v| host.link(v)?["ifindex"].as_u64())
                    .filter(|i| !used.contains(i))
                    .max()
                    .expect("a victim index free in the container");
                done(self.inside(
                    c,
                    &format!(
                        "ip link set veth1 down 2>/dev/null; \
                         ip link set veth1 name real1 2>/dev/null; \
                         ip link add x index {index} type veth peer name veth1"
                    ),
                ))
                .map(|d| format!("{d} (index {index})"))
            }
            Act::Delete => {
                if c.snapshot().link("veth1").is_none() {
                    return Ok("no veth1 yet".into());
                }
                done(self.inside(c, "ip link del veth1"))
            }
            Act::Collide => done(self.inside(
                c,
                "ip link set veth1 down 2>/dev/null; \
                 ip link set veth1 name real1 2>/dev/null; \
                 ip link add veth1 type bridge && ip link add brg0 type bridge",
            )),
            Act::Exit => {
                c.kill();
                Ok("exited".into())
            }
            Act::CallerKill => allowed(self.world.run_as(A, &["kill", "-KILL", &pid])),
            Act::Kill => {
                signal(helper, libc::SIGKILL);
                Ok("killed".into())
            }
            Act::CallerSlow => allowed(self.world.run_as(
                A,
                &[
                    "sh",
                    "-c",
                    "chrt -i -p 0 \"$1\" && renice -n 19 -p \"$1\" >/dev/null \
                     && kill -STOP \"$1\"",
                    "sh",
                    &pid,
                ],
            )),
        }
    }

    /// One scenario: pause nsg-a's call at its `step`-th sendto, `act`,
    /// let it go, check.
    fn scenario(&mut self, step: usize, act: Act) {
        let mut c = self.world.container(A);
        let before = self.world.settled_snapshot();
        let (args, port) = self.args(&c);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut t = self.world.start_traced(&Self::trace(Some(step)), &args);
        let mut found = Vec::new();
        let acted = match t.wait_paused(Duration::from_secs(10)) {
            Some(helper) => {
                let acted = self.act(act, &mut c, helper);
                signal(helper, libc::SIGCONT);
                acted.unwrap_or_else(|why| {
                    found.push(format!("the act could not be done: {why}"));
                    format!("not done: {why}")
                })
            }
            None => "never paused".into(),
        };
        let out = t.finish(CALL_LIMIT);
        let at = t
            .calls("sendto")
            .get(step - 1)
            .cloned()
            .unwrap_or_else(|| "-".into());
        let name = format!("step {step} ({at}) {act:?}");
        let result = match out.code() {
            Some(0) => "wired".to_string(),
            code => format!(
                "exit {code:?}: {}",
                out.stderr.lines().next().unwrap_or("").trim()
            ),
        };
        let after = self.world.snapshot();
        self.check_devices(&before, &after, &mut found);
        self.check_leases(&after, Some(&out), &mut found);
        if let Some(port) = port {
            self.check_publications(port, Some(&out), &mut found);
        }
        self.check_quota(&c, &after, &mut found);
        self.check_next_call_of_b(&mut found);
        self.check_leases(&self.world.snapshot(), None, &mut found);
        if let Some(port) = port {
            self.check_publications(port, None, &mut found);
        }
        self.table.push(format!(
            "{name}: {acted}; call {result}; {} problems",
            found.len()
        ));
        self.violations
            .extend(found.into_iter().map(|v| format!("{name}: {v}")));
        c.kill();
        self.wait_for_no_ports_of_a();
    }

    /// (1) Every device but brg0 is as before; a new one is a veth on brg0.
    fn check_devices(&self, before: &Snapshot, after: &Snapshot, found: &mut Vec<String>) {
        for l in before.links.iter().filter(|l| link_name(l) != "brg0") {
            match after.link(link_name(l)) {
                Some(now) if now == l => {}
                Some(now) => found.push(format!("host device changed: {l}\n  now {now}")),
                None => found.push(format!("host device gone: {l}")),
            }
        }
        let new: Vec<&serde_json::Value> = after
            .links
            .iter()
            .filter(|l| before.link(link_name(l)).is_none())
            .collect();
        if new.len() > 1
            || new
                .iter()
                .any(|l| link_kind(l) != Some("veth") || l["master"] != "brg0")
        {
            found.push(format!("new host devices: {new:?}"));
        }
    }

    /// (2) Leases match the host exactly, or name a gone interface whose
    /// index is no other device's; a success has its lease. Checked right
    /// after the call (`out`: its output), where a killed call's pending
    /// lease may name the host end it made, and again after the next
    /// calls, where nothing pending may be left.
    fn check_leases(&self, after: &Snapshot, out: Option<&Output>, found: &mut Vec<String>) {
        let when = if out.is_some() {
            "after the call"
        } else {
            "after the next calls"
        };
        // Right after a killed call, its pending lease (index 0) may name
        // the host end it made, which the next call that looks deletes.
        let killed = out.is_some_and(|o| o.code().is_none());
        let leases = self.world.leases("brg0");
        for lease in &leases {
            let index = u64::from(lease.ifindex);
            match after.link(&lease.ifname) {
                Some(l) => {
                    let pending_of_killed = killed && index == 0;
                    if (l["ifindex"] != index && !pending_of_killed)
                        || link_kind(l) != Some("veth")
                        || l["master"] != "brg0"
                    {
                        found.push(format!(
                            "{when}: lease {lease:?} does not match the host: {l}"
                        ));
                    }
                }
                None => {
                    if let Some(other) = after.link_by_index(index) {
                        found.push(format!(
                            "{when}: lease {lease:?} of a gone interface has the index of {other}"
                        ));
                    }
                }
            }
        }
        if let Some(w) = out.and_then(|o| Wired::parse(&o.stdout)) {
            if !leases.iter().any(|l| l.ifname == w.host) {
                found.push(format!("no lease for the wired {}", w.host));
            }
        }
    }

    /// (5) Every claim and DNAT element's address is leased; `port` is
    /// claimed and DNATed to one lease of nsg-a, or is in neither map
    /// (right after a call that was killed, half of it may be left, for
    /// the next garbage collection). With the call's output `out`: on
    /// success that lease is the one printed; after a refusal the port is
    /// in neither map.
    fn check_publications(&self, port: u16, out: Option<&Output>, found: &mut Vec<String>) {
        let when = if out.is_some() {
            "after the call"
        } else {
            "after the next calls"
        };
        let leases = self.world.leases("brg0");
        let leased = |ip: &str| leases.iter().find(|l| l.address.to_string() == ip);
        let Some(table) = NftTable::publishing(&self.world) else {
            return;
        };
        // "tcp . 8000 : 10.10.10.2" and "tcp . 8000 : 10.10.10.2 . 80".
        let mut claims = Vec::new();
        let mut dnats = Vec::new();
        for (kind, texts) in table.elements() {
            if !matches!(kind, Kind::Published | Kind::Dnat4) {
                continue;
            }
            for text in texts {
                let Some((key, value)) = text.split_once(" : ") else {
                    found.push(format!("{when}: unreadable {kind:?} element {text:?}"));
                    continue;
                };
                let ip = value.split(" . ").next().unwrap_or("");
                if leased(ip).is_none() {
                    found.push(format!("{when}: {kind:?} element {text:?} of no lease"));
                }
                if key == format!("tcp . {port}") {
                    match kind {
                        Kind::Published => claims.push(value.to_string()),
                        _ => dnats.push(value.to_string()),
                    }
                }
            }
        }
        if claims.is_empty() && dnats.is_empty() {
            if let Some(w) = out.and_then(|o| Wired::parse(&o.stdout)) {
                found.push(format!("{when}: wired {} without its port {port}", w.ip()));
            }
            return;
        }
        let killed = out.is_some_and(|o| o.code().is_none());
        let whole = killed
            || claims.len() == 1
                && dnats.len() == 1
                && dnats[0] == format!("{} . 80", claims[0])
                && leased(&claims[0]).is_some_and(|l| l.uid == uid(A));
        if !whole {
            found.push(format!(
                "{when}: port {port} half made or not nsg-a's: claims {claims:?}, DNAT {dnats:?}"
            ));
        }
        match out {
            Some(o) if o.code() == Some(1) => found.push(format!(
                "{when}: a refused call left port {port}: claims {claims:?}"
            )),
            Some(o) => {
                if let Some(w) = Wired::parse(&o.stdout) {
                    if claims[0] != w.ip() {
                        found.push(format!(
                            "{when}: port {port} goes to {claims:?}, the call wired {}",
                            w.ip()
                        ));
                    }
                }
            }
            None => {}
        }
    }

    /// (3) nsg-a, quota 1, has at most one port on brg0, also after one
    /// more call; while its paused call's container lives and is wired,
    /// that call is refused.
    fn check_quota(&self, c: &Container, after: &Snapshot, found: &mut Vec<String>) {
        let mine = self.ports_of_a(after);
        if mine.len() > 1 {
            found.push(format!("nsg-a holds {mine:?} with a quota of 1"));
        }
        let d = self.world.container(A);
        let out = self.world.netsetgo(A, &["-pid", &d.pid_arg()]);
        let now = self.ports_of_a(&self.world.snapshot());
        if now.len() > 1 {
            found.push(format!(
                "after one more call nsg-a holds {now:?} with a quota of 1 (that call: {out})"
            ));
        }
        let c_wired = !mine.is_empty()
            && ns_of(c.pid(), "net").is_some()
            && c.snapshot().link("veth1").is_some();
        if c_wired && out.success() {
            found.push(format!("a second call at the quota succeeded: {out}"));
        }
    }

    /// (4) nsg-b's next call succeeds.
    fn check_next_call_of_b(&mut self, found: &mut Vec<String>) {
        let e = self.world.container(B);
        let out = self.world.netsetgo(B, &["-pid", &e.pid_arg()]);
        match Wired::parse(&out.stdout) {
            Some(w) if out.success() => self.b_hosts.push(w.host),
            _ => found.push(format!("nsg-b's next call failed: {out}")),
        }
        self.b_containers.push(e);
    }

    /// Prints the table and fails with every violation.
    fn report(self, what: &str, started: Instant) {
        assert_no_violations(what, "scenarios", started, &self.table, &self.violations);
    }
}

/// Runs `acts` at every step of an undisturbed call (a publishing one on
/// a guarded network with `publish`).
fn every_step(what: &str, publish: bool, acts: &[Act]) {
    let started = Instant::now();
    let mut bench = Bench::new(publish);
    let steps = bench.steps();
    eprintln!("{what}: an undisturbed call's sendto calls: {steps:?}");
    assert!(steps.len() >= 5, "too few steps traced: {steps:?}");
    for step in 1..=steps.len() {
        for &act in acts {
            bench.scenario(step, act);
        }
    }
    bench.report(what, started);
}

#[test]
fn the_container_owner_acting_inside_at_every_step_changes_nothing_outside() {
    require_root!();
    every_step(
        "owner",
        false,
        &[Act::Swap, Act::Delete, Act::Collide, Act::Exit],
    );
}

#[test]
fn the_caller_acting_on_its_helper_at_every_step_changes_nothing_outside() {
    require_root!();
    every_step("caller", false, &[Act::CallerKill, Act::CallerSlow]);
}

/// The publishing, guarded call paused at every step, the guard's and the
/// publications' nf_tables exchanges included: the owner swaps its
/// interface (which also makes later steps fail, so the rollback runs),
/// or the helper is killed (by root: every step of a publishing call
/// comes after the drop, where the caller cannot; nothing is rolled back).
/// Fewer acts than the plain call's scenarios, which cover the rest, to
/// keep the run short.
#[test]
fn a_publishing_guarded_call_disturbed_at_every_step_leaves_no_stray_publication() {
    require_root!();
    every_step("publish", true, &[Act::Swap, Act::Kill]);
}

// ---------------------------------------------------------------------------
// No hostages (security.md 16)

/// How long another user's call may take once a helper holds the lock.
const BOUND: Duration = Duration::from_secs(1);

/// nsg-a's helper is paused (by root, from outside) right after it took
/// brg0's lock, proven from /proc/locks. nsg-a stops it from its own uid
/// in a tight loop, or it runs at SCHED_IDLE and nice 19 (inherited from
/// its caller: `chrt -i 0 nice -n 19 netsetgo`) against two busy loops;
/// root continues it once. nsg-b's call on the same network must complete
/// within BOUND of the moment nsg-a's helper was seen holding the lock.
#[test]
fn a_stopped_or_slowed_helper_does_not_stall_another_users_call() {
    require_root!();
    let world = world_with("network default bridge=brg0 gateway=10.10.10.1/24\nallow nsg-a default 4\nallow nsg-b default 4\n");
    let first = world.container(B);
    wire(&world, &first);
    let map = world.state_dir().join("brg0").join("map");
    let ino = std::fs::metadata(&map)
        .unwrap_or_else(|e| panic!("{}: {e}", map.display()))
        .ino();
    let mut problems = Vec::new();
    for slowed in [false, true] {
        let how = if slowed {
            "SCHED_IDLE, nice 19, two busy loops"
        } else {
            "SIGSTOP from nsg-a in a loop"
        };
        let _hogs: Vec<_> = (0..if slowed { 2 } else { 0 })
            .map(|_| world.spawn(&["sh", "-c", "while :; do :; done"]))
            .collect();
        let c = world.container(A);
        let wrap: &[&str] = if slowed {
            &["chrt", "-i", "0", "nice", "-n", "19"]
        } else {
            &[]
        };
        let mut t = world.start_traced(
            &Trace {
                user: A,
                syscall: "flock",
                pause_at: Some(1),
                wrap,
            },
            &["-pid", &c.pid_arg()],
        );
        let helper = t
            .wait_paused(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{how}: never paused at flock:\n{}", t.log()));
        let took = Instant::now();
        assert!(
            holds_flock(helper, ino),
            "{how}: paused without brg0's lock:\n{}",
            std::fs::read_to_string("/proc/locks").unwrap_or_default()
        );
        let _looper = (!slowed).then(|| {
            world.spawn_as(
                A,
                &[
                    "sh",
                    "-c",
                    "while :; do kill -STOP \"$1\" 2>/dev/null; done",
                    "sh",
                    &helper.to_string(),
                ],
            )
        });
        signal(helper, libc::SIGCONT);
        let e = world.container(B);
        let mut call = world.start_netsetgo(B, &["-pid", &e.pid_arg()]);
        let out = call.finish(Duration::from_secs(15));
        let waited = took.elapsed();
        eprintln!("{how}: nsg-b's call ended {waited:?} after nsg-a's helper held the lock: {out}");
        if !out.success() || waited > BOUND {
            problems.push(format!(
                "{how}: nsg-b's call took {waited:?} (bound {BOUND:?}):\n{out}"
            ));
        }
        // Whatever became of it, nsg-a's helper (strace's child, so not yet
        // reaped) ends now.
        signal(helper, libc::SIGKILL);
        let out = t.finish(CALL_LIMIT);
        eprintln!("{how}: nsg-a's call, ended: {out}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
