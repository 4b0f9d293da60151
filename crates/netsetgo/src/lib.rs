//! The parts of netsetgo, one module per concept. The binary (`main.rs`)
//! puts them in the order SECURITY.md describes; they are a library only so
//! that tests and fuzzers can reach the parsers.
//!
//! * [`cli`]: the command line, Go `flag` style.
//! * [`policy`]: the administrator's policy file.
//! * [`request`]: the caller's flags checked against its grants.
//! * [`ports`]: published ports (`-publish`), their syntax.
//! * [`plan`]: what a lease implies (addresses, MAC, names, publications,
//!   the guard's elements), computed once, without root.
//! * [`privilege`]: sanitising a setuid start and dropping to CAP_NET_ADMIN.
//! * [`target`]: the target namespace, pinned by pidfd, and its ownership.
//! * [`oci`]: the OCI runtime state a hook reads on stdin.
//! * [`dhcp`]: the DHCP answer for a lease, and the unprivileged responder.
//! * [`leases`]: address leases and per-user counts under a root-only lock.
//! * [`links`]: the link operations the wiring decides with, as a trait
//!   (the kernel's, or a unit test's fake).
//! * [`nat`]: forwarding, and the nf_tables session, when a call needs them.
//! * [`filters`]: masquerading, published ports and the guard in our own
//!   nf_tables tables, as a trait (the kernel's, or a unit test's fake).
//! * [`wiring`]: the netlink work of one call, under that lock.
//! * [`secure`]: the one way files and directories are opened as root.
//! * [`output`], [`audit`], [`error`]: what the call says, and to whom.

pub mod audit;
pub mod cli;
pub mod dhcp;
pub mod error;
pub mod filters;
pub mod leases;
pub mod links;
pub mod nat;
pub mod oci;
pub mod output;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod privilege;
pub mod request;
pub mod secure;
pub mod target;
pub mod wiring;
