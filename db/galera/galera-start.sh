#!/bin/bash
# galera-start.sh - entrypoint of the Galera node image (compose.galera.yaml).
#
# Decides, at every start, whether this node FOUNDS the cluster (--wsrep-new-cluster)
# or JOINS it, then runs mariadbd in the foreground as user mysql:
#   1. A peer answers and is in a primary component: join it (a node whose data is
#      behind catches up by IST or a full copy, SST by rsync).
#   2. No data yet (first start): the first node of GALERA_PEERS initialises the data
#      (root by socket only, MYSQL_DATABASE, MYSQL_USER with MYSQL_PASSWORD[_FILE], the
#      user `haproxy` with no rights for the proxy's checks, /docker-entrypoint-initdb.d/
#      *.sql) and founds the cluster; the others wait for it and join by SST.
#   3. Data, and grastate.dat says safe_to_bootstrap: 1: this node was the last to
#      leave a cluster that was shut down cleanly, so it holds every commit: it founds.
#   4. Otherwise: join, and wait (pc.wait_prim_timeout) for a founder or for the peers
#      of the last primary component to come back (pc.recovery re-forms it when every
#      node crashed at once). When the wait runs out mariadbd exits, the container is
#      restarted and this script decides again.
# A position lost in a crash (seqno -1) is recovered from InnoDB first
# (mariadbd --wsrep-recover), so the node can catch up by IST instead of a full SST.
#
# Environment: GALERA_NODE_NAME (this node, a host name its peers resolve),
# GALERA_PEERS (every node, comma-separated, the founder of a new cluster first),
# MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD or MYSQL_PASSWORD_FILE. Extra arguments
# go to mariadbd.
#
# Two commands for the operator, on a stopped node (`docker compose run --rm --no-deps
# galera-2 position`; docs/operations.md, after every node crashed):
#   position          print the node's last committed position and safe_to_bootstrap
#   force-bootstrap   the same, then set safe_to_bootstrap: 1, so that this node founds
#                     the cluster from its data at its next start (the operator's choice)
set -euo pipefail
shopt -s nullglob

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
NAME=${GALERA_NODE_NAME:?GALERA_NODE_NAME is not set}
PEERS=${GALERA_PEERS:?GALERA_PEERS is not set}
FIRST=${PEERS%%,*}
INIT_MARKER=$DATADIR/.init-incomplete

