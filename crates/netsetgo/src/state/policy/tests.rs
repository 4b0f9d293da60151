//! The policy's syntax, its grants and its derived addresses.

use super::*;

struct Fake;
impl Accounts for Fake {
    fn user_names(&self, uid: u32) -> Result<Vec<String>, Failure> {
        Ok(match uid {
            1000 => vec!["bob".into()],
            1001 => vec!["bobby".into()],
            _ => vec![],
        })
    }
    fn group_id(&self, name: &str) -> Result<Option<u32>, Failure> {
        Ok((name == "netsetgo").then_some(500))
    }
    fn groups_of(&self, uid: u32) -> Result<Vec<u32>, Failure> {
        Ok(match uid {
            1000 => vec![1000, 500],
            _ => vec![uid],
        })
    }
}

#[test]
fn an_owners_ports_are_those_its_grants_give_it_now() {
    let text = "\
network default bridge=brg0 gateway=10.10.10.1/24
network lab bridge=labbr0 gateway=172.30.0.1/16
allow @netsetgo default 4
allow bobby lab 1
publish @netsetgo default tcp 8000-8099
publish bob default udp 53
publish bobby lab tcp 9000
publish bobby default tcp 9001
";
    let p = parse(text).unwrap();
    // bob: the group's range and its own line.
    let bob = p.ports_of_owner(1000, "default", &Fake).unwrap().unwrap();
    assert!(bob.iter().any(|g| g.contains(Protocol::Tcp, 8080)));
    assert!(bob.iter().any(|g| g.contains(Protocol::Udp, 53)));
    assert!(!bob.iter().any(|g| g.contains(Protocol::Tcp, 9001)));
    // No allow line for lab: nothing there.
    assert_eq!(p.ports_of_owner(1000, "lab", &Fake).unwrap(), Some(vec![]));
    // bobby is not in the group and has no allow line for default:
    // its publish line there counts for nothing.
    assert_eq!(
        p.ports_of_owner(1001, "default", &Fake).unwrap(),
        Some(vec![])
    );
    let lab = p.ports_of_owner(1001, "lab", &Fake).unwrap().unwrap();
    assert!(lab.iter().any(|g| g.contains(Protocol::Tcp, 9000)));
    // A network no longer there, and root.
    assert_eq!(p.ports_of_owner(1000, "gone", &Fake).unwrap(), Some(vec![]));
    assert_eq!(p.ports_of_owner(0, "default", &Fake).unwrap(), None);
}

fn caller(uid: u32, groups: &[u32]) -> Caller {
    Caller {
        uid,
        gid: uid,
        groups: groups.to_vec(),
    }
}

const SAMPLE: &str = "\
# comment
network default bridge=brg0 gateway=10.10.10.1/24

network lab\tbridge=labbr0 gateway=172.30.0.1/16 gateway6=fd00:30::1/64 mtu=1400 nat=yes
allow @netsetgo default 16
allow bob lab 4
allow bob lab 2
";

#[test]
fn parses_the_documented_example() {
    let p = parse(SAMPLE).unwrap();
    assert_eq!(p.networks.len(), 2);
    let lab = p.network_by_bridge("labbr0").unwrap();
    assert_eq!((lab.mtu, lab.nat), (Some(1400), true));
    assert_eq!(lab.gateway6.unwrap().to_string(), "fd00:30::1/64");
    let addrs = crate::plan::container_addresses(lab, "172.30.1.2".parse().unwrap());
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    assert_eq!(shown, ["172.30.1.2/16", "fd00:30::102/64"]);
    assert_eq!(lab.bridge_addresses().len(), 2);
}

#[test]
fn dns_defaults_to_the_gateway() {
    let p = parse(
        "network a bridge=a gateway=10.1.0.1/24\n\
         network b bridge=b gateway=10.2.0.1/24 dns=10.2.0.53\n\
         network c bridge=c gateway=10.3.0.1/24 dns=1.1.1.1,9.9.9.9\n",
    )
    .unwrap();
    let dns = |bridge| p.network_by_bridge(bridge).unwrap().dns_servers();
    let ips =
        |list: &[&str]| -> Vec<Ipv4Addr> { list.iter().map(|a| a.parse().unwrap()).collect() };
    assert_eq!(dns("a"), ips(&["10.1.0.1"]));
    assert_eq!(dns("b"), ips(&["10.2.0.53"]));
    assert_eq!(dns("c"), ips(&["1.1.1.1", "9.9.9.9"]));
}

