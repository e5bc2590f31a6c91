#!/usr/bin/env bash
# Quick start, command 1: build vintagelake and run the pipeline on its embedded default
# (DATA_DIR=./data, SQLite catalog, local warehouse, a local Kafka-protocol broker it provisions
# itself), publish a synthetic revision dataset, and show an answer fetched over Arrow Flight.
# It keeps serving until Ctrl-C; pass --exit to stop after the answer.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> building vintagelake (release; the first build takes a few minutes)"
cargo build --release --locked --bin vintagelake
bin="${CARGO_TARGET_DIR:-target}/release/vintagelake"

export DATA_DIR="${DATA_DIR:-./data}"
echo "==> running: $bin demo $*"
exec "$bin" demo "$@"
