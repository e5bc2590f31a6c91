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
# Every test binary of the workspace, built once. The root package's integration suite is the
# longest by far (about 10 minutes of brokers, kills and daemons); the other binaries run beside
# it, one test at a time, so the whole suite takes about as long as that one suite. Each binary
# runs in its package's directory, as `cargo test` runs it; every binary runs even after one
# failed, and the step fails if any did.
listing="$(mktemp)"
cargo test --workspace --locked --no-run --message-format=json >"$listing"
binaries="$(python3 - "$listing" "$PWD" <<'PY'
import json, os, sys
listing, root = sys.argv[1], os.path.realpath(sys.argv[2])
main, others = [], []
for line in open(listing):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test") or not m.get("executable"):
        continue
    directory = os.path.dirname(os.path.realpath(m["manifest_path"]))
    entry = f"{directory}\t{m['executable']}"
    (main if directory == root and m["target"]["name"] == "it" else others).append(entry)
for e in main:
    print(f"main\t{e}")
for e in others:
    print(f"side\t{e}")
PY
)"
rm -f "$listing"
if ! grep -q '^main' <<<"$binaries"; then
  echo "error: the root package's integration suite is not among the test binaries built" >&2
  exit 1
fi
run_binaries() { # $1: main|side; runs those binaries in turn, returns 1 if any failed
  local kind="$1" status=0 k dir exe
  while IFS=$'\t' read -r k dir exe; do
    [[ "$k" == "$kind" ]] || continue
    printf '\n     Running %s (in %s)\n' "${exe##*/}" "$dir"
    (cd "$dir" && "$exe") || status=1
  done <<<"$binaries"
  return "$status"
}
side_log="$(mktemp)"
RUST_TEST_THREADS=1 run_binaries side >"$side_log" 2>&1 &
side_pid=$!
main_status=0
run_binaries main || main_status=1
side_status=0
wait "$side_pid" || side_status=1
printf '\n==> the other test binaries (run beside the root suite)\n'
cat "$side_log"
rm -f "$side_log"
cargo test --workspace --locked --doc
if ((main_status || side_status)); then
  echo "error: some tests failed (see above)" >&2
  exit 1
fi

step "disk-full test (needs to mount a tmpfs)"
probe="$(mktemp -d)"
if mount -t tmpfs -o size=1m tmpfs "$probe" 2>/dev/null; then
  umount "$probe"
  cargo test --workspace --locked --test it -- --ignored diskfull
else
  echo "skipped: this machine cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)"
fi
rmdir "$probe"
