#!/bin/sh
# proxy-health.sh - the proxy's health check: through HAProxy (127.0.0.1:3306) to the
# writer, which must be in a primary component and ready for writes (wsrep_ready).
set -eu
ready=$(mariadb -h 127.0.0.1 -P 3306 -u haproxy --connect-timeout=3 -N -B \
  -e "SHOW GLOBAL STATUS LIKE 'wsrep_ready'" | cut -f2)
echo "writer wsrep_ready=$ready"
[ "$ready" = ON ]
