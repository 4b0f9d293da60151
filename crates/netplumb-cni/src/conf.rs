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
    /// addresses (netplumb's pinned bridge port and bridge guard).
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
        let decode = |e: serde_json::Error| {
            Error::FailedToDecode(format!("network configuration on stdin: {e}"))
        };
        let mut conf: serde_json::Value = serde_json::from_slice(stdin).map_err(decode)?;
        mapping_keys_as_written(&mut conf);
        let keys: Keys = serde_json::from_value(conf).map_err(decode)?;
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

/// The keys of `runtimeConfig.portMappings` entries in the spec's spelling
/// (`hostPort`, `containerPort`, `protocol`, `hostIP`), whatever their case:
/// containerd's CRI and nerdctl send them through go-cni, whose mapping type
/// has no JSON names (`HostPort`, ...), and Go plugins such as `portmap`
/// match names regardless of case.
fn mapping_keys_as_written(conf: &mut serde_json::Value) {
    const KEYS: [&str; 4] = ["hostPort", "containerPort", "protocol", "hostIP"];
    let Some(entries) = conf
        .pointer_mut("/runtimeConfig/portMappings")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for entry in entries
        .iter_mut()
        .filter_map(serde_json::Value::as_object_mut)
    {
        let found: Vec<(String, &str)> = entry
            .keys()
            .filter_map(|k| {
                let spelled = KEYS.into_iter().find(|s| s.eq_ignore_ascii_case(k))?;
                (k != spelled).then(|| (k.clone(), spelled))
            })
            .collect();
        for (key, spelled) in found {
            if let Some(value) = entry.remove(&key) {
                entry.entry(spelled).or_insert(value);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(conf: serde_json::Value) -> Vec<String> {
        let stdin = serde_json::to_vec(&conf).unwrap();
        Options::parse(&stdin, Cmd::Add)
            .unwrap()
            .mappings
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn port_mappings_from_go_cni_read_as_the_specs() {
        // What containerd's CRI and nerdctl send (go-cni's field names).
        let go_cni = serde_json::json!({"runtimeConfig": {"portMappings": [
            {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
            {"hostport": 53, "CONTAINERPORT": 53, "protocol": "udp", "HostIp": "192.0.2.1"},
        ]}});
        let spec = serde_json::json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"},
        ]}});
        assert_eq!(mappings(go_cni), mappings(spec.clone()));
        assert_eq!(
            mappings(spec),
            ["tcp port 8080 -> 80", "udp 192.0.2.1:53 -> 53"]
        );
    }
}
