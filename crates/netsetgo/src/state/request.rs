//! What this call will do: the caller's flags checked against its grants.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::cli::{self, Args};
use crate::error::Failure;
use crate::policy::{self, Network, Policy, Ports, SystemAccounts, POLICY_PATH};
use crate::ports::{HostPort, Mapping};
use crate::privilege::Caller;

/// A request the caller is allowed to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The network asked for, as the policy (or the state) defines it.
    pub network: Network,
    /// How many interfaces the caller may hold on it; `None` for root.
    pub quota: Option<u32>,
    /// A specific container address the caller asked for.
    pub address: Option<Ipv4Addr>,
    /// Prefix of the veth names.
    pub prefix: String,
    /// lxc-user-nic's form: the interface's name inside (create) or the
    /// host end's (delete). Its bridge is checked like `-bridgeName`.
    pub nic: Option<cli::Nic>,
    /// Host ports to publish to the container, within the grants.
    pub publish: Vec<Mapping>,
    /// Host ports the caller's own interface publishes, to remove
    /// (`-unpublish`: no grant needed, only its own are touched).
    pub unpublish: Vec<HostPort>,
    /// Where the network is known from.
    pub known: Known,
}

/// Where a request's network is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The policy (or, for root, the flags) defines it.
    Defined,
    /// Its state recorded it, its subnet read from there: a removal of
    /// one's own interface without a grant for it (`-delete`, poststop),
    /// or a network `-restore` finds no longer in the policy as it was
    /// ([`Network::retired`]).
    Recorded,
}

/// What a call is for, as far as the grants go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Wiring a container (`-pid`, a createRuntime hook): within the
    /// grants, `-publish` included.
    Wire,
    /// `-check`: on a granted network.
    Check,
    /// Removing the caller's own interface (`-delete`, lxc-user-nic's
    /// `delete`, a poststop hook) or its own publications (`-unpublish`):
    /// always possible, also when its network
    /// or the caller's grant is gone, since only what is recorded for the
    /// caller's uid is touched (security.md 13).
    Remove,
}

impl Request {
    /// Whether the interface inside gets its IPv4 address by DHCP
    /// (lxc-user-nic's create).
    pub fn by_dhcp(&self) -> bool {
        matches!(self.nic, Some(cli::Nic::Create { .. }))
    }

    /// What `-restore` asks of one network with state: root's, bound by
    /// no quota, making nothing; [`Known::Recorded`] when it left the
    /// policy.
    pub fn restoring(network: Network, known: Known) -> Request {
        Request {
            network,
            quota: None,
            address: None,
            prefix: cli::DEFAULT_PREFIX.into(),
            nic: None,
            publish: Vec::new(),
            unpublish: Vec::new(),
            known,
        }
    }
}

/// The longest prefix that leaves room for 8 hex digits in 15 bytes.
const MAX_PREFIX: usize = 7;

/// The request `args` make of `caller`'s grants for `intent`; `-publish`
/// counts only when wiring (a poststop hook whose args repeat it releases
/// all the same).
pub fn resolve(
    args: &Args,
    caller: &Caller,
    intent: Intent,
    accounts: &SystemAccounts,
) -> Result<Request, Failure> {
    let prefix = veth_prefix(args)?;
    if caller.is_root() {
        root_request(args, intent, prefix)
    } else {
        granted_request(args, caller, intent, prefix, accounts)
    }
}

/// `-publish` when wiring, within `grants`; nothing otherwise.
fn publish(
    args: &Args,
    intent: Intent,
    network: &Network,
    grants: Option<&[Ports]>,
) -> Result<Vec<Mapping>, Failure> {
    match intent {
        Intent::Wire => publications(args, network, grants),
        Intent::Check | Intent::Remove => Ok(Vec::new()),
    }
}

/// `-vethNamePrefix`, checked, or the default.
fn veth_prefix(args: &Args) -> Result<String, Failure> {
    let prefix = args
        .veth_prefix
        .clone()
        .unwrap_or_else(|| cli::DEFAULT_PREFIX.into());
    if prefix.is_empty()
        || prefix.len() > MAX_PREFIX
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Failure::refused(format!(
            "invalid -vethNamePrefix {prefix:?}: use 1-{MAX_PREFIX} characters from A-Z a-z 0-9 _ . -"
        )));
    }
    Ok(prefix)
}

