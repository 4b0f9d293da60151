//! Requirement 19, nothing inherited decides where the helper stops: an
//! unprivileged caller sets each resource limit to its most hostile value
//! (`prlimit`, as the caller, right before the exec of the installed 4755
//! copy), blocks, ignores and leaves pending every signal it can, arms a
//! timer, burns the CPU time it may, sets umask 0, works in a directory it
//! made unreadable or removed, and leaves descriptors open. Each call's
//! outcome must be exactly that of a plain call (exit 0, one success line
//! of the same shape, the container wired, the world changed by the new
//! host end and brg0 only); or, where a hard limit is below what the
//! helper needs and the machine's bounding set lacks CAP_SYS_RESOURCE (so
//! that no hard limit can be raised, as on this project's VMs), one
//! refusal line naming the limit, before anything is made; or, where the
//! kernel refuses the exec itself or the start-up code dies before `main`
//! (named cases only), nothing ran and nothing changed. After all of them
//! the next plain call works. A crash, a stall (the harness's timeout) or
//! any other outcome is a failure; the table of what each case did is
//! printed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use netsetgo::privilege::LIMITS;
use netsetgo_e2e::checks::{
    assert_no_violations, assert_refusal_line, assert_unchanged, assert_wired_in, wire,
};
use netsetgo_e2e::fixtures::{world_with, A};
use netsetgo_e2e::{ensure_user, installed_binary, require_root, Container, Output, Wired, World};

const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a default 64
";

/// Runs its arguments' operations, then execs what follows `--`: the last
/// step before the exec of `prlimit` (and through it of the helper), so
/// that what it sets up reaches the helper unchanged. Operations:
/// `burn:S` spends S seconds of CPU time (CPU time survives exec);
/// `close:FD` closes FD;
/// `pending` blocks every signal that can be blocked and sends itself the
/// ones whose default action ends or stops a process, which stay pending
/// across exec; `ignore` ignores every signal that can be ignored;
/// `alarm:S` arms ITIMER_REAL to fire S seconds later; `umask:0`;
/// `cwd:DIR` works in DIR and makes it unreadable (mode 0); `gone:DIR`
/// works in DIR and removes it; `fds:N` leaves N more descriptors open
/// (not close-on-exec).
const WRAPPER: &str = r#"
import os, resource, signal, sys, time
args = sys.argv[1:]
cut = args.index("--")
ops, argv = args[:cut], args[cut + 1:]
catchable = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]
for op in ops:
    what, _, arg = op.partition(":")
    if what == "burn":
        while time.process_time() < float(arg):
            pass
    elif what == "pending":
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                  signal.SIGUSR2, signal.SIGALRM, signal.SIGXCPU, signal.SIGXFSZ,
                  signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN, signal.SIGPROF,
                  signal.SIGVTALRM, signal.SIGCHLD, signal.SIGPIPE,
                  signal.SIGRTMIN + 2, signal.SIGRTMAX):
            os.kill(os.getpid(), s)
        assert len(signal.sigpending()) >= 15 or "ignore" in ops, signal.sigpending()
    elif what == "ignore":
        for s in catchable:
            try:
                signal.signal(s, signal.SIG_IGN)
            except (OSError, ValueError):
                pass  # the libc's own (glibc's 32 and 33)
    elif what == "alarm":
        signal.setitimer(signal.ITIMER_REAL, float(arg))
    elif what == "close":
        os.close(int(arg))
    elif what == "umask":
        os.umask(int(arg, 8))
    elif what == "cwd":
        os.chdir(arg)
        os.chmod(arg, 0)
    elif what == "gone":
        os.chdir(arg)
        os.rmdir(arg)
    elif what == "fds":
        for _ in range(int(arg)):
            os.set_inheritable(os.open("/dev/null", os.O_RDONLY), True)
    else:
        sys.exit("unknown operation " + op)
os.execv(argv[0], argv)
"#;

/// What a hostile start must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly a plain call's outcome.
    Wired,
    /// A hard limit below the helper's need that only CAP_SYS_RESOURCE
    /// could raise, on a machine whose bounding set lacks it: refused
    /// before anything is made, naming the limit (a prefix of its name).
    Refused(&'static str),
}

