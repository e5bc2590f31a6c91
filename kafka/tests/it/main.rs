//! Integration tests of the kafka crate against real parts (a Kafka-protocol broker on loopback).

mod broker;
