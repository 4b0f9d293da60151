//! Real clients: Debian's `runc`, rootless, calling the installed setuid
//! netsetgo natively from `createRuntime` and `poststop` hooks
//! (`netsetgo -oci-hook`), and the `-json` / `-check` output checked
//! against what the kernel shows.
//!
//! runc runs as the unprivileged `nsg-runc` inside a world
//! (`nsenter -t W -m -n`): the world's network namespace is where the bridge
//! is made, and its mount namespace is the machine's with private tmpfs on
//! /run and /etc/netsetgo, so the hook reads the world's policy while
//! /sys/fs/cgroup stays the machine's. runc keeps its state under `--root`,
//! a directory of the user's; without cgroup delegation rootless runc skips
//! cgroups (it only warns "unable to get oom kill count").
//!
//! Needs the packages `runc` and `busybox-static` (the containers' rootfs
//! is a static busybox; the HTTP server in the world is `busybox httpd`).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{chown, lchown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netsetgo_e2e::checks::json_object;
use netsetgo_e2e::fixtures::{http_server, world_with, GATEWAY};
use netsetgo_e2e::wait_until;
use netsetgo_e2e::{
    ensure_user, has_flag, installed_binary, link_kind, require_root, scratch_dir, Lease, Output,
    Proc, Snapshot, User, World,
};
use serde_json::{json, Value};

const USER: &str = "nsg-runc";
const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-runc default 8
";
const PORT: &str = "8080";
const CONTAINERS: usize = 4;

/// The containers' process: wait (at most 10 s) for veth1 to have an IPv4
/// address, record it, fetch the page from the gateway, record wget's exit
/// status (last, atomically: the test waits for that file), then idle.
const SCRIPT: &str = r#"
i=0
while [ $i -lt 100 ] && ! ip -4 addr show dev veth1 2>/dev/null | grep -q inet; do
    i=$((i+1)); sleep 0.1
done
ip -4 addr show dev veth1 > /out/ip.txt 2>&1
timeout 10 wget -q -O /out/page.txt "http://$GATEWAY/index.html"
echo $? > /out/rc.tmp && mv /out/rc.tmp /out/rc
exec sleep 60
"#;

/// How often runc.rs polls.
const POLL: Duration = Duration::from_millis(50);

fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether the ELF file at `path` asks for a program interpreter (is
/// dynamically linked): a PT_INTERP program header.
fn is_dynamic(path: &Path) -> bool {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.len() > 64 && bytes.starts_with(b"\x7fELF") && bytes[4] == 2,
        "{} is not a 64-bit ELF file",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        bytes.get(o..o + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

/// A minimal rootfs owned by `user`: a static busybox with the applets the
/// script uses, and the mount points runc needs (the root is read-only).
fn build_rootfs(dir: &Path, user: &User) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: install busybox-static"
    );
    assert!(
        !is_dynamic(busybox),
        "/bin/busybox is dynamically linked: install busybox-static"
    );
    let root = dir.join("rootfs");
    for sub in ["bin", "proc", "dev", "sys", "tmp", "out", "etc"] {
        fs::create_dir_all(root.join(sub)).expect("rootfs dir");
    }
    netsetgo_e2e::install_program(busybox, &root.join("bin/busybox"), 0o755);
    for applet in [
        "sh", "wget", "ip", "sleep", "cat", "grep", "mv", "echo", "timeout",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    chown_tree(&root, user);
    root
}

fn chown_tree(path: &Path, user: &User) {
    lchown(path, Some(user.uid), Some(user.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("entry").path(), user);
        }
    }
}

/// A directory of `user`'s (mode `mode`).
fn user_dir(path: &Path, user: &User, mode: u32) -> PathBuf {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    chown(path, Some(user.uid), Some(user.gid)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

/// The runc containers of one test, all run by `USER` in `world` with
/// `--root <state>`; `Drop` deletes them (`runc delete --force`) and kills
/// any process of theirs that is left.
struct Runc<'w> {
    world: &'w World,
    state: String,
    user: User,
    ids: Vec<String>,
    pids: Vec<u32>,
}

impl<'w> Runc<'w> {
    fn new(world: &'w World, dir: &Path, user: User) -> Runc<'w> {
        let state = s(&user_dir(&dir.join("state"), &user, 0o700));
        Runc {
            world,
            state,
            user,
            ids: Vec::new(),
            pids: Vec::new(),
        }
    }

    /// `runc --root <state> ARGS` as the user in the world, bounded.
    fn run(&self, args: &[&str]) -> Output {
        let mut argv = vec!["runc", "--root", self.state.as_str()];
        argv.extend_from_slice(args);
        self.world.run_as(USER, &argv)
    }

    /// `runc run -d`: the container's stdout and stderr (and runc's) go to
    /// `log`. Returns runc's exit status and the log.
    fn run_detached(&self, bundle: &Path, id: &str, log: &Path) -> (bool, String) {
        let file = File::create(log).expect("create log");
        let mut cmd = self.world.command(
            Some(USER),
            &[
                "runc",
                "--root",
                &self.state,
                "run",
                "-d",
                "--bundle",
                &s(bundle),
                id,
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file);
        let ok = cmd.status().expect("spawn runc run").success();
        (ok, fs::read_to_string(log).unwrap_or_default())
    }

    /// `runc state ID` as JSON.
    fn state(&self, id: &str) -> Value {
        let out = self.run(&["state", id]);
        out.expect_success("runc state");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("runc state {id} printed no JSON ({e}):\n{out}"))
    }
}

impl Drop for Runc<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.run(&["delete", "--force", id]);
        }
        for &pid in &self.pids {
            // Only a process of the user's that is still there.
            let owned = fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|u| u.split_ascii_whitespace().next())
                    == Some(self.user.uid.to_string().as_str())
            });
            if owned {
                // SAFETY: kill(2) on the container process this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// The bundle of container `id`: `runc spec --rootless` (run as the user,
/// so that the mappings are the user's), then: no terminal, the script as
/// process, the shared rootfs, a network namespace, `out` bind-mounted on
/// /out, and the installed netsetgo as createRuntime and poststop hook.
fn bundle(runc: &Runc, dir: &Path, rootfs: &Path, out: &Path, gateway: &str) -> PathBuf {
    let bundle = user_dir(dir, &runc.user, 0o755);
    runc.world
        .run_as(
            USER,
            &["runc", "spec", "--rootless", "--bundle", &s(&bundle)],
        )
        .expect_success("runc spec --rootless");
    let path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_slice(&fs::read(&path).expect("read config.json")).expect("config JSON");

    let uid = runc.user.uid;
    for (key, host) in [("uidMappings", uid), ("gidMappings", runc.user.gid)] {
        let maps = &config["linux"][key];
        assert_eq!(
            maps,
            &json!([{"containerID": 0, "hostID": host, "size": 1}]),
            "runc spec --rootless maps root to the user"
        );
    }
    let namespaces = config["linux"]["namespaces"]
        .as_array_mut()
        .expect("linux.namespaces");
    assert!(
        !namespaces.iter().any(|n| n["type"] == "network"),
        "rootless spec has no network namespace of its own"
    );
    namespaces.push(json!({"type": "network"}));
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", SCRIPT.replace("$GATEWAY", gateway)]);
    config["root"]["path"] = json!(s(rootfs));
    config["mounts"].as_array_mut().expect("mounts").push(
        json!({"destination": "/out", "type": "bind", "source": s(out),
                     "options": ["rbind", "rw"]}),
    );
    let hook = json!({"path": s(installed_binary()), "args": ["netsetgo", "-oci-hook"]});
    config["hooks"] = json!({"createRuntime": [hook.clone()], "poststop": [hook]});

    fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write config.json");
    chown(&path, Some(uid), Some(runc.user.gid)).expect("chown config.json");
    bundle
}

fn net_ns(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// The lease of container `id`.
fn lease_of<'l>(leases: &'l [Lease], id: &str) -> Option<&'l Lease> {
    leases.iter().find(|l| l.container.as_deref() == Some(id))
}

/// One running container as the test saw it.
struct Running {
    id: String,
    pid: u32,
    out: PathBuf,
    log: PathBuf,
}

