#!/usr/bin/env bash
# Create .venv and install ChatRoom with its server and dev extras (idempotent).
# Usage: scripts/bootstrap.sh [extra,...]   (default: server,dev)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-server,dev}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "ChatRoom needs Python 3.11 or newer as '$PY' (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships venv separately.
    echo "installing python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq python3-venv >&2
    rm -rf .venv
    "$PY" -m venv .venv
  fi
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${EXTRAS//,/-}"
if [ ! -f "$stamp" ]; then
  # compat: a static path in a .pth file rather than an import hook, so mypy, pyright
  # and IDEs resolve the same import names Python does.
  .venv/bin/pip install -q -e ".[$EXTRAS]" --config-settings editable_mode=compat
  touch "$stamp"
fi
