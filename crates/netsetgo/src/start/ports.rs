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

/// The host side of a mapping's text, `PROTO:[HOSTADDR:]REST`: its
/// protocol, its host address (`[IPv6]`) and the rest, whose colons
/// (`fields` of them) are the caller's syntax's to split; `bad` words the
/// error.
fn split_host(
    text: &str,
    fields: usize,
    bad: impl Fn(&str) -> String,
) -> Result<(Protocol, Option<IpAddr>, &str), String> {
    let (protocol, rest) = text.split_once(':').ok_or_else(|| bad("no protocol"))?;
    let protocol = parse_protocol(protocol).ok_or_else(|| bad("unknown protocol"))?;
    if let Some(v6) = rest.strip_prefix('[') {
        let (address, rest) = v6.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
        let address: Ipv6Addr = address.parse().map_err(|_| bad("bad IPv6 address"))?;
        return Ok((protocol, Some(IpAddr::V6(address)), rest));
    }
    let count = rest.split(':').count();
    if count == fields {
        Ok((protocol, None, rest))
    } else if count == fields + 1 {
        let (address, rest) = rest.split_once(':').expect("more than one field");
        let address: Ipv4Addr = address.parse().map_err(|_| bad("bad IPv4 address"))?;
        Ok((protocol, Some(IpAddr::V4(address)), rest))
    } else {
        Err(bad("wrong number of fields"))
    }
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
        let (protocol, address, ports) = split_host(text, 2, bad)?;
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

    /// The host port this mapping claims, as `-unpublish` names it.
    pub fn host_side(&self) -> HostPort {
        HostPort {
            protocol: self.protocol,
            host_address: self.host_address,
            host_port: self.host_port,
        }
    }
}

/// A published host port as `-unpublish` names it:
/// `PROTO:HOSTPORT` or `PROTO:HOSTADDR:HOSTPORT` (`[IPv6]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// The protocol.
    pub protocol: Protocol,
    /// The host address the mapping was published on, if one.
    pub host_address: Option<IpAddr>,
    /// The host's port.
    pub host_port: u16,
}

impl HostPort {
    /// Parses `PROTO:HOSTPORT` or `PROTO:HOSTADDR:HOSTPORT` (`[IPv6]`).
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let bad = |why: &str| {
            format!(
                "invalid -unpublish {text:?}: {why} (PROTO:HOSTPORT or PROTO:HOSTADDR:HOSTPORT, \
                 PROTO tcp or udp, an IPv6 address in [])"
            )
        };
        let (protocol, host_address, port) = split_host(text, 1, bad)?;
        let host_port = parse_port(port).ok_or_else(|| bad("bad host port (1-65535)"))?;
        Ok(HostPort {
            protocol,
            host_address,
            host_port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.name())?;
        match self.host_address {
            Some(IpAddr::V4(a)) => write!(f, ":{a}")?,
            Some(IpAddr::V6(a)) => write!(f, ":[{a}]")?,
            None => {}
        }
        write!(f, ":{}", self.host_port)
    }
}

/// What a `-publish` on a lease that holds `held` adds: each of `asked`
/// not held already (the same mapping asked again is no error). Refused,
/// with nothing to add, when an asked host port (per protocol, whatever
/// the host address: the kernel's claim is per port) is held with another
/// mapping, or when the lease would hold more than [`MAX_MAPPINGS`].
pub fn to_add(held: &[Mapping], asked: &[Mapping]) -> Result<Vec<Mapping>, String> {
    let mut added = Vec::new();
    for m in asked {
        let same_port = |h: &&Mapping| h.protocol == m.protocol && h.host_port == m.host_port;
        match held.iter().find(same_port) {
            Some(h) if h == m => {}
            Some(h) => {
                return Err(format!(
                    "-publish {m}: your container publishes {} port {} already, as {h}; -unpublish {} first",
                    m.protocol.name(),
                    m.host_port,
                    h.host_side()
                ))
            }
            None => added.push(*m),
        }
    }
    if held.len() + added.len() > MAX_MAPPINGS {
        return Err(format!(
            "-publish: your container would publish {} ports, at most {MAX_MAPPINGS} are allowed; -unpublish some first",
            held.len() + added.len()
        ));
    }
    Ok(added)
}