/// Root's request: as with the original, even with a broken policy; a
/// network the policy defines keeps its settings.
fn root_request(args: &Args, intent: Intent, prefix: String) -> Result<Request, Failure> {
    let policy = policy::load().ok().flatten();
    let (network, known) = match root_network(args, policy.as_ref(), intent)? {
        Some(network) => (network, Known::Defined),
        None => (retired(args)?, Known::Recorded),
    };
    let address = requested_address(args, &network)?;
    let publish = publish(args, intent, &network, None)?;
    Ok(Request {
        network,
        quota: None,
        address,
        prefix,
        nic: args.nic.clone(),
        publish,
        unpublish: args.unpublish.clone(),
        known,
    })
}

/// Another caller's request: within its grant for the network it names
/// (or its first); without one, only the removal of its own interface.
fn granted_request(
    args: &Args,
    caller: &Caller,
    intent: Intent,
    prefix: String,
    accounts: &SystemAccounts,
) -> Result<Request, Failure> {
    let policy = policy::load()?;
    let allowances = match &policy {
        Some(policy) => policy.allowances(caller, accounts)?,
        None => Vec::new(),
    };
    let granted = match &args.bridge_name {
        Some(bridge) => allowances.iter().find(|a| &a.network.bridge == bridge),
        None => allowances.first(),
    };
    let chosen = match (granted, intent) {
        (Some(chosen), _) => chosen,
        (None, Intent::Remove) => return ungranted_removal(args, policy.as_ref(), prefix),
        (None, _) => {
            return Err(match &args.bridge_name {
                Some(bridge) if policy.is_some() => Failure::refused(format!(
                    "you have no grant for bridge {bridge:?} in {POLICY_PATH}; ask an administrator"
                )),
                _ => no_grant(),
            })
        }
    };
    let network = chosen.network.clone();
    if let Some(text) = &args.bridge_address {
        let asked = parse_cidr(text, "-bridgeAddress")?;
        if asked != network.gateway {
            return Err(Failure::refused(format!(
                "-bridgeAddress {asked} is not allowed: bridge {} has address {} in {POLICY_PATH}",
                network.bridge, network.gateway
            )));
        }
    }
    let address = requested_address(args, &network)?;
    let publish = publish(args, intent, &network, Some(&chosen.ports))?;
    Ok(Request {
        network,
        quota: Some(chosen.quota),
        address,
        prefix,
        nic: args.nic.clone(),
        publish,
        unpublish: args.unpublish.clone(),
        known: Known::Defined,
    })
}

/// One's own interface goes whatever the policy says now: on the network
/// the policy still defines for that bridge (if any), with the subnet its
/// state recorded, so that a call without a grant creates no state.
fn ungranted_removal(
    args: &Args,
    policy: Option<&Policy>,
    prefix: String,
) -> Result<Request, Failure> {
    let mut network = retired(args)?;
    if let Some(known) = policy.and_then(|p| p.network_by_bridge(&network.bridge)) {
        network = known.clone();
    }
    Ok(Request {
        network,
        quota: None,
        address: None,
        prefix,
        nic: args.nic.clone(),
        publish: Vec::new(),
        unpublish: args.unpublish.clone(),
        known: Known::Recorded,
    })
}

/// The policy `-restore` restores by (none: every network with state has
/// left it), for root only. A policy that does not parse restores nothing:
/// reconciled with it, every publication would look revoked.
pub fn restorable(caller: &Caller) -> Result<Policy, Failure> {
    if !caller.is_root() {
        return Err(Failure::refused(
            "netsetgo -restore is for root only (the packages run it as netsetgo-restore.service when the firewall starts); ask an administrator",
        ));
    }
    Ok(policy::load()?.unwrap_or_default())
}

/// What `-restore` restores `bridge`'s state as: the policy's network of
/// that bridge, or, once it is no longer in the policy as its state
/// recorded it (gone, or its subnet changed: its leases are for the old
/// one), the network as recorded. `None` for state that never held a
/// lease (no recorded subnet) and is not in the policy: nothing to do.
pub fn restoring(policy: &Policy, bridge: &str, recorded: Option<Ipv4Network>) -> Option<Request> {
    match (policy.network_by_bridge(bridge), recorded) {
        (Some(network), None) => Some(Request::restoring(network.clone(), Known::Defined)),
        (Some(network), Some(gateway)) if gateway == network.gateway => {
            Some(Request::restoring(network.clone(), Known::Defined))
        }
        (_, Some(gateway)) => Some(Request::restoring(
            Network::retired(bridge, gateway),
            Known::Recorded,
        )),
        (None, None) => None,
    }
}

/// How `-restore` names `bridge` when its state cannot be read: the
/// policy's network, or the bridge alone.
pub fn unreadable(policy: &Policy, bridge: &str) -> Request {
    match policy.network_by_bridge(bridge) {
        Some(network) => Request::restoring(network.clone(), Known::Defined),
        None => Request::restoring(by_name(bridge), Known::Recorded),
    }
}

