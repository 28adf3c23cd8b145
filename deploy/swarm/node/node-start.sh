#!/bin/sh
# The entrypoint of the swarm node image (Dockerfile beside this).
#   node-start.sh node [DOCKERD_FLAG...]  a Docker engine, as PID 1's only child; its API
#       also on /ctl/docker.sock when /ctl is mounted (the host's way in)
#   node-start.sh registry                Debian's docker-registry on port 5000, storage
#       in /var/lib/docker-registry
set -eu
case "${1:-node}" in
  node)
    shift || true
    # Without --privileged (a host whose root lacks a capability cannot give it: see
    # tests/swarmnodes.py) Docker mounts /sys and the cgroup folders read-only; with
    # CAP_SYS_ADMIN they are made writable again here, so that this engine can make
    # cgroups for its own containers (in this container's cgroup namespace).
    if grep -q ' /sys sysfs ro' /proc/mounts; then mount -o remount,rw /sys; fi
    for d in /sys/fs/cgroup/*; do
      if mountpoint -q "$d"; then mount -o remount,bind,rw "$d"; fi
    done
    hosts="-H unix:///var/run/docker.sock"
    if [ -d /ctl ]; then hosts="$hosts -H unix:///ctl/docker.sock"; fi
    # shellcheck disable=SC2086  # a list of flags
    exec dockerd $hosts "$@"
    ;;
  registry)
    mkdir -p /var/lib/docker-registry
    exec docker-registry serve /etc/docker/registry/test.yml
    ;;
  *)
    exec "$@"
    ;;
esac
