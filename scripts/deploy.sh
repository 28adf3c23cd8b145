#!/usr/bin/env bash
# Deploy ChatRoom with Docker Compose on this host: create the database secrets and the
# bus's CURVE keys once (in secrets/), then build and start the stack and wait until
# healthy.
# Extra arguments go to `docker compose up` (e.g. --scale social=3).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
COMPOSE=${CHATROOM_COMPOSE:-docker compose}
# The server containers run as this user (Dockerfile): it owns the secret files it reads.
SERVER_UID=10001

# Base images given in the environment (e.g. by ../shared/containers/up.sh on a machine
# that cannot pull the official ones).
for name in PYTHON_IMAGE MYSQL_IMAGE DEBIAN_IMAGE; do
  if [ -n "${!name:-}" ]; then
    scripts/env-set.sh "$name=${!name}"
  fi
done
# The Galera nodes and HAProxy (compose.galera.yaml) are built on Debian: where up.sh
# built its local Debian base (which its stand-ins are built on), use that one too.
LOCAL_DEBIAN=chatroom-local/debian:bookworm
if [ -z "${DEBIAN_IMAGE:-}" ] && ! grep -q '^DEBIAN_IMAGE=' .env 2>/dev/null &&
  docker image inspect "$LOCAL_DEBIAN" >/dev/null 2>&1; then
  scripts/env-set.sh "DEBIAN_IMAGE=$LOCAL_DEBIAN"
  echo "Debian base image: $LOCAL_DEBIAN (kept in .env)" >&2
fi

# The image is tagged with this release (pyproject version and commit), kept in .env.
CHATROOM_VERSION=$(scripts/image-tag.sh)
export CHATROOM_VERSION
echo "server image: chatroom-server:$CHATROOM_VERSION" >&2

mkdir -p secrets
chmod 700 secrets
for name in db_password db_root_password; do
  if [ ! -s "secrets/$name" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "secrets/$name"
    echo "created secrets/$name" >&2
  fi
done
# TLS on port 2020 when a certificate is there (see compose.tls.yaml); kept in .env so
# that later compose commands keep the TLS port.
tls_files=""
if [ -f secrets/tls/server.pem ] && [ -f secrets/tls/server.key ]; then
  # Added to the files already chosen (e.g. compose.galera.yaml), kept in .env.
  files=${COMPOSE_FILE:-$(sed -n 's/^COMPOSE_FILE=//p' .env 2>/dev/null | tail -n 1)}
  case ":${files:=compose.yaml}:" in
    *:compose.tls.yaml:*) ;;
    *) files=$files:compose.tls.yaml ;;
  esac
  export COMPOSE_FILE=$files
  scripts/env-set.sh "COMPOSE_FILE=$COMPOSE_FILE"
  tls_files="/secrets/tls/server.pem /secrets/tls/server.key"
  echo "TLS: on port ${CHAT_TLS_PUBLISHED_PORT:-2020} with secrets/tls/server.pem" >&2
fi

$COMPOSE build
# The edge asks for 20,000 open files per process (compose.yaml), which any engine with
# Docker's defaults allows; one whose own limit is lower cannot start it, so use that
# limit then (and keep it in .env). More clients per edge: raise CHAT_EDGE_NOFILE.
if [ -z "${CHAT_EDGE_NOFILE:-}" ] && ! grep -q '^CHAT_EDGE_NOFILE=' .env 2>/dev/null; then
  hard=$(docker run --rm --network none "chatroom-server:$CHATROOM_VERSION" \
    sh -c 'ulimit -Hn')
  if [ "$hard" != unlimited ] && [ "$hard" -lt 20000 ]; then
    scripts/env-set.sh "CHAT_EDGE_NOFILE=$hard"
    echo "the engine allows $hard open files per container: CHAT_EDGE_NOFILE=$hard in .env" >&2
  fi
fi
# In the server image, as root: make the bus's CURVE keys that are missing, one pair per
# role (chatroom/buskeys.py; delete a pair to rotate it), and hand each secret file to
# the user that reads it, mode 0600, in 0700 folders. Compose mounts file secrets as
# they are, so the server user must own its files; db_root_password stays root's (the
# database entrypoint reads it as root). Done in a container so that it works for an
# operator who is not root, and with user-namespace remapping.
mkdir -p secrets/bus-keys
docker run --rm --user 0 --network none -v "$PWD/secrets:/secrets" \
  "chatroom-server:$CHATROOM_VERSION" sh -euc "
    chatroom bus-keys /secrets/bus-keys >&2
    chown $SERVER_UID:$SERVER_UID /secrets/db_password /secrets/bus-keys/* $tls_files
    chown 0:0 /secrets/db_root_password
    chmod 600 /secrets/db_password /secrets/db_root_password /secrets/bus-keys/* $tls_files
    chmod 700 /secrets /secrets/bus-keys $([ -z "$tls_files" ] || echo /secrets/tls)
  "
$COMPOSE up -d --build --wait "$@"
$COMPOSE ps
