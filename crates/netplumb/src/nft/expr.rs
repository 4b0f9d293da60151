//! nf_tables expressions and their encoding (`NFTA_RULE_EXPRESSIONS`), with
//! the registers they use. Encoded as `nft` encodes the same rules, so that
//! `nft list` prints them back as the text in the docs.

use super::wire::Attrs;

// <linux/netfilter.h>
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;
pub(super) const NF_DROP: i32 = 0;
pub(super) const NF_ACCEPT: i32 = 1;
/// `return`: back to the rule after the `jump` (`NFT_RETURN`).
pub(super) const NFT_RETURN: i32 = -5;

// <linux/netfilter/nf_tables.h>
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFT_JUMP: i32 = -3;

/// The verdict register.
pub(super) const NFT_REG_VERDICT: u32 = 0;
/// The first 16-byte register (the same bytes as `NFT_REG32_00..03`).
pub(super) const NFT_REG_1: u32 = 1;
/// The second 16-byte register (`NFT_REG32_04..07`).
pub(super) const NFT_REG_2: u32 = 2;
/// `NFT_REG32_00`: 4-byte registers are numbered from here.
const NFT_REG32_00: u32 = 8;

/// The 4-byte register `n` bytes*4 into the register file: where the field
/// of a concatenation that starts `4 * n` bytes into the key goes.
pub(super) fn reg32(n: u32) -> u32 {
    NFT_REG32_00 + n
}

pub(super) const NFT_META_PROTOCOL: u32 = 1;
pub(super) const NFT_META_IIF: u32 = 4;
pub(super) const NFT_META_IIFNAME: u32 = 6;
pub(super) const NFT_META_OIFNAME: u32 = 7;
pub(super) const NFT_META_NFPROTO: u32 = 15;
pub(super) const NFT_META_L4PROTO: u32 = 16;
pub(super) const NFT_CMP_EQ: u32 = 0;
pub(super) const NFT_CMP_NEQ: u32 = 1;
pub(super) const NFT_CT_STATUS: u32 = 2;
/// `IPS_DST_NAT` of `enum ip_conntrack_status`.
pub(super) const IPS_DST_NAT: u32 = 1 << 5;
/// `RTN_LOCAL` of `<linux/rtnetlink.h>`.
const RTN_LOCAL: u32 = 2;
pub(super) const IFNAMSIZ: usize = 16;

