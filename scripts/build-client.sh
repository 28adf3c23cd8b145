#!/usr/bin/env bash
# Build the standalone desktop client for the OS this runs on (one folder with its own
# Python, Qt and the app): dist/chatroom-client/chatroom-client on Linux. Copy the whole
# folder to another machine of the same kind and run the executable in it; nothing else
# needs installing there (docs/client-install.md).
#
#   scripts/build-client.sh                 # -> dist/chatroom-client/
#   CHAT_DIST_DIR=/tmp/out CHAT_BUILD_DIR=/tmp/work scripts/build-client.sh
#
# Why PyInstaller (6.x, from PyPI):
# - pyside6-deploy (shipped with PySide6) drives Nuitka (its deploy_lib pins Nuitka==4.1.1):
#   Python compiled to C needs a C compiler toolchain on the build machine and takes
#   tens of minutes for a Qt app; PyInstaller only collects files (~1-2 min here).
# - Briefcase clones its app templates (github.com/beeware/briefcase-*-template) and
#   downloads support packages at build time; this project's machines and CI reach only
#   the package registries (PyPI, Debian, npm), not GitHub, so it cannot build here.
# - PyInstaller is a plain PyPI package, has hooks for PySide6, and builds the same way on
#   Linux, Windows and macOS (each for its own OS; it does not cross-compile).
#
# The build uses its own venv (under CHAT_BUILD_DIR, default build/client) with the
# client installed the way a user installs it (`.[client]`, so pyproject.toml's PySide6
# range applies) plus PyInstaller. build/ and dist/ are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=${CHAT_BUILD_DIR:-$ROOT/build/client}
DIST=${CHAT_DIST_DIR:-$ROOT/dist}
PYINSTALLER_SPEC=${CHAT_PYINSTALLER:-pyinstaller>=6,<7}

if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "the client needs Python 3.11 or newer as '$PY' (set PYTHON=...)" >&2
  exit 1
fi
# PyInstaller finds a Linux binary's libraries with ldd and objdump (binutils); Qt needs
# its usual system libraries at build time too (it is loaded to find plugins).
if [ "$(uname -s)" = Linux ]; then
  need=()
  command -v objdump >/dev/null || need+=(binutils)
  for pkg in libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  # The bundle carries Python's shared library (Debian: the libpython3.X package).
  pylib=$("$PY" -c 'import os, sys, sysconfig as s
lib = os.path.join(s.get_config_var("LIBDIR") or "", s.get_config_var("INSTSONAME") or "")
print("" if os.path.isfile(lib) else "libpython%d.%d" % sys.version_info[:2])')
  [ -z "$pylib" ] || need+=("$pylib")
  if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
  elif [ ${#need[@]} -gt 0 ]; then
    echo "missing: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
fi

mkdir -p "$WORK"
venv=$WORK/venv
if [ ! -x "$venv/bin/python" ]; then
  if ! "$PY" -m venv "$venv" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    "$PY" -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --upgrade pip
fi
# Not editable: the bundle takes the installed package (client, chatroom.protocol);
# uninstalled first so that a rebuild takes the current sources (same version number).
"$venv/bin/pip" uninstall -q -y chatroom >/dev/null 2>&1 || true
"$venv/bin/pip" install -q "$ROOT[client]" "$PYINSTALLER_SPEC"

cat > "$WORK/chatroom-client.py" <<'PY'
import sys

from client.main import main

sys.exit(main())
PY

"$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --name chatroom-client \
  --collect-submodules client \
  --distpath "$DIST" --workpath "$WORK/pyinstaller" --specpath "$WORK" \
  "$WORK/chatroom-client.py"

echo "built $DIST/chatroom-client/chatroom-client ($(du -sh "$DIST/chatroom-client" | cut -f1))"
