#!/usr/bin/env bash
# Durable acks, measured (docs/benchmarks.md, "Durable acks"): dm and fanout at each
# InnoDB/binlog durability setting, interleaved in one sitting (mode A, B, C, A, B, C,
# ...), RUNS runs each, on a private MariaDB with the binary log on, and the disk's
# fsyncs/s on the database's file system. Results: var/results/durability/<run>/, then
# a table of medians (python -m loadtest.durability).
#   scripts/bench-durability.sh [RUNS]        (default 3)
#   scripts/bench-durability.sh --sweep       dm at 2, 8, 32 and 128 sends in flight, at
#       flush=1/sync_binlog=1 and 2/0 interleaved: how the batch grows and what it buys
# The MariaDB is scripts/test-mariadb.sh's, on its own port and folder unless given:
# CHAT_TEST_MYSQL_PORT (13417), CHAT_TEST_MYSQL_DIR (/var/tmp/chatroom-bench-mariadb).
# `scripts/test-mariadb.sh --stop` with the same two variables stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=0
if [ "${1:-}" = "--sweep" ]; then SWEEP=1; shift; fi
RUNS=${1:-3}
export CHAT_TEST_MYSQL_PORT=${CHAT_TEST_MYSQL_PORT:-13417}
export CHAT_TEST_MYSQL_DIR=${CHAT_TEST_MYSQL_DIR:-/var/tmp/chatroom-bench-mariadb}
# log_bin cannot be switched on at run time; the two durability settings can.
export CHAT_TEST_MYSQL_ARGS="--log-bin --server-id=1 --binlog-expire-logs-seconds=86400"
OUT=var/results/durability
SOCK=$CHAT_TEST_MYSQL_DIR/mysqld.sock
scripts/test-mariadb.sh >/dev/null
py=.venv/bin/python
# mode name -> "innodb_flush_log_at_trx_commit sync_binlog"
declare -A MODES=([flush1-sync1]="1 1" [flush1-sync0]="1 0" [flush2-sync0]="2 0")
ORDER=(flush1-sync1 flush1-sync0 flush2-sync0)
set_mode() {  # set_mode FLUSH SYNC_BINLOG
  mariadb --socket="$SOCK" -uroot -e \
    "SET GLOBAL innodb_flush_log_at_trx_commit=$1; SET GLOBAL sync_binlog=$2; FLUSH BINARY LOGS"
}
restore() {  # as the test suite expects the server
  mariadb --socket="$SOCK" -uroot -e \
    "SET GLOBAL innodb_flush_log_at_trx_commit=2; SET GLOBAL sync_binlog=0; PURGE BINARY LOGS BEFORE NOW()"
}
if [ "$SWEEP" = 1 ]; then
  rm -rf "$OUT-sweep"
  for inflight in 2 8 32 128; do
    for mode in flush1-sync1 flush2-sync0; do
      read -r flush sync <<<"${MODES[$mode]}"
      set_mode "$flush" "$sync"
      echo "=== $mode, $inflight in flight" >&2
      timeout 600 $py -m loadtest dm --pairs 50 --messages $((inflight < 8 ? 2000 : 6000)) \
        --inflight "$inflight" --out "$OUT-sweep/$mode/inflight-$inflight"
    done
  done
  restore
  $py -m loadtest.durability --sweep "$OUT-sweep"
  exit 0
fi
rm -rf "$OUT"
$py -m loadtest fsync --dir "$CHAT_TEST_MYSQL_DIR/data" --seconds 5 --out "$OUT/fsync"
for n in $(seq 1 "$RUNS"); do
  for mode in "${ORDER[@]}"; do
    read -r flush sync <<<"${MODES[$mode]}"
    set_mode "$flush" "$sync"
    echo "=== run $n, $mode" >&2
    timeout 600 $py -m loadtest dm --pairs 50 --messages 10000 --inflight 64 \
      --out "$OUT/$mode/dm-$n"
    timeout 600 $py -m loadtest fanout --members 100 --messages 5000 --inflight 32 \
      --systems chatroom --out "$OUT/$mode/fanout-$n"
  done
done
restore
$py -m loadtest.durability "$OUT"
