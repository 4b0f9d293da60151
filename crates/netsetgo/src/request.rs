//! What this call will do: the caller's flags checked against its grants.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::cli::{self, Args};
use crate::error::Failure;
use crate::policy::{self, Network, Policy, SystemAccounts, POLICY_PATH};
use crate::privilege::Caller;

/// A request the caller is allowed to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
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
}

impl Request {
    /// The container-side interface name: lxc-user-nic's IFNAME, or as in
    /// the original (`veth1`).
    pub fn peer_name(&self) -> String {
        match &self.nic {
            Some(cli::Nic::Create { ifname }) => ifname.clone(),
            _ => format!("{}1", self.prefix),
        }
    }

    /// Whether the interface inside is left for DHCP to configure
    /// (lxc-user-nic's create).
    pub fn by_dhcp(&self) -> bool {
        matches!(self.nic, Some(cli::Nic::Create { .. }))
    }

    /// The host-side name: the prefix and the container's IPv4 address in
    /// hex. Unique per address, so unique while the lease is held.
    pub fn host_name(&self, address: Ipv4Addr) -> String {
        format!("{}{:08x}", self.prefix, u32::from(address))
    }
}

/// The longest prefix that leaves room for 8 hex digits in 15 bytes.
const MAX_PREFIX: usize = 7;

pub fn resolve(args: &Args, caller: &Caller) -> Result<Request, Failure> {
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
    if caller.is_root() {
        // Root works as with the original, even with a broken policy; a
        // network the policy defines keeps its settings.
        let policy = policy::load().ok().flatten();
        let network = root_network(args, policy.as_ref())?;
        let address = requested_address(args, &network)?;
        return Ok(Request {
            network,
            quota: None,
            address,
            prefix,
            nic: args.nic.clone(),
        });
    }
    let policy = policy::load()?.ok_or_else(no_grant)?;
    let allowances = policy.allowances(caller, &SystemAccounts)?;
    let chosen = match &args.bridge_name {
        Some(bridge) => allowances
            .iter()
            .find(|a| &a.network.bridge == bridge)
            .ok_or_else(|| {
                Failure::refused(format!(
                "you have no grant for bridge {bridge:?} in {POLICY_PATH}; ask an administrator"
            ))
            })?,
        None => allowances.first().ok_or_else(no_grant)?,
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
    Ok(Request {
        network,
        quota: Some(chosen.quota),
        address,
        prefix,
        nic: args.nic.clone(),
    })
}

fn no_grant() -> Failure {
    Failure::refused(format!(
        "you have no grant to use netsetgo; an administrator can add one to {POLICY_PATH}"
    ))
}

fn root_network(args: &Args, policy: Option<&Policy>) -> Result<Network, Failure> {
    let bridge = args
        .bridge_name
        .clone()
        .unwrap_or_else(|| cli::DEFAULT_BRIDGE.into());
    netplumb::check_name(&bridge).map_err(Failure::from)?;
    if let Some(network) = policy.and_then(|p| p.network_by_bridge(&bridge)) {
        if args.bridge_address.is_none() {
            return Ok(network.clone());
        }
    }
    let text = args
        .bridge_address
        .as_deref()
        .unwrap_or(cli::DEFAULT_BRIDGE_ADDRESS);
    let gateway = policy::parse_gateway(text)
        .map_err(|e| Failure::refused(format!("invalid -bridgeAddress: {e}")))?;
    Ok(Network {
        name: bridge.clone(),
        bridge,
        gateway,
        gateway6: None,
        mtu: None,
        nat: false,
        dns: Vec::new(),
    })
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
