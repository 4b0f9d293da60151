//! The parts of netsetgo, one module per concept, in one folder per layer.
//! The binary (`main.rs`) puts them in the order SECURITY.md describes, one
//! function per stage; they are a library so that the binary, tests and
//! fuzzers can reach them. Every module the binary, `tests/` or the fuzz
//! targets use is public and re-exported at the crate's root
//! (`netsetgo::cli`, whatever its folder), documented under
//! `missing_docs`; `secure` is private, the one module only the library
//! itself uses. Where each concern lives:
//!
//! `start/`, the privileged start:
//! * [`cli`]: the command line, Go `flag` style.
//! * [`privilege`]: sanitising a setuid start and dropping to CAP_NET_ADMIN.
//! * [`system`]: the process-level system calls those stages make, as a
//!   trait (the kernel's, or a unit test's recording fake, which checks
//!   their order).
//! * [`target`]: the target namespace, pinned by pidfd, and its ownership.
//! * `secure` (private): the one way files and directories are opened as root.
//! * [`oci`]: the OCI runtime state a hook reads on stdin.
//! * [`audit`]: the audit record of each call.
//!
//! `state/`, what a call is judged by and keeps:
//! * [`leases`]: address leases and per-user counts under a root-only lock
//!   (the store in `state/leases/mod.rs`, the locked [`leases::Ledger`] in
//!   `ledger.rs`, how its files are opened and locked in `files.rs`).
//! * [`policy`]: the administrator's policy file (its syntax in
//!   `state/policy/parse.rs`).
//! * [`request`]: the caller's flags checked against its grants.
//!
//! `plan/`, pure and unit-tested without root:
//! * [`plan`]: what a lease implies (addresses, MAC, names, publications,
//!   the guard's elements), computed once.
//! * [`ports`]: published ports (`-publish`), their syntax.
//!
//! `kernel/`, the kernel seams:
//! * [`links`]: the link operations the wiring decides with, as a trait
//!   (the kernel's, or a unit test's fake).
//! * [`filters`]: masquerading, published ports and the guard in our own
//!   nf_tables tables, as a trait (the kernel's, or a unit test's fake).
//! * [`nat`]: forwarding, and the nf_tables session, when a call needs them.
//! * [`dhcp`]: the DHCP answer for a lease, and the unprivileged responder.
//!
//! `work/`, the work of one call and what it says:
//! * [`wiring`]: the work of one call under the network's lock, one file
//!   per concern: `create` (executes a [`plan::Plan`]), `bridge`, `lease`
//!   (garbage collection, quota, address, the one teardown), `undo` (what
//!   a failed create made, undone in reverse), `check`, `remove`
//!   (`-delete`, poststop), `restore`; [`wiring::Sockets`] holds the
//!   sockets a call works through.
//! * [`output`]: what the call says.
//!
//! And at the root: [`error`], how every failure is told.
//!
//! A `-publish` call, followed through the files: `main.rs` (the order) →
//! `start/cli.rs` → `plan/ports.rs` (the mapping's syntax) →
//! `state/request.rs` (within the grants of `state/policy/`) →
//! `kernel/nat.rs` (forwarding, the nf_tables socket) →
//! `work/wiring/mod.rs` (the sockets, the session) →
//! `work/wiring/create.rs`, which calls in turn `work/wiring/bridge.rs`,
//! `work/wiring/lease.rs` (with `state/leases/ledger.rs`), `plan/mod.rs`
//! (what the lease implies: the publication's targets, the guard),
//! `kernel/filters.rs` (publish, guard), `kernel/links.rs` (the pair), and
//! on failure `work/wiring/undo.rs` → `work/output.rs`.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

pub mod error;
mod kernel;
pub mod plan;
mod start;
mod state;
mod work;

pub use kernel::{dhcp, filters, links, nat};
pub(crate) use start::secure;
pub use start::{audit, cli, oci, ports, privilege, stages, system, target};
pub use state::{leases, policy, request};
pub use work::{output, wiring};
