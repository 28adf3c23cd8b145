#!/usr/bin/env bash
# The whole test suite, from a fresh machine: .venv, a private MariaDB, lint, pytest
# (every integration test runs on SQLite and on MariaDB). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh server,dev
if [ -z "${CHAT_TEST_MYSQL_URL:-}" ]; then
  CHAT_TEST_MYSQL_URL=$(scripts/test-mariadb.sh)
  export CHAT_TEST_MYSQL_URL
fi
.venv/bin/ruff check .
.venv/bin/pytest -p no:cacheprovider "$@"
