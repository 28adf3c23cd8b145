"""deploy/swarm/stack.yaml for real: `docker stack config` accepts it, and a single-node
swarm on the test engine runs it and serves a login through the published port, and
goes on with one of its two buses gone.

The test engine's kernel has no IPVS (dockerd: "Could not get ipvs family information"),
so the routing mesh and virtual IPs do not work here: the stack runs with the documented
CHAT_SWARM_ENDPOINT_MODE=dnsrr and CHAT_SWARM_PUBLISH_MODE=host. One node needs no
registry (`--resolve-image never` uses the image built here). The swarm is made for the
test and left at the end, unless the engine was in one already (then the test skips, to
leave someone else's swarm alone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_compose import image_settings, require_docker

from chatroom import buskeys

from harness import free_port
from wire import ConnectionClosed, WireClient

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[1]
STACK = "chatroom-swarm-test"
VERSION = "swarm-test"


def docker(*args: str, env: dict | None = None, timeout: float = 300, check=True) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout.strip()


def stack_tree(base: Path) -> Path:
    """The files the stack reads, laid out as in a deployed clone: .env from
    .env.example, secrets/ as scripts/deploy.sh makes them."""
    (base / "deploy" / "swarm").mkdir(parents=True)
    (base / "db").mkdir()
    shutil.copy(ROOT / "deploy" / "swarm" / "stack.yaml", base / "deploy" / "swarm")
    shutil.copy(ROOT / "db" / "init.sql", base / "db")
    shutil.copy(ROOT / ".env.example", base / ".env")
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    for name in ("db_password", "db_root_password"):
        (secrets / name).write_text(os.urandom(18).hex())
        (secrets / name).chmod(0o600)
    buskeys.ensure_keys(secrets / "bus-keys")
    return base / "deploy" / "swarm" / "stack.yaml"


def test_stack_config_accepts_the_stack_file(tmp_path):
    if not shutil.which("docker"):
        pytest.skip("no docker CLI")
    stack = stack_tree(tmp_path)
    rendered = docker("stack", "config", "-c", str(stack))
    for service in ("db", "bus", "bus-b", "auth", "social", "media", "tcp_edge"):
        assert f"\n  {service}:\n" in rendered, service


def test_placement_of_the_database_and_the_buses_follows_the_stack_variables(tmp_path):
    """By default the database stays on a manager and the buses may go anywhere; on
    several nodes the documented variables pin the database to one node and keep the
    two buses apart (tests/test_swarm_nodes.py deploys it so)."""
    if not shutil.which("docker"):
        pytest.skip("no docker CLI")
    stack = stack_tree(tmp_path)

    def constraints(**env: str) -> dict[str, list[str]]:
        rendered = yaml.safe_load(
            docker("stack", "config", "-c", str(stack), env={**os.environ, **env})
        )
        return {
            name: svc["deploy"].get("placement", {}).get("constraints", [])
            for name, svc in rendered["services"].items()
        }

    default = constraints()
    assert default["db"] == ["node.role == manager"]
    assert default["bus"] == default["bus-b"] == ["node.platform.os == linux"]
    assert not any(default[s] for s in ("auth", "social", "media", "tcp_edge"))
    pinned = constraints(
        CHAT_SWARM_DB_PLACEMENT="node.hostname == db1",
        CHAT_SWARM_BUS_PLACEMENT="node.role == manager",
        CHAT_SWARM_BUS_B_PLACEMENT="node.role == worker",
    )
    assert pinned["db"] == ["node.hostname == db1"]
    assert (pinned["bus"], pinned["bus-b"]) == (["node.role == manager"], ["node.role == worker"])


def wait_for_login_service(port: int, timeout: float) -> None:
    """Until auth answers a login through the published port. Swarm publishes the port
    before the edge inside can serve: early connections may be closed at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with WireClient(port, timeout=10) as c:
                reply = c.request("login", username="nobody-at-all", password="x" * 8)
                if reply.get("error", {}).get("code") == "bad_credentials":
                    return
        except (OSError, ConnectionClosed):
            pass
        assert time.monotonic() < deadline, "the swarm stack did not answer in time"
        time.sleep(1)


def send_with_retry(client: WireClient, text: str, client_id: str, within: float = 60) -> dict:
    """room.send to the lobby, sent again with the same client_id on service_unavailable
    (the documented retry) until it is stored."""
    deadline = time.monotonic() + within
    while True:
        reply = client.request("room.send", room="lobby", text=text, client_id=client_id)
        if reply["ok"]:
            return reply["message"]
        assert reply["error"]["code"] == "service_unavailable", reply
        assert time.monotonic() < deadline, f"{text!r} was not stored within {within:g} s"


