//! The shared fixture lives in the library so other crates' tests use the same one.

pub use vintagelake_storage::testing::*;
