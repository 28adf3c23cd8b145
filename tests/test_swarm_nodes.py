"""deploy/swarm/stack.yaml on a real Swarm of three nodes (issue #18): a manager and two
workers, each a docker-in-docker container with an engine of its own, pulling the images
from a local registry (Debian's docker-registry); tests/swarmnodes.py builds them.

The swarm is formed and the stack deployed with the blocks of docs/operations.md
("Docker Swarm"), run verbatim on the manager's engine, from a tree laid out as a
deployed clone (the stack's files, .env, secrets/): `swarm-init` (its printed join
command is run on each worker) and `swarm-deploy`, with the registry's placeholder
address `registry.example.org:5000` replaced by the nodes' `registry:5000`. The stack
runs with the settings documented for hosts without IPVS (CHAT_SWARM_ENDPOINT_MODE=dnsrr,
CHAT_SWARM_PUBLISH_MODE=host: each node publishes 2019 from its own edge replica), and
the database pinned to the manager (CHAT_SWARM_DB_PLACEMENT) and the buses kept apart
(CHAT_SWARM_BUS_PLACEMENT on the manager, CHAT_SWARM_BUS_B_PLACEMENT on the workers).

Then:
- every replica runs and the replicas of each service are spread over different nodes,
  every node carrying some; the database is on the manager, the two buses on two nodes;
- under steady load (six clients over the nodes' published ports, three of them sending
  numbered lobby messages and DMs with client_ids, sent again as the protocol says;
  loadtest/hostfaults.py), a worker is drained (`docker node update --availability
  drain`): its tasks move to the other nodes, its clients resume on another node's edge;
  it is made active again;
- the other worker is lost as a machine is: cut off the network, then its container
  killed (`docker kill`: the engine and everything in it), so no goodbye of its dying
  sockets reaches anyone; the manager marks it down, its tasks are started on the nodes
  left, its clients resume on another node's edge (within the issue's 10 s,
  RESUME_TARGET_S, as a drained node's);
- the checker over every acknowledged message and every client's view (stored history
  and live pushes, loadtest.hostfaults.check): none lost, none stored or pushed twice, each
  sender's stored in the order sent, nothing unexpected, every client has every message
  it should.
At the end every node, the registry and the network are gone. Times and the verdict go
to var/results/swarm-nodes.json; the nodes' logs and the stack's tasks to
var/swarm-nodes.log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from swarmnodes import REGISTRY, SwarmNodes, docker, poll
from test_compose import image_settings, require_docker
from test_docs_commands import step_code
from test_swarm import stack_tree

from chatroom.config import RATED_ACTIONS
from loadtest.aclient import run_async
from loadtest.hostfaults import problems
from loadtest.scenarios.hostfaults import RESUME_TARGET_S, Run

pytestmark = [pytest.mark.compose, pytest.mark.swarm, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
STACK = "chat"  # as the docs name it: the swarm is this test's own
VERSION = f"swarm-nodes-{os.getpid()}"
PLACEHOLDER_REGISTRY = "registry.example.org:5000"
SERVICES = {"db": 1, "bus": 1, "bus-b": 1, "auth": 2, "social": 2, "media": 2, "tcp_edge": 2}
RESULTS = ROOT / "var" / "results" / "swarm-nodes.json"
LOG = ROOT / "var" / "swarm-nodes.log"
# The load: few and slow, on a machine of two cores that runs all three nodes.
LOAD = argparse.Namespace(members=6, senders=3, rate=3.0)
# The stack's .env: the defaults, except what a test from one address needs (as the
# other container tests: no rate limits or per-address cap, cheap hashing) and a request
# timeout below the clients' (loadtest/hostfaults.py: SEND_TIMEOUT_S).
TEST_SETTINGS = {
    **{f"CHAT_RATE_{action.upper()}": "off" for action in RATED_ACTIONS},
    "CHAT_MAX_CONNS_PER_IP": "100000",
    "CHAT_ARGON2_TIME_COST": "1",
    "CHAT_ARGON2_MEMORY_KIB": "1024",
    "CHAT_ARGON2_PARALLELISM": "1",
    "CHAT_REQUEST_TIMEOUT_MS": "3000",
}


def run_block(step: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """A block of the docs, verbatim but for the registry's address, in a new shell."""
    code = step_code(step).replace(PLACEHOLDER_REGISTRY, REGISTRY)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{step}:\n{code}\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


