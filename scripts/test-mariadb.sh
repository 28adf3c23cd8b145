#!/usr/bin/env bash
# Start a private MariaDB for the test suite (idempotent) and print the URL tests use.
# --stop stops it; --running exits 0 when it is up.
# Installs Debian's mariadb-server first when it is missing. Listens on 127.0.0.1 only.
# CHAT_TEST_MYSQL_PORT and CHAT_TEST_MYSQL_DIR give a second instance of its own;
# CHAT_TEST_MYSQL_ARGS adds server flags at start, e.g. "--log-bin" for the durability
# benchmarks (docs/benchmarks.md): the binary log cannot be switched on at run time, while
# innodb_flush_log_at_trx_commit and sync_binlog can (SET GLOBAL).
set -euo pipefail
PORT=${CHAT_TEST_MYSQL_PORT:-13306}
DIR=${CHAT_TEST_MYSQL_DIR:-/var/tmp/chatroom-test-mariadb}
SOCK=$DIR/mysqld.sock
URL="mysql+pymysql://chat_test:chat_test@127.0.0.1:$PORT/"

if [ "${1:-}" = "--stop" ]; then
  # Stop the private server (scripts/test.sh does this when it started it).
  if mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1; then
    mariadb-admin --socket="$SOCK" -uroot shutdown
    echo "stopped the test MariaDB on 127.0.0.1:$PORT" >&2
  fi
  exit 0
fi
if [ "${1:-}" = "--running" ]; then
  mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1
  exit
fi

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing mariadb-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq mariadb-server >&2
fi

if mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1; then
  echo "$URL"; exit 0
fi

mkdir -p "$DIR"
chown mysql:mysql "$DIR"
if [ ! -d "$DIR/data/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$DIR/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$DIR/install.log" 2>&1
fi
# Tests create and drop many small databases: durability per commit is not what they test.
nohup /usr/sbin/mariadbd --user=mysql --datadir="$DIR/data" --socket="$SOCK" \
  --port="$PORT" --bind-address=127.0.0.1 --pid-file="$DIR/mysqld.pid" \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
  --max-connections=2000 --innodb-flush-log-at-trx-commit=2 \
  --log-error="$DIR/error.log" ${CHAT_TEST_MYSQL_ARGS:-} >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb-admin --socket="$SOCK" -uroot ping >/dev/null
mariadb --socket="$SOCK" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'chat_test'@'127.0.0.1' IDENTIFIED BY 'chat_test';
GRANT ALL PRIVILEGES ON *.* TO 'chat_test'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
echo "$URL"
