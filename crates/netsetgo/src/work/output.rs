//! The one line (or one JSON object) a call prints.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::error::Failure;
use crate::ports::Mapping;

/// What a successful wiring made.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The interface's name inside.
    pub interface: String,
    /// The interface's index inside, and the host end's.
    pub index: u32,
    /// The host end's index.
    pub host_index: u32,
    /// The interface's MAC address inside, if set.
    pub mac: Option<[u8; 6]>,
    /// Its addresses.
    pub addresses: Vec<IpNetwork>,
    /// Its default gateways.
    pub gateways: Vec<IpAddr>,
    /// The host end's name.
    pub host_interface: String,
    /// The bridge it is on.
    pub bridge: String,
    /// The MTU, if the network sets one.
    pub mtu: Option<u32>,
    /// The network's DNS servers (`dns=`, or the gateway).
    pub dns: Vec<Ipv4Addr>,
    /// The host ports published to the container.
    pub published: Vec<Mapping>,
    /// Whether the host end is guarded, and isolated (the network's
    /// `guard=` and `isolate=`).
    pub guard: bool,
    /// Whether its bridge port is isolated (`isolate=`).
    pub isolated: bool,
    /// Found already there rather than made by this call (`-check`,
    /// `-unpublish`, a `-publish` added to a container wired already).
    pub existing: bool,
}

/// What `-restore` did on one network with state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// The network's name; its bridge's once it left the policy.
    pub network: String,
    /// The network's bridge.
    pub bridge: String,
    /// The network is no longer in the policy: its live leases are kept
    /// (and guarded) until their interfaces go, and nothing is published.
    pub retired: bool,
    /// Leases with a live interface.
    pub leases: usize,
    /// Of those, how many are guarded now, and how many guards were
    /// re-created.
    pub guarded: usize,
    /// Guards re-created.
    pub guards_restored: usize,
    /// Guarded leases' bridge ports whose flags were set again (a port
    /// made before the bridge guard had no group forwarding mask).
    pub bridge_ports_restored: usize,
    /// Publications in place now, and how many were re-created.
    pub publications: usize,
    /// Publications re-created.
    pub publications_restored: usize,
    /// Masquerading (`nat=yes`) and the hairpin, in place now.
    pub masquerade: bool,
    /// The hairpin, in place now.
    pub hairpin: bool,
    /// The isolation rule (`isolate=yes`), in place now.
    pub isolation: bool,
    /// Leases whose interface was gone, collected.
    pub collected: usize,
    /// Publications removed because no grant covers them any more, or
    /// their network left the policy (`tcp:8080:80 of 10.10.10.2`).
    pub revoked: Vec<String>,
    /// What could not be restored.
    pub failed: Vec<String>,
    /// The network's restore stopped before it re-created anything (its
    /// lock stayed busy, its state could not be read): `failed` says why,
    /// and the counts say nothing.
    pub not_restored: bool,
}

impl Restored {
    /// One line: `restore: network default (brg0): 3 leases, 3 guarded,
    /// 2 publications, masquerade; ...`.
    pub fn line(&self) -> String {
        if self.not_restored {
            let what = match self.retired {
                true => format!("bridge {} (no longer in the policy)", self.bridge),
                false => format!("network {} ({})", self.network, self.bridge),
            };
            return format!(
                "restore: {what}: NOT restored, nothing was re-created: {}",
                self.failed.join("; ")
            );
        }
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut line =
            if self.retired {
                format!(
                "restore: bridge {} (no longer in the policy): {} kept until {} gone, {} guarded",
                self.bridge,
                plural(self.leases, "lease"),
                if self.leases == 1 { "its interface is" } else { "their interfaces are" },
                self.guarded
            )
            } else {
                format!(
                    "restore: network {} ({}): {}, {} guarded, {}",
                    self.network,
                    self.bridge,
                    plural(self.leases, "lease"),
                    self.guarded,
                    plural(self.publications, "publication")
                )
            };
        let rules = [
            (self.masquerade, "masquerade"),
            (self.isolation, "isolation"),
            (self.hairpin, "hairpin"),
        ];
        for (on, what) in rules {
            if on {
                let _ = write!(line, ", {what}");
            }
        }
        if self.bridge_ports_restored > 0 {
            let ports = plural(self.bridge_ports_restored, "bridge port");
            let _ = write!(line, "; set the guard's flags of {ports}");
        }
        if self.guards_restored + self.publications_restored + self.bridge_ports_restored == 0 {
            line.push_str("; nothing was missing");
        } else {
            let _ = write!(
                line,
                "; re-created {} and {}",
                plural(self.guards_restored, "guard"),
                plural(self.publications_restored, "publication")
            );
        }
        if self.collected > 0 {
            let _ = write!(
                line,
                "; collected {} whose interface is gone",
                plural(self.collected, "lease")
            );
        }
        if !self.revoked.is_empty() {
            let why = if self.retired {
                "the network left the policy"
            } else {
                "no grant covers them"
            };
            let _ = write!(line, "; removed ({why}): {}", self.revoked.join(", "));
        }
        if !self.failed.is_empty() {
            let _ = write!(line, "; FAILED: {}", self.failed.join("; "));
        }
        line
    }
}

