//! nf_tables, spoken in-process over `NETLINK_NETFILTER`: masquerading,
//! published ports and the bridge guard.
//!
//! No `nft` or `iptables` binary is run: the messages of
//! `<linux/netfilter/nfnetlink.h>` and `<linux/netfilter/nf_tables.h>` are
//! built here by hand and exchanged with the kernel on a plain netlink
//! socket, one request (or one atomic batch) at a time. The operations are
//! reached from a session [`Nftables`] with request builders shaped like
//! rtnetlink's:
//!
//! ```no_run
//! # fn main() -> netplumb::Result<()> {
//! use netplumb::{Nftables, Publication, Protocol};
//! let nft = Nftables::open()?;
//! nft.masquerade("demo").add("br0", "10.20.0.0/24".parse().unwrap()).execute()?;
//! nft.ports("demo").publish(&Publication {
//!     protocol: Protocol::Tcp,
//!     host_address: None,
//!     host_port: 8080,
//!     container_port: 80,
//!     owner: "10.20.0.2".parse().unwrap(),
//!     targets: vec!["10.20.0.2".parse().unwrap()],
//! }).execute()?;
//! # Ok(()) }
//! ```
//!
//! * [`Masquerade`]: source NAT for a bridge's subnets (`table inet`).
//! * [`Ports`]: published ports, DNAT through maps (`table inet`); their
//!   claims read back for collection ([`Claim`]).
//! * [`Guard`]: what the bridge takes from a container's host end: shared
//!   chains on bridge prerouting and input, each port's MAC and addresses
//!   as set elements (`table bridge`).
//!
//! # Layers
//!
//! Each module uses only modules above it in this list, so there is no
//! circle:
//!
//! 1. `wire`: the netlink codec (messages, attributes, answers, errors).
//! 2. `expr`: rule expressions and registers.
//! 3. `proto`: nf_tables' message and attribute numbers, table families,
//!    nft's data types, set shapes, the set element list.
//! 4. `socket`: the session [`Nftables`], its exchanges with the kernel and
//!    the look-ups (chain, set, element, rules, generation).
//! 5. `batch`: atomic batches, committed once or in the transaction loop
//!    tied to a generation.
//! 6. `objects`: the messages per kernel object, beside `Batch`:
//!    table, base chain, chain, rule, set, element.
//! 7. `postrouting`: the `postrouting` base chain and its jump to a rule of
//!    one's own, shared by masquerading and the hairpin.
//! 8. `publication`: a published port ([`Publication`]) and its map
//!    elements.
//! 9. The operations: `masquerade` ([`Masquerade`]), `ports` ([`Ports`]),
//!    `guard` ([`Guard`], of a `guarded_port`, [`GuardedPort`]); `claims`
//!    ([`Claim`]) reads `ports`' claims back.
//!
//! # Transactions
//!
//! Structure (tables, sets, chains, rules) is created on first use in one
//! batch carrying the ruleset generation that was current when the state
//! was read (`NFNL_BATCH_GENID`): if anything changed the ruleset in
//! between, the kernel refuses the whole batch with `ERESTART` and the
//! state is read again. So concurrent callers never add a rule twice, and a
//! failed call changes nothing. Publications and guarded ports are set and
//! map elements: adding or removing one costs the same whatever the number
//! of others, and so does every packet. Other tables are never read or
//! written.

mod batch;
mod claims;
mod expr;
mod guard;
mod guarded_port;
mod isolation;
mod masquerade;
mod objects;
mod ports;
mod postrouting;
mod proto;
mod publication;
mod socket;
mod wire;

pub use self::claims::Claim;
pub use self::guard::{
    guard_table_name, AllowPort, ForgetPort, Guard, GuardElements, GUARD_COMMON_CHAIN,
    GUARD_PORT_CHAIN, LEGACY_GUARD_TABLES, VERSION as GUARD_VERSION,
};
pub use self::guarded_port::GuardedPort;
pub use self::masquerade::{AddMasquerade, Masquerade, RemoveMasquerade};
pub use self::ports::{Hairpin, Ports, Publish, Unpublish};
pub use self::publication::{Protocol, Publication};
pub use self::socket::Nftables;
