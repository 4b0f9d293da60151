//! A throwaway "host" for one test: private mount and network namespaces,
//! its own /run and /etc/netsetgo, and the processes started in it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::binary::installed_binary;
use crate::cmd::{bounded, clean_env, run, time_scale, Output};
use crate::leases::{parse_leases, Lease};
use crate::snapshot::Snapshot;
use crate::users::ensure_user;

/// How often the world polls.
const POLL: Duration = Duration::from_millis(10);

/// Polls `f` every `every` for at most `limit` (times [`time_scale`]);
/// returns whether it held.
pub fn wait_until(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let limit = limit * time_scale();
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        sleep(every);
    }
}

/// The `/proc/<pid>/ns/<kind>` link of `pid` (e.g. `net:[4026531840]`).
pub fn ns_of(pid: u32, kind: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn comm_of(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// A background process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut command: Command) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Proc { child }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `argv` as root on the machine itself (not in a world), in the
    /// background with an environment of PATH only, e.g. a process that
    /// holds a container's network namespace open
    /// (`nsenter -t PID -n -- sleep 120`). Killed when dropped.
    pub fn start<S: AsRef<str>>(argv: &[S]) -> Proc {
        let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        clean_env(&mut cmd);
        Proc::spawn(cmd)
    }

    /// Waits (bounded) until the process has exec'd `comm`; panics if it
    /// does not.
    pub fn wait_for_exec(&mut self, comm: &str) {
        let pid = self.pid();
        let ok = wait_until(Duration::from_secs(10), POLL, || {
            comm_of(pid).as_deref() == Some(comm)
        });
        if !ok {
            let status = self.child.try_wait();
            panic!("process {pid} never became {comm:?} (status {status:?})");
        }
    }

    /// Whether it has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills and reaps it now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A netsetgo call running in the background. It is started without any
/// wrapper (`nsenter` and `setpriv` exec, they do not fork), so once they
/// have exec'd, [`Call::pid`] is netsetgo's own pid: the one to read
/// `/proc/<pid>/status` of, or to SIGKILL. Killed and reaped when dropped.
pub struct Call {
    child: Option<Child>,
    pid: u32,
}

impl Call {
    /// The pid of the call (netsetgo's own once it has exec'd).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Sends SIGKILL to the pid right now (whatever program it runs by
    /// then), unless it has already ended; does not reap it.
    pub fn sigkill(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(None) = child.try_wait() {
                // SAFETY: kill(2) on our own child that has not been reaped
                // (at worst a zombie): its pid cannot have been reused.
                unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            }
        }
    }

    /// Waits at most `limit` for it to end (then kills it) and returns what
    /// it did.
    pub fn finish(&mut self, limit: Duration) -> Output {
        use std::io::Read;
        let mut child = self.child.take().expect("a call is finished once");
        let ended = wait_until(limit, POLL, || !matches!(child.try_wait(), Ok(None)));
        if !ended {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait for netsetgo");
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An unprivileged container: `unshare -U -r -n sleep 600` started by a
/// user inside a world; the process is in its own user and network
/// namespaces. Killed when dropped.
pub struct Container {
    proc: Proc,
    user: String,
}

impl Container {
    /// The container's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The container's pid as a command-line argument.
    pub fn pid_arg(&self) -> String {
        self.pid().to_string()
    }

    /// The user who started it.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `nsenter -t PID -n --`: a prefix that runs a command (as root) in
    /// the container's network namespace.
    pub fn enter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid_arg(),
            "-n".into(),
            "--".into(),
        ]
    }

    /// The container's network namespace as `ip -j` shows it from outside.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of_pid(self.pid())
    }

    /// Runs a command as root in the container's network namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut all = self.enter();
        all.extend(argv.iter().map(|s| s.to_string()));
        run(bounded(&all))
    }

    /// Whether one of up to 3 pings (`ping -c1 -W1`) from inside reaches
    /// `address`.
    pub fn pings(&self, address: &str) -> bool {
        (0..3).any(|_| {
            self.exec(&["ping", "-n", "-q", "-c1", "-W1", address])
                .success()
        })
    }

    /// Kills it now; the kernel then destroys its namespaces (and with
    /// them both ends of its veth pair).
    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// A private mount + network namespace held by a root `sleep`, with tmpfs
/// on /run and /etc/netsetgo. Dropping it kills every process in its
/// namespaces, which frees them and everything in them.
pub struct World {
    holder: Proc,
    mnt_ns: String,
    net_ns: String,
    /// Open fds of the world's two namespaces, closed only after `Drop` has
    /// killed everything in them. The kernel reuses a freed namespace's
    /// inode number at once (the next `unshare --mount` gets it), so
    /// without these pins a later round of `kill_all` could match, and
    /// kill, another world's processes.
    _pins: Vec<fs::File>,
}

impl World {
    /// Builds a new world; panics (cleaning up) if it cannot.
    pub fn new() -> World {
        let etc = Path::new("/etc/netsetgo");
        if !etc.is_dir() {
            fs::create_dir_all(etc).expect("create /etc/netsetgo");
            fs::set_permissions(etc, fs::Permissions::from_mode(0o755))
                .expect("chmod /etc/netsetgo");
        }
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "--",
            "sleep",
            "3600",
        ]);
        clean_env(&mut cmd);
        let mut holder = Proc::spawn(cmd);
        holder.wait_for_exec("sleep");
        let pid = holder.pid();
        let me = std::process::id();
        // Pin first, then name: if the holder is still there once named,
        // the pins are of the namespaces named.
        let pins: Vec<fs::File> = ["mnt", "net"]
            .iter()
            .filter_map(|kind| fs::File::open(format!("/proc/{pid}/ns/{kind}")).ok())
            .collect();
        let (mnt_ns, net_ns) = (ns_of(pid, "mnt"), ns_of(pid, "net"));
        let private = pins.len() == 2
            && mnt_ns.is_some()
            && net_ns.is_some()
            && mnt_ns != ns_of(me, "mnt")
            && net_ns != ns_of(me, "net");
        // Only a world with namespaces of its own may ever kill by namespace.
        let world = World {
            mnt_ns: mnt_ns.filter(|_| private).unwrap_or_default(),
            net_ns: net_ns.filter(|_| private).unwrap_or_default(),
            holder,
            _pins: pins,
        };
        assert!(
            private,
            "world {pid} has no private mount and network namespaces"
        );
        world
            .run(&[
                "sh",
                "-c",
                "mount -t tmpfs -o mode=0755,size=16m nsg-e2e-run /run \
                 && mount -t tmpfs -o mode=0755,size=1m nsg-e2e-etc /etc/netsetgo",
            ])
            .expect_success("mount the world's tmpfs");
        world
    }

    /// The pid of the process holding the namespaces.
    pub fn pid(&self) -> u32 {
        self.holder.pid()
    }

    /// A path inside the world's mount namespace, reachable from outside
    /// through `/proc/<pid>/root`.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/{}",
            self.pid(),
            inside.trim_start_matches('/')
        ))
    }

    fn enter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid().to_string(),
            "-m".into(),
            "-n".into(),
            "--".into(),
        ]
    }

    /// `setpriv` arguments that run the rest of a command line as `user`,
    /// with its groups.
    pub fn as_user(user: &str) -> Vec<String> {
        let u = ensure_user(user);
        vec![
            "setpriv".into(),
            format!("--reuid={}", u.uid),
            format!("--regid={}", u.gid),
            "--init-groups".into(),
            "--".into(),
        ]
    }

    /// A bounded command that runs `argv` in the world, as root or (with
    /// `user`) as that user. Its environment is empty but PATH; add to it
    /// with `env` in `argv` so that only the last program sees it.
    pub fn command(&self, user: Option<&str>, argv: &[&str]) -> Command {
        let mut all = self.enter();
        if let Some(user) = user {
            all.extend(Self::as_user(user));
        }
        all.extend(argv.iter().map(|s| s.to_string()));
        bounded(&all)
    }

    /// Runs `argv` as root in the world.
    pub fn run(&self, argv: &[&str]) -> Output {
        run(self.command(None, argv))
    }

    /// Runs `argv` as `user` in the world.
    pub fn run_as(&self, user: &str, argv: &[&str]) -> Output {
        run(self.command(Some(user), argv))
    }

    /// Starts `argv` as `user` in the world in the background (no timeout:
    /// it is killed when the returned handle is dropped).
    pub fn spawn_as(&self, user: &str, argv: &[&str]) -> Proc {
        let mut all = self.enter();
        all.extend(Self::as_user(user));
        all.extend(argv.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]);
        clean_env(&mut cmd);
        Proc::spawn(cmd)
    }

    /// A container of `user`: `unshare -U -r -n sleep 600`, started in the
    /// world; returns once its namespaces exist.
    pub fn container(&self, user: &str) -> Container {
        self.container_running(user, "600")
    }

    /// Like [`World::container`] with `sleep SECONDS`.
    pub fn container_running(&self, user: &str, seconds: &str) -> Container {
        let mut proc = self.spawn_as(user, &["unshare", "-U", "-r", "-n", "--", "sleep", seconds]);
        proc.wait_for_exec("sleep");
        // A short-lived one may be gone already; one that lives must be
        // in a namespace of its own.
        let ns = ns_of(proc.pid(), "net");
        assert!(
            ns.is_none() || ns.as_deref() != Some(self.net_ns.as_str()),
            "container {} is not in its own network namespace",
            proc.pid()
        );
        Container {
            proc,
            user: user.to_string(),
        }
    }

    /// A process of `user` living in the world's own namespaces
    /// (`sleep 600`, no unshare).
    pub fn host_process(&self, user: &str) -> Proc {
        let mut proc = self.spawn_as(user, &["sleep", "600"]);
        proc.wait_for_exec("sleep");
        proc
    }

    /// Writes the policy file (root, 0644) in the world's /etc/netsetgo.
    pub fn set_policy(&self, text: &str) {
        let path = self.path("/etc/netsetgo/netsetgo.conf");
        let tmp = self.path("/etc/netsetgo/.netsetgo.conf.tmp");
        fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod policy");
        fs::rename(&tmp, &path).expect("rename policy into place");
    }

    /// Calls the installed setuid binary as `user` with `args`.
    pub fn netsetgo(&self, user: &str, args: &[&str]) -> Output {
        let bin = installed_binary().to_string_lossy().into_owned();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        self.run_as(user, &argv)
    }

    /// Calls the installed binary as `user` with extra environment
    /// variables, set by `env` right before it (so only it sees them).
    pub fn netsetgo_env(&self, user: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        let bin = installed_binary().to_string_lossy().into_owned();
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut argv = vec!["env"];
        argv.extend(vars.iter().map(String::as_str));
        argv.push(bin.as_str());
        argv.extend_from_slice(args);
        self.run_as(user, &argv)
    }

    /// Calls the installed binary as `user` with `args` and `input` on its
    /// stdin (an OCI hook's state), bounded.
    pub fn netsetgo_stdin(&self, user: &str, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let bin = installed_binary().to_string_lossy().into_owned();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        let mut cmd = self.command(Some(user), &argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that refuses early may not read it all.
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().expect("wait for netsetgo").into()
    }

    /// Starts `argv` as root in the world in the background (no timeout:
    /// it is killed when the returned handle is dropped).
    pub fn spawn(&self, argv: &[&str]) -> Proc {
        let mut all = self.enter();
        all.extend(argv.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]);
        clean_env(&mut cmd);
        Proc::spawn(cmd)
    }

    /// Starts the installed binary as `user` (`"root"` for root) with
    /// `args` in the background, stdin /dev/null, stdout and stderr
    /// captured; see [`Call`].
    pub fn start_netsetgo(&self, user: &str, args: &[&str]) -> Call {
        let mut all = Self::as_user(user);
        all.push(installed_binary().to_string_lossy().into_owned());
        all.extend(args.iter().map(|s| s.to_string()));
        self.start(&all)
    }

    /// Starts `argv` as root in the world, stdin /dev/null, stdout and
    /// stderr captured; see [`Call`].
    pub(crate) fn start(&self, argv: &[String]) -> Call {
        let mut all = self.enter();
        all.extend_from_slice(argv);
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]);
        clean_env(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Call {
            pid: child.id(),
            child: Some(child),
        }
    }

    /// Gives the world a /dev of its own: a tmpfs with the usual character
    /// devices (bind mounts of the machine's) and the `fd`/`std*` links,
    /// so that a test may create `/dev/log` in it without touching the
    /// machine's /dev.
    pub fn mount_private_dev(&self) {
        self.run(&[
            "sh",
            "-c",
            "set -e
             mkdir -p /run/nsg-e2e-olddev
             mount --bind /dev /run/nsg-e2e-olddev
             mount -t tmpfs -o mode=0755,size=64k nsg-e2e-dev /dev
             for n in null zero full random urandom tty; do
                 if [ -e /run/nsg-e2e-olddev/$n ]; then
                     : > /dev/$n
                     mount --bind /run/nsg-e2e-olddev/$n /dev/$n
                 fi
             done
             ln -s /proc/self/fd /dev/fd
             ln -s /proc/self/fd/0 /dev/stdin
             ln -s /proc/self/fd/1 /dev/stdout
             ln -s /proc/self/fd/2 /dev/stderr
             umount /run/nsg-e2e-olddev
             rmdir /run/nsg-e2e-olddev",
        ])
        .expect_success("mount a private /dev in the world");
    }

    /// Mounts a fresh proc on the world's /proc with `hidepid=2`: from then
    /// on, inside the world, an unprivileged user sees only its own
    /// processes there. (The harness itself uses the machine's /proc.)
    pub fn mount_hidepid_proc(&self) {
        self.run(&[
            "mount",
            "-t",
            "proc",
            "-o",
            "hidepid=2",
            "nsg-e2e-proc",
            "/proc",
        ])
        .expect_success("mount proc with hidepid=2 in the world");
    }

    /// The offsets whose bit is set in `bridge`'s map (the leases netsetgo
    /// itself considers held), or `None` if there is no map yet.
    pub fn map_bits(&self, bridge: &str) -> Option<std::collections::BTreeSet<usize>> {
        let bytes = fs::read(self.state_dir().join(bridge).join("map")).ok()?;
        Some(crate::leases::parse_map_bits(&bytes))
    }

    /// The world's network namespace as `ip -j` shows it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of_pid(self.pid())
    }

    /// A snapshot taken once two in a row, 100 ms apart, are equal (at most
    /// 5 s): links settle (carrier, operstate) shortly after a change.
    pub fn settled_snapshot(&self) -> Snapshot {
        let mut last = self.snapshot();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(100));
            let next = self.snapshot();
            if next == last {
                return next;
            }
            last = next;
        }
        last
    }

    /// The world's /run/netsetgo, seen from outside.
    pub fn state_root(&self) -> PathBuf {
        self.path("/run/netsetgo")
    }

    /// The state of the world's own network namespace, seen from outside:
    /// `/run/netsetgo/net-<inode of the namespace>`.
    pub fn state_dir(&self) -> PathBuf {
        let ino = self
            .net_ns
            .trim_start_matches("net:[")
            .trim_end_matches(']');
        self.state_root().join(format!("net-{ino}"))
    }

    /// The raw leases file of `bridge` (empty if there is none).
    pub fn leases_bytes(&self, bridge: &str) -> Vec<u8> {
        let path = self.state_dir().join(bridge).join("leases");
        match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }

    /// The lease records of `bridge`; panics if the file is corrupt.
    pub fn leases(&self, bridge: &str) -> Vec<Lease> {
        parse_leases(&self.leases_bytes(bridge)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The lease records of every bridge that holds any (a bridge whose
    /// state files exist but hold no record is left out; a file there, the
    /// host's claims mark `ports+claimed`, is no bridge's).
    pub fn all_leases(&self) -> BTreeMap<String, Vec<Lease>> {
        let mut all = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(self.state_dir()) {
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let bridge = entry.file_name().to_string_lossy().into_owned();
                let leases = self.leases(&bridge);
                if !leases.is_empty() {
                    all.insert(bridge, leases);
                }
            }
        }
        all
    }

    /// The first 16 bytes of `bridge`'s map file (magic "NSG1", subnet,
    /// cursor), if it exists.
    pub fn map_header(&self, bridge: &str) -> Option<Vec<u8>> {
        let bytes = fs::read(self.state_dir().join(bridge).join("map")).ok()?;
        Some(bytes[..bytes.len().min(16)].to_vec())
    }

    /// Kills every process in the world's namespaces (bounded).
    fn kill_all(&self) {
        let me = std::process::id();
        if self.mnt_ns.is_empty()
            || self.net_ns.is_empty()
            || ns_of(me, "mnt").as_deref() == Some(self.mnt_ns.as_str())
            || ns_of(me, "net").as_deref() == Some(self.net_ns.as_str())
        {
            return;
        }
        for _ in 0..20 {
            let mut found = false;
            let Ok(entries) = fs::read_dir("/proc") else {
                return;
            };
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let inside = ns_of(pid, "mnt").is_some_and(|n| n == self.mnt_ns)
                    || ns_of(pid, "net").is_some_and(|n| n == self.net_ns);
                if inside {
                    found = true;
                    // SAFETY: kill(2) on a pid we just saw in our world.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            if !found {
                return;
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_all();
        self.holder.kill();
    }
}
