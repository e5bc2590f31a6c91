//! Integration tests of the ingest crate against real parts (a Kafka-protocol broker on loopback).

mod broker;