#[test]
fn grants_match_exactly_and_add_up() {
    let p = parse(SAMPLE).unwrap();
    let bob = p.allowances(&caller(1000, &[1000]), &Fake).unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!((bob[0].network.name.as_str(), bob[0].quota), ("lab", 6));
    // A line for bob gives bobby nothing.
    assert!(p
        .allowances(&caller(1001, &[1001]), &Fake)
        .unwrap()
        .is_empty());
    let member = p.allowances(&caller(1001, &[1001, 500]), &Fake).unwrap();
    assert_eq!(
        (member[0].network.name.as_str(), member[0].quota),
        ("default", 16)
    );
}

#[test]
fn derived_ipv6_addresses_stay_in_gateway6s_prefix_and_off_it() {
    let net = |g: &str, g6: &str| format!("network x bridge=b gateway={g} gateway6={g6}\n");
    for (g, g6) in [
        ("10.10.10.1/24", "fd00:10::1/64"),
        ("10.10.10.254/24", "fd00:10::fe/64"),
        ("10.10.10.254/24", "fd00:10::ff/120"),
        ("10.10.10.254/24", "fd00:10::100/64"),
        ("10.10.10.1/24", "fd00:10::ffff/64"),
        ("10.10.0.1/16", "fd00:10::1/112"),
        ("10.10.10.5/30", "fd00:10::3/120"),
    ] {
        let p = parse(&net(g, g6)).unwrap_or_else(|e| panic!("{g} {g6}: {e:?}"));
        let n = &p.networks[0];
        let g6: Ipv6Network = g6.parse().unwrap();
        let first = u32::from(n.gateway.network());
        for offset in 1..n.gateway.size() - 1 {
            let v4 = Ipv4Addr::from(first + offset);
            if v4 == n.gateway.ip() {
                continue;
            }
            let IpNetwork::V6(v6) = crate::plan::container_addresses(n, v4)[1] else {
                panic!("no IPv6 address");
            };
            assert!(g6.contains(v6.ip()) && v6.ip() != g6.ip(), "{g} {g6} {v4}");
        }
    }
    for (g, g6, expected) in [
        // Offset 1 is a container's, and its IPv6 address is gateway6.
        ("10.10.10.254/24", "fd00:10::1/64", "offset 1 "),
        ("10.10.10.1/24", "fd00:10::fe/64", "offset 254 "),
        ("10.10.0.1/16", "fd00:10::ff00/64", "offset 65280 "),
        // 16 host bits do not fit in 8 or 15.
        ("10.10.0.1/16", "fd00:10::1/120", "at most /112"),
        ("10.10.0.1/16", "fd00:10::1/113", "at most /112"),
    ] {
        let text = format!("# first\n{}", net(g, g6));
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 2, "{g} {g6}");
        assert!(e.message.contains(expected), "{g} {g6}: {}", e.message);
    }
}

#[test]
fn guard_defaults_to_yes_and_isolate_to_no() {
    let p = parse(
        "network a bridge=a gateway=10.1.0.1/24\n\
         network b bridge=b gateway=10.2.0.1/24 guard=no isolate=yes\n\
         network c bridge=c gateway=10.3.0.1/24 guard=yes isolate=no\n",
    )
    .unwrap();
    let flags = |bridge| {
        let n = p.network_by_bridge(bridge).unwrap();
        (n.guard, n.isolate)
    };
    assert_eq!(flags("a"), (true, false));
    assert_eq!(flags("b"), (false, true));
    assert_eq!(flags("c"), (true, false));
}

