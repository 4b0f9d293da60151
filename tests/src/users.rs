//! Unprivileged test users (`nsg-a`, `nsg-b`), groups and the system user
//! `_netsetgo`, made on demand.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::cmd::run_here;

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// Serialises useradd/groupadd/usermod within this process (they lock
/// /etc/passwd themselves across processes).
fn accounts_lock() -> std::sync::MutexGuard<'static, HashMap<String, User>> {
    static LOCK: OnceLock<Mutex<HashMap<String, User>>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn lookup(name: &str) -> Option<User> {
    let out = run_here(&["getent", "passwd", name]);
    if !out.success() {
        return None;
    }
    let fields: Vec<&str> = out.stdout.trim().split(':').collect();
    Some(User {
        name: name.to_string(),
        uid: fields.get(2)?.parse().ok()?,
        gid: fields.get(3)?.parse().ok()?,
    })
}

/// The user `name`, created without a home and without a login shell if it
/// does not exist yet.
pub fn ensure_user(name: &str) -> User {
    let mut cache = accounts_lock();
    if let Some(user) = cache.get(name) {
        return user.clone();
    }
    let user = match lookup(name) {
        Some(user) => user,
        None => {
            let out = run_here(&["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name]);
            // 9: created meanwhile by another process.
            assert!(
                out.success() || out.code() == Some(9),
                "useradd {name}:\n{out}"
            );
            lookup(name).unwrap_or_else(|| panic!("user {name} missing after useradd"))
        }
    };
    cache.insert(name.to_string(), user.clone());
    user
}

/// The system user netsetgo works as once it drops privileges
/// (`_netsetgo`, as the packages create it), created if missing.
pub fn ensure_worker() -> User {
    let mut cache = accounts_lock();
    let name = "_netsetgo";
    if let Some(user) = cache.get(name) {
        return user.clone();
    }
    if lookup(name).is_none() {
        let out = run_here(&[
            "useradd",
            "--system",
            "-M",
            "-U",
            "-s",
            "/usr/sbin/nologin",
            name,
        ]);
        assert!(
            out.success() || out.code() == Some(9),
            "useradd {name}:\n{out}"
        );
    }
    let user = lookup(name).unwrap_or_else(|| panic!("user {name} missing after useradd"));
    cache.insert(name.to_string(), user.clone());
    user
}

/// The gid of group `name`, created if missing.
pub fn ensure_group(name: &str) -> u32 {
    let _guard = accounts_lock();
    let out = run_here(&["groupadd", "-f", name]);
    assert!(out.success(), "groupadd {name}:\n{out}");
    let out = run_here(&["getent", "group", name]);
    assert!(out.success(), "getent group {name}:\n{out}");
    out.stdout
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad group entry {:?}", out.stdout))
}

/// Makes `user` a supplementary member of `group` (both must exist).
pub fn add_to_group(user: &str, group: &str) {
    let _guard = accounts_lock();
    let out = run_here(&["id", "-nG", user]);
    assert!(out.success(), "id {user}:\n{out}");
    if out.stdout.split_ascii_whitespace().any(|g| g == group) {
        return;
    }
    let out = run_here(&["usermod", "-a", "-G", group, user]);
    assert!(out.success(), "usermod -a -G {group} {user}:\n{out}");
}
