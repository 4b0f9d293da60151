//! A world's nftables as `nft` shows them from outside: the whole ruleset,
//! one table as text or as parsed JSON, the sets and maps of the helper's
//! `inet netsetgo` (the published ports), recognised by their types so that
//! a renamed set is still found, and its guard table (`bridge
//! netsetgo_guard`: shared chains, and the guarded host ends as set
//! elements).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::world::World;

/// The helper's table name (`inet`), and the prefix of its guard table's
/// (`bridge`).
pub const TABLE: &str = "netsetgo";

/// The guard table's regular chain that its port chain jumps to
/// (netplumb's `GUARD_COMMON_CHAIN`): shared structure, like the table.
pub const GUARD_COMMON_CHAIN: &str = "common_v3";

/// The guard table's chain that prerouting jumps to for a guarded port
/// (netplumb's `GUARD_PORT_CHAIN`).
pub const GUARD_PORT_CHAIN: &str = "port_v3";

/// How many rules [`GUARD_PORT_CHAIN`] holds: the jump to
/// [`GUARD_COMMON_CHAIN`], 3 IPv4 and 3 IPv6 accepts (each a look-up of
/// the port's addresses); prerouting jumps to it for the port's own MAC
/// and drops what it returns.
pub const GUARD_PORT_RULES: usize = 1 + 3 + 3;

/// The guard table's set of guarded host ends (interface indexes, which
/// nft lists by the device's name while it lives).
pub const GUARD_PORTS_SET: &str = "ports_v3";

/// How many rules [`GUARD_COMMON_CHAIN`] holds: 2 link-layer, 2 transport
/// protocol whitelists, 5 for DHCP and DHCPv6 ports, DHCP discovery, the
/// `return` of IPv4, the ARP accept (a look-up of the table's
/// `senders_v3`), the `return` of all but IPv6, the `return` of IPv6 but
/// ICMPv6, 9 for neighbour discovery's shape (router advertisements and
/// redirects, 2 router solicitation, 3 neighbour solicitation, 2
/// advertisement rules), 8 that read the port's MAC or addresses in the
/// table's sets (option type and MAC of 3 messages, 2 targets), and
/// duplicate address detection and MLD from `::`.
pub const GUARD_COMMON_RULES: usize = 2 + 2 + 5 + 1 + 1 + 1 + 1 + 1 + 9 + 8 + 2;

