//! The nf_tables vocabulary shared by the look-ups and the batches: message
//! and attribute numbers of `<linux/netfilter/nf_tables.h>`, table
//! families, nft's data types, the shape of a set, the attributes of a set
//! element list, and the table names this crate accepts.

use super::expr::NFTA_DATA_VALUE;
use super::wire::Attrs;
use crate::error::{Error, Result};

// <linux/netfilter.h>
pub(super) const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_NETDEV: u8 = 5;
const NFPROTO_BRIDGE: u8 = 7;

// <linux/netfilter/nf_tables.h>
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_GETCHAIN: u16 = 4;
pub(super) const NFT_MSG_DELCHAIN: u16 = 5;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_GETRULE: u16 = 7;
pub(super) const NFT_MSG_DELRULE: u16 = 8;
pub(super) const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_GETSET: u16 = 10;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_GETSETELEM: u16 = 13;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
pub(super) const NFT_MSG_GETGEN: u16 = 16;

pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NF_BR_PRE_ROUTING` of `<linux/netfilter_bridge.h>`.
pub(super) const NF_BR_PRE_ROUTING: u32 = 0;
/// `NF_BR_LOCAL_IN`.
pub(super) const NF_BR_LOCAL_IN: u32 = 1;
pub(super) const NF_ACCEPT: u32 = 1;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
pub(super) const NFTA_RULE_USERDATA: u16 = 7;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
pub(super) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(super) const NFTA_SET_KEY_LEN: u16 = 5;
pub(super) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(super) const NFTA_SET_DATA_LEN: u16 = 7;
pub(super) const NFTA_SET_ID: u16 = 10;
pub(super) const NFTA_SET_USERDATA: u16 = 13;
pub(super) const NFT_SET_MAP: u32 = 0x8;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_GEN_ID: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;

/// nft's data types (`enum datatypes` of nftables), for set keys and values;
/// a concatenation is the types shifted in 6 bits at a time.
pub(super) mod datatype {
    pub(in super::super) const INTEGER: u32 = 4;
    pub(in super::super) const IPADDR: u32 = 7;
    pub(in super::super) const ETHERADDR: u32 = 9;
    pub(in super::super) const IP6ADDR: u32 = 8;
    pub(in super::super) const INET_PROTOCOL: u32 = 12;
    pub(in super::super) const INET_SERVICE: u32 = 13;
    pub(in super::super) const IFINDEX: u32 = 20;

    /// The type of the concatenation of `types`, and its length in the
    /// register file: each field rounded up to 4 bytes.
    pub(in super::super) fn concat(types: &[(u32, u32)]) -> (u32, u32) {
        types.iter().fold((0, 0), |(t, len), &(kind, size)| {
            ((t << 6) | kind, len + size.div_ceil(4) * 4)
        })
    }
}

/// The family of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Inet,
    /// Only to find and delete the netdev guard tables of versions before
    /// the bridge guard (`-restore`'s migration).
    Netdev,
    Bridge,
}

impl Family {
    pub(super) fn nfproto(self) -> u8 {
        match self {
            Family::Inet => NFPROTO_INET,
            Family::Netdev => NFPROTO_NETDEV,
            Family::Bridge => NFPROTO_BRIDGE,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
        }
    }
}

/// A named set or map as it is created.
pub(super) struct SetSpec {
    pub(super) name: &'static str,
    /// Fields of the key: (nft datatype, length in bytes).
    pub(super) key: &'static [(u32, u32)],
    /// Fields of a map's value; empty for a plain set.
    pub(super) data: &'static [(u32, u32)],
    /// nft's user data describing the key by the expressions that make it
    /// (`typeof`), for a key nft cannot name by types (a raw payload in a
    /// concatenation); empty for none.
    pub(super) typeof_key: &'static [u8],
}

/// `NFTA_SET_ELEM_LIST_*` for `elements` (key, and value for a map).
pub(super) fn put_elements(
    a: &mut Attrs<'_>,
    table: &str,
    set: &str,
    elements: &[(&[u8], Option<&[u8]>)],
) {
    a.string(NFTA_SET_ELEM_LIST_TABLE, table);
    a.string(NFTA_SET_ELEM_LIST_SET, set);
    a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
        for (key, data) in elements {
            a.nest(NFTA_LIST_ELEM, |a| {
                a.nest(NFTA_SET_ELEM_KEY, |a| a.bytes(NFTA_DATA_VALUE, key));
                if let Some(data) = data {
                    a.nest(NFTA_SET_ELEM_DATA, |a| a.bytes(NFTA_DATA_VALUE, data));
                }
            });
        }
    });
}

/// Table names this module accepts: short, and plain enough to type into
/// `nft` unquoted.
pub(super) fn check_table(table: &str) -> Result<()> {
    let ok = (1..=64).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTableName(table.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(check_table("netsetgo").is_ok());
        assert!(check_table("").is_err());
        assert!(check_table("a b").is_err());
        assert!(check_table(&"x".repeat(65)).is_err());
    }

    #[test]
    fn concatenations_round_fields_to_four_bytes() {
        use datatype::*;
        // What nft sends for `type inet_proto . inet_service : ipv6_addr . inet_service`.
        assert_eq!(concat(&[(INET_PROTOCOL, 1), (INET_SERVICE, 2)]), (0x30d, 8));
        assert_eq!(concat(&[(IP6ADDR, 16), (INET_SERVICE, 2)]), (0x20d, 20));
        assert_eq!(concat(&[(IPADDR, 4)]), (7, 4));
    }
}