#[test]
fn runc_rootless_containers_wired_by_oci_hooks() {
    require_root!();
    let user = ensure_user(USER);
    let world = world_with(POLICY);
    let dir = scratch_dir("runc");
    let rootfs = build_rootfs(&dir, &user);

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let token = format!("netsetgo-runc-e2e {} {nanos}", std::process::id());
    let www = dir.join("www");
    fs::create_dir(&www).expect("www");
    fs::write(www.join("index.html"), format!("{token}\n")).expect("index.html");
    let _server = http_server(&world, USER, &www, PORT);

    let mut runc = Runc::new(&world, &dir, user.clone());
    let gateway = format!("{GATEWAY}:{PORT}");
    let prepared: Vec<(String, PathBuf, PathBuf, PathBuf)> = (0..CONTAINERS)
        .map(|i| {
            let id = format!("nsg-e2e-{}-{i}", std::process::id());
            let out = user_dir(&dir.join(format!("out{i}")), &user, 0o755);
            let bundle = bundle(
                &runc,
                &dir.join(format!("bundle{i}")),
                &rootfs,
                &out,
                &gateway,
            );
            (id, bundle, out, dir.join(format!("log{i}")))
        })
        .collect();
    runc.ids = prepared.iter().map(|(id, ..)| id.clone()).collect();

    // All at once.
    let started: Vec<(bool, String)> = thread::scope(|sc| {
        let handles: Vec<_> = prepared
            .iter()
            .map(|(id, bundle, _, log)| {
                let runc = &runc;
                sc.spawn(move || runc.run_detached(bundle, id, log))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("runc thread"))
            .collect()
    });
    for ((id, ..), (ok, log)) in prepared.iter().zip(&started) {
        assert!(ok, "runc run -d {id} failed:\n{log}");
    }
    let mut running = Vec::new();
    for (id, _, out, log) in &prepared {
        let state = runc.state(id);
        assert_eq!(state["status"], "running", "{id}: {state}");
        let pid = state["pid"].as_u64().expect("pid in runc state") as u32;
        runc.pids.push(pid);
        running.push(Running {
            id: id.clone(),
            pid,
            out: out.clone(),
            log: log.clone(),
        });
    }

    // Each fetched the page through its gateway.
    for c in &running {
        let rc = c.out.join("rc");
        let done = wait_until(Duration::from_secs(25), POLL, || rc.is_file());
        let log = fs::read_to_string(&c.log).unwrap_or_default();
        let ip = fs::read_to_string(c.out.join("ip.txt")).unwrap_or_default();
        assert!(
            done,
            "{}: the script never finished\nip: {ip}\nlog: {log}",
            c.id
        );
        assert_eq!(
            fs::read_to_string(&rc).expect("rc").trim(),
            "0",
            "{}: wget http://{gateway}/ failed\nip: {ip}\nlog: {log}",
            c.id
        );
        let page = fs::read_to_string(c.out.join("page.txt")).expect("page.txt");
        assert_eq!(page.trim(), token, "{}: fetched the wrong page", c.id);
    }

    // While they run: one lease each, recorded with its container id, and
    // the wiring the kernel shows matches it.
    let world_snap = world.settled_snapshot();
    let leases = world.leases("brg0");
    assert_eq!(
        leases.len(),
        CONTAINERS,
        "one lease per container: {leases:?}"
    );
    let mut addresses = Vec::new();
    for c in &running {
        let lease = lease_of(&leases, &c.id)
            .unwrap_or_else(|| panic!("no lease recorded for {}: {leases:?}", c.id));
        assert_eq!(lease.uid, user.uid, "{lease:?}");
        addresses.push(lease.address);
        let inside = Snapshot::of_pid(c.pid);
        let address = format!("{}/24", lease.address);
        assert_eq!(inside.ipv4_of("veth1"), vec![address.clone()], "{}", c.id);
        assert_eq!(
            inside.default_route(),
            Some((GATEWAY.to_string(), "veth1".to_string())),
            "{}",
            c.id
        );
        let ip = fs::read_to_string(c.out.join("ip.txt")).expect("ip.txt");
        assert!(
            ip.contains(&format!("inet {address}")),
            "{} saw no {address} on veth1 itself: {ip}",
            c.id
        );
        let peer = inside.link("veth1").expect("veth1")["link_index"].as_u64();
        let host = world_snap.link(&lease.ifname).unwrap_or_else(|| {
            panic!(
                "host end {} of {} not in the world:\n{world_snap:?}",
                lease.ifname, c.id
            )
        });
        assert_eq!(host["ifindex"].as_u64(), peer, "{} host end", c.id);
        assert_eq!(host["ifindex"].as_u64(), Some(u64::from(lease.ifindex)));
        assert_eq!(host["master"], "brg0", "{host}");
        assert!(has_flag(host, "UP"), "{host}");
        let check = world.netsetgo(USER, &["-check", "-pid", &c.pid.to_string()]);
        assert_eq!(check.code(), Some(0), "-check of {}:\n{check}", c.id);
        assert!(
            check
                .stdout
                .starts_with(&format!("intact veth1 address={address} ")),
            "{check}"
        );
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), CONTAINERS, "addresses not distinct");
    assert_eq!(world_snap.ports_of("brg0").len(), CONTAINERS);

    // The first two keep their network namespaces (and so their veth pairs)
    // after they stop: only their poststop hook can remove those.
    let held: Vec<Proc> = running[..2]
        .iter()
        .map(|c| {
            let pid = c.pid.to_string();
            let mut holder = Proc::start(&["nsenter", "-t", &pid, "-n", "--", "sleep", "120"]);
            holder.wait_for_exec("sleep");
            assert_eq!(net_ns(holder.pid()), net_ns(c.pid), "holder of {}", c.id);
            holder
        })
        .collect();

    for c in &running {
        runc.run(&["kill", &c.id, "KILL"])
            .expect_success("runc kill");
    }
    for c in &running {
        let stopped = wait_until(Duration::from_secs(10), POLL, || {
            runc.state(&c.id)["status"] == "stopped"
        });
        assert!(stopped, "{} did not stop: {}", c.id, runc.state(&c.id));
    }
    let host_of = |c: &Running| lease_of(&leases, &c.id).unwrap().ifname.clone();
    // Unheld: the kernel removes their pairs with their namespaces.
    for c in &running[2..] {
        let gone = wait_until(Duration::from_secs(10), POLL, || {
            world.snapshot().link(&host_of(c)).is_none()
        });
        assert!(gone, "{}'s host end outlived its namespace", c.id);
    }
    // Held: still on the bridge; and no lease was freed yet.
    let snap = world.snapshot();
    for c in &running[..2] {
        let host = snap
            .link(&host_of(c))
            .unwrap_or_else(|| panic!("held {} lost its host end", c.id));
        assert_eq!(host["master"], "brg0");
    }
    assert_eq!(
        world.leases("brg0"),
        leases,
        "leases changed before poststop"
    );

    // runc delete runs poststop: unheld ones first, then the held ones, one
    // at a time, each releasing exactly what was recorded for its id.
    for (n, i) in [2, 3, 0, 1].into_iter().enumerate() {
        let c = &running[i];
        let out = runc.run(&["delete", &c.id]);
        assert!(out.success(), "runc delete {}:\n{out}", c.id);
        assert!(
            !out.stderr.contains("hook"),
            "poststop hook of {} reported:\n{out}",
            c.id
        );
        let now = world.leases("brg0");
        assert!(
            lease_of(&now, &c.id).is_none(),
            "poststop left {}'s lease: {now:?}",
            c.id
        );
        let snap = world.snapshot();
        assert!(
            snap.link(&host_of(c)).is_none(),
            "poststop left {}'s host end",
            c.id
        );
        // The held ones not deleted yet are untouched.
        for later in [2, 3, 0, 1].into_iter().skip(n + 1).filter(|j| *j < 2) {
            let other = &running[later];
            assert_eq!(
                lease_of(&now, &other.id),
                lease_of(&leases, &other.id),
                "deleting {} touched {}'s lease",
                c.id,
                other.id
            );
            assert!(
                snap.link(&host_of(other))
                    .is_some_and(|l| l["master"] == "brg0"),
                "deleting {} removed {}'s host end",
                c.id,
                other.id
            );
        }
        assert!(
            runc.run(&["state", &c.id]).code() != Some(0),
            "{} still known to runc",
            c.id
        );
    }
    drop(held);

    let snap = world.settled_snapshot();
    assert!(
        snap.ports_of("brg0").is_empty(),
        "veths left on brg0:\n{snap:?}"
    );
    assert!(
        snap.links_of_kind("veth").is_empty(),
        "veths left in the world:\n{snap:?}"
    );
    assert_eq!(world.leases("brg0"), Vec::new(), "leases left");
}

