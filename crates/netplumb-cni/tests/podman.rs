//! A real engine: rootful podman (Debian 12's 4.3, CNI backend) runs a
//! container on a conflist that uses netplumb-bridge; the container fetches
//! a page from the test's host namespace, `-p` lets a client on another
//! "machine" reach a container that sees the client's address (the
//! plugin's portMappings, and the reference portmap beside it), and `podman
//! rm` leaves nothing behind. The work is in `podman.sh`, run in new network and mount
//! namespaces of its own. Needs root and podman; skips loudly without root.

#[path = "../../netplumb/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn podman_container_reaches_the_host_and_rm_leaves_nothing() {
    require_root!("podman_container_reaches_the_host_and_rm_leaves_nothing");
    assert!(
        Path::new("/usr/bin/podman").is_file(),
        "podman is missing: install podman (and containernetworking-plugins)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/podman.sh");
    let output = Command::new("timeout")
        .arg("600")
        .args(["unshare", "--mount", "--net", "--propagation", "private"])
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_netplumb-bridge"))
        .output()
        .expect("run podman.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "podman.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("fetched the page from the host"),
        "{stdout}"
    );
    for network in ["nptest", "nppm"] {
        let line = format!(
            "on {network}: a client on another machine reached the container, which saw 192.0.2.2"
        );
        assert!(stdout.contains(&line), "{stdout}");
    }
    assert!(stdout.contains("podman rm left nothing behind"), "{stdout}");
}