/// `bridge` as a network known by its name alone, until its state says
/// which subnet it had.
fn by_name(bridge: &str) -> Network {
    let default = policy::parse_gateway(cli::DEFAULT_BRIDGE_ADDRESS).expect("valid default");
    Network::retired(bridge, default)
}

/// A network that left the policy, known by the bridge `args` name (or
/// the default one) until its state says what its subnet was.
fn retired(args: &Args) -> Result<Network, Failure> {
    let bridge = args.bridge_name.as_deref().unwrap_or(cli::DEFAULT_BRIDGE);
    netplumb::check_name(bridge).map_err(Failure::from)?;
    Ok(by_name(bridge))
}

/// The `-publish` mappings, each within `grants` (`None`: root, bound by
/// none), with a host address that could be local and not loopback (which
/// would need route_localnet), of a family the network has. Whether the
/// address is one of the host's is the kernel's to say, later.
pub fn publications(
    args: &Args,
    network: &Network,
    grants: Option<&[Ports]>,
) -> Result<Vec<Mapping>, Failure> {
    for m in &args.publish {
        let protocol = m.protocol.name();
        if let Some(grants) = grants {
            if !grants.iter().any(|g| g.contains(m.protocol, m.host_port)) {
                return Err(Failure::refused(format!(
                    "-publish {m}: {protocol} port {} is not among your publish grants for network {} in {POLICY_PATH}; ask an administrator",
                    m.host_port, network.name
                )));
            }
        }
        match m.host_address {
            Some(a) if a.is_loopback() => {
                return Err(Failure::refused(format!(
                    "-publish {m}: loopback addresses cannot be published; leave the address out to publish on every other local address"
                )))
            }
            Some(a) if a.is_unspecified() || a.is_multicast() || a == std::net::Ipv4Addr::BROADCAST => {
                return Err(Failure::refused(format!(
                    "-publish {m}: {a} is no local unicast address; leave the address out to publish on every local address"
                )))
            }
            Some(std::net::IpAddr::V6(_)) if network.gateway6.is_none() => {
                return Err(Failure::refused(format!(
                    "-publish {m}: network {} has no IPv6 (gateway6 in {POLICY_PATH})",
                    network.name
                )))
            }
            _ => {}
        }
    }
    Ok(args.publish.clone())
}

fn no_grant() -> Failure {
    Failure::refused(format!(
        "you have no grant to use netsetgo; an administrator can add one to {POLICY_PATH}"
    ))
}

/// Root's network: the policy's for its bridge, or the flags' (their
/// defaults as in the original). `None` for a `-delete` (or poststop) of
/// a bridge the policy no longer defines, without `-bridgeAddress`: that
/// state says which subnet it had.
fn root_network(
    args: &Args,
    policy: Option<&Policy>,
    intent: Intent,
) -> Result<Option<Network>, Failure> {
    let bridge = args
        .bridge_name
        .clone()
        .unwrap_or_else(|| cli::DEFAULT_BRIDGE.into());
    netplumb::check_name(&bridge).map_err(Failure::from)?;
    if let Some(network) = policy.and_then(|p| p.network_by_bridge(&bridge)) {
        if args.bridge_address.is_none() {
            return Ok(Some(network.clone()));
        }
    }
    if intent == Intent::Remove && args.bridge_address.is_none() {
        return Ok(None);
    }
    let text = args
        .bridge_address
        .as_deref()
        .unwrap_or(cli::DEFAULT_BRIDGE_ADDRESS);
    let gateway = policy::parse_gateway(text)
        .map_err(|e| Failure::refused(format!("invalid -bridgeAddress: {e}")))?;
    Ok(Some(Network::retired(&bridge, gateway)))
}

fn parse_cidr(text: &str, flag: &str) -> Result<Ipv4Network, Failure> {
    text.parse::<Ipv4Network>().map_err(|_| {
        Failure::refused(format!(
            "invalid {flag} {text:?}: expected IPv4 CIDR like 10.10.10.2/24"
        ))
    })
}

/// A `-containerAddress` must be a host address of the network's subnet,
/// with the subnet's prefix length, and not the gateway.
fn requested_address(args: &Args, network: &Network) -> Result<Option<Ipv4Addr>, Failure> {
    let Some(text) = &args.container_address else {
        return Ok(None);
    };
    let asked = parse_cidr(text, "-containerAddress")?;
    let subnet = network.gateway;
    let ip = asked.ip();
    if asked.prefix() != subnet.prefix()
        || !subnet.contains(ip)
        || ip == subnet.network()
        || ip == subnet.broadcast()
        || ip == subnet.ip()
    {
        return Err(Failure::refused(format!(
            "-containerAddress {asked} is not a free host address of {} (gateway {})",
            Ipv4Network::new(subnet.network(), subnet.prefix()).expect("valid prefix"),
            subnet.ip()
        )));
    }
    Ok(Some(ip))
}

