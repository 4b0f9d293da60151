//! Shared helpers for the real-kernel tests: throwaway network namespaces
//! (removed on drop, also on panic), child processes killed on drop, and
//! `ip -j` read-outs parsed as JSON.
//!
//! Nothing here touches the network namespace the tests run in: every change
//! is made inside a namespace created by [`TestNs::new`].

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netplumb::{IpNetwork, NetNs, Netlink, Nftables};
use serde_json::Value;

/// True when the tests can run (root). Otherwise says so on the real stderr
/// (not the captured test output), so a skip is never silent.
pub(crate) fn have_root(test: &str) -> bool {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: netplumb kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    );
    false
}

/// Returns early (skipping loudly) unless running as root.
#[macro_export]
macro_rules! require_root {
    ($name:expr) => {
        if !common::have_root($name) {
            return;
        }
    };
}

/// A network literal of a test, e.g. `net("10.77.0.0/24")`.
pub(crate) fn net(s: &str) -> IpNetwork {
    s.parse().expect("network literal")
}

/// A name unique to this test process and call.
pub(crate) fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("nt-{}-{}-{}", std::process::id(), tag, n)
}

/// Runs a command, panicking with its stderr when it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command and reports only whether it succeeded.
pub(crate) fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A throwaway named network namespace (`ip netns add`), deleted on drop.
pub(crate) struct TestNs {
    pub(crate) name: String,
}

impl TestNs {
    pub(crate) fn new(tag: &str) -> TestNs {
        let name = unique(tag);
        run("ip", &["netns", "add", &name]);
        TestNs { name }
    }

    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// An open handle on the namespace.
    pub(crate) fn open(&self) -> NetNs {
        NetNs::from_path(self.path()).expect("open test namespace")
    }

    /// A netlink session inside the namespace (needs a tokio runtime).
    pub(crate) fn session(&self) -> Netlink {
        Netlink::connect_in(&self.open()).expect("netlink session in test namespace")
    }

