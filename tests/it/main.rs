//! Integration tests of the `vintagelake` binary, run as a user runs it.

mod bench;
mod chaos;
mod cli;
mod compact;
mod console;
mod demo;
mod deploy;
mod diskfull;
mod faults;
mod ingest;
mod migrate;
mod postgres;
mod query;
mod schema;
mod serve;
mod shapes;
mod sql;
mod stress;
mod support;
mod tier;
mod vintages;
