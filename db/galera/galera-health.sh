#!/bin/sh
# galera-health.sh - the node's health check: healthy when it is Synced in a primary
# component (a node that is joining, a donor or in a minority is not). As root, by the
# socket (root has no password and no network access): the default one, or
# $GALERA_SOCKET where several nodes share a machine (chatroom/host_galera.py).
set -eu
value() {
  mariadb -uroot ${GALERA_SOCKET:+"--socket=$GALERA_SOCKET"} -N -B \
    -e "SHOW GLOBAL STATUS LIKE '$1'" | cut -f2
}
cluster=$(value wsrep_cluster_status)
state=$(value wsrep_local_state_comment)
echo "cluster: $cluster, state: $state"
[ "$cluster" = Primary ] && [ "$state" = Synced ]
