#!/bin/sh
# galera-agent.sh - HAProxy's agent check (db/haproxy/haproxy.cfg, agent-port 9200):
# galera-start.sh serves it with socat, one run per check. "up" while this node is
# Synced in a primary component, else "down" with the reason: a node that is joining,
# a donor, desynced or in a minority still answers a MySQL handshake (the proxy's other
# check), but it must not be the writer, and the proxy moves the writes to one that is.
if reason=$(galera-health.sh 2>&1); then
  echo "up"
else
  echo "down #$(echo "$reason" | head -n 1)"  # HAProxy 2.6 reads "down#..." as no answer
fi
