//! The messages that make and remove each kernel object, as methods of a
//! [`Batch`]: a table, a base chain (on a hook, or on a device's ingress),
//! a regular chain, a rule, a set or map, and a set element.

use super::batch::{Batch, IfRaced};
use super::expr::{put_expressions, Expr};
use super::proto::{
    datatype, put_elements, Family, SetSpec, NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY,
    NFTA_CHAIN_TABLE, NFTA_CHAIN_TYPE, NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_RULE_CHAIN,
    NFTA_RULE_HANDLE, NFTA_RULE_TABLE, NFTA_RULE_USERDATA, NFTA_SET_DATA_LEN, NFTA_SET_DATA_TYPE,
    NFTA_SET_FLAGS, NFTA_SET_ID, NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE, NFTA_SET_NAME,
    NFTA_SET_TABLE, NFTA_SET_USERDATA, NFTA_TABLE_NAME, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE,
    NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NFT_SET_MAP, NF_ACCEPT,
};
use super::wire::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use crate::error::Step;

// libnftnl's user data TLVs, so that `nft list` shows our tags as comments
// and prints set elements in their byte order.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
const NFTNL_UDATA_SET_DATABYTEORDER: u8 = 1;
/// nft's `enum byteorder`: what nft writes for a concatenation, for an
/// interface name and for an address or port.
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_HOST_ENDIAN: u32 = 1;
const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// What [`Batch::element`] does with a set element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Adds it; one with the same key and value may be there already.
    Add,
    /// Adds it; one with the same key must not be there (`NLM_F_EXCL`).
    AddNew,
    /// Deletes it.
    Delete,
}