    /// `ip -n NS ARGS...` (stdout).
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip -n NS -j ARGS...` parsed as JSON.
    pub(crate) fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let text = self.ip(&all);
        if text.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip {all:?}: bad JSON {e}: {text}"))
    }

    /// Every link, with details (`ip -j -d link`).
    pub(crate) fn links(&self) -> Vec<Value> {
        as_vec(self.ip_json(&["-d", "link", "show"]))
    }

    /// One link by name, with details, if it exists.
    pub(crate) fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }

    /// One link by name; panics when it is missing.
    pub(crate) fn must_link(&self, name: &str) -> Value {
        self.link(name).unwrap_or_else(|| {
            panic!(
                "no link {name} in {}: {}",
                self.name,
                self.ip(&["-d", "link"])
            )
        })
    }

    /// Names of every link.
    pub(crate) fn link_names(&self) -> Vec<String> {
        self.links()
            .iter()
            .map(|l| l["ifname"].as_str().expect("ifname").to_string())
            .collect()
    }

    /// Names of every link of `kind` (`linkinfo.info_kind`).
    pub(crate) fn links_of_kind(&self, kind: &str) -> Vec<String> {
        self.links()
            .iter()
            .filter(|l| l["linkinfo"]["info_kind"] == kind)
            .map(|l| l["ifname"].as_str().expect("ifname").to_string())
            .collect()
    }

    /// The address entries (`addr_info`) of link `dev`.
    pub(crate) fn addrs(&self, dev: &str) -> Vec<Value> {
        let all = as_vec(self.ip_json(&["addr", "show", "dev", dev]));
        all.into_iter()
            .flat_map(|l| as_vec(l["addr_info"].clone()))
            .collect()
    }

    /// The address entry `local` on `dev`, if present.
    pub(crate) fn addr(&self, dev: &str, local: &str) -> Option<Value> {
        self.addrs(dev).into_iter().find(|a| a["local"] == local)
    }

    /// Routes of the main table for family `-4` or `-6`.
    pub(crate) fn routes(&self, family: &str) -> Vec<Value> {
        as_vec(self.ip_json(&[family, "route", "show"]))
    }

    /// The default route(s) of family `-4` or `-6`.
    pub(crate) fn default_routes(&self, family: &str) -> Vec<Value> {
        self.routes(family)
            .into_iter()
            .filter(|r| r["dst"] == "default")
            .collect()
    }

    /// `ip netns exec NS ARGS...` status.
    pub(crate) fn exec_succeeds(&self, args: &[&str]) -> bool {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        succeeds("ip", &all)
    }

    /// An nf_tables session inside the namespace.
    pub(crate) fn nftables(&self) -> Nftables {
        Nftables::open_in(&self.open()).expect("nf_tables socket in the test namespace")
    }

    /// Runs a command inside the namespace (`ip netns exec`), stdin empty.
    pub(crate) fn output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Runs a command inside the namespace; it must succeed. Its stdout.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// `nft -j list table <family> <name>` as text, exactly as printed.
    pub(crate) fn list_raw(&self, family: &str, table: &str) -> String {
        self.run(&["nft", "-j", "list", "table", family, table])
    }

    /// `nft -j list table <family> <name>`, parsed.
    pub(crate) fn list(&self, family: &str, table: &str) -> Value {
        serde_json::from_str(&self.list_raw(family, table)).expect("nft -j prints JSON")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let ok = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not delete test namespace {}",
                self.name
            );
        }
    }
}

pub(crate) fn as_vec(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// The `flags` of an `ip -j link` entry.
pub(crate) fn flags(link: &Value) -> Vec<String> {
    as_vec(link["flags"].clone())
        .into_iter()
        .map(|f| f.as_str().expect("flag").to_string())
        .collect()
}

pub(crate) fn is_up(link: &Value) -> bool {
    flags(link).iter().any(|f| f == "UP")
}

pub(crate) fn ifindex(link: &Value) -> u32 {
    link["ifindex"].as_u64().expect("ifindex") as u32
}

/// The parts of a link that an operation could change, without counters
/// and timers (a bridge's `-d` output carries ticking timers), operstate and
/// the carrier flags (`LOWER_UP`, `NO-CARRIER`): the kernel updates carrier
/// asynchronously (linkwatch), so a bridge may still be settling from an
/// earlier, successful step when a snapshot is taken.
pub(crate) fn link_shape(link: &Value) -> Value {
    let flags: Vec<String> = flags(link)
        .into_iter()
        .filter(|f| f != "LOWER_UP" && f != "NO-CARRIER")
        .collect();
    serde_json::json!({
        "ifindex": link["ifindex"],
        "ifname": link["ifname"],
        "flags": flags,
        "mtu": link["mtu"],
        "master": link["master"],
        "address": link["address"],
        "link": link["link"],
        "link_netnsid": link["link_netnsid"],
        "kind": link["linkinfo"]["info_kind"],
    })
}

/// `link_shape` of every link in `ns`.
pub(crate) fn ns_shape(ns: &TestNs) -> Vec<Value> {
    ns.links().iter().map(link_shape).collect()
}

/// Adds a standalone device that is not a bridge: a dummy where the kernel
/// has the dummy driver, an ifb otherwise (some kernels are built without
/// CONFIG_DUMMY). Returns the kind used.
pub(crate) fn add_plain_device(ns: &TestNs, name: &str) -> &'static str {
    for kind in ["dummy", "ifb"] {
        if succeeds("ip", &["-n", &ns.name, "link", "add", name, "type", kind]) {
            return kind;
        }
    }
    panic!("the kernel supports neither dummy nor ifb devices");
}

/// A child process, killed and reaped on drop.
pub(crate) struct ChildGuard {
    pub(crate) child: Child,
}

impl ChildGuard {
    /// Spawns `program args...` and waits (bounded) until it has exec'd
    /// `comm` (so it is in its final namespaces).
    pub(crate) fn spawn(program: &str, args: &[&str], comm: &str) -> ChildGuard {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let mut guard = ChildGuard { child };
        let pid = guard.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if now.trim() == comm {
                break;
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("{program} {args:?} exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{program} {args:?} did not become {comm} within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        guard
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pings `target` from `ns`, up to `attempts` times with a 1 s timeout each.
pub(crate) fn ping_from(ns: &TestNs, target: &str, attempts: u32) -> bool {
    (0..attempts).any(|_| ns.exec_succeeds(&["ping", "-c1", "-W1", "-n", target]))
}
