//! Published ports: what `-publish` asks for, in the one syntax the command
//! line and the state file share (`PROTO:HOSTPORT:CONTAINERPORT` or
//! `PROTO:HOSTADDR:HOSTPORT:CONTAINERPORT`, an IPv6 host address in
//! brackets). What a mapping becomes in the kernel is the
//! [`Plan`](crate::plan::Plan)'s to say.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netplumb::Protocol;

/// At most this many `-publish` per call (and per lease).
pub const MAX_MAPPINGS: usize = 16;

/// One published port of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The protocol.
    pub protocol: Protocol,
    /// One local address of the host, or every local non-loopback one.
    pub host_address: Option<IpAddr>,
    /// The host's port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
}

/// `tcp` or `udp`.
pub fn parse_protocol(text: &str) -> Option<Protocol> {
    match text {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// A port number 1-65535: decimal digits only.
pub fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

impl Mapping {
    /// Parses `PROTO:HOSTPORT:CONTAINERPORT` or
    /// `PROTO:HOSTADDR:HOSTPORT:CONTAINERPORT` (`[IPv6]`).
    pub fn parse(text: &str) -> Result<Mapping, String> {
        let bad = |why: &str| {
            format!(
                "invalid -publish {text:?}: {why} (PROTO:HOSTPORT:CONTAINERPORT or \
                 PROTO:HOSTADDR:HOSTPORT:CONTAINERPORT, PROTO tcp or udp, an IPv6 address in [])"
            )
        };
        let (protocol, rest) = text.split_once(':').ok_or_else(|| bad("no protocol"))?;
        let protocol = parse_protocol(protocol).ok_or_else(|| bad("unknown protocol"))?;
        let (address, ports) = if let Some(v6) = rest.strip_prefix('[') {
            let (address, ports) = v6.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            let address: Ipv6Addr = address.parse().map_err(|_| bad("bad IPv6 address"))?;
            (Some(IpAddr::V6(address)), ports)
        } else {
            match rest.split(':').count() {
                2 => (None, rest),
                3 => {
                    let (address, ports) = rest.split_once(':').expect("three fields");
                    let address: Ipv4Addr = address.parse().map_err(|_| bad("bad IPv4 address"))?;
                    (Some(IpAddr::V4(address)), ports)
                }
                _ => return Err(bad("wrong number of fields")),
            }
        };
        let (host, container) = ports.split_once(':').ok_or_else(|| bad("no ports"))?;
        let host_port = parse_port(host).ok_or_else(|| bad("bad host port (1-65535)"))?;
        let container_port =
            parse_port(container).ok_or_else(|| bad("bad container port (1-65535)"))?;
        Ok(Mapping {
            protocol,
            host_address: address,
            host_port,
            container_port,
        })
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.name())?;
        match self.host_address {
            Some(IpAddr::V4(a)) => write!(f, ":{a}")?,
            Some(IpAddr::V6(a)) => write!(f, ":[{a}]")?,
            None => {}
        }
        write!(f, ":{}:{}", self.host_port, self.container_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_print_the_same() {
        for (text, address) in [
            ("tcp:8080:80", None),
            ("udp:5353:53", None),
            ("tcp:192.0.2.1:8080:80", Some("192.0.2.1")),
            ("tcp:[2001:db8::1]:8080:80", Some("2001:db8::1")),
        ] {
            let m = Mapping::parse(text).unwrap();
            assert_eq!(m.host_address, address.map(|a| a.parse().unwrap()));
            assert_eq!(m.to_string(), text);
        }
        let m = Mapping::parse("udp:1:65535").unwrap();
        assert_eq!(
            (m.protocol, m.host_port, m.container_port),
            (Protocol::Udp, 1, 65535)
        );
        for bad in [
            "",
            "tcp",
            "tcp:80",
            "sctp:80:80",
            "TCP:80:80",
            "tcp:0:80",
            "tcp:80:0",
            "tcp:65536:80",
            "tcp:+80:80",
            "tcp:080080:80",
            "tcp:80:80:80",
            "tcp:1.2.3:80:80",
            "tcp:2001:db8::1:80:80",
            "tcp:[2001:db8::1:80:80",
            "tcp:[1.2.3.4]:80:80",
            "tcp:[::1]80:80",
            "tcp:a:b:c:d",
            "tcp: 80:80",
        ] {
            assert!(Mapping::parse(bad).is_err(), "{bad:?}");
        }
    }
}