/// Where a payload expression reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    /// `NFT_PAYLOAD_LL_HEADER`: the Ethernet header.
    Link = 0,
    /// `NFT_PAYLOAD_NETWORK_HEADER`.
    Network = 1,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER`.
    Transport = 2,
}

/// The expressions this crate writes. Comparisons and masks work on
/// register 1; loads name their destination register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `meta load <key> => reg <dreg>`
    Meta { key: u32, dreg: u32 },
    /// `cmp <op> reg 1 <data>`
    Cmp(u32, Vec<u8>),
    /// `payload load <len>b @ <base> + <offset> => reg <dreg>`
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `bitwise reg 1 = (reg 1 & <mask>) ^ 0`
    Mask(Vec<u8>),
    /// `lookup reg 1 set <set> [dreg 1] [inverted]`: the key starts at
    /// register 1; a map's value lands in register 1.
    Lookup {
        set: String,
        map: bool,
        invert: bool,
    },
    /// `fib daddr type => reg 1` followed by `cmp eq reg 1 RTN_LOCAL`: the
    /// destination is an address of this host.
    FibDaddrLocal,
    /// `ct load <key> => reg 1`
    Ct(u32),
    /// `nat dnat <family> addr_min reg 1 proto_min reg <proto>`
    Dnat { family: u8, proto_reg: u32 },
    /// `masq`
    Masquerade,
    /// `immediate reg 0 jump -> <chain>`
    Jump(String),
    /// `immediate reg 0 <accept|drop>`
    Verdict(i32),
}

impl Expr {
    /// `meta load <key> => reg 1`
    pub(super) fn meta(key: u32) -> Expr {
        Expr::Meta {
            key,
            dreg: NFT_REG_1,
        }
    }

    /// `payload load <len>b @ <base> + <offset> => reg 1`
    pub(super) fn payload(base: Base, offset: u32, len: u32) -> Expr {
        Expr::Payload {
            base,
            offset,
            len,
            dreg: NFT_REG_1,
        }
    }

    /// `cmp eq reg 1 <data>`
    pub(super) fn eq(data: &[u8]) -> Expr {
        Expr::Cmp(NFT_CMP_EQ, data.to_vec())
    }

    /// `meta nfproto <nfproto>`, the dependency nft puts in front of an
    /// `ip`/`ip6` match in an inet table.
    pub(super) fn nfproto(nfproto: u8) -> [Expr; 2] {
        [Expr::meta(NFT_META_NFPROTO), Expr::eq(&[nfproto])]
    }
}

/// An interface name as nf_tables compares it: NUL-padded to IFNAMSIZ.
pub(super) fn ifname(name: &str) -> Vec<u8> {
    let mut out = vec![0u8; IFNAMSIZ];
    out[..name.len()].copy_from_slice(name.as_bytes());
    out
}

/// Appends `NFTA_RULE_EXPRESSIONS` with `exprs`.
pub(super) fn put_expressions(a: &mut Attrs<'_>, exprs: &[Expr]) {
    a.nest(NFTA_RULE_EXPRESSIONS, |a| {
        for expr in exprs {
            if let Expr::FibDaddrLocal = expr {
                a.nest(NFTA_LIST_ELEM, |a| put_expression(a, expr));
                let local = Expr::eq(&RTN_LOCAL.to_ne_bytes());
                a.nest(NFTA_LIST_ELEM, |a| put_expression(a, &local));
            } else {
                a.nest(NFTA_LIST_ELEM, |a| put_expression(a, expr));
            }
        }
    });
}

fn put_expression(a: &mut Attrs<'_>, expr: &Expr) {
    let name = match expr {
        Expr::Meta { .. } => "meta",
        Expr::Cmp(..) => "cmp",
        Expr::Payload { .. } => "payload",
        Expr::Mask(_) => "bitwise",
        Expr::Lookup { .. } => "lookup",
        Expr::FibDaddrLocal => "fib",
        Expr::Ct(_) => "ct",
        Expr::Dnat { .. } => "nat",
        Expr::Masquerade => "masq",
        Expr::Jump(_) | Expr::Verdict(_) => "immediate",
    };
    a.string(NFTA_EXPR_NAME, name);
    // Attributes in the order nft writes them (masq: an empty nest).
    a.nest(NFTA_EXPR_DATA, |a| match expr {
        Expr::Meta { key, dreg } => {
            a.be32(NFTA_META_KEY, *key);
            a.be32(NFTA_META_DREG, *dreg);
        }
        Expr::Cmp(op, data) => {
            a.be32(NFTA_CMP_SREG, NFT_REG_1);
            a.be32(NFTA_CMP_OP, *op);
            a.nest(NFTA_CMP_DATA, |a| a.bytes(NFTA_DATA_VALUE, data));
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            a.be32(NFTA_PAYLOAD_DREG, *dreg);
            a.be32(NFTA_PAYLOAD_BASE, *base as u32);
            a.be32(NFTA_PAYLOAD_OFFSET, *offset);
            a.be32(NFTA_PAYLOAD_LEN, *len);
        }
        Expr::Mask(mask) => {
            a.be32(NFTA_BITWISE_SREG, NFT_REG_1);
            a.be32(NFTA_BITWISE_DREG, NFT_REG_1);
            a.be32(NFTA_BITWISE_LEN, mask.len() as u32);
            a.nest(NFTA_BITWISE_MASK, |a| a.bytes(NFTA_DATA_VALUE, mask));
            a.nest(NFTA_BITWISE_XOR, |a| {
                a.bytes(NFTA_DATA_VALUE, &vec![0; mask.len()])
            });
        }
        Expr::Lookup { set, map, invert } => {
            a.string(NFTA_LOOKUP_SET, set);
            a.be32(NFTA_LOOKUP_SREG, NFT_REG_1);
            if *map {
                a.be32(NFTA_LOOKUP_DREG, NFT_REG_1);
            }
            if *invert {
                a.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
            }
        }
        Expr::FibDaddrLocal => {
            a.be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
            a.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
            a.be32(NFTA_FIB_DREG, NFT_REG_1);
        }
        Expr::Ct(key) => {
            a.be32(NFTA_CT_KEY, *key);
            a.be32(NFTA_CT_DREG, NFT_REG_1);
        }
        Expr::Dnat { family, proto_reg } => {
            a.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
            a.be32(NFTA_NAT_FAMILY, u32::from(*family));
            a.be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
            a.be32(NFTA_NAT_REG_PROTO_MIN, *proto_reg);
        }
        Expr::Jump(chain) => {
            a.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            a.nest(NFTA_IMMEDIATE_DATA, |a| {
                a.nest(NFTA_DATA_VERDICT, |a| {
                    a.be32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                    a.string(NFTA_VERDICT_CHAIN, chain);
                });
            });
        }
        Expr::Verdict(code) => {
            a.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            a.nest(NFTA_IMMEDIATE_DATA, |a| {
                a.nest(NFTA_DATA_VERDICT, |a| {
                    a.be32(NFTA_VERDICT_CODE, *code as u32)
                });
            });
        }
        Expr::Masquerade => {}
    });
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::wire::Message;
    use super::*;

    /// The `NFTA_RULE_EXPRESSIONS` attribute of `exprs`, as hex.
    pub(in super::super) fn encoded(exprs: &[Expr]) -> String {
        let mut msg = Message::new(0, 0, 0, 0, 0);
        put_expressions(&mut msg.attrs(), exprs);
        msg.finish()[20..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn fib_and_immediate_are_nfts_bytes() {
        // nft --debug=mnl add rule inet u publish ip daddr != 127.0.0.0/8
        //     fib daddr type local accept
        let nft = "3801048024000180090001006d6574610000000014000280080002000000000f0800010000000001\
                   2c00018008000100636d700020000280080001000000000108000200000000000c00038005000100\
                   02000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108\
                   0003000000001008000400000000012c00018008000100636d7000200002800800010000000001080002\
                   00000000010c000380050001007f0000002800018008000100666962001c00028008000300000000\
                   02080002000000000308000100000000012c00018008000100636d70002000028008000100000000\
                   0108000200000000000c0003800800010002000000300001800e000100696d6d6564696174650000\
                   001c0002800800010000000000100002800c0002800800010000000001";
        let exprs = [
            Expr::nfproto(NFPROTO_IPV4).to_vec(),
            vec![
                Expr::payload(Base::Network, 16, 1),
                Expr::Cmp(NFT_CMP_NEQ, vec![127]),
                Expr::FibDaddrLocal,
                Expr::Verdict(NF_ACCEPT),
            ],
        ]
        .concat();
        assert_eq!(encoded(&exprs), nft.replace(' ', ""));
    }
}