def stack_logs() -> str:
    """The stack's tasks and the last lines each service wrote (loguru writes to
    stderr, which `docker service logs` passes on as its own stderr)."""
    logs = docker("stack", "ps", STACK, "--no-trunc", check=False)
    for service in ("db", "bus", "bus-b", "auth", "social", "media", "tcp_edge"):
        proc = subprocess.run(
            ["docker", "service", "logs", "--no-task-ids", "--tail", "25", f"{STACK}_{service}"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        logs += f"\n--- {service}\n{proc.stdout}{proc.stderr}"
    return logs


def remove_database_volume(within: float = 90) -> None:
    """The stack's database volume gone, waiting while a container that is still
    stopping holds it (a volume left behind made the next run fail: CI, session 8)."""
    volume = f"{STACK}_db-data"
    deadline = time.monotonic() + within
    while docker("volume", "ls", "-q", "--filter", f"name=^{volume}$", check=False):
        holders = docker("ps", "-aq", "--filter", f"volume={volume}", check=False).split()
        if holders:
            docker("rm", "-f", *holders, check=False)
        docker("volume", "rm", volume, check=False)
        assert time.monotonic() < deadline, f"volume {volume} is still in use"
        time.sleep(1)


def _engine_nofile() -> str:
    return docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        os.environ.get("PYTHON_IMAGE") or image_settings().get("PYTHON_IMAGE", "python:3.12-slim"),
        "-c",
        "ulimit -Hn",
    )


def test_single_node_swarm_serves_logins(tmp_path):
    require_docker()
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "inactive":
        pytest.skip("the engine is in a swarm already: not ours to change")
    stack = stack_tree(tmp_path)
    port = free_port()
    nofile = _engine_nofile()
    env = dict(
        os.environ,
        **image_settings(),
        CHATROOM_VERSION=VERSION,
        CHAT_SWARM_ENDPOINT_MODE="dnsrr",
        CHAT_SWARM_PUBLISH_MODE="host",
        CHAT_PUBLISHED_PORT=str(port),
        CHAT_EDGE_NOFILE=nofile if nofile.isdigit() and int(nofile) < 20000 else "20000",
    )
    env.pop("COMPOSE_FILE", None)
    # An earlier run's database would keep that run's password, not this one's secrets.
    remove_database_volume()
    # The server image, as compose builds it.
    docker("compose", "-p", STACK, "build", "bus", env=env, timeout=600)
    docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
    try:
        docker("stack", "deploy", "--resolve-image", "never", "-c", str(stack), STACK, env=env)
        wait_for_login_service(port, 240)
        # Every replica becomes healthy: until then a request may reach a bus that a
        # starting replica has not connected to yet, and wait there.
        expected = {"bus": "1/1", "bus-b": "1/1", "auth": "2/2", "social": "2/2", "media": "2/2"}
        deadline = time.monotonic() + 120
        while True:
            listed = docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}").splitlines()
            replicas = {
                name.removeprefix(f"{STACK}_"): count
                for name, count in (line.split()[:2] for line in listed)
            }
            if all(replicas.get(k) == v for k, v in expected.items()):
                break
            assert time.monotonic() < deadline, replicas
            time.sleep(2)
        with WireClient(port, timeout=15) as ann:
            ann.register_and_login("ann")
            ann.call("room.send", room="lobby", text="hello from the swarm")
            texts = [m["text"] for m in ann.call("room.history", room="lobby")["messages"]]
            assert "hello from the swarm" in texts
        # Either bus can go (docs/past-one-host.md): with `bus` scaled to nothing the
        # stack goes on through bus-b. A request that was on its way through the bus
        # that went is answered service_unavailable; the client sends it again with
        # the same client_id, as the protocol says, and it is stored once.
        with WireClient(port, timeout=15) as bob, WireClient(port, timeout=15) as cy:
            bob.register_and_login("bob")
            cy.register_and_login("cy")
            docker("service", "scale", "--detach=false", f"{STACK}_bus=0", timeout=120)
            for n in range(5):
                sent = send_with_retry(bob, f"with one bus {n}", f"b{n}")
                pushed = cy.event("message", timeout=30, text=f"with one bus {n}")
                assert pushed["id"] == sent["id"]
            cy.no_event("message", within=2)  # no copy of any of them
            docker("service", "scale", "--detach=false", f"{STACK}_bus=1", timeout=120)
    finally:
        logs = stack_logs()
        (ROOT / "var").mkdir(exist_ok=True)
        (ROOT / "var" / "swarm-test.log").write_text(logs)
        # Shown by pytest when the test failed: CI keeps the output, not var/.
        print(logs[-12000:])
        docker("stack", "rm", STACK, check=False)
        deadline = time.monotonic() + 60
        while (
            docker("ps", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}", check=False)
            and time.monotonic() < deadline
        ):
            time.sleep(1)
        docker("swarm", "leave", "--force", check=False)
        remove_database_volume()
        docker("image", "rm", f"chatroom-server:{VERSION}", check=False)