class Stack:
    """What the test reads of the stack, through the manager."""

    def __init__(self, swarm: SwarmNodes) -> None:
        self.swarm = swarm

    def tasks(self) -> list[tuple[str, str, str]]:
        """(service, node, current state) of every task that should be running."""
        out = self.swarm.manager.docker(
            "stack",
            "ps",
            STACK,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Name}}\t{{.Node}}\t{{.CurrentState}}",
            timeout=30,
        )
        rows = []
        for line in out.splitlines():
            name, node, state = line.split("\t")
            service = name.removeprefix(f"{STACK}_").rsplit(".", 1)[0]
            rows.append((service, node, state.split()[0]))
        return rows

    def placement(self) -> dict[str, list[str]]:
        """service -> the nodes its running tasks are on."""
        out: dict[str, list[str]] = {}
        for service, node, state in self.tasks():
            if state == "Running":
                out.setdefault(service, []).append(node)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def converged(self, avoid: str | None = None) -> bool:
        """Every service at its replicas, each running (and healthy: Swarm reports a task
        Running once its health check passed), none on node `avoid`."""
        tasks = self.tasks()
        running: dict[str, int] = {}
        for service, node, state in tasks:
            if node == avoid:
                return False
            if state == "Running":
                running[service] = running.get(service, 0) + 1
        return running == SERVICES and len(tasks) == sum(SERVICES.values())

    def logs(self) -> str:
        """The stack's tasks, and the last lines of every container of the stack on each
        node that is still there (`docker service logs` would wait for the lost node)."""
        text = self.swarm.manager.docker(
            "stack", "ps", STACK, "--no-trunc", check=False, timeout=30
        )
        for node in self.swarm.nodes:
            if node.killed or not node.engine_up():
                text += f"\n=== {node.name}: lost\n"
                continue
            names = node.docker(
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.stack.namespace={STACK}",
                "--format",
                "{{.Names}}",
                check=False,
            ).split()
            for name in names:
                proc = subprocess.run(
                    ["docker", "logs", "--tail", "30", name],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env={**os.environ, "DOCKER_HOST": f"unix://{node.sock}"},
                )
                text += f"\n--- {name} on {node.name}\n{proc.stdout}{proc.stderr}"
        return text


class SwarmRun(Run):
    """The clients and checker of the host fault suite (loadtest/scenarios/hostfaults.py),
    with a node drained and a node killed as its faults: the nodes' addresses are its
    hosts, each publishing the edge's port 2019 when an edge replica runs there."""

    def __init__(self, swarm: SwarmNodes, stack: Stack) -> None:
        self.swarm = swarm
        self.stack = stack
        hosts = SimpleNamespace(hosts=[SimpleNamespace(ip=n.ip) for n in swarm.nodes])
        super().__init__(hosts, LOAD)  # type: ignore[arg-type]

    def history_host(self) -> str:
        """A node that runs an edge now."""
        edges = self.stack.placement()["tcp_edge"]
        return next(n.ip for n in self.swarm.nodes if n.name in edges)

    async def spread_clients(self, timeout_s: float = 30) -> None:
        """Clients spread over the nodes that run an edge now (planned moves), so that
        the next fault finds some on its node."""
        placement = await asyncio.to_thread(self.stack.placement)
        edges = [i for i, n in enumerate(self.swarm.nodes) if n.name in placement["tcp_edge"]]

        def target(member: Any) -> int:
            return edges[member.index % len(edges)]

        for member in self.members:
            if member.host != target(member):
                member.want_host = target(member)
        deadline = time.monotonic() + timeout_s
        while not all(m.connected.is_set() and m.host == target(m) for m in self.members):
            assert time.monotonic() < deadline, "clients did not move to the edges' nodes"
            await asyncio.sleep(0.1)

    @staticmethod
    async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll the swarm (blocking calls) in a thread, the clients going on meanwhile."""
        await asyncio.to_thread(poll, condition, timeout_s, what)

    async def fault(self, step: dict[str, Any]) -> dict[str, Any]:
        node = self.swarm.node(step["node"])
        index = self.swarm.nodes.index(node)
        manager = self.swarm.manager
        await self.spread_clients()
        result: dict[str, Any] = dict(step, at_s=round(time.monotonic() - self.started, 1))
        affected, t0 = self.on_host(index), time.monotonic()
        result["tasks_before"] = await asyncio.to_thread(self.stack.placement)
        result["clients_on_it"] = len(affected)
        if step["kind"] == "drain":
            self.say(f"drain {node.name} ({len(affected)} clients on it)")
            await asyncio.to_thread(
                manager.docker, "node", "update", "--availability", "drain", node.name
            )
            await self.until(lambda: self.stack.converged(avoid=node.name), 180, "tasks moved")
            took = result["tasks_moved_s"] = round(time.monotonic() - t0, 1)
            self.say(f"{node.name} drained: every task elsewhere and running in {took} s")
            await asyncio.to_thread(
                manager.docker, "node", "update", "--availability", "active", node.name
            )
        else:
            self.say(f"cut off and kill {node.name} ({len(affected)} clients on it)")
            await asyncio.to_thread(node.kill)
            await self.until(lambda: self.swarm.node_states()[node.name][0] == "Down", 120, "down")
            down = result["node_down_s"] = round(time.monotonic() - t0, 1)
            await self.until(lambda: self.stack.converged(avoid=node.name), 180, "rescheduled")
            took = result["rescheduled_s"] = round(time.monotonic() - t0, 1)
            self.say(f"{node.name} down after {down} s; tasks running elsewhere after {took} s")
        result["tasks_after"] = await asyncio.to_thread(self.stack.placement)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(m.connected.is_set() for m in self.members):
            await asyncio.sleep(0.1)
        result["resume"] = self.resumes(affected, t0)
        result["presence_converged_s"] = await self.wait_presence(time.monotonic())
        return result


class Clock:
    """How long each phase took (seconds), for the report."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = round(now - self.last, 1)
        self.last = now


