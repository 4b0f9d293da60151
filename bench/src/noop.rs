//! A trivial program: built static, the benchmark times how long it takes
//! to start and exit (bench/run's "exec" part of the floor).

#![warn(missing_docs)]
#![deny(unreachable_pub)]

fn main() {}
