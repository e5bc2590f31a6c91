#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, one arrow in the tree, every test.
# Needs only what a fresh machine has (cargo, python3 with pip, node with npm, apt-get as root):
# the tests provision their own Kafka-protocol broker and pyiceberg environment under
# ~/.cache/vintagelake, start their own PostgreSQL server from Debian's package and drive Debian's
# Chromium (both installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*"; }

# What the tests need besides Rust, installed in the background while the build runs (its
# output is shown before the tests start): Debian's postgresql (the catalog tests start their own
# server from it), chromium and chromium-driver (the web console's browser tests), and the
# console tests' npm packages from their lockfile.
provision_log="$(mktemp)"
provision() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
  if ((${#missing[@]})); then
    if [[ "$(id -u)" -ne 0 ]]; then
      echo "error: the tests need Debian's ${missing[*]}: sudo apt-get install ${missing[*]}"
      return 1
    fi
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  ls -d /usr/lib/postgresql/*/bin
  /usr/bin/chromium --version
  if ! command -v npm >/dev/null; then
    echo "error: the console tests need Node.js (20 or later) with npm"
    return 1
  fi
  (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
}
provision >"$provision_log" 2>&1 &
provision_pid=$!

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

step "PostgreSQL, Chromium and the console tests' npm packages"
if ! wait "$provision_pid"; then
  cat "$provision_log" >&2
  exit 1
fi
cat "$provision_log"

step "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast

step "disk-full test (needs to mount a tmpfs)"
probe="$(mktemp -d)"
if mount -t tmpfs -o size=1m tmpfs "$probe" 2>/dev/null; then
  umount "$probe"
  cargo test --workspace --locked --test it -- --ignored diskfull
else
  echo "skipped: this machine cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)"
fi
rmdir "$probe"