/// The names of the world's guard tables (`bridge netsetgo_guard`, one or
/// none), sorted.
pub fn guard_tables(world: &World) -> Vec<String> {
    let out = world.run(&["nft", "-j", "list", "tables", "bridge"]);
    out.expect_success("nft -j list tables bridge in the world");
    let value: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("nft -j printed no JSON ({e}):\n{out}"));
    let prefix = format!("{TABLE}_guard");
    let mut names: Vec<String> = value["nftables"]
        .as_array()
        .unwrap_or_else(|| panic!("no nftables list:\n{out}"))
        .iter()
        .filter_map(|i| i.get("table")?["name"].as_str())
        .filter(|name| name.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// `nft list ruleset` in the world, as text.
pub fn ruleset(world: &World) -> String {
    let out = world.run(&["nft", "list", "ruleset"]);
    out.expect_success("nft list ruleset in the world");
    out.stdout
}

/// `nft -a list table FAMILY NAME` (with handles) in the world, or `None`
/// if there is no such table.
pub fn table_text(world: &World, family: &str, name: &str) -> Option<String> {
    let out = world.run(&["nft", "-a", "list", "table", family, name]);
    if !out.success() {
        assert!(
            out.stderr.contains("No such file or directory"),
            "nft list table {family} {name} failed otherwise:\n{out}"
        );
        return None;
    }
    Some(out.stdout)
}

/// Writes `text` to a fresh file in the world's /run and runs
/// `nft FLAGS... -f FILE` on it as root in the world (`-j`: JSON input;
/// `-c`: check only, commit nothing).
pub fn apply(world: &World, flags: &[&str], text: &str) -> crate::Output {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "/run/nsg-e2e-{}-{}.nft",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    std::fs::write(world.path(&name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    let mut argv = vec!["nft"];
    argv.extend_from_slice(flags);
    argv.extend(["-f", name.as_str()]);
    let out = world.run(&argv);
    let _ = std::fs::remove_file(world.path(&name));
    out
}

/// What a set or map of the helper's tables holds, told by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `inet`: `inet_proto . inet_service : ipv4_addr` (the claims).
    Published,
    /// `inet`: `inet_proto . inet_service : ipv4_addr . inet_service`.
    Dnat4,
    /// `inet`: `inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service`.
    Dnat4Addr,
    /// `inet`: `inet_proto . inet_service : ipv6_addr . inet_service`.
    Dnat6,
    /// `inet`: `inet_proto . ipv6_addr . inet_service : ipv6_addr . inet_service`.
    Dnat6Addr,
}

/// One set or map of a table.
#[derive(Debug, Clone)]
pub struct NftSet {
    /// The table's family (`inet`, `netdev`).
    pub family: String,
    /// The table's name.
    pub table: String,
    /// The set's name.
    pub name: String,
    /// Which of the helper's sets it is, if its type says so.
    pub kind: Option<Kind>,
    /// The elements as `nft -j` prints them (a map element is
    /// `[key, value]`).
    pub elems: Vec<Value>,
}

impl NftSet {
    /// The elements as text, e.g. `tcp . 8080 : 10.10.10.2 . 80`, sorted.
    pub fn texts(&self) -> Vec<String> {
        let mut all: Vec<String> = self.elems.iter().map(element_text).collect();
        all.sort();
        all
    }

    /// The key of each element (the element itself for a set) as JSON.
    pub fn keys(&self) -> Vec<Value> {
        self.elems
            .iter()
            .map(|e| match e {
                Value::Array(pair) if pair.len() == 2 => pair[0].clone(),
                other => other.clone(),
            })
            .collect()
    }
}

fn type_words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split(" . ").map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or("?").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn kind_of(family: &str, key: &[String], map: Option<&[String]>) -> Option<Kind> {
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let map: Option<Vec<&str>> = map.map(|m| m.iter().map(String::as_str).collect());
    let kind = match (family, key.as_slice(), map.as_deref()) {
        ("inet", ["inet_proto", "inet_service"], Some(["ipv4_addr"])) => Kind::Published,
        ("inet", ["inet_proto", "inet_service"], Some(["ipv4_addr", "inet_service"])) => {
            Kind::Dnat4
        }
        (
            "inet",
            ["inet_proto", "ipv4_addr", "inet_service"],
            Some(["ipv4_addr", "inet_service"]),
        ) => Kind::Dnat4Addr,
        ("inet", ["inet_proto", "inet_service"], Some(["ipv6_addr", "inet_service"])) => {
            Kind::Dnat6
        }
        (
            "inet",
            ["inet_proto", "ipv6_addr", "inet_service"],
            Some(["ipv6_addr", "inet_service"]),
        ) => Kind::Dnat6Addr,
        _ => return None,
    };
    Some(kind)
}

/// An element as text: `a . b` for a concatenation, `key : value` for a
/// map element, `addr/len` for a prefix, `a-b` for a range.
pub fn element_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(pair) if pair.len() == 2 => {
            format!("{} : {}", element_text(&pair[0]), element_text(&pair[1]))
        }
        Value::Object(o) => {
            if let Some(Value::Array(parts)) = o.get("concat") {
                parts
                    .iter()
                    .map(element_text)
                    .collect::<Vec<_>>()
                    .join(" . ")
            } else if let Some(e) = o.get("elem") {
                element_text(&e["val"])
            } else if let Some(p) = o.get("prefix") {
                format!("{}/{}", element_text(&p["addr"]), p["len"])
            } else if let Some(Value::Array(r)) = o.get("range") {
                r.iter().map(element_text).collect::<Vec<_>>().join("-")
            } else {
                v.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// One table as `nft -j` shows it.
#[derive(Clone)]
pub struct NftTable {
    /// Its family (`inet`, `netdev`).
    pub family: String,
    /// Its name.
    pub name: String,
    /// The `nftables` list without its metainfo.
    pub items: Vec<Value>,
}

impl NftTable {
    /// `nft -j list table FAMILY NAME` in the world, or `None` if there is
    /// no such table.
    pub fn of(world: &World, family: &str, name: &str) -> Option<NftTable> {
        let out = world.run(&["nft", "-j", "list", "table", family, name]);
        if !out.success() {
            assert!(
                out.stderr.contains("No such file or directory"),
                "nft -j list table {family} {name} failed otherwise:\n{out}"
            );
            return None;
        }
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("nft -j printed no JSON ({e}):\n{out}"));
        let items = value["nftables"]
            .as_array()
            .unwrap_or_else(|| panic!("no nftables list:\n{out}"))
            .iter()
            .filter(|i| i.get("metainfo").is_none())
            .cloned()
            .collect();
        Some(NftTable {
            family: family.to_string(),
            name: name.to_string(),
            items,
        })
    }

    /// `inet netsetgo`, if it exists.
    pub fn publishing(world: &World) -> Option<NftTable> {
        NftTable::of(world, "inet", TABLE)
    }

    /// Every guard table ([`guard_tables`]) taken together, as one named
    /// `netsetgo_guard_*`, if there is one.
    pub fn guard(world: &World) -> Option<NftTable> {
        let mut tables = guard_tables(world)
            .into_iter()
            .filter_map(|name| NftTable::of(world, "bridge", &name));
        let mut all = tables.next()?;
        for table in tables {
            all.items.extend(table.items);
        }
        all.name = format!("{TABLE}_guard_*");
        Some(all)
    }

    /// Whether set `set` has the element `element` (a plain string, such as
    /// an interface name).
    pub fn set_has(&self, set: &str, element: &str) -> bool {
        self.items
            .iter()
            .filter_map(|i| i.get("set"))
            .filter(|s| s["name"].as_str() == Some(set))
            .filter_map(|s| s["elem"].as_array())
            .any(|elems| elems.iter().any(|e| e.as_str() == Some(element)))
    }

    /// The table that holds chain `chain`, if one does.
    pub fn table_of(&self, chain: &str) -> Option<String> {
        self.items
            .iter()
            .filter_map(|i| i.get("chain"))
            .find(|c| c["name"].as_str() == Some(chain))
            .and_then(|c| Some(c["table"].as_str()?.to_string()))
    }

    /// Each chain's name and how many rules it has.
    pub fn chains(&self) -> BTreeMap<String, usize> {
        let mut chains: BTreeMap<String, usize> = self
            .items
            .iter()
            .filter_map(|i| i.get("chain")?["name"].as_str())
            .map(|name| (name.to_string(), 0))
            .collect();
        for rule in self.items.iter().filter_map(|i| i.get("rule")) {
            if let Some(n) = rule["chain"].as_str().and_then(|c| chains.get_mut(c)) {
                *n += 1;
            }
        }
        chains
    }

    /// The guarded host ends, each as `port_<host end>` (the name the
    /// netdev guard gave its chain) with the rules of the bridge guard's
    /// port chain that judges it: one per element of [`GUARD_PORTS_SET`]
    /// (a gone device's listed by its index).
    pub fn port_chains(&self) -> BTreeMap<String, usize> {
        let rules = self.chains().get(GUARD_PORT_CHAIN).copied().unwrap_or(0);
        self.items
            .iter()
            .filter_map(|i| i.get("set"))
            .filter(|s| s["name"].as_str() == Some(GUARD_PORTS_SET))
            .filter_map(|s| s["elem"].as_array())
            .flatten()
            .map(|e| {
                (
                    format!("port_{}", e.as_str().map_or(e.to_string(), String::from)),
                    rules,
                )
            })
            .collect()
    }

    /// Every set and map.
    pub fn sets(&self) -> Vec<NftSet> {
        self.items
            .iter()
            .filter_map(|i| {
                let (s, is_map) = match (i.get("set"), i.get("map")) {
                    (Some(s), _) => (s, false),
                    (None, Some(m)) => (m, true),
                    _ => return None,
                };
                let key = type_words(&s["type"]);
                let map = is_map.then(|| type_words(&s["map"]));
                Some(NftSet {
                    family: s["family"].as_str().unwrap_or("?").to_string(),
                    table: s["table"].as_str().unwrap_or("?").to_string(),
                    name: s["name"].as_str().unwrap_or("?").to_string(),
                    kind: kind_of(&self.family, &key, map.as_deref()),
                    elems: s["elem"].as_array().cloned().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The set of `kind`; panics if there is none or more than one.
    #[track_caller]
    pub fn set(&self, kind: Kind) -> NftSet {
        let mut found: Vec<NftSet> = self
            .sets()
            .into_iter()
            .filter(|s| s.kind == Some(kind))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {kind:?} set or map in {} {}: {:?}",
            self.family,
            self.name,
            self.sets()
        );
        found.remove(0)
    }

    /// The elements of every recognised set, as text, by kind.
    pub fn elements(&self) -> BTreeMap<Kind, Vec<String>> {
        self.sets()
            .into_iter()
            .filter_map(|s| Some((s.kind?, s.texts())))
            .collect()
    }

    /// The table with what changes by itself or by the order of insertion
    /// left out: handles, counters' values, the order of set elements.
    /// Two views of an unchanged table compare equal.
    pub fn normalised(&self) -> Vec<Value> {
        fn strip(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.remove("handle");
                    if let Some(Value::Object(c)) = map.get_mut("counter") {
                        c.remove("packets");
                        c.remove("bytes");
                    }
                    if let Some(Value::Array(elems)) = map.get_mut("elem") {
                        elems.sort_by_key(|e| e.to_string());
                    }
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut items = self.items.clone();
        items.iter_mut().for_each(strip);
        items
    }
}

impl fmt::Debug for NftTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table {} {}:", self.family, self.name)?;
        for item in &self.items {
            writeln!(f, "  {item}")?;
        }
        Ok(())
    }
}

/// Deletes the element whose key is `key` (JSON as `nft -j` lists it) from
/// `set`, as root in the world, through nft's JSON input (which takes any
/// set name, also one nft's own syntax reserves).
pub fn delete_element(world: &World, set: &NftSet, key: &Value) {
    let command = serde_json::json!({"nftables": [{"delete": {"element": {
        "family": set.family, "table": set.table, "name": set.name, "elem": [key]
    }}}]});
    apply(world, &["-j"], &command.to_string())
        .expect_success(&format!("delete {} from {} {}", key, set.table, set.name));
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn elements_read_as_nft_writes_them() {
        let map: Value = serde_json::from_str(
            r#"[[{"concat": ["tcp", 8080]}, {"concat": ["10.10.10.2", 80]}],
                {"concat": ["veth0a0a0a02", "02:6e:0a:0a:0a:02"]},
                "veth0a0a0a02",
                {"elem": {"val": "x", "timeout": 3}},
                {"prefix": {"addr": "10.0.0.0", "len": 8}}]"#,
        )
        .unwrap();
        let texts: Vec<String> = map.as_array().unwrap().iter().map(element_text).collect();
        assert_eq!(
            texts,
            [
                "tcp . 8080 : 10.10.10.2 . 80",
                "veth0a0a0a02 . 02:6e:0a:0a:0a:02",
                "veth0a0a0a02",
                "x",
                "10.0.0.0/8"
            ]
        );
    }

    #[test]
    fn sets_are_told_by_their_types() {
        let words = |s: &str| type_words(&Value::String(s.into()));
        let key = |v: Value| type_words(&v);
        assert_eq!(
            kind_of(
                "inet",
                &key(serde_json::json!(["inet_proto", "inet_service"])),
                Some(&words("ipv4_addr . inet_service"))
            ),
            Some(Kind::Dnat4)
        );
        assert_eq!(
            kind_of(
                "inet",
                &key(serde_json::json!(["inet_proto", "inet_service"])),
                Some(&words("ipv4_addr"))
            ),
            Some(Kind::Published)
        );
        assert_eq!(kind_of("inet", &words("ifname"), None), None);
    }
}
