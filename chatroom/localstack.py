"""Start the real services as separate processes on free local ports.

Used by the integration tests, the screenshot script and the load tests: each gets a
private stack (its own bus ports, edge port and database) that it can kill and restart
piece by piece.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatroom import buskeys, config, config_env

SERVICE_MODULES = {
    "bus": "services.bus",
    "auth": "services.auth",
    "social": "services.social",
    "media": "services.media",
    "edge": "services.tcp_edge",
}


def die_with_parent() -> None:
    """Linux: the service gets SIGTERM if the process that started it dies (a crashed
    test run must not leave services behind)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def _probe_socket() -> socket.socket:
    # SO_REUSEADDR as the real servers use: a port whose old connections linger in
    # TIME_WAIT (after a load test) is free for them, so it counts as free here too.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


# Ports this process handed out lately. A port is free when picked but only taken when
# its server binds, later: a Stack picks the bus's block and then the edge's port before
# either binds, and the two once overlapped (the client then spoke to a ZeroMQ socket).
_GIVEN: dict[int, float] = {}
GIVEN_HOLD_S = 300.0


def free_port() -> int:
    """A free port below the kernel's ephemeral range. (Port 0's pick is in that range,
    where any client socket opened before the server binds may take it: seen as a
    flaky 'address already in use' while tests open thousands of connections.)"""
    return free_port_block(1)


def free_port_block(size: int = len(config.BUS_PORT_OFFSETS)) -> int:
    """A base port with `size` consecutive free ports after it, below the kernel's
    ephemeral range: client sockets (and their TIME_WAIT leftovers after a load test)
    never occupy those."""
    now = time.monotonic()
    for port, given_at in list(_GIVEN.items()):
        if now - given_at > GIVEN_HOLD_S:
            del _GIVEN[port]
    for _ in range(500):
        base = random.randrange(20_000, 32_000 - size)
        if any(port in _GIVEN for port in range(base, base + size)):
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = _probe_socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            _GIVEN.update(dict.fromkeys(range(base, base + size), now))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no block of free ports")


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


# Cheap hashing keeps tests fast (it is still argon2id); short timeouts; full logs;
# no rate limits.
TEST_DEFAULTS = {
    "CHAT_ARGON2_TIME_COST": "1",
    "CHAT_ARGON2_MEMORY_KIB": "1024",
    "CHAT_ARGON2_PARALLELISM": "1",
    # Tests and benchmarks register hundreds of users at once from one machine.
    "CHAT_ARGON2_QUEUE": "100000",
    "CHAT_REQUEST_TIMEOUT_MS": "3000",
    "CHAT_LOG_LEVEL": "DEBUG",
    # Tests log in hundreds of users from 127.0.0.1; the tests of the limits set them.
    **{f"CHAT_RATE_{action.upper()}": "off" for action in config.RATED_ACTIONS},
    "CHAT_MAX_CONNS_PER_IP": "100000",
}


