//! Rootless Docker as a real client: Debian's docker.io 20.10 and its
//! `dockerd-rootless.sh`, run by an unprivileged user in a world with
//! `DOCKERD_ROOTLESS_ROOTLESSKIT_NET=lxc-user-nic` and the installed setuid
//! netsetgo as rootlesskit's `--lxc-user-nic-binary`. Offline: the image is
//! a `docker load` tarball built at test time from busybox-static.
//!
//! Everything of the daemon (its HOME, XDG_RUNTIME_DIR, TMPDIR, data-root,
//! exec-root and rootlesskit's state directory) lives in one scratch
//! directory; its storage driver is `vfs`. The daemon's network namespace
//! is rootlesskit's child's; docker0 and Docker's iptables rules exist only
//! there.
//!
//! Needs the packages `docker.io` (dockerd, containerd, runc, the script),
//! `rootlesskit`, `uidmap`, `iptables` and `busybox-static`.

use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::binary::{install_program, installed_binary};
use crate::cmd::{run_here, Output};
use crate::users::{ensure_user, User};
use crate::world::{ns_of, wait_until, Proc, World};

/// Where Debian's docker.io ships the script.
pub const SCRIPT: &str = "/usr/share/docker.io/contrib/dockerd-rootless.sh";

/// The image [`busybox_image`] builds, as `docker load` names it.
pub const IMAGE: &str = "busybox:e2e";

/// The bridge rootlesskit names (`--lxc-user-nic-bridge`).
pub const BRIDGE: &str = "brg0";

/// The applets the image links to busybox in `/bin`.
const APPLETS: [&str; 7] = ["sh", "ping", "nc", "sleep", "echo", "cat", "ip"];

/// Panics, naming the package, unless the programs the tests run exist.
pub fn require_packages() {
    for (path, package) in [
        (SCRIPT, "docker.io"),
        ("/usr/sbin/dockerd", "docker.io"),
        ("/usr/bin/rootlesskit", "rootlesskit"),
        ("/usr/bin/newuidmap", "uidmap"),
        ("/bin/busybox", "busybox-static"),
    ] {
        assert!(
            Path::new(path).is_file(),
            "{path} is missing: install {package}"
        );
    }
}

fn sha256(path: &Path) -> String {
    let out = run_here(&["sha256sum", "--", &path.to_string_lossy()]);
    out.expect_success("sha256sum");
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("sha256sum printed nothing:\n{out}"))
        .to_string()
}

fn tar(dir: &Path, out: &Path, members: &[&str]) {
    let (dir, out) = (dir.to_string_lossy(), out.to_string_lossy());
    let mut argv = vec![
        "tar",
        "-C",
        &dir,
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "--sort=name",
        "--mtime=@0",
        "-cf",
        &out,
        "--",
    ];
    argv.extend_from_slice(members);
    run_here(&argv).expect_success("tar");
}

/// Builds, in `dir`, a tarball in `docker load`'s format (`manifest.json`,
/// the image config named by its digest, one layer) holding
/// `/bin/busybox` from busybox-static and links to it; returns its path.
/// The image is [`IMAGE`], `PATH=/bin`, command `sh`.
pub fn busybox_image(dir: &Path) -> PathBuf {
    let bin = dir.join("rootfs/bin");
    fs::create_dir_all(&bin).expect("create the image's /bin");
    install_program(Path::new("/bin/busybox"), &bin.join("busybox"), 0o755);
    for applet in APPLETS {
        symlink("busybox", bin.join(applet)).expect("link an applet");
    }
    let layer = dir.join("layer.tar");
    tar(&dir.join("rootfs"), &layer, &["bin"]);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{}", sha256(&layer))] },
    });
    let draft = dir.join("config.json");
    fs::write(&draft, config.to_string()).expect("write the image config");
    let config_name = format!("{}.json", sha256(&draft));
    fs::rename(&draft, dir.join(&config_name)).expect("name the config by its digest");
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [IMAGE],
        "Layers": ["layer.tar"],
    }]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write the manifest");
    let image = dir.join("image.tar");
    tar(dir, &image, &["manifest.json", &config_name, "layer.tar"]);
    image
}

/// A user's rootless Docker in a world: its directory, and the commands
/// that start the daemon and talk to it.
pub struct Rootless<'w> {
    world: &'w World,
    /// The user the daemon runs as.
    pub user: User,
    dir: PathBuf,
}

