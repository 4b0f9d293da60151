//! What the engine tells the plugin: this plugin's keys of the network
//! configuration, and the `CNI_*` environment.

use rscni_types::error::Error;
use rscni_types::types::{
    Cmd, ContainerId, RuntimeConf, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_PATH,
};
use serde::Deserialize;

use crate::ports::Mapping;

/// The bridge when the configuration names none (the reference plugin's).
const DEFAULT_BRIDGE: &str = "cni0";

/// This plugin's keys; every other key of the configuration is ignored
/// here (and passed unchanged to the IPAM plugin with the rest of stdin).
#[derive(Debug)]
pub struct Options {
    /// The bridge's name.
    pub bridge: String,
    /// The bridge gets each subnet's gateway address.
    pub is_gateway: bool,
    /// The container gets a default route through each subnet's gateway;
    /// implies `is_gateway`.
    pub is_default_gateway: bool,
    /// MTU of the veth pair and of a bridge this plugin creates.
    pub mtu: Option<u32>,
    /// netsetgo's `guard=yes`: the container may send only from its MAC and
    /// addresses (netplumb's pinned bridge port and netdev guard).
    pub guard: bool,
    /// netsetgo's `isolate=yes`: an isolated bridge port, so containers
    /// reach the gateway and beyond, not each other.
    pub isolate: bool,
    /// `runtimeConfig.portMappings` (the `portMappings` capability).
    pub mappings: Vec<Mapping>,
}

/// The keys as written; `null` reads as absent, as Go plugins read it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Keys {
    bridge: Option<String>,
    is_gateway: Option<bool>,
    is_default_gateway: Option<bool>,
    mtu: Option<u32>,
    guard: Option<bool>,
    isolate: Option<bool>,
    runtime_config: Option<RuntimeConf>,
}

impl Options {
    /// Reads this plugin's keys from the configuration on stdin. For DEL,
    /// port mappings that cannot be published are skipped, not refused:
    /// ADD refused them before making anything, and the engine's DEL after
    /// that ADD must not fail on them.
    pub fn parse(stdin: &[u8], cmd: Cmd) -> Result<Options, Error> {
        let keys: Keys = serde_json::from_slice(stdin)
            .map_err(|e| Error::FailedToDecode(format!("network configuration on stdin: {e}")))?;
        let bridge = keys.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        netplumb::check_name(&bridge)
            .map_err(|e| Error::InvalidNetworkConfig(format!("bridge: {e}")))?;
        if let Some(mtu) = keys.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(Error::InvalidNetworkConfig(format!(
                    "mtu {mtu}: use 68 to 65535"
                )));
            }
        }
        let is_default_gateway = keys.is_default_gateway.unwrap_or(false);
        let asked = keys
            .runtime_config
            .map(|r| r.port_mappings)
            .unwrap_or_default();
        let read = asked.iter().map(Mapping::from_cni);
        let mappings = match cmd {
            Cmd::Del => read.filter_map(Result::ok).collect(),
            _ => read.collect::<Result<Vec<Mapping>, Error>>()?,
        };
        Ok(Options {
            bridge,
            is_gateway: is_default_gateway || keys.is_gateway.unwrap_or(false),
            is_default_gateway,
            mtu: keys.mtu,
            guard: keys.guard.unwrap_or(false),
            isolate: keys.isolate.unwrap_or(false),
            mappings,
        })
    }
}

/// The `CNI_*` variables an operation uses. Those an operation does not
/// need are empty.
#[derive(Debug)]
pub struct Env {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: a path such as `/run/netns/NAME`; may be empty for DEL.
    pub netns: String,
    /// `CNI_IFNAME`: the interface inside the container.
    pub ifname: String,
    /// `CNI_PATH`: where plugins (the IPAM plugin) are looked for.
    pub path: String,
}

impl Env {
    /// Reads and checks the variables `cmd` requires (error code 4 when one
    /// is missing or malformed).
    pub fn read(cmd: Cmd) -> Result<Env, Error> {
        let required: &[&str] = match cmd {
            Cmd::Add | Cmd::Check => &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH],
            Cmd::Del => &[CNI_CONTAINERID, CNI_IFNAME, CNI_PATH],
            Cmd::Gc | Cmd::Status | Cmd::Version => &[CNI_PATH],
        };
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|name| var(name).is_empty())
            .collect();
        if !missing.is_empty() {
            return Err(Error::missing_env(&missing));
        }
        let env = Env {
            container_id: var(CNI_CONTAINERID),
            netns: var(CNI_NETNS),
            ifname: var(CNI_IFNAME),
            path: var(CNI_PATH),
        };
        if required.contains(&CNI_CONTAINERID) {
            ContainerId::try_from(env.container_id.clone())?;
            netplumb::check_name(&env.ifname)
                .map_err(|e| Error::InvalidEnvValue(format!("{CNI_IFNAME}: {e}")))?;
        }
        Ok(env)
    }
}
