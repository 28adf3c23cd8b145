#!/usr/bin/env bash
# monitoring-images.sh - the Prometheus image for compose's `monitoring` profile on a
# machine that cannot pull from a registry.
#
# compose.yaml runs ${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.0}. Where that cannot be
# pulled, this builds a stand-in from Debian's `prometheus` package
# (deploy/monitoring/prometheus-image) on the base image that ../shared/containers/up.sh
# makes, the way that script builds its stand-ins, and prints
#   export PROMETHEUS_IMAGE=chatroom-local/prometheus:debian
# on stdout (logs go to stderr). Without that base image it prints nothing, and compose
# uses the official image. Rebuilt only when the Dockerfile or the base image changed.
#
# Usage:  eval "$(scripts/monitoring-images.sh)"   # then: docker compose --profile monitoring up -d
#         scripts/monitoring-images.sh --rebuild
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXT=$ROOT/deploy/monitoring/prometheus-image
BASE_IMAGE=${CHATROOM_BASE_IMAGE:-chatroom-local/debian:bookworm}
TAG=${CHATROOM_PROMETHEUS_TAG:-chatroom-local/prometheus:debian}
RECIPE_LABEL=org.chatroom.recipe
LOCK=${TMPDIR:-/tmp}/chatroom-monitoring-images.lock

log() { printf '[monitoring-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

rebuild=0
case ${1:-} in
  --rebuild) rebuild=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  '') ;;
  *) log "unknown option: $1"; exit 2 ;;
esac

if [ -n "${PROMETHEUS_IMAGE:-}" ]; then
  log "PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE is set; nothing to build"
  printf 'export PROMETHEUS_IMAGE=%s\n' "$PROMETHEUS_IMAGE"
  exit 0
fi
if ! base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null); then
  log "no $BASE_IMAGE (../shared/containers/up.sh builds it); compose uses the official image"
  exit 0
fi

# One build at a time (parallel test runs share the engine).
exec 9>"$LOCK"
flock -w 600 9 || { log "another build holds $LOCK"; exit 1; }

hash=$({
  echo "$base_id"
  (cd "$CONTEXT" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)
have=$(docker image inspect --format "{{ index .Config.Labels \"$RECIPE_LABEL\" }}" "$TAG" 2>/dev/null || true)
if [ "$rebuild" = 0 ] && [ "$have" = "$hash" ]; then
  log "image $TAG: up to date"
else
  log "image $TAG: building from deploy/monitoring/prometheus-image"
  started=$SECONDS
  # The classic builder, as up.sh builds (Debian packages no buildx).
  DOCKER_BUILDKIT=0 docker build --force-rm --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "$RECIPE_LABEL=$hash" --tag "$TAG" "$CONTEXT" >&2
  log "image $TAG: built in $((SECONDS - started)) s"
fi
printf 'export PROMETHEUS_IMAGE=%s\n' "$TAG"