impl<'w> Rootless<'w> {
    /// Prepares `user`'s rootless Docker in `world` (the user is made if
    /// missing; `useradd` gives it its /etc/subuid and /etc/subgid ranges).
    pub fn new(world: &'w World, user: &str) -> Rootless<'w> {
        let user = ensure_user(user);
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(file).unwrap_or_default();
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{}:", user.name))),
                "{} has no range in {file} (useradd adds one)",
                user.name
            );
        }
        let dir = crate::binary::scratch_dir("docker");
        for sub in ["home", "run"] {
            let path = dir.join(sub);
            fs::create_dir(&path).expect("create the daemon's directory");
            chown(&path, Some(user.uid), Some(user.gid)).expect("chown the daemon's directory");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
        }
        Rootless { world, user, dir }
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_string_lossy().into_owned()
    }

    /// rootlesskit's state directory (`--state-dir`): `child_pid`,
    /// `api.sock`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("run/rootlesskit")
    }

    /// The pid of rootlesskit's child: the process whose network namespace
    /// netsetgo wired, and where dockerd runs.
    pub fn child_pid(&self) -> u32 {
        let path = self.state_dir().join("child_pid");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}\n{}", path.display(), self.log_tail(30)));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} holds {text:?}", path.display()))
    }

    /// The daemon's log (the script's, rootlesskit's and dockerd's
    /// output) of the last start, its last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join("run/daemon.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts `dockerd-rootless.sh` as the user with the lxc-user-nic
    /// network, rootlesskit's `port_driver` and `dockerd_args` added to
    /// the daemon's own, and waits (at most 60 s) until `docker info`
    /// answers on its socket; panics with the log's tail if it does not.
    pub fn start(&self, port_driver: &str, dockerd_args: &[&str]) -> Daemon {
        let _ = fs::remove_file(self.state_dir().join("child_pid"));
        let flags = format!(
            "--lxc-user-nic-binary={} --lxc-user-nic-bridge={BRIDGE} --state-dir={}",
            installed_binary().display(),
            self.state_dir().display()
        );
        let mut argv = vec![
            "env".to_string(),
            format!("HOME={}", self.path("home")),
            format!("XDG_RUNTIME_DIR={}", self.path("run")),
            // containerd's stack dumps, whatever else takes a temp file.
            format!("TMPDIR={}", self.path("run")),
            "DOCKERD_ROOTLESS_ROOTLESSKIT_NET=lxc-user-nic".into(),
            format!("DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER={port_driver}"),
            format!("DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS={flags}"),
            SCRIPT.into(),
            format!("--data-root={}", self.path("home/data")),
            format!("--exec-root={}", self.path("run/exec")),
            "--storage-driver=vfs".into(),
        ];
        argv.extend(dockerd_args.iter().map(|a| a.to_string()));
        let line = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let wrapped = format!("exec {line} > '{}' 2>&1", self.path("run/daemon.log"));
        let started = Instant::now();
        let proc = self
            .world
            .spawn_as(&self.user.name, &["sh", "-c", &wrapped]);
        let mut daemon = Daemon {
            proc,
            userns: None,
            ready_after: Duration::ZERO,
        };
        let ready = wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
            self.docker(&["info", "--format", "{{.ServerVersion}}"])
                .success()
        });
        daemon.ready_after = started.elapsed();
        let child = fs::read_to_string(self.state_dir().join("child_pid"));
        daemon.userns = child
            .ok()
            .and_then(|pid| Namespace::of(pid.trim().parse().ok()?, "user"));
        assert!(
            ready,
            "the rootless daemon did not answer within 60 s:\n{}",
            self.log_tail(40)
        );
        daemon
    }

    /// Runs the docker client as the user against the daemon's socket
    /// (bounded).
    pub fn docker(&self, args: &[&str]) -> Output {
        let home = format!("HOME={}", self.path("home"));
        let host = format!("DOCKER_HOST=unix://{}", self.path("run/docker.sock"));
        let mut argv = vec!["env", home.as_str(), host.as_str(), "docker"];
        argv.extend_from_slice(args);
        self.world.run_as(&self.user.name, &argv)
    }

    /// The host pid of a running container's first process.
    pub fn container_pid(&self, name: &str) -> u32 {
        let out = self.docker(&["inspect", "-f", "{{.State.Pid}}", name]);
        out.expect_success("docker inspect");
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("docker inspect printed no pid:\n{out}"))
    }

    /// `rootlessctl --socket STATE/api.sock ARGS` as the user.
    pub fn rootlessctl(&self, args: &[&str]) -> Output {
        let socket = self.state_dir().join("api.sock");
        let socket = socket.to_string_lossy();
        let mut argv = vec!["rootlessctl", "--socket", &socket];
        argv.extend_from_slice(args);
        self.world.run_as(&self.user.name, &argv)
    }
}

/// A user namespace, pinned open so that its inode is not reused while
/// processes are matched against it.
struct Namespace {
    link: String,
    _pin: fs::File,
}

impl Namespace {
    fn of(pid: u32, kind: &str) -> Option<Namespace> {
        let pin = fs::File::open(format!("/proc/{pid}/ns/{kind}")).ok()?;
        let link = ns_of(pid, kind)?;
        (ns_of(std::process::id(), kind).as_deref() != Some(link.as_str()))
            .then_some(Namespace { link, _pin: pin })
    }

    /// The pids of the processes in it right now.
    fn members(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| ns_of(*pid, "user").as_deref() == Some(self.link.as_str()))
            .collect()
    }
}

/// A running rootless daemon: rootlesskit (the process started) and, in
/// its child's user namespace, dockerd, containerd, the shims and the
/// containers. Dropping it kills all of them.
pub struct Daemon {
    proc: Proc,
    userns: Option<Namespace>,
    /// From the start until `docker info` first answered.
    pub ready_after: Duration,
}

impl Daemon {
    /// Stops it as a user would (SIGTERM to rootlesskit, which passes it
    /// to dockerd) and waits, at most `limit`, until rootlesskit has
    /// exited and no process is left in its child's user namespace (so the
    /// kernel frees the network namespace); returns how long that took.
    /// Panics if it takes longer.
    pub fn stop(mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.proc.pid() as i32, libc::SIGTERM) };
        let exited = wait_until(limit, Duration::from_millis(20), || {
            self.proc.has_exited()
                && self
                    .userns
                    .as_ref()
                    .is_none_or(|ns| ns.members().is_empty())
        });
        assert!(exited, "the rootless daemon did not stop within {limit:?}");
        started.elapsed()
    }

    fn kill_all(&mut self) {
        self.proc.kill();
        let Some(ns) = &self.userns else {
            return;
        };
        for _ in 0..50 {
            let members = ns.members();
            if members.is_empty() {
                return;
            }
            for pid in members {
                // SAFETY: kill(2) on a pid just seen in the daemon's own
                // user namespace (pinned, so not another's).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_all();
    }
}
