//! The administrator's policy: which networks exist, who may hold how many
//! interfaces on which, and who may publish which host ports there.
//!
//! The file's path is fixed at build time and never taken from the caller.
//! It must be a regular file owned by root, not writable by group or others,
//! reached through root-owned directories that are not group/world
//! writable, and it is opened without following symlinks. A malformed line
//! makes the whole file invalid (every unprivileged request is refused, with
//! the line number); no grant means no access.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use netplumb::Protocol;

use crate::error::Failure;
use crate::ports;
use crate::privilege::Caller;
use crate::secure::{self, Access, Refusal, Rule};

pub const POLICY_PATH: &str = match option_env!("NETSETGO_POLICY_PATH") {
    Some(path) => path,
    None => "/etc/netsetgo/netsetgo.conf",
};
pub const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// A bound on what we read of the policy file and the user and group
/// databases: generous, since a site that copies its directory into
/// /etc/passwd can have a large one.
const MAX_FILE: u64 = 16 << 20;
/// Counts are small numbers; anything longer is a typo or an attack.
const MAX_COUNT: u32 = 65_535;

/// One `network` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    /// The bridge's address; its subnet is the containers' subnet.
    pub gateway: Ipv4Network,
    pub gateway6: Option<Ipv6Network>,
    pub mtu: Option<u32>,
    pub nat: bool,
    /// `dns=`: the DNS servers DHCP hands out; empty if not given.
    pub dns: Vec<Ipv4Addr>,
    /// `guard=` (default yes): a container's host port passes only frames
    /// from its own MAC and leased addresses.
    pub guard: bool,
    /// `isolate=` (default no): containers do not reach each other.
    pub isolate: bool,
}

impl Network {
    /// The addresses the bridge carries: the gateways.
    pub fn bridge_addresses(&self) -> Vec<IpNetwork> {
        let mut out = vec![IpNetwork::V4(self.gateway)];
        out.extend(self.gateway6.map(IpNetwork::V6));
        out
    }

    /// A network that has state but is no longer in the policy, as far as
    /// its state tells: its bridge and the subnet its leases are for.
    /// Guarded (the default; what it cannot know, it does not let through),
    /// no IPv6, no nat, no isolation.
    pub fn retired(bridge: &str, gateway: Ipv4Network) -> Network {
        Network {
            name: bridge.to_string(),
            bridge: bridge.to_string(),
            gateway,
            gateway6: None,
            mtu: None,
            nat: false,
            dns: Vec::new(),
            guard: true,
            isolate: false,
        }
    }

    /// The DNS servers for DHCP: `dns=`, or else the gateway (rootlesskit
    /// refuses an answer without one; names resolve only if something
    /// answers DNS on the gateway's address).
    pub fn dns_servers(&self) -> Vec<Ipv4Addr> {
        if self.dns.is_empty() {
            vec![self.gateway.ip()]
        } else {
            self.dns.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    User(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    who: Who,
    network: String,
    count: u32,
    line: usize,
}

/// One `publish` line: host ports `first..=last` of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortGrant {
    who: Who,
    network: String,
    ports: Ports,
    line: usize,
}

/// A range of host ports of one protocol that a caller may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
}

impl Ports {
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.protocol == protocol && (self.first..=self.last).contains(&port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    networks: Vec<Network>,
    grants: Vec<Grant>,
    ports: Vec<PortGrant>,
}

/// A malformed policy, with the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// What one caller may use: networks in the order of its first grant, each
/// with the summed count and every port range its `publish` lines grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance<'a> {
    pub network: &'a Network,
    pub quota: u32,
    pub ports: Vec<Ports>,
}

impl Policy {
    pub fn network_by_bridge(&self, bridge: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.bridge == bridge)
    }

