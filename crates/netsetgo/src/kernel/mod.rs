//! The kernel seams: links (netlink), filters and forwarding (nf_tables,
//! /proc/sys), and DHCP's packets; the wiring decides through the traits
//! here, which unit tests fake.

pub mod dhcp;
pub mod filters;
pub mod links;
pub mod nat;
