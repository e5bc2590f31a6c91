#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, one arrow in the tree, every test.
# Needs only what a fresh machine has (cargo, python3 with pip, apt-get as root): the tests
# provision their own Kafka-protocol broker and pyiceberg environment under ~/.cache/vintagelake,
# and start their own PostgreSQL server from Debian's package (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL (the catalog fault tests start their own server from it)"
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  ls -d /usr/lib/postgresql/*/bin
elif [[ "$(id -u)" -eq 0 ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  ls -d /usr/lib/postgresql/*/bin
else
  echo "error: the tests need Debian's postgresql package: sudo apt-get install postgresql" >&2
  exit 1
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "one arrow major in the dependency tree"
arrow_versions="$(cargo tree --workspace -e normal --prefix none --locked | grep -E '^arrow-array v' | sed 's/ (\*)$//' | sort -u)"
echo "$arrow_versions"
if [[ "$(wc -l <<<"$arrow_versions")" -ne 1 ]]; then
  echo "error: more than one arrow-array version in the tree" >&2
  exit 1
fi

step "cargo test --workspace"
cargo test --workspace --locked

step "disk-full test (needs to mount a tmpfs)"
probe="$(mktemp -d)"
if mount -t tmpfs -o size=1m tmpfs "$probe" 2>/dev/null; then
  umount "$probe"
  cargo test --workspace --locked --test it -- --ignored diskfull
else
  echo "skipped: this machine cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)"
fi
rmdir "$probe"
