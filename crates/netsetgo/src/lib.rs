//! The parts of netsetgo, one module per concept. The binary (`main.rs`)
//! puts them in the order SECURITY.md describes, one function per stage;
//! they are a library so that the binary, tests and fuzzers can reach
//! them. Every module the binary, `tests/` or the fuzz targets use is
//! public (documented, under `missing_docs`); `secure` is private, the
//! one module only the library itself uses.
//!
//! * [`cli`]: the command line, Go `flag` style.
//! * [`policy`]: the administrator's policy file (its syntax in
//!   `policy/parse.rs`).
//! * [`request`]: the caller's flags checked against its grants.
//! * [`ports`]: published ports (`-publish`), their syntax.
//! * [`plan`]: what a lease implies (addresses, MAC, names, publications,
//!   the guard's elements), computed once, without root.
//! * [`privilege`]: sanitising a setuid start and dropping to CAP_NET_ADMIN.
//! * [`system`]: the process-level system calls those stages make, as a
//!   trait (the kernel's, or a unit test's recording fake, which checks
//!   their order).
//! * [`target`]: the target namespace, pinned by pidfd, and its ownership.
//! * [`oci`]: the OCI runtime state a hook reads on stdin.
//! * [`dhcp`]: the DHCP answer for a lease, and the unprivileged responder.
//! * [`leases`]: address leases and per-user counts under a root-only lock
//!   (the store in `leases/mod.rs`, the locked [`leases::Ledger`] in
//!   `ledger.rs`, how its files are opened and locked in `files.rs`).
//! * [`links`]: the link operations the wiring decides with, as a trait
//!   (the kernel's, or a unit test's fake).
//! * [`nat`]: forwarding, and the nf_tables session, when a call needs them.
//! * [`filters`]: masquerading, published ports and the guard in our own
//!   nf_tables tables, as a trait (the kernel's, or a unit test's fake).
//! * [`wiring`]: the work of one call under that lock, one file per
//!   concern: `create` (executes a [`plan::Plan`]), `bridge`, `lease`
//!   (garbage collection, quota, address, the one teardown), `undo` (what
//!   a failed create made, undone in reverse), `check`, `remove`
//!   (`-delete`, poststop), `restore`; [`wiring::Sockets`] holds the
//!   sockets a call works through.
//! * `secure` (private): the one way files and directories are opened as root.
//! * [`output`], [`audit`], [`error`]: what the call says, and to whom.
//!
//! A `-publish` call, followed through the files: `main.rs` (the order) →
//! `cli.rs` → `ports.rs` (the mapping's syntax) → `request.rs` (within the
//! grants of `policy/`) → `nat.rs` (forwarding, the nf_tables socket) →
//! `wiring/mod.rs` (the sockets, the session) → `wiring/create.rs`, which
//! calls in turn `wiring/bridge.rs`, `wiring/lease.rs` (with
//! `leases/ledger.rs`), `plan.rs` (what the lease implies: the
//! publication's targets, the guard), `filters.rs` (publish, guard),
//! `links.rs` (the pair), and on failure `wiring/undo.rs` → `output.rs`.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

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
mod secure;
pub mod system;
pub mod target;
pub mod wiring;
