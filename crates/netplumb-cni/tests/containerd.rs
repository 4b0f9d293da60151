//! A real engine: Debian 12's containerd 1.6, started by the test in a
//! private world (never the packaged service), runs containers with `ctr
//! run --cni` on conflists that use netplumb-bridge, from an image built
//! offline from busybox-static. A container gets its address from the
//! plugin, pings the gateway and connects to a server on another
//! "machine"; the end of its task leaves no host end, guard table,
//! publication or lease. A container forging another's MAC and address on
//! a `guard: true` network does not reach the host or take the victim's
//! MAC, where a `guard: false` twin shows the attack works; on `isolate:
//! true` two containers do not reach each other, on its twin they do.
//! containerd's CRI plugin, configured for the plugin, parses each conflist
//! (ctr does not use the CRI; nothing here runs a pod).
//! The work is in `containerd.sh`, run in new network and mount namespaces
//! of its own. Needs root and containerd; skips loudly without root.

#[path = "../../netplumb/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn containerd_runs_containers_on_the_plugin_guarded_isolated_and_leaves_nothing() {
    require_root!("containerd_runs_containers_on_the_plugin_guarded_isolated_and_leaves_nothing");
    for tool in ["/usr/bin/containerd", "/usr/bin/ctr"] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: install containerd (with /usr/sbin/policy-rc.d exiting 101, so its service does not start)"
        );
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containerd.sh");
    // --foreground: on a timeout only the script gets SIGTERM, so its
    // trap's cleanup (which stops containerd and the tasks) runs whole.
    let output = Command::new("timeout")
        .args(["--foreground", "-k", "60", "300"])
        .args(["unshare", "--mount", "--net", "--propagation", "private"])
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_netplumb-bridge"))
        .output()
        .expect("run containerd.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "containerd.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for line in [
        "it pinged 10.91.1.1 and reached 192.0.2.2:7000 (seen as 192.0.2.1)",
        "the end of basic's task left no host end, guarded port, publication or lease",
        "guard=true: forged frames did not reach the host",
        "guard=false: the same attack reached the host",
        "isolate=true: one reaches the gateway; one reaches two: false",
        "isolate=false: one reaches the gateway; one reaches two: true",
        "every task's end left nothing behind",
        "containerd's CRI plugin parsed each conflist",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
