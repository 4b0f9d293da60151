//! Who manages a bridge, as the mark in its alias (`IFLA_IFALIAS`) says:
//! netsetgo writes [`NETSETGO_MARK`] and the name of the state that hands
//! out the bridge's addresses, the CNI plugin `netplumb-bridge` writes
//! [`CNI_MARK`]. Each refuses a bridge the other manages, so that no port
//! bypasses the other's leases and guard.
//!
//! Setting an alias needs CAP_NET_ADMIN over the bridge's network
//! namespace: on the host's namespace (root's) no unprivileged user can
//! write or remove a mark, so neither side can be talked into the other's
//! bridge by a user of netsetgo.

use crate::links::Link;

/// The start of the alias of a bridge netsetgo manages (its state's token
/// follows).
pub const NETSETGO_MARK: &str = "netsetgo:";
/// The alias of a bridge the CNI plugin `netplumb-bridge` manages (alone,
/// or followed by text of the plugin's).
pub const CNI_MARK: &str = "netplumb-cni";

/// Who manages a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// netsetgo (the setuid helper), through its state in /run.
    Netsetgo,
    /// The CNI plugin `netplumb-bridge`, for a container engine.
    CniPlugin,
}

impl Manager {
    /// Who manages `bridge`, by its alias; `None` for a bridge neither
    /// marks.
    pub fn of(bridge: &Link) -> Option<Manager> {
        let alias = bridge.alias.as_deref()?;
        if alias.starts_with(NETSETGO_MARK) {
            Some(Manager::Netsetgo)
        } else if alias.starts_with(CNI_MARK) {
            Some(Manager::CniPlugin)
        } else {
            None
        }
    }

    /// How a refusal names it.
    pub fn describe(self) -> &'static str {
        match self {
            Manager::Netsetgo => "netsetgo (the setuid helper, policy /etc/netsetgo/netsetgo.conf)",
            Manager::CniPlugin => "the CNI plugin netplumb-bridge (a container engine's network)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_name_their_manager_and_nothing_else() {
        let mut bridge = Link {
            index: 3,
            name: "br0".into(),
            kind: Some("bridge".into()),
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            mtu: None,
            mac: None,
            up: true,
            port: None,
        };
        assert_eq!(Manager::of(&bridge), None);
        for (alias, manager) in [
            ("netsetgo:803:1a", Some(Manager::Netsetgo)),
            ("netplumb-cni", Some(Manager::CniPlugin)),
            ("uplink to the lab", None),
            ("netsetgo", None),
        ] {
            bridge.alias = Some(alias.into());
            assert_eq!(Manager::of(&bridge), manager, "{alias}");
        }
    }
}
