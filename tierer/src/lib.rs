//! Tiering daemon: enforces the retention policy across hot/warm/cold/archive tiers, deletes what
//! is past retention (keeping original releases), and records every action in the audit trail.

pub mod config;
pub mod daemon;
pub mod metrics;
pub mod plan;
pub mod run;

pub use config::TiererConfig;
pub use plan::{Action, Pins, Policy};
pub use run::{TierError, TierReport, tier_once};