    /// The networks the policy defines, in its order.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// The host ports the owner `uid` of a lease may publish on `network`
    /// now, judged as for a call of that user: its user names and the
    /// groups the account files give it (its passwd group and the
    /// `/etc/group` lines that list it; a membership known only to a
    /// directory service is not seen). `None` for root, whom no grant
    /// binds; empty without an `allow` line for that network.
    pub fn ports_of_owner(
        &self,
        uid: u32,
        network: &str,
        db: &dyn Accounts,
    ) -> Result<Option<Vec<Ports>>, Failure> {
        if uid == 0 {
            return Ok(None);
        }
        let groups = db.groups_of(uid)?;
        let owner = Caller {
            uid,
            gid: groups.first().copied().unwrap_or(u32::MAX),
            groups,
        };
        Ok(Some(
            self.allowances(&owner, db)?
                .into_iter()
                .find(|a| a.network.name == network)
                .map(|a| a.ports)
                .unwrap_or_default(),
        ))
    }

    /// The caller's allowances: grants naming one of its user names (exact
    /// match against the passwd entries with its uid) or one of its groups
    /// (a group name whose gid is among the caller's real gid and
    /// supplementary groups), summed per network.
    pub fn allowances(
        &self,
        caller: &Caller,
        db: &dyn Accounts,
    ) -> Result<Vec<Allowance<'_>>, Failure> {
        let mut out: Vec<Allowance> = Vec::new();
        let mut names: Option<Vec<String>> = None;
        let mut gids: HashMap<String, Option<u32>> = HashMap::new();
        let mut matches = |who: &Who| -> Result<bool, Failure> {
            Ok(match who {
                Who::User(name) => {
                    if names.is_none() {
                        names = Some(db.user_names(caller.uid)?);
                    }
                    names.as_ref().is_some_and(|n| n.iter().any(|n| n == name))
                }
                Who::Group(name) => {
                    if !gids.contains_key(name) {
                        gids.insert(name.clone(), db.group_id(name)?);
                    }
                    gids[name].is_some_and(|gid| caller.groups.contains(&gid))
                }
            })
        };
        for grant in &self.grants {
            if !matches(&grant.who)? {
                continue;
            }
            let network = self
                .networks
                .iter()
                .find(|n| n.name == grant.network)
                .expect("grants name defined networks (checked by parse)");
            match out.iter_mut().find(|a| a.network.name == network.name) {
                Some(a) => a.quota = a.quota.saturating_add(grant.count),
                None => out.push(Allowance {
                    network,
                    quota: grant.count,
                    ports: Vec::new(),
                }),
            }
        }
        for grant in &self.ports {
            if let Some(a) = out.iter_mut().find(|a| a.network.name == grant.network) {
                if matches(&grant.who)? {
                    a.ports.push(grant.ports);
                }
            }
        }
        Ok(out)
    }
}

/// Parses the policy text strictly.
pub fn parse(text: &str) -> Result<Policy, ParseError> {
    let mut policy = Policy::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |message: String| ParseError { line, message };
        let trimmed = raw.trim_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed
            .split([' ', '\t'])
            .filter(|f| !f.is_empty())
            .collect();
        match fields[0] {
            "network" => {
                let network = parse_network(&fields[1..]).map_err(err)?;
                if policy.networks.iter().any(|n| n.name == network.name) {
                    return Err(err(format!("network {} is defined twice", network.name)));
                }
                if policy.networks.iter().any(|n| n.bridge == network.bridge) {
                    return Err(err(format!(
                        "bridge {} belongs to two networks",
                        network.bridge
                    )));
                }
                policy.networks.push(network);
            }
            "allow" => {
                let grant = parse_allow(&fields[1..], line).map_err(err)?;
                policy.grants.push(grant);
            }
            "publish" => {
                let grant = parse_publish(&fields[1..], line).map_err(err)?;
                policy.ports.push(grant);
            }
            other => {
                return Err(err(format!(
                    "unknown keyword {other:?} (expected network, allow or publish)"
                )))
            }
        }
    }
    let named = policy
        .grants
        .iter()
        .map(|g| ("allow", &g.network, g.line))
        .chain(policy.ports.iter().map(|g| ("publish", &g.network, g.line)));
    let mut undefined: Vec<(&str, &String, usize)> = named
        .filter(|(_, network, _)| !policy.networks.iter().any(|n| &n.name == *network))
        .collect();
    undefined.sort_by_key(|(_, _, line)| *line);
    if let Some((keyword, network, line)) = undefined.first() {
        return Err(ParseError {
            line: *line,
            message: format!("{keyword} names undefined network {network:?}"),
        });
    }
    Ok(policy)
}