#[cfg(test)]
mod tests {
    use netplumb::Protocol;

    use super::*;

    fn args(publish: &[&str]) -> Args {
        let mut argv = vec!["-pid".to_string(), "7".to_string()];
        for p in publish {
            argv.push(format!("-publish={p}"));
        }
        cli::parse(argv.iter().map(String::as_bytes)).unwrap()
    }

    #[test]
    fn publications_within_the_grants_with_usable_host_addresses() {
        let grants = [
            Ports {
                protocol: Protocol::Tcp,
                first: 8000,
                last: 8999,
            },
            Ports {
                protocol: Protocol::Udp,
                first: 53,
                last: 53,
            },
        ];
        let v4 = Network::example(None);
        let v6 = Network::example(Some("fd00:10::1/64"));
        let ok = args(&[
            "tcp:8000:80",
            "tcp:8999:80",
            "udp:53:53",
            "tcp:192.0.2.1:8080:80",
        ]);
        assert_eq!(publications(&ok, &v4, Some(&grants)).unwrap().len(), 4);
        let ipv6 = args(&["tcp:[2001:db8::1]:8080:80"]);
        assert_eq!(publications(&ipv6, &v6, Some(&grants)).unwrap().len(), 1);
        // Root is bound by no grant.
        let any = args(&["tcp:80:80", "udp:9:9"]);
        assert_eq!(publications(&any, &v4, None).unwrap().len(), 2);
        assert!(publications(&args(&[]), &v4, Some(&[])).unwrap().is_empty());
        for (bad, net, why) in [
            ("tcp:7999:80", &v4, "not among your publish grants"),
            ("tcp:9000:80", &v4, "not among your publish grants"),
            ("udp:8000:80", &v4, "not among your publish grants"),
            ("tcp:53:53", &v4, "not among your publish grants"),
            ("tcp:127.0.0.1:8080:80", &v4, "loopback"),
            ("tcp:127.9.9.9:8080:80", &v4, "loopback"),
            ("tcp:[::1]:8080:80", &v6, "loopback"),
            ("tcp:0.0.0.0:8080:80", &v4, "no local unicast"),
            ("tcp:[::]:8080:80", &v6, "no local unicast"),
            ("tcp:224.0.0.1:8080:80", &v4, "no local unicast"),
            ("tcp:255.255.255.255:8080:80", &v4, "no local unicast"),
            ("tcp:[2001:db8::1]:8080:80", &v4, "has no IPv6"),
        ] {
            let refused = publications(&args(&[bad]), net, Some(&grants)).unwrap_err();
            assert_eq!(refused.kind, crate::error::Kind::Refused, "{bad}");
            assert!(refused.message.contains(why), "{bad}: {refused}");
        }
        // Loopback is refused for root too.
        assert!(publications(&args(&["tcp:127.0.0.1:80:80"]), &v4, None).is_err());
    }

    #[test]
    fn restore_takes_the_policys_network_or_the_one_its_state_recorded() {
        let policy = policy::parse(
            "network default bridge=brg0 gateway=10.10.10.1/24 nat=yes guard=no\n\
             network lab bridge=labbr0 gateway=10.20.0.1/24\n",
        )
        .unwrap();
        let gateway = |g: &str| g.parse::<Ipv4Network>().unwrap();
        // In the policy as recorded (or never locked yet): the policy's.
        for recorded in [Some(gateway("10.10.10.1/24")), None] {
            let r = restoring(&policy, "brg0", recorded).unwrap();
            assert_eq!(r.known, Known::Defined);
            assert_eq!(&r.network, policy.network_by_bridge("brg0").unwrap());
        }
        // Its subnet changed: the leases are for the old one, which is
        // no longer in the policy.
        let r = restoring(&policy, "labbr0", Some(gateway("10.99.0.1/24"))).unwrap();
        assert_eq!(r.known, Known::Recorded);
        assert_eq!(
            r.network,
            Network::retired("labbr0", gateway("10.99.0.1/24"))
        );
        // Gone from the policy.
        let r = restoring(&policy, "oldbr0", Some(gateway("10.30.0.1/24"))).unwrap();
        assert!(r.known == Known::Recorded && r.network.guard && !r.network.nat);
        assert_eq!((r.network.name.as_str(), r.quota), ("oldbr0", None));
        // Gone, and never held a lease.
        assert_eq!(restoring(&policy, "oldbr0", None), None);
    }
}