log() { printf '%s [galera-start] %s: %s\n' "$(date --rfc-3339=seconds)" "$NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

others=()
IFS=, read -ra all_peers <<<"$PEERS"
for peer in "${all_peers[@]}"; do
  if [ "$peer" != "$NAME" ]; then others+=("$peer"); fi
done

# A peer that answers SQL and is in a primary component (the user haproxy needs no
# password and no rights for SHOW STATUS).
primary_peer() {
  local peer status
  for peer in "${others[@]}"; do
    status=$(mariadb -h "$peer" -u haproxy --connect-timeout=2 -N -B \
      -e "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'" 2>/dev/null | cut -f2) || true
    if [ "$status" = Primary ]; then
      echo "$peer"
      return 0
    fi
  done
  return 1
}

grastate() { # grastate KEY: a value of grastate.dat (empty when there is none)
  [ -f "$DATADIR/grastate.dat" ] || return 0
  awk -v key="$1:" '$1 == key { print $2 }' "$DATADIR/grastate.dat"
}

sql_string() { local s=${1//\\/\\\\}; printf '%s' "${s//\'/\\\'}"; }

initialise() {
  local password=${MYSQL_PASSWORD:-} db=${MYSQL_DATABASE:-chat} user=${MYSQL_USER:-chat}
  if [ -z "$password" ] && [ -n "${MYSQL_PASSWORD_FILE:-}" ]; then
    password=$(<"$MYSQL_PASSWORD_FILE")
  fi
  [ -n "$password" ] || die "MYSQL_PASSWORD or MYSQL_PASSWORD_FILE is required on first start"
  log "initialising $DATADIR (database $db, user $user)"
  : >"$INIT_MARKER"
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=socket --cross-bootstrap --wsrep-on=OFF >/dev/null
  # Alone and unreplicated: the joiners get all of this in their first state transfer.
  mariadbd --user=mysql --wsrep-on=OFF --wsrep-provider=none --wsrep-cluster-address=gcomm:// --skip-networking --socket="$SOCKET" &
  local pid=$! ready=0
  for _ in $(seq 240); do
    if mariadb -uroot --socket="$SOCKET" -e 'SELECT 1' >/dev/null 2>&1; then
      ready=1
      break
    fi
    # Not `kill -0`: it runs as user mysql, and this root has no CAP_KILL.
    [ -d "/proc/$pid" ] || die "the temporary server exited"
    sleep 0.25
  done
  [ "$ready" = 1 ] || die "the temporary server did not answer within 60 s"
  {
    echo "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4;"
    echo "CREATE USER '$(sql_string "$user")'@'%' IDENTIFIED BY '$(sql_string "$password")';"
    echo "GRANT ALL ON \`${db//_/\\_}\`.* TO '$(sql_string "$user")'@'%';"
    echo "CREATE USER 'haproxy'@'%';"
  } | mariadb -uroot --socket="$SOCKET" --binary-mode
  for f in /docker-entrypoint-initdb.d/*.sql; do
    log "running $f"
    mariadb -uroot --socket="$SOCKET" "$db" <"$f"
  done
  mariadb-admin -uroot --socket="$SOCKET" shutdown
  wait "$pid" || true
  rm -f "$INIT_MARKER"
}

# mariadbd --wsrep-recover: the last committed position, from InnoDB.
recover_position() {
  local log=/tmp/wsrep-recover.log
  rm -f "$log"
  mariadbd --user=mysql --wsrep-recover "--wsrep-cluster-address=gcomm://$PEERS" \
    --log-error="$log" >/dev/null 2>&1 || true
  sed -n 's/.*WSREP: Recovered position: *\([^ ]*\).*/\1/p' "$log" 2>/dev/null | tail -n 1
}

mkdir -p "$DATADIR" /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld

case ${1:-} in
  position | force-bootstrap)
    [ -f "$DATADIR/grastate.dat" ] || die "no data in $DATADIR"
    position="$(grastate uuid):$(grastate seqno)"
    if [ "$(grastate seqno)" = -1 ]; then position=$(recover_position); fi
    if [ "$1" = force-bootstrap ]; then
      # Rewritten in place (sed -i would make a new file, which root without
      # CAP_FOWNER cannot give back to mysql with its mode).
      state=$(sed 's/^safe_to_bootstrap: .*/safe_to_bootstrap: 1/' "$DATADIR/grastate.dat")
      printf '%s\n' "$state" >"$DATADIR/grastate.dat"
      [ "$(grastate safe_to_bootstrap)" = 1 ] || die "could not set safe_to_bootstrap"
      log "safe_to_bootstrap set to 1: this node founds the cluster at its next start"
    fi
    echo "$NAME: position $position, safe_to_bootstrap: $(grastate safe_to_bootstrap)"
    exit 0
    ;;
esac
[ ! -e "$INIT_MARKER" ] || die "a first start stopped half-way: remove this node's volume and start it again"

args=(--user=mysql "--wsrep-node-name=$NAME")
if peer=$(primary_peer); then
  log "joining the primary component (seen at $peer)"
  founds=0
elif [ ! -d "$DATADIR/mysql" ]; then
  if [ "$NAME" = "$FIRST" ]; then
    initialise
    log "no data anywhere yet: founding a new cluster"
    founds=1
  else
    log "no data: joining $FIRST's new cluster (full state transfer)"
    founds=0
  fi
elif [ "$(grastate safe_to_bootstrap)" = 1 ]; then
  log "safe_to_bootstrap: 1 (the last node to leave): founding the cluster again at seqno $(grastate seqno)"
  founds=1
else
  log "not safe to found (safe_to_bootstrap: 0): joining; waiting for a founder or for the last component's nodes"
  founds=0
fi

if [ -d "$DATADIR/mysql" ] && [ "$(grastate seqno)" = -1 ]; then
  position=$(recover_position)
  if [ -n "$position" ]; then
    log "recovered position $position"
    args+=("--wsrep-start-position=$position")
  fi
fi

if [ "$founds" = 1 ]; then
  args+=(--wsrep-new-cluster "--wsrep-cluster-address=gcomm://$PEERS")
else
  args+=("--wsrep-cluster-address=gcomm://$PEERS")
fi
# The donor of a state transfer to this node: the other peers, the proxy's last choice
# of writer first (db/haproxy/haproxy.cfg lists them in GALERA_PEERS's order), so that
# the writer serves one only when no other node can: a donor is not Synced, the proxy
# takes it out, and the writes would move for a moment (seen in CI after a failover).
# The trailing comma: any Synced node when none of these is.
donors=$(echo "$PEERS" | tr ',' '\n' | grep -vx "$NAME" | tac | paste -sd, -)
args+=("--wsrep-sst-donor=$donors,")
# The proxy's agent check (galera-agent.sh): is this node fit to be the writer. It
# answers "down" until mariadbd is Synced; it outlives mariadbd's exec as its sibling.
socat TCP-LISTEN:9200,fork,reuseaddr EXEC:/usr/local/bin/galera-agent.sh &
log "exec mariadbd ${args[*]} $*"
exec mariadbd "${args[@]}" "$@"