/// What a `-unpublish` of `asked` on a lease that holds `held` removes and
/// keeps: each asked host port must name one of `held` exactly (protocol,
/// host address, port), or nothing is removed.
pub fn to_remove(
    held: &[Mapping],
    asked: &[HostPort],
) -> Result<(Vec<Mapping>, Vec<Mapping>), String> {
    if let Some(missing) = asked
        .iter()
        .find(|a| !held.iter().any(|h| h.host_side() == **a))
    {
        return Err(format!(
            "-unpublish {missing}: your interface in that container does not publish it; nothing was changed"
        ));
    }
    Ok(held.iter().partition(|h| asked.contains(&h.host_side())))
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

    #[test]
    fn host_ports_parse_and_print_the_same() {
        for text in ["tcp:8080", "udp:192.0.2.1:53", "tcp:[2001:db8::1]:8080"] {
            assert_eq!(HostPort::parse(text).unwrap().to_string(), text);
        }
        let m = Mapping::parse("tcp:[2001:db8::1]:8080:80").unwrap();
        assert_eq!(
            m.host_side(),
            HostPort::parse("tcp:[2001:db8::1]:8080").unwrap()
        );
        for bad in [
            "",
            "tcp",
            "tcp:0",
            "tcp:8080:80",
            "tcp:1.2.3.4:8080:80",
            "sctp:80",
            "tcp:[::1]8080",
            "tcp:2001:db8::1:80",
            "tcp:a:80",
            "tcp:65536",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn maps(texts: &[&str]) -> Vec<Mapping> {
        texts.iter().map(|t| Mapping::parse(t).unwrap()).collect()
    }

    #[test]
    fn publishing_on_a_lease_adds_only_what_it_lacks() {
        let held = maps(&["tcp:8080:80", "udp:5353:53"]);
        // Asked again: nothing to add, no error.
        assert_eq!(to_add(&held, &held).unwrap(), vec![]);
        assert_eq!(
            to_add(&held, &maps(&["tcp:8080:80", "tcp:8081:81"])).unwrap(),
            maps(&["tcp:8081:81"])
        );
        // The same port (for that protocol) otherwise held: refused.
        for other in ["tcp:8080:81", "tcp:192.0.2.1:8080:80"] {
            let refused = to_add(&held, &maps(&[other])).unwrap_err();
            assert!(refused.contains("-unpublish tcp:8080 first"), "{refused}");
        }
        // The other protocol's port is another port.
        assert_eq!(to_add(&held, &maps(&["udp:8080:80"])).unwrap().len(), 1);
        // At most MAX_MAPPINGS per lease.
        let full: Vec<Mapping> = (0..MAX_MAPPINGS as u16)
            .map(|i| Mapping::parse(&format!("tcp:{}:80", 9000 + i)).unwrap())
            .collect();
        assert!(to_add(&full, &maps(&["tcp:8000:80"])).is_err());
        assert_eq!(to_add(&full, &full[..2]).unwrap(), vec![]);
    }

    #[test]
    fn unpublishing_removes_only_what_the_lease_holds_exactly() {
        let held = maps(&[
            "tcp:8080:80",
            "udp:192.0.2.1:5353:53",
            "tcp:[2001:db8::1]:8443:443",
        ]);
        let hp = |t: &str| HostPort::parse(t).unwrap();
        let (removed, kept) =
            to_remove(&held, &[hp("tcp:8080"), hp("udp:192.0.2.1:5353")]).unwrap();
        assert_eq!(removed, maps(&["tcp:8080:80", "udp:192.0.2.1:5353:53"]));
        assert_eq!(kept, maps(&["tcp:[2001:db8::1]:8443:443"]));
        // Not held exactly (another address, protocol or port, or none):
        // refused, whatever else was asked.
        for missing in [
            "udp:5353",
            "udp:8080",
            "tcp:192.0.2.1:8080",
            "tcp:8443",
            "tcp:9999",
        ] {
            let refused = to_remove(&held, &[hp("tcp:8080"), hp(missing)]).unwrap_err();
            assert!(
                refused.contains(missing) && refused.contains("nothing was changed"),
                "{refused}"
            );
        }
        assert!(to_remove(&[], &[hp("tcp:8080")]).is_err());
    }
}