class Stack:
    """bus + auth + social + media + one or more edges, each its own process."""

    def __init__(
        self,
        workdir: Path,
        db_url: str,
        defaults: dict[str, str] | None = None,
        *,
        serve_metrics: bool = False,
        buses: int = 1,
        **overrides: object,
    ) -> None:
        """`serve_metrics`: each process serves /metrics on a free port of its own
        (`metrics_ports`); otherwise none does, so that stacks running side by side do
        not all reach for the components' default ports."""
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        self.env.update(
            {
                "CHAT_DB_URL": db_url,
                "CHAT_BUS_PORT_BASE": str(free_port_block()),
                "CHAT_EDGE_PORT": str(free_port()),
                # Every stack has keys of its own: tests and benchmarks run with CURVE.
                "CHAT_BUS_KEYS_DIR": str(workdir / "bus-keys"),
                "CHAT_METRICS_PORT": "0",
            }
        )
        buskeys.ensure_keys(workdir / "bus-keys")
        # Several buses: each its own block of ports on this host; every other process
        # connects to all of them (CHAT_BUS_HOSTS). Named bus, bus#1, ...
        self.bus_bases = [int(self.env["CHAT_BUS_PORT_BASE"])]
        self.bus_bases += [free_port_block() for _ in range(buses - 1)]
        if buses > 1:
            self.env["CHAT_BUS_HOSTS"] = ",".join(f"127.0.0.1:{b}" for b in self.bus_bases)
        self.env.update(TEST_DEFAULTS if defaults is None else defaults)
        self.env.update({config.env_name(k): str(v) for k, v in overrides.items()})
        self.procs: dict[str, subprocess.Popen] = {}
        self.proc_env: dict[str, dict[str, str]] = {}
        self.edge_ports: list[int] = []
        self.serve_metrics = serve_metrics
        self.metrics_ports: dict[str, int] = {}  # by process name, with serve_metrics

    @property
    def settings(self) -> config.Settings:
        return config_env.load(self.env)

    @property
    def port(self) -> int:
        return self.edge_ports[0]

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_service(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        module = SERVICE_MODULES[name.split("#")[0]]
        if self.serve_metrics and name not in self.metrics_ports:
            self.metrics_ports[name] = free_port()
            env = dict(env or self.env, CHAT_METRICS_PORT=str(self.metrics_ports[name]))
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        log.close()
        self.procs[name] = proc
        self.proc_env[name] = env or self.env
        return proc

    def start_edge(self) -> int:
        port = int(self.env["CHAT_EDGE_PORT"]) if not self.edge_ports else free_port()
        self.start_service(f"edge#{len(self.edge_ports)}", dict(self.env, CHAT_EDGE_PORT=str(port)))
        self.edge_ports.append(port)
        wait_for_port(port)
        return port

    def restart(self, name: str) -> None:
        """Start a stopped service again with the environment it had."""
        self.start_service(name, self.proc_env[name])

    @property
    def bus_names(self) -> list[str]:
        return ["bus", *(f"bus#{n}" for n in range(1, len(self.bus_bases)))]

    def start(self, edges: int = 1) -> Stack:
        for name, base in zip(self.bus_names, self.bus_bases, strict=True):
            self.start_service(name, dict(self.env, CHAT_BUS_PORT_BASE=str(base)))
        for name in ("auth", "social", "media"):
            self.start_service(name)
        for _ in range(edges):
            self.start_edge()
        try:
            self.wait_healthy()
        except TimeoutError:
            sys.stderr.write(self.logs()[-20000:])  # why it did not come up
            raise
        return self

    def wait_healthy(
        self, services: tuple[str, ...] = ("auth", "social", "media"), timeout: float = 60.0
    ) -> None:
        """Every service answers a ping through the bus. (On a fresh database the first
        one to start builds the schema under a lock while the others wait: on a loaded
        2-core machine with MariaDB that alone took over 30 s.)"""
        from chatroom.bus_client import BusClient

        async def probe() -> None:
            import zmq.asyncio

            zctx = zmq.asyncio.Context()
            client = BusClient(self.settings, "harness", zctx)  # with the edge's key
            client.start()
            try:
                deadline = time.monotonic() + timeout
                for service in services:
                    while True:
                        try:
                            await client.ping(service, timeout_ms=1000)
                            break
                        except Exception as exc:
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"{service} not healthy") from exc
            finally:
                client.close()
                zctx.term()

        asyncio.run(probe())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=15)

    def logs(self, name: str | None = None) -> str:
        names = [name] if name else list(self.procs)
        out = []
        for n in names:
            path = self.log_path(n)
            if path.exists():
                out.append(f"--- {n}\n" + path.read_text(errors="replace"))
        return "\n".join(out)

    def stop(self) -> None:
        # Edges first, as compose does (they depend on the rest): a draining edge still
        # reaches social to take its users offline.
        edges = [n for n in self.procs if n.startswith("edge")]
        others = [n for n in self.procs if not n.startswith("edge")]
        for group in (edges, others):
            procs = [self.procs[n] for n in group if self.procs[n].poll() is None]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
