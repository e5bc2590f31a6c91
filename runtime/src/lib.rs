//! What every vintagelake daemon runs on, whatever it does with tables: readiness checks, the
//! metric catalogue's shape, the lifecycle job loop, the audit trail, fail points for fault
//! tests, ordered shutdown, and the per-user tool cache.

pub mod audit;
pub mod cache;
pub mod failpoint;
pub mod health;
pub mod metrics;
pub mod schedule;
pub mod settings;
pub mod shutdown;

pub use audit::{AuditEntry, AuditLog};
pub use health::Readiness;
pub use schedule::{Lifecycle, RunEnd};
pub use settings::DaemonSettings;
pub use shutdown::Components;
