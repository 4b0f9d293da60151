//! A network namespace's state as `ip -j` shows it, normalised so that two
//! snapshots of an untouched namespace compare equal.

use std::fmt;

use serde_json::Value;

use crate::cmd::{bounded, run};

/// `ip -j -d link`, `ip -j addr` and `ip -j route` of one namespace.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `ip -j -d link`.
    pub links: Vec<Value>,
    /// `ip -j addr`.
    pub addrs: Vec<Value>,
    /// `ip -j route`.
    pub routes: Vec<Value>,
}

/// Keys whose values change by themselves over time (bridge and port
/// timers, address lifetimes, DAD progress), dropped before comparing.
fn volatile(key: &str) -> bool {
    key.ends_with("_timer")
        || key == "valid_life_time"
        || key == "preferred_life_time"
        || key == "tentative"
}

fn normalise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !volatile(k));
            map.values_mut().for_each(normalise);
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn ip_json(prefix: &[&str], args: &[&str]) -> Vec<Value> {
    let argv: Vec<&str> = prefix
        .iter()
        .copied()
        .chain(["ip", "-j"])
        .chain(args.iter().copied())
        .collect();
    let out = run(bounded(&argv));
    assert!(out.success(), "{argv:?} failed:\n{out}");
    let text = out.stdout.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let mut value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{argv:?} printed no JSON ({e}): {text:?}"));
    normalise(&mut value);
    match value {
        Value::Array(items) => items,
        other => panic!("{argv:?} printed {other}, not a list"),
    }
}

impl Snapshot {
    /// Runs `prefix... ip -j ...` (the prefix enters the namespace, e.g.
    /// `nsenter -t PID -n --`).
    pub fn take(prefix: &[&str]) -> Snapshot {
        Snapshot {
            links: ip_json(prefix, &["-d", "link", "show"]),
            addrs: ip_json(prefix, &["addr", "show"]),
            routes: ip_json(prefix, &["route", "show"]),
        }
    }

    /// The network namespace of any process, entered with
    /// `nsenter -t PID -n` (as root, from outside).
    pub fn of_pid(pid: u32) -> Snapshot {
        let pid = pid.to_string();
        Snapshot::take(&["nsenter", "-t", &pid, "-n", "--"])
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&Value> {
        self.links.iter().find(|l| l["ifname"] == name)
    }

    /// The link with index `index`.
    pub fn link_by_index(&self, index: u64) -> Option<&Value> {
        self.links.iter().find(|l| l["ifindex"] == index)
    }

    /// Names of all links.
    pub fn link_names(&self) -> Vec<String> {
        self.links.iter().map(|l| name(l).to_string()).collect()
    }

    /// The links whose kind (`linkinfo.info_kind`) is `kind`.
    pub fn links_of_kind(&self, kind: &str) -> Vec<&Value> {
        self.links
            .iter()
            .filter(|l| link_kind(l) == Some(kind))
            .collect()
    }

    /// The links enslaved to `bridge`.
    pub fn ports_of(&self, bridge: &str) -> Vec<&Value> {
        self.links
            .iter()
            .filter(|l| l["master"] == bridge)
            .collect()
    }

    /// The IPv4 addresses of `name` as `a.b.c.d/len`.
    pub fn ipv4_of(&self, name: &str) -> Vec<String> {
        self.addresses_of(name, "inet")
    }

    /// The IPv6 addresses of `name` as `addr/len`, link-local included,
    /// sorted.
    pub fn ipv6_of(&self, name: &str) -> Vec<String> {
        let mut out = self.addresses_of(name, "inet6");
        out.sort();
        out
    }

    fn addresses_of(&self, name: &str, family: &str) -> Vec<String> {
        self.addrs
            .iter()
            .filter(|a| a["ifname"] == name)
            .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
            .filter(|i| i["family"] == family)
            .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or("?"), i["prefixlen"]))
            .collect()
    }

    /// All IPv4 addresses of the namespace, with their interface.
    pub fn all_ipv4(&self) -> Vec<(String, String)> {
        self.links
            .iter()
            .flat_map(|l| {
                let n = name(l).to_string();
                self.ipv4_of(&n).into_iter().map(move |a| (n.clone(), a))
            })
            .collect()
    }

    /// `(gateway, dev)` of the default route, if any.
    pub fn default_route(&self) -> Option<(String, String)> {
        self.routes.iter().find(|r| r["dst"] == "default").map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["dev"].as_str().unwrap_or("").to_string(),
            )
        })
    }

    /// `(gateway, dev)` of each IPv6 default route of the network
    /// namespace of `pid` (`ip -j -6 route show default`, from outside;
    /// [`Snapshot::routes`] holds IPv4's only).
    pub fn ipv6_default_routes(pid: u32) -> Vec<(String, String)> {
        let pid = pid.to_string();
        let prefix = ["nsenter", "-t", &pid, "-n", "--"];
        ip_json(&prefix, &["-6", "route", "show", "default"])
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                (text("gateway"), text("dev"))
            })
            .collect()
    }

    /// A readable account of what differs between `self` (before) and
    /// `after`; empty if nothing does.
    pub fn diff(&self, after: &Snapshot) -> String {
        let mut out = String::new();
        for (what, a, b) in [
            ("link", &self.links, &after.links),
            ("addr", &self.addrs, &after.addrs),
            ("route", &self.routes, &after.routes),
        ] {
            for item in a.iter().filter(|x| !b.contains(x)) {
                out.push_str(&format!("- {what}: {item}\n"));
            }
            for item in b.iter().filter(|x| !a.contains(x)) {
                out.push_str(&format!("+ {what}: {item}\n"));
            }
        }
        out
    }
}

/// A link's name.
pub fn name(link: &Value) -> &str {
    link["ifname"].as_str().unwrap_or("")
}

/// A link's kind (`veth`, `bridge`, `dummy`), from `ip -d`.
pub fn link_kind(link: &Value) -> Option<&str> {
    link["linkinfo"]["info_kind"].as_str()
}

/// Whether the link's flags include `flag` (e.g. `UP`).
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "links:")?;
        for l in &self.links {
            writeln!(f, "  {l}")?;
        }
        writeln!(f, "addrs:")?;
        for a in &self.addrs {
            writeln!(f, "  {a}")?;
        }
        writeln!(f, "routes:")?;
        for r in &self.routes {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}