/// What `-restore` did to the guard as a whole, after every network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuardUpkeep {
    /// Elements of devices that are gone, deleted.
    pub pruned: usize,
    /// The netdev guard tables of the version before the bridge guard,
    /// deleted (every network was restored whole).
    pub legacy_removed: Vec<String>,
    /// Those kept, because a network was not restored whole.
    pub legacy_kept: Vec<String>,
    /// What failed.
    pub failed: Vec<String>,
}

impl GuardUpkeep {
    /// Its line (`restore: guard: ...`), when there is something to say.
    pub fn line(&self) -> Option<String> {
        let mut said = Vec::new();
        if self.pruned > 0 {
            said.push(format!("deleted {} elements of gone devices", self.pruned));
        }
        if !self.legacy_removed.is_empty() {
            let tables = self.legacy_removed.join(", ");
            said.push(format!("deleted the netdev guard of before: {tables}"));
        }
        if !self.legacy_kept.is_empty() {
            let tables = self.legacy_kept.join(", ");
            said.push(format!(
                "KEPT the netdev guard of before until every network is restored: {tables}"
            ));
        }
        if !self.failed.is_empty() {
            said.push(format!("FAILED: {}", self.failed.join("; ")));
        }
        (!said.is_empty()).then(|| format!("restore: guard: {}", said.join("; ")))
    }
}

/// What a call reports on success.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Created (or, with `intact`, checked by -check).
    Wired {
        /// What was made (or found).
        wired: Wired,
        /// `-check` found it intact.
        intact: bool,
    },
    /// Created in lxc-user-nic's form, which prints its own line.
    Nic(Wired),
    /// Interfaces removed and leases freed (-delete, poststop hook).
    Removed {
        /// The host ends removed.
        host_interfaces: Vec<String>,
        /// The addresses freed.
        addresses: Vec<IpAddr>,
    },
    /// `-restore`: one entry per network with state, and the guard's
    /// upkeep.
    Restored(Vec<Restored>, GuardUpkeep),
}

impl Outcome {
    /// A `-restore` that could not restore everything: exit status 1, with
    /// a message naming each network (what it did restore is printed too).
    pub fn failure(&self) -> Option<Failure> {
        let Outcome::Restored(networks, upkeep) = self else {
            return None;
        };
        let mut failed: Vec<String> = networks
            .iter()
            .filter(|n| !n.failed.is_empty())
            .map(|n| {
                format!(
                    "network {} ({}): {}",
                    n.network,
                    n.bridge,
                    n.failed.join("; ")
                )
            })
            .collect();
        if !upkeep.failed.is_empty() {
            failed.push(format!("the guard: {}", upkeep.failed.join("; ")));
        }
        (!failed.is_empty()).then(|| {
            Failure::internal(format!(
                "restore incomplete: {}; fix that and run netsetgo -restore again",
                failed.join("; ")
            ))
        })
    }

    /// The outcome as netsetgo's line on stdout.
    pub fn line(&self) -> String {
        match self {
            Outcome::Nic(w) => format!(
                "{}:{}:{}:{}",
                w.interface, w.index, w.host_interface, w.host_index
            ),
            Outcome::Wired { wired: w, intact } => {
                let mut line = if *intact {
                    format!("intact {}", w.interface)
                } else {
                    w.interface.clone()
                };
                for a in &w.addresses {
                    let _ = write!(line, " address={a}");
                }
                for g in &w.gateways {
                    let _ = write!(line, " gateway={g}");
                }
                let _ = write!(line, " host={} bridge={}", w.host_interface, w.bridge);
                if let Some(mtu) = w.mtu {
                    let _ = write!(line, " mtu={mtu}");
                }
                for m in &w.published {
                    let _ = write!(line, " publish={m}");
                }
                line
            }
            Outcome::Removed {
                host_interfaces,
                addresses,
            } => {
                let mut line = format!("removed {}", host_interfaces.len());
                for (host, address) in host_interfaces.iter().zip(addresses) {
                    let _ = write!(line, " host={host} address={address}");
                }
                line
            }
            Outcome::Restored(networks, upkeep) => {
                let mut lines: Vec<String> = networks.iter().map(Restored::line).collect();
                if lines.is_empty() {
                    lines.push(
                        "restore: no network has leases in this network namespace; nothing to restore"
                            .to_string(),
                    );
                }
                lines.extend(upkeep.line());
                lines.join("\n")
            }
        }
    }

