//! The users, the default policy and the worlds the test files share.

use crate::users::ensure_user;
use crate::world::World;

/// The unprivileged users most tests call netsetgo as.
pub const A: &str = "nsg-a";
pub const B: &str = "nsg-b";

/// The default network, with room for every test's containers.
pub const POLICY: &str = "\
network default bridge=brg0 gateway=10.10.10.1/24
allow nsg-a default 16
allow nsg-b default 4
";

/// The default network's gateway (brg0's address).
pub const GATEWAY: &str = "10.10.10.1";

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