/// One hostile start.
struct Case {
    name: String,
    /// Operations of [`WRAPPER`] (none: no wrapper).
    ops: Vec<String>,
    /// `prlimit` options, e.g. `--stack=16384:16384`.
    limits: Vec<String>,
    expect: Expect,
    /// A start that may die by a signal before `main` (measured: the
    /// kernel refuses the exec of the several-MiB static image under
    /// RLIMIT_AS 1 MiB or RLIMIT_DATA 0/0 and under a 4 KiB stack, with
    /// SIGSEGV; under a 12 KiB stack, with a larger environment than the
    /// harness passes, the start-up code overflows it, in glibc's
    /// pthread_getattr_np, which Rust's runtime calls for the main
    /// thread's stack guard; under RLIMIT_NOFILE 0 with fd 1 closed
    /// glibc's own check of a setuid start's fds 0-2 cannot open
    /// /dev/null and kills the process): nothing of ours ran, and nothing
    /// may have changed.
    dies_before_main: bool,
}

impl Case {
    fn new(name: &str, ops: &[&str], limits: &[&str]) -> Case {
        Case {
            name: name.to_string(),
            ops: ops.iter().map(|s| s.to_string()).collect(),
            limits: limits.iter().map(|s| s.to_string()).collect(),
            expect: Expect::Wired,
            dies_before_main: false,
        }
    }

    /// The command line that calls the helper for `c` this way.
    fn argv(&self, c: &Container) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.ops.is_empty() {
            argv.extend(["python3", "-c", WRAPPER].map(String::from));
            argv.extend(self.ops.iter().cloned());
            argv.push("--".into());
        }
        argv.push("/usr/bin/prlimit".into());
        argv.extend(self.limits.iter().cloned());
        argv.push("--".into());
        argv.push(installed_binary().to_string_lossy().into_owned());
        argv.extend(["-pid".to_string(), c.pid_arg()]);
        argv
    }
}

/// Whether this process's bounding set (which the callers inherit, and so
/// the setuid helper's permitted set) holds CAP_SYS_RESOURCE: without it
/// no hard limit can be raised. Some sandboxes (this project's VMs among
/// them) take it away.
fn may_raise_hard_limits() -> bool {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd");
    // CAP_SYS_RESOURCE is capability 24.
    bounding & (1 << 24) != 0
}

fn shown(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// Every resource limit (all 16 `RLIMIT_*` of the helper's own table) at
/// its most hostile value for the helper: 0 where a resource is consumed,
/// the smallest the kernel takes where 0 would forbid at once, unlimited
/// where the limit protects (core dumps). Each as the soft limit alone
/// (the helper raises it within the caller's hard limit, no privilege
/// needed) and as soft and hard limit (raising it needs CAP_SYS_RESOURCE);
/// each finite need at exactly that need; and all at once.
fn limit_cases() -> Vec<Case> {
    let raise = may_raise_hard_limits();
    let hostile = |name: &str| -> (u64, &'static [&'static str]) {
        match name {
            // CPU time spent before the exec counts: 500 ms are left. A
            // tighter margin (below the helper's own few ms) would also
            // catch a helper that does not reset the limit, but the
            // kernel's tick-sampled CPU time overshoots by more than that
            // under load, killing it before its main.
            "RLIMIT_CPU" => (1, &["burn:0.5"]),
            "RLIMIT_STACK" => (16 * 1024, &[]),
            "RLIMIT_CORE" => (libc::RLIM_INFINITY, &[]),
            "RLIMIT_NOFILE" => (4, &[]),
            "RLIMIT_AS" => (1024 * 1024, &[]),
            "RLIMIT_RTTIME" => (1, &[]),
            _ => (0, &[]),
        }
    };
    let option = |name: &str| format!("--{}", name["RLIMIT_".len()..].to_lowercase());
    let mut cases = Vec::new();
    let (mut all_soft, mut all_hard) = (Vec::new(), Vec::new());
    for l in LIMITS {
        let (v, ops) = hostile(l.name);
        let dies_before_main = matches!(l.name, "RLIMIT_AS" | "RLIMIT_DATA");
        let mut soft = Case::new(
            &format!("{} {} (soft)", l.name, shown(v)),
            ops,
            &[&format!("{}={}:", option(l.name), shown(v))],
        );
        soft.dies_before_main = dies_before_main;
        let mut both = Case::new(
            &format!("{} {} (soft and hard)", l.name, shown(v)),
            ops,
            &[&format!("{}={}:{}", option(l.name), shown(v), shown(v))],
        );
        both.dies_before_main = dies_before_main;
        if !raise && v < l.need {
            both.expect = Expect::Refused(l.name);
        }
        if !dies_before_main {
            all_soft.push(soft.limits[0].clone());
            all_hard.push(both.limits[0].clone());
        }
        cases.push(soft);
        cases.push(both);
        if l.need != libc::RLIM_INFINITY && l.need != 0 {
            cases.push(Case::new(
                &format!("{} at its need {}", l.name, shown(l.need)),
                &[],
                &[&format!("{}={}:{}", option(l.name), l.need, l.need)],
            ));
        }
    }
    cases.push(Case::new("RLIMIT_NOFILE 0 (soft)", &[], &["--nofile=0:"]));
    let mut nofile = Case::new("RLIMIT_NOFILE 0 (soft and hard)", &[], &["--nofile=0:0"]);
    if !raise {
        nofile.expect = Expect::Refused("RLIMIT_NOFILE");
    }
    cases.push(nofile);
    let mut data = Case::new("RLIMIT_DATA 1 MiB (soft)", &[], &["--data=1048576:"]);
    data.dies_before_main = true;
    cases.push(data);
    // Below what the start-up needs, before any code of ours.
    for (name, ops, limit) in [
        ("RLIMIT_STACK 4 KiB (soft)", &[][..], "--stack=4096:"),
        ("RLIMIT_STACK 12 KiB (soft)", &[][..], "--stack=12288:"),
        (
            "RLIMIT_NOFILE 0 (soft), fd 1 closed",
            &["close:1"][..],
            "--nofile=0:",
        ),
    ] {
        let mut case = Case::new(name, ops, &[limit]);
        case.dies_before_main = true;
        cases.push(case);
    }
    let all_soft: Vec<&str> = all_soft.iter().map(String::as_str).collect();
    cases.push(Case::new(
        "all but AS and DATA at once (soft)",
        &["burn:0.5"],
        &all_soft,
    ));
    let all_hard: Vec<&str> = all_hard.iter().map(String::as_str).collect();
    let mut all = Case::new(
        "all but AS and DATA at once (soft and hard)",
        &["burn:0.5"],
        &all_hard,
    );
    if !raise {
        all.expect = Expect::Refused("RLIMIT_");
    }
    cases.push(all);
    cases
}

