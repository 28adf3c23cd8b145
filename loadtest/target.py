"""An already-running stack as a scenario's target (`--target`), instead of the fresh
local stack a run starts by default; and what the edge of that stack costs.

    --target compose[:PROJECT]   the edge container of a compose project (default:
                                 COMPOSE_PROJECT_NAME, else `chatroom`), at its own
                                 address on its non-internal network, port 2019
    --target HOST:PORT           any edge, e.g. 127.0.0.1:2019 (a compose stack's
                                 published port); --edge-container NAME|ID tells
                                 which container's memory to read

Connecting to the container's own address skips Docker's userland port proxy, which on
a loopback-published port (127.0.0.1:2019) relays every connection through one
docker-proxy process holding two descriptors for it: at most half the engine's open-file
limit (here 20,000 / 2) clients through that port, however many the edge could hold.

The stack runs with its own settings, so deploy it with the benchmarks' (no rate limits
or per-address cap, cheap hashing, a long idle timeout: what the local stacks use):

    python -m loadtest.target env > var/bench.env
    CHAT_ENV_FILE=var/bench.env scripts/deploy.sh

The edge's memory is read from the host: the resident memory of the container's
processes (/proc of the pids under its init, `docker inspect .State.Pid`) and what its
cgroup is charged (measure.cgroup_memory_kib: usage, anonymous, kernel, socket). The
database's durability settings are asked inside the `db` container.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from loadtest import measure, servers

DEFAULT_PROJECT = "chatroom"
EDGE_SERVICE = "tcp_edge"
DB_SERVICE = "db"
# Registrations from one address, thousands at once, waiting for a hashing slot: not
# refused (the local stacks' bound of 64 waiting is met with retries instead).
BENCH_ENV = {
    **servers.BENCH_DEFAULTS,
    **servers.CHEAP_ARGON2,
    "CHAT_ARGON2_QUEUE": "100000",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        metavar="compose[:PROJECT]|HOST:PORT",
        help="use this running stack instead of starting one (its settings are its own: "
        "deploy it with the benchmarks' env file, docs/benchmarks.md)",
    )
    parser.add_argument(
        "--edge-container",
        metavar="NAME|ID",
        help="with --target HOST:PORT: the edge's container, for its memory",
    )


def _docker(*args: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return proc.stdout.strip()


def compose_container(project: str, service: str) -> str:
    """The id of a compose service's (first) container, found by compose's labels."""
    ids = _docker(
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    ).split()
    if not ids:
        raise SystemExit(f"no running {service} container in compose project {project!r}")
    return ids[0]


def inspect(container: str) -> dict[str, Any]:
    return json.loads(_docker("inspect", container))[0]


def container_address(info: dict[str, Any]) -> str:
    """The container's address on a network that is not internal (compose's `public`)."""
    for name, net in info["NetworkSettings"]["Networks"].items():
        if _docker("network", "inspect", "-f", "{{.Internal}}", name) == "false":
            return net["IPAddress"]
    raise SystemExit(f"container {info['Name']} is on no network the host can reach")


def container_env(info: dict[str, Any], name: str, default: str) -> str:
    for item in info["Config"]["Env"]:
        key, _, value = item.partition("=")
        if key == name:
            return value
    return default


@dataclass
class Target:
    host: str
    port: int
    container: str | None = None  # the edge container's id
    project: str | None = None

    @property
    def init_pid(self) -> int | None:
        if self.container is None:
            return None
        return int(inspect(self.container)["State"]["Pid"])

    def edge_pids(self) -> list[int]:
        """The edge's processes (the parent and its workers), without docker's init."""
        root = self.init_pid
        if root is None:
            return []
        return [p for p in measure.process_tree_pids(root) if _comm(p) != "docker-init"]

    def sources(self, count: int) -> list[str | None]:
        """A local address per generator process: each loopback source address has its
        own ~28,000 ephemeral ports towards a loopback edge; towards a container the
        host's bridge address is the only route (and one address suffices for 28,000)."""
        if self.host.startswith("127."):
            return [f"127.0.0.{2 + i}" for i in range(count)]
        return [None] * count

    def memory(self) -> dict[str, Any]:
        """The edge's processes (RSS, open files each) and its container's cgroup."""
        pids = self.edge_pids()
        root = self.init_pid
        return {
            "edge_rss_kib": sum(measure.rss_kib(p) for p in pids),
            "processes": [
                {"pid": p, "rss_kib": measure.rss_kib(p), "open_files": measure.open_files(p)}
                for p in pids
            ],
            "cgroup_kib": measure.cgroup_memory_kib(root) if root else {},
        }

    def database(self) -> dict[str, Any]:
        """The compose database's durability settings (asked as root in its container)."""
        if self.project is None:
            return {"engine": "unknown (not a compose target)"}
        db = compose_container(self.project, DB_SERVICE)
        query = "SELECT " + ", ".join(f"@@global.{n}" for n in measure.DURABILITY)
        out = _docker(
            "exec",
            db,
            "sh",
            "-c",
            f'mysql -uroot -p"$(cat /run/secrets/db_root_password)" -N -e "{query}, VERSION()"',
        )
        values = out.split("\t")
        return {
            "engine": "mysql",
            **dict(zip([*measure.DURABILITY, "version"], values, strict=False)),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "address": f"{self.host}:{self.port}",
            "project": self.project,
            "container": self.container[:12] if self.container else None,
        }


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def resolve(spec: str, edge_container: str | None = None) -> Target:
    """--target's value as a Target (see the module's docstring)."""
    if spec == "compose" or spec.startswith("compose:"):
        project = spec.partition(":")[2] or os.environ.get("COMPOSE_PROJECT_NAME", DEFAULT_PROJECT)
        container = compose_container(project, EDGE_SERVICE)
        info = inspect(container)
        port = int(container_env(info, "CHAT_EDGE_PORT", "2019"))
        return Target(container_address(info), port, container, project)
    host, sep, port_text = spec.rpartition(":")
    if not sep or not port_text.isdigit():
        raise SystemExit(f"--target: expected compose[:PROJECT] or HOST:PORT, got {spec!r}")
    if edge_container is None:
        return Target(host, int(port_text))
    info = inspect(edge_container)
    owner = info["Config"]["Labels"].get("com.docker.compose.project")
    return Target(host, int(port_text), info["Id"], owner)


if __name__ == "__main__":
    if sys.argv[1:] != ["env"]:
        raise SystemExit("usage: python -m loadtest.target env  (the benchmarks' CHAT_* settings)")
    print("\n".join(f"{name}={value}" for name, value in BENCH_ENV.items()))
