//! The shared fixture lives in the testkit crate so every crate's tests use the same one.

pub use vintagelake_testkit::fixtures::*;