/// The shape of a plain call's success line: everything but the address
/// and the host end's name, which depend on the lease.
fn shape(w: &Wired) -> (String, String, String, String, usize, String) {
    let prefix = w.address.split_once('/').map(|(_, p)| p).unwrap_or("");
    let host_kind: String = w.host.chars().filter(|c| !c.is_ascii_hexdigit()).collect();
    (
        w.interface.clone(),
        prefix.to_string(),
        w.gateway.clone(),
        w.bridge.clone(),
        w.host.len(),
        host_kind,
    )
}

/// A world, a plain call's line as the reference, and what the cases did.
struct Bench {
    world: World,
    reference: Wired,
    table: Vec<String>,
    violations: Vec<String>,
}

impl Bench {
    fn new() -> Bench {
        let world = world_with(POLICY);
        let c = world.container(A);
        let reference = wire(&world, &c);
        Bench {
            world,
            reference,
            table: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Runs `case` against a fresh container and judges its outcome.
    fn run(&mut self, case: &Case) {
        let c = self.world.container(A);
        let before = self.world.settled_snapshot();
        let leases_before = self.world.all_leases();
        let argv = case.argv(&c);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = self.world.run_as(A, &argv);
        let took = started.elapsed();
        let (what, found) = self.judge(case, &c, &out, &before, &leases_before);
        self.table.push(format!(
            "{}: {what} in {:.2} s{}",
            case.name,
            took.as_secs_f64(),
            if found.is_empty() { "" } else { " VIOLATION" }
        ));
        self.violations.extend(
            found
                .into_iter()
                .map(|v| format!("{}: {v}\n{out}", case.name)),
        );
    }

    fn judge(
        &self,
        case: &Case,
        c: &Container,
        out: &Output,
        before: &netsetgo_e2e::Snapshot,
        leases_before: &std::collections::BTreeMap<String, Vec<netsetgo_e2e::Lease>>,
    ) -> (String, Vec<String>) {
        let mut found = Vec::new();
        if out.code() == Some(0) {
            let Some(w) = Wired::parse(&out.stdout) else {
                return ("exit 0".into(), vec!["not one success line".into()]);
            };
            if !out.stderr.is_empty() {
                found.push("stderr not empty".into());
            }
            if shape(&w) != shape(&self.reference) {
                found.push(format!("{w:?} is not shaped like {:?}", self.reference));
            }
            let after = self.world.settled_snapshot();
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert_wired_in(&self.world, &after, c, &w)
            }));
            if let Err(e) = checked {
                found.push(format!("not wired as the line says: {e:?}"));
            }
            let diff = before.diff(&after);
            if !diff
                .lines()
                .all(|l| l.contains(&w.host) || l.contains("brg0"))
            {
                found.push(format!("more changed than the new host end:\n{diff}"));
            }
            if case.expect != Expect::Wired {
                found.push(format!("wired, where {:?} was expected", case.expect));
            }
            return ("wired".into(), found);
        }
        let what = match (out.status.signal(), out.code()) {
            (Some(sig), _) => format!("killed by signal {sig}"),
            (None, Some(code)) => format!("exit {code}: {}", out.stderr.trim()),
            (None, None) => "no status".into(),
        };
        match case.expect {
            Expect::Refused(limit) if out.code() == Some(1) => {
                let line = out.stderr.starts_with("netsetgo: ")
                    && out.stderr.lines().count() == 1
                    && out.stdout.is_empty();
                if !line || !out.stderr.contains(limit) || !out.stderr.contains("CAP_SYS_RESOURCE")
                {
                    found.push(format!(
                        "not one refusal line naming {limit} and CAP_SYS_RESOURCE"
                    ));
                }
            }
            _ if case.dies_before_main && out.status.signal().is_some() => {}
            expect => found.push(format!("{what}, where {expect:?} was expected")),
        }
        // Whatever stopped it, nothing may have changed.
        let after = self.world.settled_snapshot();
        if *before != after {
            found.push(format!("the world changed:\n{}", before.diff(&after)));
        }
        if *leases_before != self.world.all_leases() {
            found.push("the leases changed".into());
        }
        if c.snapshot().link_names() != ["lo"] {
            found.push(format!("the container changed: {:?}", c.snapshot()));
        }
        (what, found)
    }

    /// The next plain call works; then prints the table and fails with
    /// every violation.
    fn finish(self, what: &str, started: Instant) {
        let c = self.world.container(A);
        let w = wire(&self.world, &c);
        assert_wired_in(&self.world, &self.world.snapshot(), &c, &w);
        assert_no_violations(what, "cases", started, &self.table, &self.violations);
    }
}

