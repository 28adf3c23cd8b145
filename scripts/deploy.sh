#!/usr/bin/env bash
# Deploy ChatRoom with Docker Compose on this host: create the database secrets and the
# bus's CURVE keys once (in secrets/), then build and start the stack and wait until
# healthy.
# Extra arguments go to `docker compose up` (e.g. --scale social=3).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
mkdir -p secrets
for name in db_password db_root_password; do
  if [ ! -s "secrets/$name" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "secrets/$name"
    echo "created secrets/$name" >&2
  fi
done
# The containers run as non-root users that must read the mounted secret files.
chmod 644 secrets/db_password secrets/db_root_password
# TLS on port 2020 when a certificate is there (see compose.tls.yaml). Compose mounts
# file secrets as they are, so the key must be readable by the edge's user.
if [ -f secrets/tls/server.pem ] && [ -f secrets/tls/server.key ]; then
  chmod 644 secrets/tls/server.pem secrets/tls/server.key
  export COMPOSE_FILE=compose.yaml:compose.tls.yaml
  echo "TLS: on port ${CHAT_TLS_PUBLISHED_PORT:-2020} with secrets/tls/server.pem" >&2
fi
COMPOSE=${CHATROOM_COMPOSE:-docker compose}
# The bus's CURVE keys, one pair per role (chatroom/buskeys.py): made by the server image
# (it has pyzmq), as this user; existing keys are kept. Delete a pair to rotate it.
$COMPOSE build
mkdir -p secrets/bus-keys
docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/secrets/bus-keys:/keys" \
  "chatroom-server:${CHATROOM_VERSION:-latest}" chatroom bus-keys /keys >&2
# As for the passwords: the containers' non-root users read the mounted files.
chmod 644 secrets/bus-keys/*
$COMPOSE up -d --build --wait "$@"
$COMPOSE ps
