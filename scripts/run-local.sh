#!/usr/bin/env bash
# Run ChatRoom on this machine: every service as its own process, SQLite by default.
# Point it at MySQL with CHAT_DB_URL=mysql+pymysql://user:pass@host:3306/db. Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh server >&2
exec .venv/bin/chatroom up