fn parse_network(fields: &[&str]) -> Result<Network, String> {
    let (name, settings) = fields.split_first().ok_or("network needs a name")?;
    if !is_word(name, 32) {
        return Err(format!("bad network name {name:?}"));
    }
    let mut values: HashMap<&str, &str> = HashMap::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {setting:?}"))?;
        if !matches!(
            key,
            "bridge" | "gateway" | "gateway6" | "mtu" | "nat" | "dns" | "guard" | "isolate"
        ) {
            return Err(format!("unknown network key {key:?}"));
        }
        if values.insert(key, value).is_some() {
            return Err(format!("key {key} given twice"));
        }
    }
    let bridge = values.get("bridge").ok_or("network needs bridge=")?;
    netplumb::check_name(bridge).map_err(|e| e.to_string())?;
    let gateway = parse_gateway(values.get("gateway").ok_or("network needs gateway=")?)?;
    let gateway6 = values
        .get("gateway6")
        .map(|g| parse_gateway6(g))
        .transpose()?;
    if let Some(gateway6) = gateway6 {
        check_derived_addresses(gateway, gateway6)?;
    }
    let mtu = values
        .get("mtu")
        .map(|m| match parse_number(m, 65_535) {
            Some(v) if v >= 1280 || (v >= 68 && gateway6.is_none()) => Ok(v),
            _ => Err(format!(
                "bad mtu {m:?} (68-65535; at least 1280 with gateway6)"
            )),
        })
        .transpose()?;
    let yes_no = |key: &str, default: bool| match values.get(key).copied() {
        None => Ok(default),
        Some("yes") => Ok(true),
        Some("no") => Ok(false),
        Some(other) => Err(format!("{key} must be yes or no, not {other:?}")),
    };
    let nat = yes_no("nat", false)?;
    let guard = yes_no("guard", true)?;
    let isolate = yes_no("isolate", false)?;
    let dns = values.get("dns").map(|d| parse_dns(d)).transpose()?;
    Ok(Network {
        name: name.to_string(),
        bridge: bridge.to_string(),
        gateway,
        gateway6,
        mtu,
        nat,
        dns: dns.unwrap_or_default(),
        guard,
        isolate,
    })
}

/// Up to 8 comma-separated IPv4 unicast addresses.
fn parse_dns(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    let servers = text
        .split(',')
        .map(|a| a.parse::<Ipv4Addr>().ok())
        .collect::<Option<Vec<_>>>()
        .filter(|s| {
            (1..=8).contains(&s.len())
                && s.iter()
                    .all(|a| !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()))
        });
    servers.ok_or_else(|| format!("bad dns {text:?} (1-8 comma-separated IPv4 unicast addresses)"))
}

/// An IPv4 gateway in CIDR form: the host address of a subnet between /16
/// and /30 that is neither the network nor the broadcast address.
pub fn parse_gateway(text: &str) -> Result<Ipv4Network, String> {
    let net: Ipv4Network = text
        .parse()
        .map_err(|_| format!("bad IPv4 CIDR {text:?}"))?;
    if !(16..=30).contains(&net.prefix()) {
        return Err(format!("{text}: the subnet must be between /16 and /30"));
    }
    if net.ip() == net.network() || net.ip() == net.broadcast() {
        return Err(format!(
            "{text}: the gateway must be a host address of its subnet"
        ));
    }
    Ok(net)
}

fn parse_gateway6(text: &str) -> Result<Ipv6Network, String> {
    let net: Ipv6Network = text
        .parse()
        .map_err(|_| format!("bad IPv6 CIDR {text:?}"))?;
    if !(64..=120).contains(&net.prefix()) || net.ip() == net.network() {
        return Err(format!(
            "{text}: need a host address in a /64 to /120 subnet"
        ));
    }
    Ok(net)
}

