#!/bin/sh
# galera-health.sh - the node's health check: healthy when it is Synced with a primary
# component (a node that is joining, a donor or in a minority is not). As root, by the
# socket (root has no password and no network access).
set -eu
status=$(mariadb -uroot -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')" | cut -f2 | tr '\n' ' ')
echo "$status"
[ "$status" = "Primary Synced " ]
