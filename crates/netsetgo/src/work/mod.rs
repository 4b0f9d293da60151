//! The work of one call under the network's lock, and what it says.

pub mod output;
pub mod reaper;
pub mod wiring;