#[test]
fn publish_lines_grant_port_ranges_that_add_up() {
    let p = parse(&format!(
        "{SAMPLE}publish @netsetgo default tcp 8000-8999\n\
         publish bob lab udp 5353\n\
         publish bob lab tcp 80\n\
         publish bob lab tcp 1-1023\n\
         publish bobby lab tcp 9000\n\
         publish bob default tcp 7000\n"
    ))
    .unwrap();
    let tcp = |first, last| Ports {
        protocol: Protocol::Tcp,
        first,
        last,
    };
    let bob = p.allowances(&caller(1000, &[1000]), &Fake).unwrap();
    // bob has no allow line for default: its publish line there gives
    // nothing.
    assert_eq!(bob.len(), 1);
    let udp = Ports {
        protocol: Protocol::Udp,
        first: 5353,
        last: 5353,
    };
    assert_eq!(bob[0].ports, vec![udp, tcp(80, 80), tcp(1, 1023)]);
    assert!(bob[0].ports.iter().any(|r| r.contains(Protocol::Tcp, 443)));
    assert!(!bob[0].ports.iter().any(|r| r.contains(Protocol::Udp, 80)));
    assert!(!bob[0].ports.iter().any(|r| r.contains(Protocol::Tcp, 9000)));
    let member = p.allowances(&caller(1001, &[1001, 500]), &Fake).unwrap();
    assert_eq!(member[0].ports, vec![tcp(8000, 8999)]);
    // None by default.
    let plain = parse(SAMPLE).unwrap();
    let bob = plain.allowances(&caller(1000, &[1000]), &Fake).unwrap();
    assert!(bob[0].ports.is_empty());
}

#[test]
fn malformed_lines_are_errors_with_their_number() {
    let cases = [
        ("allow bob default 99999999999999999999", "count"),
        ("allow bob default -1", "count"),
        ("allow bob default 1024", "1023 ports a Linux bridge"),
        ("allow bob default 1 extra", "allow takes"),
        ("allow bob nowhere 1", "undefined"),
        (
            "network x bridge=eth0/1 gateway=10.0.0.1/24",
            "invalid interface name",
        ),
        ("network x bridge=b gateway=10.0.0.0/24", "host address"),
        ("network x bridge=b gateway=10.0.0.1/8", "between"),
        ("network x bridge=b gateway=10.0.0.1/24 nat=maybe", "nat"),
        ("network x bridge=b gateway=10.0.0.1/24 mtu=9999999", "mtu"),
        (
            "network x bridge=b gateway=10.0.0.1/24 colour=red",
            "unknown",
        ),
        ("network x bridge=b gateway=10.0.0.1/24 bridge=c", "twice"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=", "dns"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=1.1.1.1,", "dns"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=fd00::1", "dns"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=0.0.0.0", "dns"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=224.0.0.1", "dns"),
        ("network x bridge=b gateway=10.0.0.1/24 dns=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9", "dns"),
        ("permit bob default 1", "unknown keyword"),
        ("network x bridge=b gateway=10.0.0.1/24 guard=on", "guard"),
        ("network x bridge=b gateway=10.0.0.1/24 isolate=", "isolate"),
        ("publish bob default tcp 1000-1100", "below 1024 on a line of their own"),
        ("publish bob default tcp 1-65535", "below 1024 on a line of their own"),
        ("publish bob default tcp 0", "port range"),
        ("publish bob default tcp 65536", "port range"),
        ("publish bob default tcp 9000-8000", "port range"),
        ("publish bob default tcp 80-", "port range"),
        ("publish bob default tcp -80", "port range"),
        ("publish bob default tcp +80", "port range"),
        ("publish bob default tcp 99999999999999999999", "port range"),
        ("publish bob default sctp 80", "protocol"),
        ("publish bob default TCP 80", "protocol"),
        ("publish bob default tcp", "publish takes"),
        ("publish bob default tcp 80 90", "publish takes"),
        ("publish bob nowhere tcp 80", "publish names undefined network"),
        ("publish b@d default tcp 80", "bad user"),
        ("allow b@d default 1", "bad user"),
    ];
    for (line, expected) in cases {
        let text = format!("network default bridge=brg0 gateway=10.10.10.1/24\n{line}\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 2, "{line}");
        assert!(e.message.contains(expected), "{line}: {}", e.message);
    }
}

#[test]
fn grants_that_no_bridge_can_hold_are_errors() {
    let net = "network default bridge=brg0 gateway=10.10.0.1/16\n";
    // Exactly a bridge's worth, for a user and a group each: fine.
    parse(&format!(
        "{net}allow bob default 1023\nallow @staff default 1023\n"
    ))
    .unwrap();
    // One group's lines add up past it: the line that goes over is named.
    let e = parse(&format!(
        "{net}allow @staff default 1000\nallow bob default 5\nallow @staff default 24\n"
    ))
    .unwrap_err();
    assert_eq!(e.line, 4, "{e:?}");
    assert!(
        e.message.contains("@staff would hold up to 1024"),
        "{}",
        e.message
    );
    assert!(e.message.contains("network default"), "{}", e.message);
}
