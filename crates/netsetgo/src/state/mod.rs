//! The state a call is judged by and keeps: the administrator's policy,
//! the caller's request within it, and the root-only leases.

pub mod leases;
pub mod policy;
pub mod request;