/// Runs `argv` as the user in the world with `input` on stdin.
fn run_with_input(world: &World, argv: &[&str], input: &[u8]) -> Output {
    let mut cmd = world.command(Some(USER), argv);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait").into()
}

#[test]
fn json_and_check_match_the_kernel() {
    require_root!();
    let world = world_with(POLICY);
    let c = world.container(USER);
    let pid = c.pid_arg();

    let out = world.netsetgo(USER, &["-json", "-pid", &pid]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    let wired = json_object(&out);
    let keys: Vec<&str> = wired.keys().map(String::as_str).collect();
    for key in [
        "interface",
        "mac",
        "addresses",
        "gateways",
        "host_interface",
        "bridge",
        "mtu",
        "dns",
    ] {
        assert!(keys.contains(&key), "no {key:?} in {out}");
    }
    assert_eq!(wired["interface"], "veth1");
    assert_eq!(wired["bridge"], "brg0");
    // No dns= in the policy: the gateway.
    assert_eq!(wired["dns"], serde_json::json!([GATEWAY]));
    assert_eq!(wired["gateways"], json!([GATEWAY]));

    // Inside: veth1's MAC, MTU, every global address, the default route.
    let inside = c.snapshot();
    let veth1 = inside.link("veth1").expect("veth1");
    assert_eq!(wired["mac"], veth1["address"], "mac vs {veth1}");
    assert_eq!(wired["mtu"], veth1["mtu"], "mtu vs {veth1}");
    let global: Vec<String> = inside
        .addrs
        .iter()
        .filter(|a| a["ifname"] == "veth1")
        .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["scope"] == "global")
        .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or("?"), i["prefixlen"]))
        .collect();
    assert_eq!(wired["addresses"], json!(global), "addresses vs ip -j addr");
    assert_eq!(inside.ipv4_of("veth1"), vec!["10.10.10.2/24".to_string()]);
    assert_eq!(
        inside.default_route(),
        Some((GATEWAY.to_string(), "veth1".to_string()))
    );

    // Outside: the host end is veth1's peer, a veth on the bridge, up.
    let snap = world.settled_snapshot();
    let host_name = wired["host_interface"].as_str().expect("host_interface");
    let host = snap.link(host_name).expect("host end in the world");
    assert_eq!(host["ifindex"], veth1["link_index"], "peer of veth1");
    assert_eq!(link_kind(host), Some("veth"));
    assert_eq!(host["master"], wired["bridge"], "{host}");
    assert!(has_flag(host, "UP"));
    assert_eq!(snap.ipv4_of("brg0"), vec![format!("{GATEWAY}/24")]);
    let lease = &world.leases("brg0")[0];
    assert_eq!(lease.ifname, host_name);
    assert_eq!(lease.container, None, "-pid records no container id");

    // -check -json: the same facts, and intact.
    let out = world.netsetgo(USER, &["-check", "-json", "-pid", &pid]);
    assert_eq!(out.code(), Some(0), "{out}");
    let mut checked = json_object(&out);
    assert_eq!(checked.remove("intact"), Some(json!(true)), "{out}");
    assert_eq!(checked, wired, "-check -json vs the creating call");

    // Broken wiring (host end off the bridge): -check says so.
    world
        .run(&["ip", "link", "set", host_name, "nomaster"])
        .expect_success("ip link set nomaster");
    let out = world.netsetgo(USER, &["-check", "-pid", &pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.starts_with("netsetgo: ") && out.stderr.contains("not on bridge brg0"),
        "{out}"
    );
    let out = world.netsetgo(USER, &["-check", "-json", "-pid", &pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    let failure = json_object(&out);
    assert_eq!(failure["error"], "broken", "{out}");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("not on bridge brg0")),
        "{out}"
    );
    world
        .run(&["ip", "link", "set", host_name, "master", "brg0"])
        .expect_success("ip link set master");

    // The hook by hand: -oci-hook -json wires a second container and records
    // its id; the poststop state releases exactly that.
    let c2 = world.container(USER);
    let bin = installed_binary().to_string_lossy().into_owned();
    let state = json!({"ociVersion": "1.0.2", "id": "hand-1", "status": "creating",
                       "pid": c2.pid(), "bundle": "/nonexistent"});
    let out = run_with_input(
        &world,
        &[&bin, "-oci-hook", "-json"],
        state.to_string().as_bytes(),
    );
    assert_eq!(out.code(), Some(0), "{out}");
    let hooked = json_object(&out);
    assert_eq!(hooked["addresses"], json!(["10.10.10.3/24"]), "{out}");
    let second = c2.snapshot();
    assert_eq!(
        hooked["mac"],
        second.link("veth1").expect("veth1")["address"]
    );
    let hook_host = hooked["host_interface"].as_str().expect("host_interface");
    let leases = world.leases("brg0");
    assert_eq!(
        lease_of(&leases, "hand-1").map(|l| l.ifname.as_str()),
        Some(hook_host)
    );

    let stopped = json!({"ociVersion": "1.0.2", "id": "hand-1", "status": "stopped",
                         "bundle": "/nonexistent"});
    let out = run_with_input(
        &world,
        &[&bin, "-oci-hook", "-json"],
        stopped.to_string().as_bytes(),
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(
        Value::Object(json_object(&out)),
        json!({"removed": [hook_host], "addresses": ["10.10.10.3"]}),
        "{out}"
    );
    let snap = world.snapshot();
    assert!(snap.link(hook_host).is_none(), "poststop left {hook_host}");
    assert!(snap.link(host_name).is_some(), "poststop removed the other");
    let leases = world.leases("brg0");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].ifname, host_name);
}
