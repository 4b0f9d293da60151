//! The kernel seams: links (netlink), filters and forwarding (nf_tables,
//! /proc/sys), DHCP's packets, and the reaper's watch on a host end; the wiring decides through the traits
//! here, which unit tests fake.

pub mod dhcp;
pub mod filters;
pub mod links;
pub mod nat;
pub mod watch;
