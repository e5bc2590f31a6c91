#!/usr/bin/env bash
# Quick start, command 1: build vintagelake, provision a local broker and run the pipeline on the
# embedded default (./data, SQLite catalog, local tiers).
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> building vintagelake (release)"
cargo build --release --locked --bin vintagelake
bin="${CARGO_TARGET_DIR:-target}/release/vintagelake"

echo "==> provisioning the local Kafka-protocol broker"
broker="$(deploy/local/kafka.sh install)"
echo "broker binary: $broker"

echo "==> validating the documented example messages"
for example in \
  '{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":22768.866,"is_original_release":true}' \
  '{"version":1,"series_id":"GDPC1","date":"2024-13-01","revision_date":"2024-04-25","value":1}'; do
  echo "$example" | "$bin" admin validate-message 2>/dev/null || true
done

echo
echo "The pipeline itself (ingest and query) is not built yet in this version: 'vintagelake serve'"
echo "will run it here once it is. The test suite runs with: ./deploy/local/test.sh"
