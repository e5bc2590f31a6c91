//! Iceberg catalog and tables, remove-files commits, vintage scans and tier-routed object storage.

pub mod access;
pub mod arrivals;
pub mod catalog;
pub mod commit;
pub mod config;
pub mod crypto;
pub mod error;
pub mod evolve;
pub mod files;
pub mod group;
pub mod io;
pub mod metrics;
pub mod reader;
pub mod retention;
pub mod rollback;
pub mod scan;
pub mod shapes;
pub mod snapshots;
pub mod source;
pub mod store;
pub mod verify;
pub mod write;

pub use commit::{CommitKind, CommitRequest, Committed, OffsetUpdate};
pub use error::{Result, StorageError};
pub use reader::TableReader;
pub use scan::{SnapshotSelector, View, VintageQuery};
pub use source::ViewSource;
pub use store::{FinancialDataStorage, IcebergStore};
pub use write::Encoding;