/// Containers' IPv6 addresses are derived from their IPv4 leases (same
/// offset into the IPv6 subnet, see [`crate::plan::container_addresses`]), so
/// every offset a lease can have must land inside `gateway6`'s prefix and
/// never on `gateway6` itself. Leases take every offset of the IPv4 subnet
/// but the network, the broadcast and the gateway's.
fn check_derived_addresses(gateway: Ipv4Network, gateway6: Ipv6Network) -> Result<(), String> {
    let v4_host_bits = 32 - u32::from(gateway.prefix());
    let v6_host_bits = 128 - u32::from(gateway6.prefix());
    if v4_host_bits > v6_host_bits {
        return Err(format!(
            "gateway6 {gateway6}: a /{} cannot hold the offsets of gateway {gateway}'s subnet; \
             use a prefix of at most /{}",
            gateway6.prefix(),
            128 - v4_host_bits
        ));
    }
    let offset6 = u128::from(gateway6.ip()) - u128::from(gateway6.network());
    let last = (1u128 << v4_host_bits) - 1;
    let offset4 = u128::from(u32::from(gateway.ip()) - u32::from(gateway.network()));
    if offset6 != offset4 && (1..last).contains(&offset6) {
        let same = Ipv6Addr::from(u128::from(gateway6.network()) + offset4);
        return Err(format!(
            "gateway6 {gateway6} is the IPv6 address a container leasing offset {offset6} \
             of {} would get; use the gateway's offset ({same}) or one outside 1-{}",
            gateway.network(),
            last - 1
        ));
    }
    Ok(())
}

fn parse_allow(fields: &[&str], line: usize) -> Result<Grant, String> {
    let [who, network, count] = fields else {
        return Err("allow takes USER|@GROUP NETWORK COUNT".into());
    };
    let who = parse_who(who)?;
    if !is_word(network, 32) {
        return Err(format!("bad network name {network:?}"));
    }
    let count = parse_number(count, MAX_COUNT)
        .ok_or_else(|| format!("bad count {count:?} (a whole number up to {MAX_COUNT})"))?;
    Ok(Grant {
        who,
        network: network.to_string(),
        count,
        line,
    })
}

fn parse_who(who: &str) -> Result<Who, String> {
    match who.strip_prefix('@') {
        Some(group) if is_account(group) => Ok(Who::Group(group.to_string())),
        None if is_account(who) => Ok(Who::User(who.to_string())),
        _ => Err(format!("bad user or group {who:?}")),
    }
}

/// `publish USER|@GROUP NETWORK tcp|udp PORT[-PORT]`. Ports below 1024
/// are granted only by a line of their own, so that a range never grants
/// a privileged port by accident.
fn parse_publish(fields: &[&str], line: usize) -> Result<PortGrant, String> {
    let [who, network, protocol, range] = fields else {
        return Err("publish takes USER|@GROUP NETWORK tcp|udp PORT[-PORT]".into());
    };
    let who = parse_who(who)?;
    if !is_word(network, 32) {
        return Err(format!("bad network name {network:?}"));
    }
    let protocol = ports::parse_protocol(protocol)
        .ok_or_else(|| format!("bad protocol {protocol:?} (tcp or udp)"))?;
    let bad = || format!("bad port range {range:?} (PORT or FIRST-LAST, 1-65535)");
    let (first, last) = match range.split_once('-') {
        Some((a, b)) => (ports::parse_port(a), ports::parse_port(b)),
        None => (ports::parse_port(range), ports::parse_port(range)),
    };
    let (first, last) = first.zip(last).filter(|(a, b)| a <= b).ok_or_else(bad)?;
    if first < 1024 && last >= 1024 {
        return Err(format!(
            "{range} mixes ports below 1024 with higher ones: grant ports below 1024 on a line of their own"
        ));
    }
    Ok(PortGrant {
        who,
        network: network.to_string(),
        ports: Ports {
            protocol,
            first,
            last,
        },
        line,
    })
}

