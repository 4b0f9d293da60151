//! A trivial program: built static, the benchmark times how long it takes
//! to start and exit (bench/run's "exec" part of the floor).

fn main() {}