def operator_tree(tmp_path: Path) -> Path:
    """A deployed clone's files (tests/test_swarm.py's stack_tree), the scripts the docs
    block runs, and the test's settings in .env."""
    tree = tmp_path / "clone"
    stack_tree(tree)
    (tree / "scripts").mkdir()
    for script in ("image-tag.sh", "env-set.sh"):
        shutil.copy(ROOT / "scripts" / script, tree / "scripts")
    with (tree / ".env").open("a") as env_file:
        env_file.write("".join(f"{k}={v}\n" for k, v in TEST_SETTINGS.items()))
    return tree


def build_server_image() -> str:
    """The server image, as compose builds it (cached layers when the code did not
    change); returns the database image to use with it."""
    images = {
        **image_settings(),
        **{k: os.environ[k] for k in ("PYTHON_IMAGE", "MYSQL_IMAGE") if k in os.environ},
    }
    env = dict(os.environ, **images, CHATROOM_VERSION=VERSION)
    env.pop("COMPOSE_FILE", None)
    proc = subprocess.run(
        ["docker", "compose", "-p", f"swarm-nodes-{os.getpid()}", "build", "bus"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return images.get("MYSQL_IMAGE", "mysql:8.4")


def form_and_deploy(swarm: SwarmNodes, tree: Path, mysql_image: str, clock: Clock) -> Stack:
    """The images onto the manager, the swarm formed and the stack deployed by the docs'
    blocks; returns once every replica runs."""
    manager = swarm.manager
    # The server image reaches the manager as if built there; the stand-in database
    # image goes to the registry too (the docs use mysql:8.4 from Docker Hub).
    swarm.load(manager, f"chatroom-server:{VERSION}", mysql_image)
    db_image = f"{REGISTRY}/mysql:test"
    manager.docker("tag", mysql_image, db_image)
    manager.docker("push", db_image, timeout=300)
    clock.lap("images_to_manager_s")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tree.parent),
        "DOCKER_HOST": f"unix://{manager.sock}",
        "CHATROOM_VERSION": VERSION,
        "MYSQL_IMAGE": db_image,
        "CHAT_SWARM_ENDPOINT_MODE": "dnsrr",
        "CHAT_SWARM_PUBLISH_MODE": "host",
        "CHAT_SWARM_DB_PLACEMENT": f"node.hostname == {manager.name}",
        "CHAT_SWARM_BUS_PLACEMENT": "node.role == manager",
        "CHAT_SWARM_BUS_B_PLACEMENT": "node.role == worker",
    }
    nofile = manager_nofile(swarm)
    if nofile < 20000:
        env["CHAT_EDGE_NOFILE"] = str(nofile)
    out = run_block("swarm-init", tree, env)
    join = re.search(r"docker swarm join --token \S+ \S+:2377", out)
    assert join, out
    swarm.join(join[0])
    poll(
        lambda: list(swarm.node_states().values()) == [("Ready", "Active")] * len(swarm.nodes),
        60,
        "every node ready",
    )
    clock.lap("swarm_formed_s")
    run_block("swarm-deploy", tree, env, timeout=600)
    clock.lap("deploy_command_s")
    stack = Stack(swarm)
    poll(stack.converged, 300, "every replica running", every_s=2)
    clock.lap("stack_running_s")
    return stack


