//! The privileged start: the command line, the process made safe and
//! narrowed, the caller and its target identified, the hook's state read
//! holding nothing, and the audit record of what was done.

pub mod audit;
pub mod cli;
pub mod oci;
pub mod ports;
pub mod privilege;
pub(crate) mod secure;
pub mod stages;
pub mod system;
pub mod target;
