//! Integration tests of the compactor on real Iceberg tables (and pyiceberg).

mod compaction;
mod encryption;
mod incremental;
