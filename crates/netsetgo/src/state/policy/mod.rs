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
use std::path::Path;

use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use netplumb::Protocol;

use crate::error::Failure;
use crate::privilege::{Caller, PASSWD};
use crate::secure::read_trusted;

/// Where the policy lives (a build may choose another for tests).
pub const POLICY_PATH: &str = match option_env!("NETSETGO_POLICY_PATH") {
    Some(path) => path,
    None => "/etc/netsetgo/netsetgo.conf",
};
const GROUP: &str = "/etc/group";

/// Counts are small numbers; anything longer is a typo or an attack.
const MAX_COUNT: u32 = 65_535;

/// One `network` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name, as callers ask for it.
    pub name: String,
    /// Its bridge.
    pub bridge: String,
    /// The bridge's address; its subnet is the containers' subnet.
    pub gateway: Ipv4Network,
    /// The bridge's IPv6 address, if the network has IPv6.
    pub gateway6: Option<Ipv6Network>,
    /// The MTU, if set.
    pub mtu: Option<u32>,
    /// `nat=yes`: masquerade its traffic out.
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
    /// The protocol.
    pub protocol: Protocol,
    /// The first port of the range.
    pub first: u16,
    /// The last port of the range, included.
    pub last: u16,
}

impl Ports {
    /// Is `port` of `protocol` in the range?
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.protocol == protocol && (self.first..=self.last).contains(&port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
/// The administrator's policy: networks, grants and port grants.
pub struct Policy {
    networks: Vec<Network>,
    grants: Vec<Grant>,
    ports: Vec<PortGrant>,
}

/// A malformed policy, with the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// What one caller may use: networks in the order of its first grant, each
/// with the summed count and every port range its `publish` lines grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance<'a> {
    /// The network.
    pub network: &'a Network,
    /// How many interfaces the caller may hold on it.
    pub quota: u32,
    /// The port ranges the caller may publish on it.
    pub ports: Vec<Ports>,
}

impl Policy {
    /// The network whose bridge is `bridge`, if any.
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

#[cfg(test)]
impl Network {
    /// The network the unit tests use: `default` on `brg0`, gateway
    /// 10.10.10.1/24 and `gateway6`, guarded, not isolated, no nat.
    pub(crate) fn example(gateway6: Option<&str>) -> Network {
        Network {
            name: "default".into(),
            bridge: "brg0".into(),
            gateway: "10.10.10.1/24".parse().unwrap(),
            gateway6: gateway6.map(|g| g.parse().unwrap()),
            mtu: None,
            nat: false,
            dns: Vec::new(),
            guard: true,
            isolate: false,
        }
    }
}

mod parse;

pub use parse::{parse, parse_gateway};

#[cfg(test)]
mod tests;