    /// The outcome as one JSON object (`-json`).
    pub fn json(&self) -> String {
        match self {
            Outcome::Wired { wired: w, .. } | Outcome::Nic(w) => Json::Wired {
                intact: matches!(self, Outcome::Wired { intact: true, .. }),
                interface: &w.interface,
                mac: w.mac.map(crate::plan::mac_text),
                addresses: w.addresses.iter().map(IpNetwork::to_string).collect(),
                gateways: &w.gateways,
                host_interface: &w.host_interface,
                bridge: &w.bridge,
                mtu: w.mtu,
                dns: &w.dns,
                published: w.published.iter().map(Published::from).collect(),
                guard: w.guard,
                isolated: w.isolated,
            },
            Outcome::Removed {
                host_interfaces,
                addresses,
            } => Json::Removed {
                removed: host_interfaces,
                addresses,
            },
            Outcome::Restored(networks, upkeep) => Json::Restored {
                restored: networks,
                guard: upkeep,
            },
        }
        .text()
    }
}

/// A failure as one JSON object (`-json`).
pub fn failure_json(f: &Failure) -> String {
    Json::Error {
        error: f.code(),
        message: &f.message,
    }
    .text()
}

/// Every object we print, each with its fields in this order; optional
/// fields are left out when absent.
#[derive(Serialize)]
#[serde(untagged)]
enum Json<'a> {
    Wired {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        intact: bool,
        interface: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        addresses: Vec<String>,
        gateways: &'a [IpAddr],
        host_interface: &'a str,
        bridge: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        dns: &'a [Ipv4Addr],
        published: Vec<Published>,
        guard: bool,
        isolated: bool,
    },
    Removed {
        removed: &'a [String],
        addresses: &'a [IpAddr],
    },
    Restored {
        restored: &'a [Restored],
        guard: &'a GuardUpkeep,
    },
    Error {
        error: &'static str,
        message: &'a str,
    },
}

/// One published port as `-json` shows it.
#[derive(Serialize)]
struct Published {
    protocol: &'static str,
    host_address: Option<IpAddr>,
    host_port: u16,
    container_port: u16,
}

impl From<&Mapping> for Published {
    fn from(m: &Mapping) -> Published {
        Published {
            protocol: m.protocol.name(),
            host_address: m.host_address,
            host_port: m.host_port,
            container_port: m.container_port,
        }
    }
}