impl Batch<'_> {
    /// `add table <family> <table>` (no error if it exists).
    pub(super) fn table(&mut self, family: Family, table: &str) {
        self.add(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            Step::NftCreate,
            format!("table {} {table}", family.name()),
            IfRaced::Fail,
            |a| a.string(NFTA_TABLE_NAME, table),
        );
    }

    /// `delete table <family> <table>`, with everything in it.
    pub(super) fn delete_table(&mut self, family: Family, table: &str) {
        self.add(
            NFT_MSG_DELTABLE,
            0,
            Step::NftDelete,
            format!("table {} {table}", family.name()),
            IfRaced::Fail,
            |a| a.string(NFTA_TABLE_NAME, table),
        );
    }

    /// A base chain with policy accept. It may exist as exactly that; any
    /// other chain of that name is an error.
    pub(super) fn base_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        kind: &str,
        hook: u32,
        priority: i32,
    ) {
        self.hooked_chain(family, table, name, kind, (hook, priority), NF_ACCEPT);
    }

    /// Base chain `name` of type `kind` on `hook` (its number and
    /// priority), with `policy`.
    fn hooked_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        kind: &str,
        (hook, priority): (u32, i32),
        policy: u32,
    ) {
        self.add(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            Step::NftCreate,
            format!("chain {} {table} {name}", family.name()),
            IfRaced::Fail,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
                a.nest(NFTA_CHAIN_HOOK, |a| {
                    a.be32(NFTA_HOOK_HOOKNUM, hook);
                    a.be32(NFTA_HOOK_PRIORITY, priority as u32);
                });
                a.be32(NFTA_CHAIN_POLICY, policy);
                a.string(NFTA_CHAIN_TYPE, kind);
            },
        );
    }

    /// Deletes every rule of `chain` (`NFT_MSG_DELRULE` without a handle).
    pub(super) fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        self.add(
            NFT_MSG_DELRULE,
            0,
            Step::NftDelete,
            format!("rules of chain {} {table} {chain}", family.name()),
            IfRaced::Fail,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
            },
        );
    }

    /// A regular chain that must not exist yet: if it appeared meanwhile,
    /// someone else is creating the same structure, and the state is read
    /// again.
    pub(super) fn new_chain(&mut self, family: Family, table: &str, name: &str) {
        self.add(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE | NLM_F_EXCL,
            Step::NftCreate,
            format!("chain {} {table} {name}", family.name()),
            IfRaced::Replan,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
            },
        );
    }

    /// Appends a rule to `chain`, with `tag` (a comment) if given.
    pub(super) fn rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr],
        tag: Option<&[u8]>,
        what: &str,
    ) {
        self.add(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            Step::NftAddRule,
            format!("{what} in chain {} {table} {chain}", family.name()),
            IfRaced::Fail,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
                put_expressions(a, exprs);
                if let Some(tag) = tag {
                    a.bytes(NFTA_RULE_USERDATA, tag);
                }
            },
        );
    }

    /// Deletes rule `handle` of `chain`.
    pub(super) fn delete_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        handle: u64,
        what: &str,
    ) {
        self.add(
            NFT_MSG_DELRULE,
            0,
            Step::NftDelete,
            format!(
                "rule {handle} ({what}) in chain {} {table} {chain}",
                family.name()
            ),
            IfRaced::Replan,
            |a| {
                a.string(NFTA_RULE_TABLE, table);
                a.string(NFTA_RULE_CHAIN, chain);
                a.be64(NFTA_RULE_HANDLE, handle);
            },
        );
    }

    /// Deletes chain `name` (and its rules).
    pub(super) fn delete_chain(&mut self, family: Family, table: &str, name: &str) {
        self.add(
            NFT_MSG_DELCHAIN,
            0,
            Step::NftDelete,
            format!("chain {} {table} {name}", family.name()),
            IfRaced::Replan,
            |a| {
                a.string(NFTA_CHAIN_TABLE, table);
                a.string(NFTA_CHAIN_NAME, name);
            },
        );
    }

    /// A hash set (or map) that must not exist yet (see
    /// [`new_chain`](Self::new_chain)).
    pub(super) fn new_set(&mut self, family: Family, table: &str, spec: &SetSpec) {
        let (key_type, key_len) = datatype::concat(spec.key);
        let (data_type, data_len) = datatype::concat(spec.data);
        let kind = if spec.data.is_empty() { "set" } else { "map" };
        // The kernel wants an ID unique in the batch, by which later
        // messages of the batch could name the set.
        let id = self.next_set_id();
        self.add(
            NFT_MSG_NEWSET,
            NLM_F_CREATE | NLM_F_EXCL,
            Step::NftCreate,
            format!("{kind} {} {table} {}", family.name(), spec.name),
            IfRaced::Replan,
            |a| {
                a.string(NFTA_SET_TABLE, table);
                a.string(NFTA_SET_NAME, spec.name);
                a.be32(
                    NFTA_SET_FLAGS,
                    if spec.data.is_empty() { 0 } else { NFT_SET_MAP },
                );
                a.be32(NFTA_SET_KEY_TYPE, key_type);
                a.be32(NFTA_SET_KEY_LEN, key_len);
                if !spec.data.is_empty() {
                    a.be32(NFTA_SET_DATA_TYPE, data_type);
                    a.be32(NFTA_SET_DATA_LEN, data_len);
                }
                a.be32(NFTA_SET_ID, id);
                a.bytes(NFTA_SET_USERDATA, &set_userdata(spec));
            },
        );
    }

    /// Adds (`NFT_MSG_NEWSETELEM`) or deletes (`NFT_MSG_DELSETELEM`) one
    /// element of set `<family> <table> <set>`, as `op` says.
    pub(super) fn element(
        &mut self,
        op: Op,
        table: &str,
        set: &str,
        key: &[u8],
        data: Option<&[u8]>,
        object: String,
    ) {
        self.elements(op, table, set, &[(key, data)], object);
    }

    /// [`element`](Self::element) for several elements of one set, in one
    /// message.
    pub(super) fn elements(
        &mut self,
        op: Op,
        table: &str,
        set: &str,
        elements: &[(&[u8], Option<&[u8]>)],
        object: String,
    ) {
        let (msg, flags, step) = match op {
            Op::Add => (NFT_MSG_NEWSETELEM, NLM_F_CREATE, Step::NftAddElement),
            Op::AddNew => (
                NFT_MSG_NEWSETELEM,
                NLM_F_CREATE | NLM_F_EXCL,
                Step::NftAddElement,
            ),
            Op::Delete => (NFT_MSG_DELSETELEM, 0, Step::NftDeleteElement),
        };
        self.add(msg, flags, step, object, IfRaced::Fail, |a| {
            put_elements(a, table, set, elements)
        });
    }
}

/// A set's user data as nft writes it: the byte order of the key (and
/// value), which nft needs to print the elements, and for a `typeof` key
/// its expressions.
fn set_userdata(spec: &SetSpec) -> Vec<u8> {
    let order = |fields: &[(u32, u32)]| match fields {
        [(datatype::IFINDEX, _)] => BYTEORDER_HOST_ENDIAN,
        [_] => BYTEORDER_BIG_ENDIAN,
        _ => BYTEORDER_INVALID,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&[NFTNL_UDATA_SET_KEYBYTEORDER, 4]);
    out.extend_from_slice(&order(spec.key).to_ne_bytes());
    if !spec.data.is_empty() {
        out.extend_from_slice(&[NFTNL_UDATA_SET_DATABYTEORDER, 4]);
        out.extend_from_slice(&order(spec.data).to_ne_bytes());
    }
    out.extend_from_slice(spec.typeof_key);
    out
}

/// A rule comment in libnftnl's user data encoding.
pub(super) fn user_comment(text: &str) -> Vec<u8> {
    let mut out = vec![NFTNL_UDATA_RULE_COMMENT, (text.len() + 1) as u8];
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}
