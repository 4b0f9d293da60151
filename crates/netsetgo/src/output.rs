//! The one line (or one JSON object) a call prints.

use std::fmt::Write;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::Failure;

/// What a successful wiring made.
#[derive(Debug, Clone)]
pub struct Wired {
    pub interface: String,
    /// The interface's index inside, and the host end's.
    pub index: u32,
    pub host_index: u32,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<IpNetwork>,
    pub gateways: Vec<IpAddr>,
    pub host_interface: String,
    pub bridge: String,
    pub mtu: Option<u32>,
}

/// What a call reports on success.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Created (or, with `intact`, checked by -check).
    Wired { wired: Wired, intact: bool },
    /// Created in lxc-user-nic's form, which prints its own line.
    Nic(Wired),
    /// Interfaces removed and leases freed (-delete, poststop hook).
    Removed {
        host_interfaces: Vec<String>,
        addresses: Vec<IpAddr>,
    },
}

impl Outcome {
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
        }
    }

    pub fn json(&self) -> String {
        let mut o = Json::default();
        match self {
            Outcome::Wired { wired: w, .. } | Outcome::Nic(w) => {
                if matches!(self, Outcome::Wired { intact: true, .. }) {
                    o.raw("intact", "true");
                }
                o.str("interface", &w.interface);
                if let Some(mac) = w.mac {
                    let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                    o.str("mac", &mac.join(":"));
                }
                o.list("addresses", w.addresses.iter().map(|a| a.to_string()));
                o.list("gateways", w.gateways.iter().map(|g| g.to_string()));
                o.str("host_interface", &w.host_interface);
                o.str("bridge", &w.bridge);
                if let Some(mtu) = w.mtu {
                    o.raw("mtu", &mtu.to_string());
                }
            }
            Outcome::Removed {
                host_interfaces,
                addresses,
            } => {
                o.list("removed", host_interfaces.iter().cloned());
                o.list("addresses", addresses.iter().map(|a| a.to_string()));
            }
        }
        o.finish()
    }
}

pub fn failure_json(f: &Failure) -> String {
    let mut o = Json::default();
    o.str("error", f.code());
    o.str("message", &f.message);
    o.finish()
}

/// A flat JSON object writer: all we print.
#[derive(Default)]
struct Json(String);

impl Json {
    fn key(&mut self, key: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        quote(&mut self.0, key);
        self.0.push(':');
    }
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        quote(&mut self.0, value);
    }
    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.0.push_str(value);
    }
    fn list(&mut self, key: &str, values: impl Iterator<Item = String>) {
        self.key(key);
        self.0.push('[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            quote(&mut self.0, &v);
        }
        self.0.push(']');
    }
    fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_shapes() {
        let f = Failure::refused("a \"quoted\"\nline");
        assert_eq!(
            failure_json(&f),
            r#"{"error":"refused","message":"a \"quoted\"\u000aline"}"#
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
            },
        };
        assert_eq!(
            w.json(),
            r#"{"interface":"veth1","mac":"02:00:00:00:00:01","addresses":["10.10.10.2/24"],"gateways":["10.10.10.1"],"host_interface":"veth0a0a0a02","bridge":"brg0","mtu":1500}"#
        );
        assert_eq!(
            w.line(),
            "veth1 address=10.10.10.2/24 gateway=10.10.10.1 host=veth0a0a0a02 bridge=brg0 mtu=1500"
        );
        let Outcome::Wired { wired, .. } = w else {
            unreachable!()
        };
        // lxc-user-nic's line, as LXC parses it.
        assert_eq!(Outcome::Nic(wired).line(), "veth1:2:veth0a0a0a02:7");
    }
}