#[test]
fn every_resource_limit_at_its_most_hostile_leaves_the_outcome_unchanged() {
    require_root!();
    let started = Instant::now();
    let mut bench = Bench::new();
    for case in limit_cases() {
        bench.run(&case);
    }
    bench.finish("limits", started);
}

#[test]
fn signals_timers_umask_cwd_and_descriptors_leave_the_outcome_unchanged() {
    require_root!();
    let started = Instant::now();
    let mut bench = Bench::new();
    // Directories of nsg-a's own, in the world's /run.
    let user = ensure_user(A);
    let home = bench.world.path("/run/nsg-e2e-limits");
    fs::create_dir(&home).expect("mkdir");
    std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).expect("chown");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod");
    for d in ["unreadable", "gone", "both"] {
        let dir = home.join(d);
        fs::create_dir(&dir).expect("mkdir");
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown");
    }
    let cases = [
        Case::new("every signal blocked, 17 pending", &["pending"], &[]),
        Case::new("every signal ignored", &["ignore"], &[]),
        Case::new("ITIMER_REAL firing 100 ms in", &["alarm:0.1"], &[]),
        Case::new("umask 0", &["umask:0"], &[]),
        Case::new(
            "working directory unreadable",
            &["cwd:/run/nsg-e2e-limits/unreadable"],
            &[],
        ),
        Case::new(
            "working directory removed",
            &["gone:/run/nsg-e2e-limits/gone"],
            &[],
        ),
        Case::new("1000 descriptors left open", &["fds:1000"], &[]),
        Case::new(
            "all of these at once",
            &[
                "umask:0",
                "cwd:/run/nsg-e2e-limits/both",
                "fds:100",
                "ignore",
                "pending",
                "alarm:0.1",
            ],
            &[],
        ),
    ];
    for case in &cases {
        bench.run(case);
    }
    bench.finish("signals and the rest", started);
}

/// A `-pid` call of `c` by its user under `limit` (a `prlimit` option),
/// CAP_SYS_RESOURCE removed from the bounding set by root before it
/// becomes the caller, so that no hard limit can be raised.
fn without_sys_resource(world: &World, c: &Container, limit: &str) -> Output {
    let user = ensure_user(c.user());
    let bin = installed_binary().to_string_lossy().into_owned();
    let (reuid, regid) = (
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
    );
    let pid = c.pid_arg();
    world.run(&[
        "setpriv",
        "--bounding-set=-sys_resource",
        &reuid,
        &regid,
        "--init-groups",
        "--",
        "prlimit",
        limit,
        "--",
        &bin,
        "-pid",
        &pid,
    ])
}