def test_three_node_swarm_spreads_and_survives_a_drain_and_a_killed_node(tmp_path):
    require_docker()
    clock = Clock()
    tree = operator_tree(tmp_path)
    mysql_image = build_server_image()
    clock.lap("server_image_s")
    report: dict[str, Any] = {}
    logs = ""
    try:
        with SwarmNodes(workers=2, mounts=(tree,)) as swarm:
            try:
                swarm.start()
                clock.lap("nodes_up_s")
                stack = form_and_deploy(swarm, tree, mysql_image, clock)
                placement = stack.placement()
                report["placement"] = placement
                check_spread(swarm, placement)
                # Drain a worker that runs an edge (it has clients), then kill the other
                # worker, which runs an edge by then: the two edge replicas, published
                # in host mode, need two nodes, and only it and the manager are left.
                edges = placement["tcp_edge"]
                drained = max(swarm.workers, key=lambda n: (n.name in edges, n.name)).name
                killed = next(n.name for n in swarm.workers if n.name != drained)
                steps = [
                    {"kind": "drain", "node": drained, "gap_s": 3.0},
                    {"kind": "kill", "node": killed, "gap_s": 3.0},
                ]
                run = SwarmRun(swarm, stack)
                report.update(run_async(run.main(steps)), log=run.log)
                clock.lap("load_and_faults_s")
                final = stack.placement()
                report["placement_at_end"] = final
                assert final["db"] == [swarm.manager.name], final
                assert final["bus"] != final["bus-b"], final
                assert killed not in {n for nodes in final.values() for n in nodes}, final
            finally:
                clock.lap("before_logs_s")
                logs = "\n".join(f"=== {n.name}\n{n.logs()}" for n in swarm.nodes)
                if swarm.manager.engine_up():
                    logs = Stack(swarm).logs() + "\n" + logs
                clock.lap("logs_s")
        clock.lap("cleanup_s")
        assert not swarm.leftovers(), swarm.leftovers()
        assert not swarm.ctl.exists()
    finally:
        docker("image", "rm", f"chatroom-server:{VERSION}", check=False)
        LOG.parent.mkdir(exist_ok=True)
        LOG.write_text(logs)
        report["times"] = dict(clock.times, total_s=round(time.monotonic() - clock.started, 1))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
        print(
            json.dumps({k: v for k, v in report.items() if k not in ("moves", "log")}, indent=1)[
                :12000
            ]
        )
        print(logs[-8000:])
    verdict = report["verdict"]
    assert verdict["acknowledged"] > 0
    found = problems(verdict)
    assert not found, f"{found}; {json.dumps(verdict['details'])[:4000]}"
    for fault in report["faults"]:
        assert fault["clients_on_it"] > 0, fault
        resume = fault["resume"]
        # A lost node's clients notice the silence (pings: up to 3 s); then, until
        # ZeroMQ's heartbeats give the links into the lost node up (3 s without an
        # answer, chatroom/bus_contract.py), a login by token may go into one and time
        # out (3 s here) before it is sent again.
        assert resume["not_resumed"] == 0 and resume["max_s"] <= RESUME_TARGET_S, (
            f"{fault['kind']}: clients resumed in more than {RESUME_TARGET_S:g} s: {resume}"
        )


def manager_nofile(swarm: SwarmNodes) -> int:
    """The open-files hard limit in the nodes: a container cannot raise it (that needs
    CAP_SYS_RESOURCE), so the edge's nofile (20000) is capped to it."""
    out = docker("exec", swarm.manager.name, "sh", "-c", "ulimit -Hn")
    return int(out) if out.isdigit() else 20000


def check_spread(swarm: SwarmNodes, placement: dict[str, list[str]]) -> None:
    """Each service with two replicas on two nodes; every node carries tasks; the
    database on the manager; the two buses on different nodes."""
    for service, replicas in SERVICES.items():
        assert len(placement.get(service, [])) == replicas, placement
        if replicas > 1:
            assert len(set(placement[service])) == replicas, f"{service}: {placement}"
    used = {node for nodes in placement.values() for node in nodes}
    assert used == {n.name for n in swarm.nodes}, placement
    assert placement["db"] == [swarm.manager.name], placement
    assert placement["bus"] != placement["bus-b"], placement
