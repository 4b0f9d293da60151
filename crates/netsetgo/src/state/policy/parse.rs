//! The policy file's syntax: `network`, `allow` and `publish` lines, each
//! checked whole; a malformed line makes the whole file invalid.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::{Grant, Network, ParseError, Policy, PortGrant, Ports, Who, BRIDGE_PORTS, MAX_COUNT};
use crate::ports;

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
    check_fits_one_bridge(&policy.grants)?;
    Ok(policy)
}

/// The grants of one user or group on one network must add up to at most
/// [`BRIDGE_PORTS`]: a larger quota could never be met (its caller would
/// be refused at the bridge's limit anyway), so it is a mistake to say so
/// at once, at the line that goes over.
fn check_fits_one_bridge(grants: &[Grant]) -> Result<(), ParseError> {
    for (i, grant) in grants.iter().enumerate() {
        let total = grants[..=i]
            .iter()
            .filter(|g| g.who == grant.who && g.network == grant.network)
            .fold(0u32, |sum, g| sum.saturating_add(g.count));
        if total > BRIDGE_PORTS {
            let who = match &grant.who {
                Who::User(name) => name.clone(),
                Who::Group(name) => format!("@{name}"),
            };
            return Err(ParseError {
                line: grant.line,
                message: format!(
                    "{who} would hold up to {total} interfaces on network {}, more than the \
                     {BRIDGE_PORTS} ports a Linux bridge can hold (grant at most {BRIDGE_PORTS}, \
                     or spread the containers over more networks)",
                    grant.network
                ),
            });
        }
    }
    Ok(())
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
