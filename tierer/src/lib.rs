//! Tiering daemon: enforces the retention policy across hot/warm/cold/archive tiers.

pub mod config;

pub use config::TiererConfig;