/// Decimal digits only, no sign, no overflow, at most `max`.
fn parse_number(text: &str, max: u32) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|v| *v <= u64::from(max))
        .map(|v| v as u32)
}

fn is_word(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// User and group names as shadow-utils accepts them (plus a trailing `$`).
fn is_account(text: &str) -> bool {
    let name = text.strip_suffix('$').unwrap_or(text);
    is_word(name, 32) && !name.starts_with('-')
}

/// Where user and group names come from.
pub trait Accounts {
    /// All names of passwd entries with this uid.
    fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure>;
    /// The gid of a group name.
    fn group_id(&self, name: &str) -> Result<Option<u32>, Failure>;
    /// The groups of `uid` as the account files give them: its passwd
    /// entry's gid first, then every group whose member list names it.
    fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure>;
}

/// /etc/passwd and /etc/group, read directly (no NSS: the binary is static
/// and must not load code chosen by the machine's configuration).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure> {
        let text = read_trusted(Path::new(PASSWD))?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
            .collect())
    }

    fn group_id(&self, name: &str) -> Result<Option<u32>, Failure> {
        let text = read_trusted(Path::new(GROUP))?;
        Ok(text.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then_some(())?;
            f.nth(1)?.parse::<u32>().ok()
        }))
    }

    fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure> {
        let passwd = read_trusted(Path::new(PASSWD))?;
        let mut names = Vec::new();
        let mut groups = Vec::new();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid) {
                names.push(f[0]);
                groups.extend(f[3].parse::<u32>().ok());
            }
        }
        groups.truncate(1);
        let group = read_trusted(Path::new(GROUP))?;
        groups.extend(group.lines().filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let listed = f.len() >= 4 && f[3].split(',').any(|m| names.contains(&m));
            listed.then(|| f[2].parse::<u32>().ok()).flatten()
        }));
        Ok(groups)
    }
}

/// The policy as the caller may use it: `Ok(None)` when there is no file.
pub fn load() -> Result<Option<Policy>, Failure> {
    let path = Path::new(POLICY_PATH);
    let text = match read_trusted(path) {
        Ok(text) => text,
        Err(_) if !path.exists() => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&text).map(Some).map_err(|e| {
        Failure::refused(format!(
            "{POLICY_PATH} line {}: {}; every request is refused until an administrator fixes it",
            e.line, e.message
        ))
    })
}

