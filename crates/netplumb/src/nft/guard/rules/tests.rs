use super::*;
use crate::nft::expr::{
    Base, Expr, NFT_CMP_NEQ, NFT_META_IIFNAME, NFT_META_L4PROTO, NFT_META_PROTOCOL, NF_ACCEPT,
    NF_DROP,
};

/// `meta iifname . <len> bytes at <base> + <offset> [!=] @<set>`.
fn own(set: &str, base: Base, offset: u32, len: u32, invert: bool) -> Vec<Expr> {
    vec![
        Expr::meta(NFT_META_IIFNAME),
        Expr::Payload {
            base,
            offset,
            len,
            dreg: 12,
        },
        Expr::Lookup {
            set: set.into(),
            map: false,
            invert,
        },
    ]
}

#[test]
fn guard_rules_match_what_nft_generates() {
    let (common, port) = (common_rules(), port_rules());
    // The shared chain: 2 link-layer rules, the IPv4 protocol whitelist, 2
    // DHCP ports, DHCP discovery, the return, the IPv6 whitelist, 3 DHCPv6
    // ports, 2 RA and redirect, 2 RS, 3 NS, 2 NA.
    assert_eq!(common.len(), 2 + 1 + 2 + 1 + 1 + 1 + 3 + 2 + 2 + 3 + 2);
    // The ports': the MAC, the jump, 3 IPv4, 1 RS, 2 NS, 2 NA, 3 IPv6, DAD
    // and MLD from `::`, ARP, the final drop.
    // Each link-layer option checked in two rules: type and length, MAC.
    assert_eq!(port.len(), 1 + 1 + 3 + 2 + 3 + 3 + 3 + 2 + 1 + 1);
    assert_eq!(port[19], vec![Expr::Verdict(NF_DROP)]);
    // `meta protocol != ip6 return`: [ meta load protocol => reg 1 ]
    // [ cmp neq reg 1 0x0000dd86 ] [ immediate reg 0 return ]
    assert_eq!(
        common[6],
        vec![
            Expr::meta(NFT_META_PROTOCOL),
            Expr::Cmp(NFT_CMP_NEQ, vec![0x86, 0xdd]),
            Expr::Verdict(-5),
        ]
    );
    assert_eq!(port[1], vec![Expr::Jump("common".into())]);
    // `iifname . ether saddr != @macs drop` (nft --debug=netlink, bridge):
    // [ meta load iifname => reg 1 ]
    // [ payload load 6b @ link header + 6 => reg 2 ]
    // [ lookup reg 1 set macs 0x1 ] [ immediate reg 0 drop ]
    assert_eq!(
        port[0],
        [
            own("macs", Base::Link, 6, 6, true),
            vec![Expr::Verdict(NF_DROP)]
        ]
        .concat()
    );
    // `ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop`:
    // [ bitwise reg 1 = ( reg 1 & 0xffffffff 0x0000f0ff ) ^ 0 ]
    // [ cmp eq reg 1 0x00c28001 0x00000000 ]
    // (a bridge table has no `meta iiftype` dependency)
    assert_eq!(
        common[0][1],
        Expr::Mask(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xf0])
    );
    assert_eq!(common[0][2], Expr::eq(&[1, 0x80, 0xc2, 0, 0, 0]));
    // `ether type != arp ether type != ip ether type != ip6 drop`: three
    // loads of link header + 12, each `cmp neq`.
    assert_eq!(common[1].len(), 6 + 1);
    assert_eq!(common[1][5], Expr::Cmp(NFT_CMP_NEQ, vec![0x86, 0xdd]));
    // ARP: [ payload load 2b @ link header + 12 ] [ cmp eq reg 1 0x00000608 ] ...
    // [ meta load iifname ] [ payload load 6b @ network header + 8 => reg 12 ]
    // [ payload load 4b @ network header + 14 => reg 14 ]
    // [ lookup reg 1 set arp ] [ immediate reg 0 accept ]
    let arp = &port[18];
    assert_eq!(arp[1], Expr::eq(&[8, 6]));
    assert_eq!(arp[6..8], own("senders", Base::Network, 8, 6, false)[..2]);
    assert_eq!(
        arp[8],
        Expr::Payload {
            base: Base::Network,
            offset: 14,
            len: 4,
            dreg: 14
        }
    );
    assert_eq!(
        arp[9..],
        [
            own("senders", Base::Network, 8, 6, false)[2].clone(),
            Expr::Verdict(NF_ACCEPT)
        ]
    );
    // `meta protocol ip meta l4proto != tcp meta l4proto != udp meta
    // l4proto != icmp meta l4proto != igmp meta l4proto != sctp drop`:
    // [ meta load protocol ] [ cmp eq reg 1 0x00000008 ], then each
    // [ meta load l4proto ] [ cmp neq reg 1 0x00000006 ] ... 0x00000084.
    let not = |p: u8| {
        [
            Expr::meta(NFT_META_L4PROTO),
            Expr::Cmp(NFT_CMP_NEQ, vec![p]),
        ]
    };
    assert_eq!(
        common[2],
        [
            vec![Expr::meta(NFT_META_PROTOCOL), Expr::eq(&[8, 0])],
            [6, 17, 1, 2, 0x84].into_iter().flat_map(not).collect(),
            vec![Expr::Verdict(NF_DROP)],
        ]
        .concat()
    );
    // The IPv6 one: protocol 0x0000dd86, not 6, 17, 0x3a, 0x84.
    assert_eq!(common[7][1], Expr::eq(&[0x86, 0xdd]));
    assert_eq!(
        common[7][2..10],
        [6, 17, 0x3a, 0x84]
            .into_iter()
            .flat_map(not)
            .collect::<Vec<_>>()
    );
    // `ip frag-off & 8191 == 0 udp dport 68 drop`: [ meta load protocol ]
    // [ cmp eq reg 1 0x00000008 ] [ payload load 2b @ network header + 6 ]
    // [ bitwise reg 1 = ( reg 1 & 0x0000ff1f ) ^ 0 ] [ cmp eq reg 1 0 ]
    // [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000011 ]
    // [ payload load 2b @ transport header + 2 ]
    // [ cmp eq reg 1 0x00004400 ] [ immediate reg 0 drop ]
    assert_eq!(
        common[4],
        vec![
            Expr::meta(NFT_META_PROTOCOL),
            Expr::eq(&[8, 0]),
            Expr::payload(Base::Network, 6, 2),
            Expr::Mask(vec![0x1f, 0xff]),
            Expr::eq(&[0, 0]),
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[17]),
            Expr::payload(Base::Transport, 2, 2),
            Expr::eq(&[0, 68]),
            Expr::Verdict(NF_DROP)
        ]
    );
    // `ip6 nexthdr udp udp sport 547 drop`: [ meta load protocol ]
    // [ cmp eq reg 1 0x0000dd86 ] [ payload load 1b @ network header + 6 ]
    // [ cmp eq reg 1 0x00000011 ] [ payload load 2b @ transport header + 0 ]
    // [ cmp eq reg 1 0x00002302 ] [ immediate reg 0 drop ]
    assert_eq!(
        common[8],
        vec![
            Expr::meta(NFT_META_PROTOCOL),
            Expr::eq(&[0x86, 0xdd]),
            Expr::payload(Base::Network, 6, 1),
            Expr::eq(&[17]),
            Expr::payload(Base::Transport, 0, 2),
            Expr::eq(&[2, 0x23]),
            Expr::Verdict(NF_DROP)
        ]
    );
    // `ip6 nexthdr ipv6-frag @nh,336,16 & 0xfff8 == 0x0 @nh,384,16 0x223
    // drop`: ... [ cmp eq reg 1 0x0000002c ]
    // [ payload load 2b @ network header + 42 ]
    // [ bitwise reg 1 = ( reg 1 & 0x0000f8ff ) ^ 0 ] [ cmp eq reg 1 0 ]
    // [ payload load 2b @ network header + 48 ] [ cmp eq reg 1 0x00002302 ]
    assert_eq!(
        common[10][2..],
        [
            Expr::payload(Base::Network, 6, 1),
            Expr::eq(&[44]),
            Expr::payload(Base::Network, 42, 2),
            Expr::Mask(vec![0xff, 0xf8]),
            Expr::eq(&[0, 0]),
            Expr::payload(Base::Network, 48, 2),
            Expr::eq(&[2, 0x23]),
            Expr::Verdict(NF_DROP)
        ]
    );
    // `ip saddr A meta l4proto udp ip frag-off & 8191 != 0 ip hdrlength 5
    // @nh,176,16 != 0x44`: [ meta load l4proto ] [ cmp eq reg 1 0x00000011 ]
    // [ payload load 2b @ network header + 6 ] [ bitwise ( & 0x0000ff1f ) ]
    // [ cmp neq reg 1 0 ] [ payload load 1b @ network header + 0 ]
    // [ bitwise ( & 0x0f ) ] [ cmp eq 5 ] [ payload load 2b @ network header + 22 ]
    // [ cmp neq reg 1 0x00004400 ]
    assert_eq!(port[4][2..5], own("v4", Base::Network, 12, 4, false));
    assert_eq!(
        port[4][5..9],
        [
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[17]),
            Expr::payload(Base::Network, 6, 2),
            Expr::Mask(vec![0x1f, 0xff])
        ]
    );
    assert_eq!(port[4][13], Expr::payload(Base::Network, 22, 2));
    assert_eq!(port[4][14], Expr::Cmp(NFT_CMP_NEQ, vec![0, 68]));
    // `ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67
    // accept`: [ payload load 2b @ network header + 6 ] [ bitwise ( &
    // 0x0000ff1f ) ] [ cmp eq reg 1 0 ] [ meta load l4proto ] ...
    // [ payload load 4b @ transport header + 0 ] [ cmp eq reg 1 0x43004400 ]
    assert_eq!(common[5][4..7], first_ipv4_udp()[2..5]);
    assert_eq!(common[5][10], Expr::eq(&[0, 68, 0, 67]));
    // `icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop`:
    // [ payload load 2b @ link header + 12 ] [ cmp eq reg 1 0x0000dd86 ]
    // [ meta load l4proto ] [ cmp eq reg 1 0x0000003a ]
    // [ payload load 1b @ transport header + 0 ] [ cmp eq reg 1 0x00000087 ]
    // [ payload load 1b @ network header + 6 ] [ cmp neq reg 1 0x0000003a ]
    let ns = [
        Expr::payload(Base::Link, 12, 2),
        Expr::eq(&[0x86, 0xdd]),
        Expr::meta(NFT_META_L4PROTO),
        Expr::eq(&[0x3a]),
        Expr::payload(Base::Transport, 0, 1),
        Expr::eq(&[0x87]),
    ];
    assert_eq!(
        common[15],
        [
            ns.to_vec(),
            vec![
                Expr::payload(Base::Network, 6, 1),
                Expr::Cmp(NFT_CMP_NEQ, vec![0x3a]),
                Expr::Verdict(NF_DROP)
            ]
        ]
        .concat()
    );
    // `... ip6 length != 24 ip6 length != 32 drop`:
    // [ payload load 2b @ network header + 4 ] [ cmp neq reg 1 0x00001800 ]
    // [ payload load 2b @ network header + 4 ] [ cmp neq reg 1 0x00002000 ]
    assert_eq!(
        common[16][6..],
        [
            Expr::payload(Base::Network, 4, 2),
            Expr::Cmp(NFT_CMP_NEQ, vec![0, 24]),
            Expr::payload(Base::Network, 4, 2),
            Expr::Cmp(NFT_CMP_NEQ, vec![0, 32]),
            Expr::Verdict(NF_DROP)
        ]
    );
    // `... ip6 length 32 ip6 saddr != :: @th,192,16 != 0x101 drop` and
    // `... meta iifname . @th,208,48 != @macs drop`: [ cmp eq reg 1
    // 0x00002000 ] [ payload load 16b @ network header + 8 ] [ cmp neq reg 1
    // 0 0 0 0 ], then the option's type and length, or its MAC.
    let ns_option = [
        ns.to_vec(),
        vec![
            Expr::payload(Base::Network, 4, 2),
            Expr::eq(&[0, 32]),
            Expr::payload(Base::Network, 8, 16),
            Expr::Cmp(NFT_CMP_NEQ, vec![0; 16]),
        ],
    ]
    .concat();
    assert_eq!(
        port[7],
        [
            ns_option.clone(),
            vec![
                Expr::payload(Base::Transport, 24, 2),
                Expr::Cmp(NFT_CMP_NEQ, vec![1, 1]),
                Expr::Verdict(NF_DROP),
            ],
        ]
        .concat()
    );
    assert_eq!(
        port[8],
        [
            ns_option,
            own("lladdrs", Base::Transport, 26, 6, true),
            vec![Expr::Verdict(NF_DROP)],
        ]
        .concat()
    );
    // `... ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop`:
    // [ payload load 2b @ transport header + 24 ] [ cmp neq reg 1 0x0000010e ]
    assert_eq!(common[17][9], Expr::eq(&[0; 16]));
    assert_eq!(common[17][10], Expr::payload(Base::Transport, 24, 2));
    assert_eq!(common[17][11], Expr::Cmp(NFT_CMP_NEQ, vec![14, 1]));
    // `... ip6 saddr :: meta iifname . @th,64,128 != @v6 drop`, as for the
    // neighbour advertisement's target.
    assert_eq!(port[9].len(), 6 + 2 + 3 + 1);
    assert_eq!(port[9][8..], port[12][6..]);
    assert_eq!(port[12][6..9], own("targets", Base::Transport, 8, 16, true));
    // The router solicitation's source option at transport header + 8; the
    // advertisement's target option, type 2.
    assert_eq!(port[5][8], Expr::payload(Base::Transport, 8, 2));
    assert_eq!(port[6][8..11], own("lladdrs", Base::Transport, 10, 6, true));
    assert_eq!(port[10][9], Expr::Cmp(NFT_CMP_NEQ, vec![2, 1]));
    assert_eq!(
        port[11][8..11],
        own("lladdrs", Base::Transport, 26, 6, true)
    );
    // `ip6 saddr X meta l4proto udp ip6 nexthdr udp accept`.
    assert_eq!(port[14][2..5], own("v6", Base::Network, 8, 16, false));
    assert_eq!(
        port[14][5..],
        [
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[17]),
            Expr::payload(Base::Network, 6, 1),
            Expr::eq(&[17]),
            Expr::Verdict(NF_ACCEPT)
        ]
    );
    // `ip6 saddr X meta l4proto udp ip6 nexthdr ipv6-frag @nh,320,8 0x11
    // @nh,400,16 != 0x222 accept`: UDP right after the fragment header.
    assert_eq!(port[15][9], Expr::payload(Base::Network, 40, 1));
    assert_eq!(port[15][10], Expr::eq(&[17]));
    assert_eq!(port[15][12], Expr::Cmp(NFT_CMP_NEQ, vec![2, 0x22]));
    assert_eq!(port[17][7], Expr::eq(&[143]));
}
