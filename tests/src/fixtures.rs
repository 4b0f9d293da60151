//! The users, the default policy and the worlds the test files share.

use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::checks::wire;
use crate::snapshot::Snapshot;
use crate::users::ensure_user;
use crate::world::{wait_until, Container, Proc, World};
use crate::Wired;

/// The unprivileged user most tests call netsetgo as.
pub const A: &str = "nsg-a";
/// A second unprivileged user, for what one user must not do to another.
pub const B: &str = "nsg-b";

/// The default network, with room for every test's containers.
pub const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a default 16
allow nsg-b default 4
";

pub use crate::checks::GATEWAY;

/// A fresh world with `policy` as its policy file.
pub fn world_with(policy: &str) -> World {
    let world = World::new();
    world.set_policy(policy);
    world
}

/// The uid of `user` (created if missing).
pub fn uid(user: &str) -> u32 {
    ensure_user(user).uid
}

/// A world with `policy` whose brg0 is in use: one container of nsg-a
/// wired (checked by [`wire`]).
pub fn busy_world(policy: &str) -> (World, Container, Wired) {
    let world = world_with(policy);
    let c = world.container(A);
    let w = wire(&world, &c);
    (world, c, w)
}

/// A pid that no process has (checked just before).
pub fn unused_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (300..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

/// Waits (at most 10 s) until the kernel has removed the ports of dead
/// containers, i.e. brg0 has exactly `ports` ports; panics if it never
/// does. Returns the world's snapshot at that point.
#[track_caller]
pub fn wait_for_ports(world: &World, ports: usize) -> Snapshot {
    let mut snap = world.snapshot();
    for _ in 0..100 {
        if snap.ports_of("brg0").len() == ports {
            return snap;
        }
        thread::sleep(Duration::from_millis(100));
        snap = world.snapshot();
    }
    panic!("brg0 never got down to {ports} ports:\n{snap:?}");
}

/// `busybox httpd` as `user` in the world, on every address of the world's
/// network namespace (so also on the bridge's, once it exists), port
/// `port`, serving `www`; returns once it listens.
pub fn http_server(world: &World, user: &str, www: &Path, port: &str) -> Proc {
    let mut server = world.spawn_as(
        user,
        &[
            "busybox",
            "httpd",
            "-f",
            "-p",
            &format!("0.0.0.0:{port}"),
            "-h",
            &www.to_string_lossy(),
        ],
    );
    let filter = format!("sport = :{port}");
    let listening = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        !world
            .run(&["ss", "-Hltn", &filter])
            .stdout
            .trim()
            .is_empty()
    });
    assert!(
        listening && !server.has_exited(),
        "busybox httpd does not listen on :{port} in the world"
    );
    server
}
