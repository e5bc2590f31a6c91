//! Integration tests of the `vintagelake` binary, run as a user runs it.

mod cli;
mod demo;
mod ingest;
mod query;
mod support;