/// A hard limit below the helper's fixed value can be raised only with
/// CAP_SYS_RESOURCE: with it gone from the bounding set (set by root
/// before it becomes the caller), the call is refused before anything is
/// made, naming the limit.
#[test]
fn a_hard_limit_the_helper_cannot_raise_is_refused_naming_it() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let out = assert_unchanged(&world, &[&c], || {
        without_sys_resource(&world, &c, "--nproc=10:10")
    });
    assert_refusal_line(&out);
    assert!(
        out.stderr.contains("RLIMIT_NPROC") && out.stderr.contains("CAP_SYS_RESOURCE"),
        "{out}"
    );
    // The same call without the hostile limit works.
    let w = wire(&world, &c);
    assert_wired_in(&world, &world.snapshot(), &c, &w);
}

/// A plain `-pid` call forks nothing, so RLIMIT_NPROC 0 alone proves
/// little there: the lxc-user-nic form forks the DHCP responder as the
/// system user after the drop (where RLIMIT_NPROC applies: it holds only
/// CAP_NET_ADMIN), and the OCI hook form forks the reader of its stdin as
/// the caller. Under a caller's soft RLIMIT_NPROC 0 (the harness's hard
/// limit unchanged) both still work: the responder and the lease's reaper
/// are forked, the line is lxc-user-nic's, the hook wires.
#[test]
fn rlimit_nproc_0_keeps_neither_the_responder_nor_the_hook_reader_from_forking() {
    require_root!();
    let world = world_with(POLICY);
    let bin = installed_binary().to_string_lossy().into_owned();
    let c = world.container(A);
    let pid = c.pid_arg();
    let before = netsetgo_e2e::reaper::reapers(&world);
    let out = world.run_as(
        A,
        &[
            "prlimit",
            "--nproc=0:",
            "--",
            &bin,
            "create",
            "/dev/null",
            "dummy",
            &pid,
            "veth",
            "brg0",
            "eth0",
        ],
    );
    assert_eq!(
        out.code(),
        Some(0),
        "lxc-user-nic create under RLIMIT_NPROC 0:\n{out}"
    );
    let fields: Vec<&str> = out.stdout.trim_end().split(':').collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!(fields[0], "eth0");
    assert!(
        world.leases("brg0").iter().any(|l| l.ifname == fields[2]),
        "no lease for {}",
        fields[2]
    );
    netsetgo_e2e::reaper::new_reaper(&world, &before);

    let d = world.container(A);
    let state = format!(
        "{{\"ociVersion\":\"1.0.2\",\"id\":\"nsg-e2e-nproc\",\"status\":\"creating\",\"pid\":{},\"bundle\":\"/\"}}",
        d.pid()
    );
    let out = world.run_as(
        A,
        &[
            "sh",
            "-c",
            "printf '%s' \"$1\" | prlimit --nproc=0: -- \"$2\" -oci-hook",
            "sh",
            &state,
            &bin,
        ],
    );
    assert_eq!(
        out.code(),
        Some(0),
        "-oci-hook under RLIMIT_NPROC 0:\n{out}"
    );
    let w = Wired::parse(&out.stdout).expect("one success line");
    assert_wired_in(&world, &world.snapshot(), &d, &w);
}

/// The kernel puts the stack's top up to 8 KiB below the top of its
/// mapping (address space layout randomisation), and a hard RLIMIT_STACK
/// bounds the mapping: under 16 KiB the helper has between 8 and 16 KiB
/// for its start-up code and its refusal. Found by CI, where one call in
/// six died by SIGSEGV writing the refusal (stage 1's refusal was written
/// from a frame holding every later stage's locals). One call proves
/// nothing about a random offset: 64 calls, each refused with the line.
#[test]
fn a_16_kib_hard_stack_limit_is_refused_at_every_stack_offset() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(A);
    let call = || without_sys_resource(&world, &c, "--stack=16384:16384");
    let out = assert_unchanged(&world, &[&c], || {
        for _ in 1..64 {
            let out = call();
            assert_refusal_line(&out);
            assert!(out.stderr.contains("RLIMIT_STACK"), "{out}");
        }
        call()
    });
    assert_refusal_line(&out);
    assert!(out.stderr.contains("RLIMIT_STACK"), "{out}");
}