impl Json<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("strings, numbers and lists always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_shapes() {
        let f = Failure::refused("a \"quoted\"\nline");
        // serde_json writes a newline as \n where the hand-written writer
        // wrote \u000a: the same JSON string for every consumer.
        assert_eq!(
            failure_json(&f),
            r#"{"error":"refused","message":"a \"quoted\"\nline"}"#
        );
        let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(
            parsed(&failure_json(&f)),
            parsed(r#"{"error":"refused","message":"a \"quoted\"\u000aline"}"#)
        );
        assert_eq!(
            failure_json(&Failure::broken("\u{1b}\u{7f}é")),
            "{\"error\":\"broken\",\"message\":\"\\u001b\u{7f}é\"}"
        );
        let w = Outcome::Wired {
            intact: false,
            wired: Wired {
                interface: "veth1".into(),
                index: 2,
                host_index: 7,
                mac: Some([2, 0, 0, 0, 0, 1]),
                addresses: vec!["10.10.10.2/24".parse().unwrap()],
                gateways: vec!["10.10.10.1".parse().unwrap()],
                host_interface: "veth0a0a0a02".into(),
                bridge: "brg0".into(),
                mtu: Some(1500),
                dns: vec!["10.10.10.1".parse().unwrap()],
                published: Vec::new(),
                guard: true,
                isolated: false,
                existing: false,
            },
        };
        assert_eq!(
            w.json(),
            r#"{"interface":"veth1","mac":"02:00:00:00:00:01","addresses":["10.10.10.2/24"],"gateways":["10.10.10.1"],"host_interface":"veth0a0a0a02","bridge":"brg0","mtu":1500,"dns":["10.10.10.1"],"published":[],"guard":true,"isolated":false}"#
        );
        assert_eq!(
            w.line(),
            "veth1 address=10.10.10.2/24 gateway=10.10.10.1 host=veth0a0a0a02 bridge=brg0 mtu=1500"
        );
        let Outcome::Wired { mut wired, .. } = w else {
            unreachable!()
        };
        // lxc-user-nic's line, as LXC parses it.
        assert_eq!(Outcome::Nic(wired.clone()).line(), "veth1:2:veth0a0a0a02:7");
        wired.mac = None;
        wired.mtu = None;
        wired.published = vec![
            Mapping::parse("tcp:8080:80").unwrap(),
            Mapping::parse("udp:[fd00::1]:5353:53").unwrap(),
        ];
        wired.guard = false;
        wired.isolated = true;
        wired.addresses.push("fd00:10::2/64".parse().unwrap());
        wired.gateways.push("fd00:10::1".parse().unwrap());
        let checked = Outcome::Wired {
            wired,
            intact: true,
        };
        assert_eq!(
            checked.json(),
            r#"{"intact":true,"interface":"veth1","addresses":["10.10.10.2/24","fd00:10::2/64"],"gateways":["10.10.10.1","fd00:10::1"],"host_interface":"veth0a0a0a02","bridge":"brg0","dns":["10.10.10.1"],"published":[{"protocol":"tcp","host_address":null,"host_port":8080,"container_port":80},{"protocol":"udp","host_address":"fd00::1","host_port":5353,"container_port":53}],"guard":false,"isolated":true}"#
        );
        assert_eq!(
            checked.line(),
            "intact veth1 address=10.10.10.2/24 address=fd00:10::2/64 gateway=10.10.10.1 gateway=fd00:10::1 host=veth0a0a0a02 bridge=brg0 publish=tcp:8080:80 publish=udp:[fd00::1]:5353:53"
        );
        let removed = Outcome::Removed {
            host_interfaces: vec!["veth0a0a0a02".into(), "veth0a0a0a03".into()],
            addresses: vec!["10.10.10.2".parse().unwrap(), "10.10.10.3".parse().unwrap()],
        };
        assert_eq!(
            removed.json(),
            r#"{"removed":["veth0a0a0a02","veth0a0a0a03"],"addresses":["10.10.10.2","10.10.10.3"]}"#
        );
        let none = Outcome::Removed {
            host_interfaces: vec![],
            addresses: vec![],
        };
        assert_eq!(none.json(), r#"{"removed":[],"addresses":[]}"#);
    }

    #[test]
    fn restore_says_per_network_what_it_did_and_what_failed() {
        let default = Restored {
            network: "default".into(),
            bridge: "brg0".into(),
            leases: 3,
            guarded: 3,
            guards_restored: 3,
            publications: 2,
            publications_restored: 2,
            masquerade: true,
            isolation: true,
            ..Restored::default()
        };
        let retired = Restored {
            network: "brg9".into(),
            bridge: "brg9".into(),
            retired: true,
            leases: 1,
            guarded: 1,
            collected: 2,
            revoked: vec!["tcp:8080:80 of 10.9.0.2".into()],
            ..Restored::default()
        };
        let all = Outcome::Restored(
            vec![default.clone(), retired.clone()],
            GuardUpkeep::default(),
        );
        assert_eq!(
            all.line(),
            "restore: network default (brg0): 3 leases, 3 guarded, 2 publications, masquerade, isolation; re-created 3 guards and 2 publications\n\
             restore: bridge brg9 (no longer in the policy): 1 lease kept until its interface is gone, 1 guarded; nothing was missing; collected 2 leases whose interface is gone; removed (the network left the policy): tcp:8080:80 of 10.9.0.2"
        );
        assert!(all.failure().is_none());
        let json: serde_json::Value = serde_json::from_str(&all.json()).unwrap();
        assert_eq!(json["restored"][0]["guards_restored"], 3);
        assert_eq!(json["restored"][1]["retired"], true);
        assert_eq!(json["restored"][1]["revoked"][0], "tcp:8080:80 of 10.9.0.2");
        let mut broken = default;
        broken.failed = vec!["publication tcp:8080:80 of 10.10.10.2: claimed by another".into()];
        let some = Outcome::Restored(vec![broken, retired], GuardUpkeep::default());
        let failure = some.failure().unwrap();
        assert!(
            failure
                .message
                .contains("network default (brg0): publication tcp:8080:80"),
            "{failure}"
        );
        assert!(!failure.message.contains("brg9"), "{failure}");
        assert!(some.line().contains("; FAILED: publication tcp:8080:80"));
        let locked = Restored {
            network: "default".into(),
            bridge: "brg0".into(),
            failed: vec!["its lock stayed busy".into()],
            not_restored: true,
            ..Restored::default()
        };
        let locked = Outcome::Restored(vec![locked], GuardUpkeep::default());
        assert_eq!(
            locked.line(),
            "restore: network default (brg0): NOT restored, nothing was re-created: its lock stayed busy"
        );
        assert!(locked.failure().is_some());
        let json: serde_json::Value = serde_json::from_str(&locked.json()).unwrap();
        assert_eq!(json["restored"][0]["not_restored"], true);
        assert_eq!(
            Outcome::Restored(vec![], GuardUpkeep::default()).line(),
            "restore: no network has leases in this network namespace; nothing to restore"
        );
    }
}