/// Reads a root-owned configuration file: opened without following a final
/// symlink, checked on the opened fd (regular, owner root, not group/world
/// writable), with every parent directory root-owned and not group/world
/// writable either. Errors name the path (an administrator's file, whose
/// existence is no secret) but say nothing about other files.
pub fn read_trusted(path: &Path) -> Result<String, Failure> {
    let bad = |why: &str| {
        Failure::refused(format!(
            "{}: {why}; an administrator must fix it",
            path.display()
        ))
    };
    let trusted = |dir| Rule {
        dir,
        owner: 0,
        forbidden: 0o022,
        one_link: false,
    };
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        secure::open(None, dir, Access::Read, trusted(true)).map_err(|e| match e {
            Refusal::Unsafe => {
                bad("a directory on its path is not a root-owned, non-writable directory")
            }
            Refusal::Open(_) => bad("cannot inspect its directories"),
        })?;
    }
    let (fd, meta) =
        secure::open(None, path, Access::Read, trusted(false)).map_err(|e| match e {
            Refusal::Open(nix::Error::ELOOP) => bad("is a symbolic link"),
            Refusal::Open(_) => bad("cannot be opened"),
            Refusal::Unsafe => {
                bad("must be a regular file owned by root and not writable by group or others")
            }
        })?;
    let file = File::from(fd);
    let size = meta.st_size as u64;
    if size > MAX_FILE {
        return Err(bad("is too large"));
    }
    // Room for the whole file up front: read in one call, not in doubling
    // probes (this is every call's start-up).
    let mut text = String::with_capacity(size as usize + 1);
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|_| bad("is not readable UTF-8 text"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Accounts for Fake {
        fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure> {
            Ok(match uid {
                1000 => vec!["bob".into()],
                1001 => vec!["bobby".into()],
                _ => vec![],
            })
        }
        fn group_id(&self, name: &str) -> Result<Option<u32>, Failure> {
            Ok((name == "netsetgo").then_some(500))
        }
        fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure> {
            Ok(match uid {
                1000 => vec![1000, 500],
                _ => vec![uid],
            })
        }
    }

    #[test]
    fn an_owners_ports_are_those_its_grants_give_it_now() {
        let text = "\
network default bridge=brg0 gateway=10.10.10.1/24
network lab bridge=labbr0 gateway=172.30.0.1/16
allow @netsetgo default 4
allow bobby lab 1
publish @netsetgo default tcp 8000-8099
publish bob default udp 53
publish bobby lab tcp 9000
publish bobby default tcp 9001
";
        let p = parse(text).unwrap();
        // bob: the group's range and its own line.
        let bob = p.ports_of_owner(1000, "default", &Fake).unwrap().unwrap();
        assert!(bob.iter().any(|g| g.contains(Protocol::Tcp, 8080)));
        assert!(bob.iter().any(|g| g.contains(Protocol::Udp, 53)));
        assert!(!bob.iter().any(|g| g.contains(Protocol::Tcp, 9001)));
        // No allow line for lab: nothing there.
        assert_eq!(p.ports_of_owner(1000, "lab", &Fake).unwrap(), Some(vec![]));
        // bobby is not in the group and has no allow line for default:
        // its publish line there counts for nothing.
        assert_eq!(
            p.ports_of_owner(1001, "default", &Fake).unwrap(),
            Some(vec![])
        );
        let lab = p.ports_of_owner(1001, "lab", &Fake).unwrap().unwrap();
        assert!(lab.iter().any(|g| g.contains(Protocol::Tcp, 9000)));
        // A network no longer there, and root.
        assert_eq!(p.ports_of_owner(1000, "gone", &Fake).unwrap(), Some(vec![]));
        assert_eq!(p.ports_of_owner(0, "default", &Fake).unwrap(), None);
    }

    fn caller(uid: u32, groups: &[u32]) -> Caller {
        Caller {
            uid,
            gid: uid,
            groups: groups.to_vec(),
        }
    }

    const SAMPLE: &str = "\
# comment
network default bridge=brg0 gateway=10.10.10.1/24

network lab\tbridge=labbr0 gateway=172.30.0.1/16 gateway6=fd00:30::1/64 mtu=1400 nat=yes
allow @netsetgo default 16
allow bob lab 4
allow bob lab 2
";

    #[test]
    fn parses_the_documented_example() {
        let p = parse(SAMPLE).unwrap();
        assert_eq!(p.networks.len(), 2);
        let lab = p.network_by_bridge("labbr0").unwrap();
        assert_eq!((lab.mtu, lab.nat), (Some(1400), true));
        assert_eq!(lab.gateway6.unwrap().to_string(), "fd00:30::1/64");
        let addrs = crate::plan::container_addresses(lab, "172.30.1.2".parse().unwrap());
        let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(shown, ["172.30.1.2/16", "fd00:30::102/64"]);
        assert_eq!(lab.bridge_addresses().len(), 2);
    }

    #[test]
    fn dns_defaults_to_the_gateway() {
        let p = parse(
            "network a bridge=a gateway=10.1.0.1/24\n\
             network b bridge=b gateway=10.2.0.1/24 dns=10.2.0.53\n\
             network c bridge=c gateway=10.3.0.1/24 dns=1.1.1.1,9.9.9.9\n",
        )
        .unwrap();
        let dns = |bridge| p.network_by_bridge(bridge).unwrap().dns_servers();
        let ips =
            |list: &[&str]| -> Vec<Ipv4Addr> { list.iter().map(|a| a.parse().unwrap()).collect() };
        assert_eq!(dns("a"), ips(&["10.1.0.1"]));
        assert_eq!(dns("b"), ips(&["10.2.0.53"]));
        assert_eq!(dns("c"), ips(&["1.1.1.1", "9.9.9.9"]));
    }

    #[test]
    fn grants_match_exactly_and_add_up() {
        let p = parse(SAMPLE).unwrap();
        let bob = p.allowances(&caller(1000, &[1000]), &Fake).unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!((bob[0].network.name.as_str(), bob[0].quota), ("lab", 6));
        // A line for bob gives bobby nothing.
        assert!(p
            .allowances(&caller(1001, &[1001]), &Fake)
            .unwrap()
            .is_empty());
        let member = p.allowances(&caller(1001, &[1001, 500]), &Fake).unwrap();
        assert_eq!(
            (member[0].network.name.as_str(), member[0].quota),
            ("default", 16)
        );
    }

    #[test]
    fn derived_ipv6_addresses_stay_in_gateway6s_prefix_and_off_it() {
        let net = |g: &str, g6: &str| format!("network x bridge=b gateway={g} gateway6={g6}\n");
        for (g, g6) in [
            ("10.10.10.1/24", "fd00:10::1/64"),
            ("10.10.10.254/24", "fd00:10::fe/64"),
            ("10.10.10.254/24", "fd00:10::ff/120"),
            ("10.10.10.254/24", "fd00:10::100/64"),
            ("10.10.10.1/24", "fd00:10::ffff/64"),
            ("10.10.0.1/16", "fd00:10::1/112"),
            ("10.10.10.5/30", "fd00:10::3/120"),
        ] {
            let p = parse(&net(g, g6)).unwrap_or_else(|e| panic!("{g} {g6}: {e:?}"));
            let n = &p.networks[0];
            let g6: Ipv6Network = g6.parse().unwrap();
            let first = u32::from(n.gateway.network());
            for offset in 1..n.gateway.size() - 1 {
                let v4 = Ipv4Addr::from(first + offset);
                if v4 == n.gateway.ip() {
                    continue;
                }
                let IpNetwork::V6(v6) = crate::plan::container_addresses(n, v4)[1] else {
                    panic!("no IPv6 address");
                };
                assert!(g6.contains(v6.ip()) && v6.ip() != g6.ip(), "{g} {g6} {v4}");
            }
        }
        for (g, g6, expected) in [
            // Offset 1 is a container's, and its IPv6 address is gateway6.
            ("10.10.10.254/24", "fd00:10::1/64", "offset 1 "),
            ("10.10.10.1/24", "fd00:10::fe/64", "offset 254 "),
            ("10.10.0.1/16", "fd00:10::ff00/64", "offset 65280 "),
            // 16 host bits do not fit in 8 or 15.
            ("10.10.0.1/16", "fd00:10::1/120", "at most /112"),
            ("10.10.0.1/16", "fd00:10::1/113", "at most /112"),
        ] {
            let text = format!("# first\n{}", net(g, g6));
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, 2, "{g} {g6}");
            assert!(e.message.contains(expected), "{g} {g6}: {}", e.message);
        }
    }

    #[test]
    fn guard_defaults_to_yes_and_isolate_to_no() {
        let p = parse(
            "network a bridge=a gateway=10.1.0.1/24\n\
             network b bridge=b gateway=10.2.0.1/24 guard=no isolate=yes\n\
             network c bridge=c gateway=10.3.0.1/24 guard=yes isolate=no\n",
        )
        .unwrap();
        let flags = |bridge| {
            let n = p.network_by_bridge(bridge).unwrap();
            (n.guard, n.isolate)
        };
        assert_eq!(flags("a"), (true, false));
        assert_eq!(flags("b"), (false, true));
        assert_eq!(flags("c"), (true, false));
    }

    #[test]
    fn publish_lines_grant_port_ranges_that_add_up() {
        let p = parse(&format!(
            "{SAMPLE}publish @netsetgo default tcp 8000-8999\n\
             publish bob lab udp 5353\n\
             publish bob lab tcp 80\n\
             publish bob lab tcp 1-1023\n\
             publish bobby lab tcp 9000\n\
             publish bob default tcp 7000\n"
        ))
        .unwrap();
        let tcp = |first, last| Ports {
            protocol: Protocol::Tcp,
            first,
            last,
        };
        let bob = p.allowances(&caller(1000, &[1000]), &Fake).unwrap();
        // bob has no allow line for default: its publish line there gives
        // nothing.
        assert_eq!(bob.len(), 1);
        let udp = Ports {
            protocol: Protocol::Udp,
            first: 5353,
            last: 5353,
        };
        assert_eq!(bob[0].ports, vec![udp, tcp(80, 80), tcp(1, 1023)]);
        assert!(bob[0].ports.iter().any(|r| r.contains(Protocol::Tcp, 443)));
        assert!(!bob[0].ports.iter().any(|r| r.contains(Protocol::Udp, 80)));
        assert!(!bob[0].ports.iter().any(|r| r.contains(Protocol::Tcp, 9000)));
        let member = p.allowances(&caller(1001, &[1001, 500]), &Fake).unwrap();
        assert_eq!(member[0].ports, vec![tcp(8000, 8999)]);
        // None by default.
        let plain = parse(SAMPLE).unwrap();
        let bob = plain.allowances(&caller(1000, &[1000]), &Fake).unwrap();
        assert!(bob[0].ports.is_empty());
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        let cases = [
            ("allow bob default 99999999999999999999", "count"),
            ("allow bob default -1", "count"),
            ("allow bob default 1 extra", "allow takes"),
            ("allow bob nowhere 1", "undefined"),
            (
                "network x bridge=eth0/1 gateway=10.0.0.1/24",
                "invalid interface name",
            ),
            ("network x bridge=b gateway=10.0.0.0/24", "host address"),
            ("network x bridge=b gateway=10.0.0.1/8", "between"),
            ("network x bridge=b gateway=10.0.0.1/24 nat=maybe", "nat"),
            ("network x bridge=b gateway=10.0.0.1/24 mtu=9999999", "mtu"),
            (
                "network x bridge=b gateway=10.0.0.1/24 colour=red",
                "unknown",
            ),
            ("network x bridge=b gateway=10.0.0.1/24 bridge=c", "twice"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=", "dns"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=1.1.1.1,", "dns"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=fd00::1", "dns"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=0.0.0.0", "dns"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=224.0.0.1", "dns"),
            ("network x bridge=b gateway=10.0.0.1/24 dns=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9", "dns"),
            ("permit bob default 1", "unknown keyword"),
            ("network x bridge=b gateway=10.0.0.1/24 guard=on", "guard"),
            ("network x bridge=b gateway=10.0.0.1/24 isolate=", "isolate"),
            ("publish bob default tcp 1000-1100", "below 1024 on a line of their own"),
            ("publish bob default tcp 1-65535", "below 1024 on a line of their own"),
            ("publish bob default tcp 0", "port range"),
            ("publish bob default tcp 65536", "port range"),
            ("publish bob default tcp 9000-8000", "port range"),
            ("publish bob default tcp 80-", "port range"),
            ("publish bob default tcp -80", "port range"),
            ("publish bob default tcp +80", "port range"),
            ("publish bob default tcp 99999999999999999999", "port range"),
            ("publish bob default sctp 80", "protocol"),
            ("publish bob default TCP 80", "protocol"),
            ("publish bob default tcp", "publish takes"),
            ("publish bob default tcp 80 90", "publish takes"),
            ("publish bob nowhere tcp 80", "publish names undefined network"),
            ("publish b@d default tcp 80", "bad user"),
            ("allow b@d default 1", "bad user"),
        ];
        for (line, expected) in cases {
            let text = format!("network default bridge=brg0 gateway=10.10.10.1/24\n{line}\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, 2, "{line}");
            assert!(e.message.contains(expected), "{line}: {}", e.message);
        }
    }
}
