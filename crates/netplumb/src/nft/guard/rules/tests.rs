use super::*;
use crate::nft::expr::{
    reg32, Base, Expr, NFT_CMP_NEQ, NFT_META_IIF, NFT_META_L4PROTO, NFT_META_PROTOCOL, NF_ACCEPT,
    NF_DROP,
};

/// `iif . <fields> @<set>` as nft writes it (nft --debug=netlink): [ meta
/// load iif => reg 1 ], each field loaded from the 4-byte register 9 on,
/// [ lookup reg 1 set <set> ].
fn lookup(set: &str, fields: &[(Base, u32, u32, u32)], invert: bool) -> Vec<Expr> {
    let mut out = vec![Expr::meta(NFT_META_IIF)];
    for &(base, offset, len, dreg) in fields {
        out.push(Expr::Payload {
            base,
            offset,
            len,
            dreg,
        });
    }
    out.push(Expr::Lookup {
        set: set.into(),
        map: false,
        invert,
    });
    out
}

#[test]
fn guard_rules_match_what_nft_generates() {
    let (common, own) = (common_rules(), port_rules());
    // The shared chain: 2 link-layer rules, the IPv4 protocol whitelist, 2
    // DHCP ports, DHCP discovery, IPv4's return, ARP, the return of all but
    // IPv6, the IPv6 whitelist, 3 DHCPv6 ports, the return of all but
    // ICMPv6, 2 RA and redirect, 2 RS, 3 NS, 2 NA, then the look-ups: 2 RS
    // option, 2 NS option, DAD target, 2 NA option, NA target; DAD and MLD
    // from `::`.
    assert_eq!(
        common.len(),
        2 + 1 + 2 + 1 + 1 + 1 + 1 + 1 + 3 + 1 + 2 + 2 + 3 + 2 + 2 + 2 + 1 + 2 + 1 + 2
    );
    // The port chain: the jump, 3 IPv4 and 3 IPv6 accepts; prerouting
    // jumps to it for the port's own MAC and drops what it returns.
    assert_eq!(own.len(), 1 + 3 + 3);
    let pre = prerouting_rules();
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[1][2], Expr::Verdict(NF_DROP));
    // `ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 iif @ports_v3
    // drop`: the comparison before the look-up.
    let input = input_rules();
    assert_eq!(input[0][2], Expr::eq(&[1, 0x80, 0xc2, 0, 0, 0]));
    assert_eq!(input[0][3], Expr::meta(NFT_META_IIF));
    // `meta protocol ip return`: [ meta load protocol => reg 1 ]
    // [ cmp eq reg 1 0x00000008 ] [ immediate reg 0 return ]
    assert_eq!(
        common[6],
        vec![
            Expr::meta(NFT_META_PROTOCOL),
            Expr::eq(&[8, 0]),
            Expr::Verdict(-5),
        ]
    );
    // `meta l4proto != ipv6-icmp return`.
    assert_eq!(
        common[13],
        vec![
            Expr::meta(NFT_META_L4PROTO),
            Expr::Cmp(NFT_CMP_NEQ, vec![0x3a]),
            Expr::Verdict(-5),
        ]
    );
    // `meta protocol != ip6 return`: [ meta load protocol => reg 1 ]
    // [ cmp neq reg 1 0x0000dd86 ] [ immediate reg 0 return ]
    assert_eq!(
        common[8],
        vec![
            Expr::meta(NFT_META_PROTOCOL),
            Expr::Cmp(NFT_CMP_NEQ, vec![0x86, 0xdd]),
            Expr::Verdict(-5),
        ]
    );
    assert_eq!(own[0], vec![Expr::Jump(GUARD_COMMON_CHAIN.into())]);
    // `iif . ether saddr @macs_v3 jump port_v3` (nft --debug=netlink,
    // bridge): [ meta load iif => reg 1 ] [ payload load 6b @ link header
    // + 6 => reg 9 ] [ lookup reg 1 set macs_v3 ] [ immediate reg 0 jump
    // -> port_v3 ]
    assert_eq!(
        pre[0],
        [
            lookup("macs_v3", &[(Base::Link, 6, 6, reg32(1))], false),
            vec![Expr::Jump(GUARD_PORT_CHAIN.into())]
        ]
        .concat()
    );
    // `ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 drop`:
    // [ bitwise reg 1 = ( reg 1 & 0xffffffff 0x0000f0ff ) ^ 0 ]
    // [ cmp eq reg 1 0x00c28001 0x00000000 ]
    // (No `meta iiftype` before it in a bridge table.)
    assert_eq!(common[0][0], Expr::payload(Base::Link, 0, 6));
    assert_eq!(
        common[0][1],
        Expr::Mask(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xf0])
    );
    assert_eq!(common[0][2], Expr::eq(&[1, 0x80, 0xc2, 0, 0, 0]));
    // `ether type != arp ether type != ip ether type != ip6 drop`: three
    // loads of link header + 12, each `cmp neq`.
    assert_eq!(common[1].len(), 6 + 1);
    assert_eq!(common[1][5], Expr::Cmp(NFT_CMP_NEQ, vec![0x86, 0xdd]));
    // ARP: [ payload load 2b @ link header + 12 ] [ cmp eq reg 1
    // 0x00000608 ] ... [ meta load iif => reg 1 ] [ payload load 6b @
    // network header + 8 => reg 9 ] [ payload load 4b @ network header + 14
    // => reg 11 ] [ lookup reg 1 set senders_v3 ] [ immediate reg 0 accept ]
    assert_eq!(common[7][0], Expr::payload(Base::Link, 12, 2));
    assert_eq!(common[7][1], Expr::eq(&[8, 6]));
    assert_eq!(
        common[7][6..],
        [
            lookup(
                "senders_v3",
                &[
                    (Base::Network, 8, 6, reg32(1)),
                    (Base::Network, 14, 4, reg32(3))
                ],
                false
            ),
            vec![Expr::Verdict(NF_ACCEPT)]
        ]
        .concat()[..]
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
    assert_eq!(common[9][1], Expr::eq(&[0x86, 0xdd]));
    assert_eq!(
        common[9][2..10],
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
        common[10],
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
        common[12][2..],
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
    assert_eq!(
        own[3][5..9],
        [
            Expr::meta(NFT_META_L4PROTO),
            Expr::eq(&[17]),
            Expr::payload(Base::Network, 6, 2),
            Expr::Mask(vec![0x1f, 0xff])
        ]
    );
    assert_eq!(own[3][13], Expr::payload(Base::Network, 22, 2));
    assert_eq!(own[3][14], Expr::Cmp(NFT_CMP_NEQ, vec![0, 68]));
    // `iif . ip saddr @v4_v3`: [ meta load protocol ] [ cmp eq 0x00000008 ]
    // [ meta load iif => reg 1 ] [ payload load 4b @ network header + 12 =>
    // reg 9 ] [ lookup reg 1 set v4_v3 ]
    assert_eq!(
        own[1][2..5],
        lookup("v4_v3", &[(Base::Network, 12, 4, reg32(1))], false)[..]
    );
    // `ip saddr 0.0.0.0 ip frag-off & 8191 == 0 udp sport 68 udp dport 67
    // accept`: [ payload load 2b @ network header + 6 ] [ bitwise ( &
    // 0x0000ff1f ) ] [ cmp eq reg 1 0 ] [ meta load l4proto ] ...
    // [ payload load 4b @ transport header + 0 ] [ cmp eq reg 1 0x43004400 ]
    assert_eq!(common[5][4..7], first_ipv4_udp()[2..5]);
    assert_eq!(common[5][10], Expr::eq(&[0, 68, 0, 67]));
    // `icmpv6 type nd-neighbor-solicit ip6 nexthdr != ipv6-icmp drop`:
    // [ meta load protocol ] [ cmp eq reg 1 0x0000dd86 ]
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
        common[18],
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
        common[19][6..],
        [
            Expr::payload(Base::Network, 4, 2),
            Expr::Cmp(NFT_CMP_NEQ, vec![0, 24]),
            Expr::payload(Base::Network, 4, 2),
            Expr::Cmp(NFT_CMP_NEQ, vec![0, 32]),
            Expr::Verdict(NF_DROP)
        ]
    );
    // `... ip6 length 32 ip6 saddr != :: @th,192,16 != 0x101 drop` and
    // `... iifname . @th,208,48 != @nd_macs drop`: [ cmp eq reg 1 0x00002000 ]
    // [ payload load 16b @ network header + 8 ] [ cmp neq reg 1 0 0 0 0 ]
    // [ payload load 2b @ transport header + 24 ] [ cmp neq reg 1
    // 0x00000101 ], and [ meta load iifname => reg 1 ] [ payload load 6b @
    // transport header + 26 => reg 2 ] [ lookup reg 1 set nd_macs 0x1 ].
    let head = [
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
        common[25],
        [
            head.clone(),
            vec![
                Expr::payload(Base::Transport, 24, 2),
                Expr::Cmp(NFT_CMP_NEQ, vec![1, 1]),
                Expr::Verdict(NF_DROP)
            ]
        ]
        .concat()
    );
    assert_eq!(
        common[26],
        [
            head,
            lookup("lladdrs_v3", &[(Base::Transport, 26, 6, reg32(1))], true),
            vec![Expr::Verdict(NF_DROP)]
        ]
        .concat()
    );
    // `... ip6 length 32 ip6 saddr :: @th,192,16 != 0xe01 drop`:
    // [ payload load 2b @ transport header + 24 ] [ cmp neq reg 1 0x0000010e ]
    assert_eq!(common[20][9], Expr::eq(&[0; 16]));
    assert_eq!(common[20][10], Expr::payload(Base::Transport, 24, 2));
    assert_eq!(common[20][11], Expr::Cmp(NFT_CMP_NEQ, vec![14, 1]));
    // `... ip6 saddr :: iifname . @th,64,128 != @nd_targets drop`, and the
    // advertisement's target: [ payload load 16b @ transport header + 8 =>
    // reg 2 ] [ lookup reg 1 set nd_targets 0x1 ].
    let target = lookup("targets_v3", &[(Base::Transport, 8, 16, reg32(1))], true);
    assert_eq!(
        common[27][8..],
        [target.clone(), vec![Expr::Verdict(NF_DROP)]].concat()[..]
    );
    assert_eq!(
        common[30][6..],
        [target, vec![Expr::Verdict(NF_DROP)]].concat()[..]
    );
    // The router solicitation's source option: [ payload load 2b @
    // transport header + 8 ]; the advertisement's target option: type 2.
    assert_eq!(common[23][8], Expr::payload(Base::Transport, 8, 2));
    assert_eq!(common[28][9], Expr::Cmp(NFT_CMP_NEQ, vec![2, 1]));
    // `ip6 saddr X meta l4proto udp ip6 nexthdr udp accept`.
    assert_eq!(
        own[5][5..],
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
    assert_eq!(own[6][9], Expr::payload(Base::Network, 40, 1));
    assert_eq!(own[6][10], Expr::eq(&[17]));
    assert_eq!(own[6][12], Expr::Cmp(NFT_CMP_NEQ, vec![2, 0x22]));
    assert_eq!(common[32][7], Expr::eq(&[143]));
}
