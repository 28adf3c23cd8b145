#!/usr/bin/env bash
# env-set.sh NAME=VALUE ...: keep each NAME=VALUE in .env (replacing an earlier line of
# that name), so every later `docker compose` command, from any shell, sees it.
# Used by scripts/deploy.sh, scripts/image-tag.sh and the
# operator steps of docs/operations.md (e.g. the number of replicas).
set -euo pipefail
cd "$(dirname "$0")/.."
touch .env
for pair in "$@"; do
  name=${pair%%=*}
  value=${pair#*=}
  if ! [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ "$name" = "$pair" ]; then
    echo "env-set.sh: '$pair' is not NAME=VALUE" >&2
    exit 2
  fi
  grep -v "^$name=" .env > .env.new || true
  printf '%s=%s\n' "$name" "$value" >> .env.new
  mv .env.new .env
done
