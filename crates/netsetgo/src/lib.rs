//! The parts of netsetgo, one module per concept, in one folder per layer;
//! a folder uses only the folders listed before it, and [`error`]
//! (`scripts/layout-check` refuses an import circle). The binary (`main.rs`) implements the stages
//! of a call and runs them through [`stages::run`], in the order SECURITY.md
//! describes; the parts are a library so that the binary, tests and fuzzers
//! can reach them. Every module the binary, `tests/` or the fuzz targets use
//! is public and re-exported at the crate's root (`netsetgo::cli`, whatever
//! its folder), documented under `missing_docs`; `secure` is private, the
//! one module only the library itself uses. Where each concern lives:
//!
//! `start/`, the privileged start:
//! * [`stages`]: the order of a call, written once, over a trait of stages
//!   (`main.rs` implements them; a unit test's recording fake proves the
//!   order and that a failing stage stops the later ones).
//! * [`cli`]: the command line, Go `flag` style; [`ports`]: the syntax of
//!   `-publish` and `-unpublish` (shared with the policy and the state
//!   file) and which mappings a call on a living container adds or removes.
//! * [`privilege`]: sanitising a setuid start and dropping to CAP_NET_ADMIN.
//! * [`system`]: the process-level system calls those stages make, as a
//!   trait (the kernel's, or a unit test's recording fake).
//! * [`target`]: the target namespace, pinned by pidfd, and its ownership.
//! * `secure` (private): the one way files and directories are opened as
//!   root, and root-owned configuration files read (`read_trusted`).
//! * [`oci`]: the OCI runtime state a hook reads on stdin.
//! * [`accounts`]: user and group names from /etc/passwd and /etc/group,
//!   read once per call.
//! * [`audit`]: the audit record of each call.
//!
//! `state/`, what a call is judged by and keeps:
//! * [`policy`]: the administrator's policy file (its syntax in
//!   `state/policy/parse.rs`).
//! * [`request`]: the caller's flags checked against its grants.
//! * [`leases`]: address leases and per-user counts under a root-only lock
//!   (the store in `state/leases/mod.rs`, the locked [`leases::Ledger`] in
//!   `ledger.rs`, how its files are opened and locked in `files.rs`).
//!
//! `plan/`, pure and unit-tested without root:
//! * [`plan`]: what a lease implies (addresses, MAC, names, publications,
//!   the guard's elements), computed once.
//!
//! `kernel/`, the kernel seams:
//! * [`links`]: the link operations the wiring decides with, as a trait
//!   (the kernel's, or a unit test's fake).
//! * [`filters`]: masquerading, published ports and the guard in our own
//!   nf_tables tables, as a trait (the kernel's, or a unit test's fake).
//! * [`nat`]: forwarding, and the nf_tables session, when a call needs them.
//! * [`dhcp`]: the DHCP answer for a lease, and the unprivileged responder.
//! * [`watch`]: the reaper's subscription to the deletion of one host end.
//!
//! `work/`, the work of one call and what it says:
//! * [`wiring`]: the work of one call under the network's lock, one file
//!   per concern: `create` (executes a [`plan::Plan`], undoes a failed
//!   attempt), `bridge` (the bridge made sure of and claimed), `lease` (a
//!   create's only file that touches the ledger: garbage collection, quota,
//!   address, the lease reserved with its ports published, completed, and
//!   the one teardown), `undo` (the record of what a create made), `check`,
//!   `remove` (`-delete`, poststop), `publish` (`-publish` and `-unpublish`
//!   on a container wired already), `restore`; [`wiring::Sockets`] holds
//!   the sockets a call works through.
//! * [`output`]: what the call says.
//! * [`reaper`]: the process an lxc-user-nic `create` leaves behind, which
//!   collects its lease once its host end is gone (rootlesskit exited).
//!
//! And at the root: [`error`], how every failure is told.
//!
//! A `-publish` call (`netsetgo -pid P -publish tcp:8080:80`), followed
//! through the files in the order they are first called: `main.rs` →
//! `start/stages.rs` (the order; each stage is `main.rs`'s) →
//! `start/privilege.rs` (with `start/system.rs`) → `start/cli.rs` →
//! `start/ports.rs` (the mapping's syntax) → `state/request.rs` (within the
//! grants of `state/policy/`, read through `start/secure.rs`) →
//! `start/target.rs` → `state/leases/mod.rs` (the store, its files opened
//! by `state/leases/files.rs`) → `kernel/nat.rs`
//! (forwarding, the nf_tables socket) → `work/wiring/mod.rs` (the sockets,
//! the session, over `kernel/links.rs` and `kernel/filters.rs`) →
//! `work/wiring/create.rs`, which calls in turn `work/wiring/undo.rs`,
//! `work/wiring/bridge.rs`, `work/wiring/lease.rs` (the only caller of
//! `state/leases/ledger.rs` on this path; it publishes through
//! `kernel/filters.rs`),
//! `plan/mod.rs` (what the lease implies: the publication's targets, the
//! guard) and `kernel/links.rs` (the pair) → `work/output.rs`; then
//! `start/audit.rs`. The kernel seams, the store and `secure` are met
//! from more than one file: they are the layer below, read once.

#![deny(missing_docs)]
#![deny(unreachable_pub)]

pub mod error;
mod kernel;
pub mod plan;
mod start;
mod state;
mod work;

pub use kernel::{dhcp, filters, links, nat, watch};
pub(crate) use start::secure;
pub use start::{accounts, audit, cli, oci, ports, privilege, stages, system, target};
pub use state::{leases, policy, request};
pub use work::{output, reaper, wiring};
