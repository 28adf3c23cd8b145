#!/usr/bin/env bash
# Name the server image after the code it is built from, and keep that name in .env so
# every later `docker compose` command (from any shell) runs that image:
#   CHATROOM_VERSION=<version in pyproject.toml>-g<commit>   e.g. 0.1.0-g8566833
# (just the version outside a git checkout). An operator who set CHATROOM_VERSION in the
# environment keeps their own name. The previous release's image keeps its tag, so a
# rollback is `CHATROOM_VERSION=<old> docker compose up -d` (see docs/operations.md).
# Prints the tag.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${CHATROOM_VERSION:-}
if [ -z "$tag" ]; then
  tag=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
  if commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
    tag="$tag-g$commit"
  fi
fi
# Docker tags: letters, digits, '_', '.', '-'; at most 128 characters.
if ! [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "CHATROOM_VERSION='$tag' is not a valid image tag (letters, digits, _ . -)" >&2
  exit 2
fi
scripts/env-set.sh "CHATROOM_VERSION=$tag"
echo "$tag"
