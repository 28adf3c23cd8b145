"""Hosts you can kill, on one machine: a small cluster of network namespaces (issue #18).

Each "host" is a network namespace with an address of its own on a private /24, joined
to the others by veth pairs on a bridge. Each runs a whole ChatRoom node: a bus, auth,
social, media and an edge, every one connected to every host's bus (CHAT_BUS_HOSTS),
binding on the host's address. The database is either a Galera node on each host with a
writer proxy (chatroom/host_galera.py: a `HostSide`, killed and restarted with its host)
or one MariaDB outside the hosts, in the root namespace, on the subnet's first address
(`HostDatabase`). The clients live in the root namespace.

```
 root namespace: 10.X.Y.1 (clients; HostDatabase) veth ─┐
                                                 ┌──────┴─── namespace <tag>-sw ───┐
                                                 │ bridge br0 (empty firewall)      │
                                                 └──┬──────────┬──────────┬────────┘
                                         veth ──────┘          │          └────── veth
                      <tag>-h0: 10.X.Y.10           <tag>-h1: 10.X.Y.11     <tag>-h2 ...
                      bus auth social media edge    (the same)
                      [Galera node, agent, HAProxy: host_galera.py]
```

Why the bridge lives in a namespace of its own: with br_netfilter loaded, bridged
frames pass the iptables FORWARD chain of the bridge's namespace, and the root one here
drops them by policy (Docker's). In a namespace of our own that chain is empty, and the
machine's firewall is never touched.

Faults (all undone by `heal` and by `close`): kill every process of a host
(`kill_host`: SIGKILL to every pid in its namespace), cut a host off (`partition`: DROP
on its link, both ways, in its own firewall: connections stay open and nothing moves,
as with a pulled cable), a slow network (`slow`: tc netem delay and loss when the kernel
has sch_netem; otherwise loss by iptables' statistic match and a bandwidth cap by htb,
whose queue is the delay), and restarts.

Names carry the pid of the process that made them (`cf<pid>x<n>-...`), so runs side
by side never clash and a later run removes what a killed one left behind. Needs root
and `ip netns` (`available()` says why not).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from chatroom import buskeys
from chatroom.framing import FrameDecoder, encode_frame, parse_payload
from chatroom.localstack import SERVICE_MODULES, TEST_DEFAULTS, die_with_parent

EDGE_PORT = 2019
BUS_PORT_BASE = 5550
# Each namespace has ports of its own, so every host uses the same ones.
HEALTH_PORTS = {"auth": 9101, "social": 9102, "media": 9103}
# Start order: the bus first (the others connect to it), the edge last.
COMPONENTS = ("bus", "auth", "social", "media", "edge")
NAME_RE = re.compile(r"^cf(\d+)x[0-9a-f]-")


def _run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def available() -> str | None:
    """None when this process can build hosts, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, iptables)"
    if shutil.which("ip") is None or shutil.which("iptables") is None:
        return "needs `ip` (iproute2) and `iptables`"
    try:
        _run("ip", "netns", "list")
    except (subprocess.SubprocessError, OSError) as exc:
        return f"`ip netns` is not usable here: {exc}"
    return None


def netem_available() -> bool:
    """Whether the kernel has tc's netem qdisc (some, like this project's CI, do not)."""
    # Named like a run's namespaces, so that a run killed mid-probe has it removed too.
    probe = f"cf{os.getpid()}xf-probe"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up")
        done = _run(
            "ip",
            "netns",
            "exec",
            probe,
            "tc",
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "netem",
            "delay",
            "1ms",
            check=False,
        )
        return done.returncode == 0
    finally:
        _run("ip", "netns", "del", probe, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(ns: str) -> list[int]:
    out = _run("ip", "netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def remove_stale() -> list[str]:
    """Delete the namespaces (with their processes and links) of runs whose process is
    gone: a run killed before its cleanup must not disturb the next. Returns their names."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAME_RE.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        for pid in _netns_pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Deleting a namespace deletes the veth ends in it, and with them their peers.
        _run("ip", "netns", "del", name, check=False)
        removed.append(name)
    # And the database of such a run (HostDatabase), which outlives it on its own.
    for folder in Path("/var/tmp").glob("chatroom-hosts-cf*"):
        match = NAME_RE.match(folder.name.removeprefix("chatroom-hosts-") + "-")
        if match is None or _alive(int(match.group(1))):
            continue
        pid_file = folder / "mysqld.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
    return removed


def _free_subnet() -> ipaddress.IPv4Network:
    """A random /24 in 10.0.0.0/8 that no route of this machine overlaps."""
    routes = []
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("local", "broadcast", "multicast", "unreachable"):
            first = line.split()[1]
        with contextlib.suppress(ValueError):
            routes.append(ipaddress.ip_network(first if first != "default" else "0.0.0.0/32"))
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randrange(64, 250)}.{random.randrange(256)}.0/24")
        if not any(net.overlaps(r) for r in routes if r.prefixlen > 0):
            return net
    raise RuntimeError("no free /24 in 10.0.0.0/8")


class HostSide(Protocol):
    """Processes of a host besides ChatRoom's that its services need: its database node
    and the proxy to the writer (chatroom/host_galera.py). Killed with the host."""

    def start_missing(self) -> None:
        """Start what is not running (after the host was killed: the node rejoins)."""

    def restart(self) -> None:
        """Stop each and start it again, one at a time (a rolling restart)."""

    def wait_stopped(self) -> None:
        """After the host's processes were killed: until these are reaped."""


@dataclass
class Host:
    """One namespace and the ChatRoom processes in it."""

    index: int
    ns: str
    ip: str
    env: dict[str, str]
    logdir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    side: HostSide | None = None

    @property
    def name(self) -> str:
        return f"h{self.index}"

    def start(self, component: str) -> None:
        module = SERVICE_MODULES[component]
        env = dict(self.env)
        if component in HEALTH_PORTS:
            env["CHAT_HEALTH_PORT"] = str(HEALTH_PORTS[component])
        log = open(self.logdir / f"{self.name}-{component}.log", "ab")  # noqa: SIM115
        # `ip netns exec` execs the command in the namespace (no fork in between), so
        # the pid is the service's own and dies with its parent (die_with_parent).
        self.procs[component] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", module],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.logdir,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        log.close()

    def start_all(self) -> None:
        if self.side is not None:
            self.side.start_missing()
        for component in COMPONENTS:
            if component not in self.procs or self.procs[component].poll() is not None:
                self.start(component)

    def kill_all(self) -> None:
        """SIGKILL every process in the namespace (ours and anything else in it)."""
        for pid in _netns_pids(self.ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self.side is not None:
            self.side.wait_stopped()

    def stop(self, component: str, timeout: float = 15) -> None:
        """SIGTERM (a graceful stop: the edge drains), SIGKILL after `timeout`."""
        proc = self.procs.get(component)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def netns(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.ns, *args, check=check)

    def edge_answers(self, timeout_s: float = 1.0) -> bool:
        """A `ping` over TCP from the root namespace to this host's edge is answered."""
        try:
            with socket.create_connection((self.ip, EDGE_PORT), timeout=timeout_s) as s:
                s.settimeout(timeout_s)
                s.sendall(encode_frame({"op": "ping", "id": 1}))
                decoder = FrameDecoder(1 << 20)
                for _ in range(10):
                    data = s.recv(65536)
                    if not data:
                        return False
                    for payload in decoder.feed(data):
                        if parse_payload(payload).get("ok"):
                            return True
        except OSError:
            return False
        return False

    def wait_ready(self, timeout_s: float = 60) -> float:
        """Until every component of this host is ready (services: their own health
        check, a database round trip; the bus: an event through it; the edge: a ping).
        Returns the seconds it took."""
        started = time.monotonic()
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                sys.executable,
                "-m",
                "chatroom.hosts",
                "ready",
                str(timeout_s),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s + 15,
        )
        if probe.returncode != 0:
            raise TimeoutError(f"{self.name} not ready: {probe.stderr.strip()[-500:]}")
        deadline = started + timeout_s
        while not self.edge_answers():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: edge not answering")
            time.sleep(0.1)
        return time.monotonic() - started


class Cluster:
    """A bridge, `count` hosts and their processes; `close()` removes all of it (use it
    as a context manager so that a failed run cleans up too)."""

    def __init__(self, count: int, workdir: Path, **settings: object) -> None:
        """`settings`: CHAT_* settings of every process (name without the prefix)."""
        if (why := available()) is not None:
            raise RuntimeError(why)
        remove_stale()
        self.tag = f"cf{os.getpid()}x{random.randrange(16):x}"
        while any(line.startswith(self.tag) for line in self._netns_names()):
            self.tag = f"cf{os.getpid()}x{random.randrange(16):x}"
        self.workdir = workdir
        self.subnet = _free_subnet()
        addresses = list(self.subnet.hosts())
        self.root_ip = str(addresses[0])
        self.switch = f"{self.tag}-sw"
        self.root_link = f"{self.tag}r"
        self.slowed = False
        self.hosts: list[Host] = []
        self._settings = settings
        self._ips = [str(addresses[9 + i]) for i in range(count)]

    @staticmethod
    def _netns_names() -> list[str]:
        out = _run("ip", "netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.split()]

    # ------------------------------------------------------------------ network

    def build_network(self) -> Cluster:
        prefix = self.subnet.prefixlen
        _run("ip", "netns", "add", self.switch)
        sw = ("ip", "netns", "exec", self.switch)
        _run(*sw, "ip", "link", "add", "br0", "type", "bridge")
        _run(*sw, "ip", "link", "set", "br0", "up")
        # The root namespace's leg: the database and the clients live there.
        _run("ip", "link", "add", self.root_link, "type", "veth", "peer", "name", f"{self.tag}s")
        _run("ip", "link", "set", f"{self.tag}s", "netns", self.switch)
        _run(*sw, "ip", "link", "set", f"{self.tag}s", "name", "root", "master", "br0", "up")
        _run("ip", "addr", "add", f"{self.root_ip}/{prefix}", "dev", self.root_link)
        _run("ip", "link", "set", self.root_link, "up")
        for index, ip in enumerate(self._ips):
            ns = f"{self.tag}-h{index}"
            _run("ip", "netns", "add", ns)
            a, b = f"{self.tag}a{index}", f"{self.tag}b{index}"
            _run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            _run("ip", "link", "set", a, "netns", self.switch)
            _run(*sw, "ip", "link", "set", a, "name", f"h{index}", "master", "br0", "up")
            _run("ip", "link", "set", b, "netns", ns)
            inside = ("ip", "netns", "exec", ns)
            _run(*inside, "ip", "link", "set", b, "name", "eth0")
            _run(*inside, "ip", "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
            _run(*inside, "ip", "link", "set", "eth0", "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            self.hosts.append(Host(index, ns, ip, {}, self.workdir))
        return self

    def client_addresses(self, count: int) -> list[str]:
        """`count` addresses of the root namespace on the bridge (its own first, then
        more added to its link, up to the eight below the hosts'): a client binding
        to one has its ~28,000 ephemeral ports, so more clients than that need more
        addresses (loadtest idle --hosts). They go with the link at `close`."""
        addresses = [str(a) for a in list(self.subnet.hosts())[: min(count, 9)]]
        for extra in addresses[1:]:
            _run("ip", "addr", "add", f"{extra}/{self.subnet.prefixlen}", "dev", self.root_link)
        return addresses

    # ------------------------------------------------------------------ processes

    def start(self, db_url: str, timeout_s: float = 120) -> Cluster:
        """Start every host's processes on the database at `db_url` (which the hosts
        must reach: `HostDatabase`), wait until all are ready. After build_network."""
        keys = self.workdir / "bus-keys"
        buskeys.ensure_keys(keys)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        bus_hosts = ",".join(self._ips)
        for host in self.hosts:
            host.env = {
                **base,
                **TEST_DEFAULTS,
                "CHAT_DB_URL": db_url,
                "CHAT_BUS_KEYS_DIR": str(keys),
                "CHAT_METRICS_PORT": "0",
                "CHAT_BUS_PORT_BASE": str(BUS_PORT_BASE),
                # The bus binds on the host's address; everyone connects to every bus.
                "CHAT_BUS_HOST": host.ip,
                "CHAT_BUS_BIND_HOST": host.ip,
                "CHAT_BUS_HOSTS": bus_hosts,
                "CHAT_EDGE_HOST": host.ip,
                "CHAT_EDGE_PORT": str(EDGE_PORT),
                "CHAT_LOG_LEVEL": "INFO",
                **{f"CHAT_{k.upper()}": str(v) for k, v in self._settings.items()},
            }
        # One host first: on a fresh database its services build the schema, and the
        # others would only wait on that lock (slowly, on a machine of two cores).
        self.hosts[0].start_all()
        self.hosts[0].wait_ready(timeout_s)
        for host in self.hosts[1:]:
            host.start_all()
        for host in self.hosts[1:]:
            host.wait_ready(timeout_s)
        return self

    def restart_host(self, host: Host, timeout_s: float = 60) -> float:
        """Start what is not running on `host`; the seconds until it is ready."""
        host.start_all()
        return host.wait_ready(timeout_s)

    def rolling_restart(self, host: Host, timeout_s: float = 60) -> float:
        """Every component of `host` stopped gracefully (edge first: it drains its
        clients) and started again, one at a time; the seconds it took."""
        started = time.monotonic()
        for component in ("edge", "media", "social", "auth", "bus"):
            host.stop(component)
            host.start(component)
        if host.side is not None:
            host.side.restart()
        host.wait_ready(timeout_s)
        return time.monotonic() - started

    # ------------------------------------------------------------------ faults

    def partition(self, host: Host) -> None:
        """Nothing in or out of `host`'s link (its loopback still works)."""
        host.netns("iptables", "-I", "INPUT", "-i", "eth0", "-j", "DROP")
        host.netns("iptables", "-I", "OUTPUT", "-o", "eth0", "-j", "DROP")

    def heal(self, host: Host) -> None:
        host.netns("iptables", "-F", "INPUT")
        host.netns("iptables", "-F", "OUTPUT")

    def slow(self, delay_ms: int, loss_pct: float, rate_kbit: int = 2000) -> str:
        """A slow network on every host's link, both ways; returns how it was made."""
        self.slowed = True
        if netem_available():
            for host in self.hosts:
                host.netns(
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    "eth0",
                    "root",
                    "netem",
                    "delay",
                    f"{delay_ms}ms",
                    f"{max(1, delay_ms // 5)}ms",
                    "loss",
                    f"{loss_pct}%",
                )
            # Outbound of the hosts delays both directions of host-to-host traffic;
            # the clients' path (root namespace) gets it once, on the way back.
            return f"netem delay {delay_ms} ms ± {max(1, delay_ms // 5)} ms, loss {loss_pct} %"
        # No netem: loss both ways by the firewall, and a bandwidth cap whose queue adds
        # delay when the link is busy.
        probability = f"{loss_pct / 100:.4f}"
        for host in self.hosts:
            host.netns("iptables", "-N", "SLOW", check=False)
            host.netns("iptables", "-F", "SLOW")
            host.netns(
                "iptables",
                "-A",
                "SLOW",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                probability,
                "-j",
                "DROP",
            )
            host.netns("iptables", "-A", "INPUT", "-i", "eth0", "-j", "SLOW")
            host.netns("iptables", "-A", "OUTPUT", "-o", "eth0", "-j", "SLOW")
            host.netns(
                "tc",
                "qdisc",
                "replace",
                "dev",
                "eth0",
                "root",
                "handle",
                "1:",
                "htb",
                "default",
                "10",
            )
            host.netns(
                "tc",
                "class",
                "replace",
                "dev",
                "eth0",
                "parent",
                "1:",
                "classid",
                "1:10",
                "htb",
                "rate",
                f"{rate_kbit}kbit",
            )
        return (
            f"no netem in this kernel: loss {loss_pct} % each way (iptables statistic), "
            f"{rate_kbit} kbit/s per host link (htb); no fixed delay"
        )

    def unslow(self) -> None:
        for host in self.hosts:
            host.netns("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
            host.netns("iptables", "-F", "INPUT", check=False)
            host.netns("iptables", "-F", "OUTPUT", check=False)
            host.netns("iptables", "-F", "SLOW", check=False)
        self.slowed = False

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        """Stop every process (SIGKILL: nothing is kept), delete every namespace and
        link of this run. Safe to call twice and after a partial build."""
        for host in self.hosts:
            host.kill_all()
        for ns in self._netns_names():
            if ns.startswith(self.tag + "-"):
                for pid in _netns_pids(ns):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                _run("ip", "netns", "del", ns, check=False)
        _run("ip", "link", "del", self.root_link, check=False)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logs(self, tail_chars: int = 4000) -> str:
        out = []
        for path in sorted(self.workdir.glob("h*-*.log")):
            out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-tail_chars:])
        return "\n".join(out)


class HostDatabase:
    """The one database of a cluster: a private MariaDB (scripts/test-mariadb.sh on a port
    and data directory of its own) listening on 127.0.0.1 and on the root namespace's
    address on the bridge, with the test account allowed from the subnet. (The shared
    test MariaDB listens on 127.0.0.1 only, which no namespace reaches.)"""

    def __init__(self, cluster: Cluster) -> None:
        from chatroom.localstack import free_port

        self.cluster = cluster
        self.port = free_port()
        self.dir = Path(f"/var/tmp/chatroom-hosts-{cluster.tag}")
        self.script = Path(__file__).resolve().parents[1] / "scripts" / "test-mariadb.sh"

    def start(self, name: str = "chat_hosts") -> str:
        """Start it and make database `name`; the URL the hosts use."""
        env = dict(
            os.environ,
            CHAT_TEST_MYSQL_PORT=str(self.port),
            CHAT_TEST_MYSQL_DIR=str(self.dir),
            # The later --bind-address wins; MariaDB >= 10.11 takes a list.
            CHAT_TEST_MYSQL_ARGS=f"--bind-address=127.0.0.1,{self.cluster.root_ip}",
        )
        subprocess.run(
            ["bash", str(self.script)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        net = self.cluster.subnet
        sql = (
            f"CREATE USER IF NOT EXISTS 'chat_test'@'{net.network_address}/{net.netmask}' "
            f"IDENTIFIED BY 'chat_test'; GRANT ALL PRIVILEGES ON *.* TO "
            f"'chat_test'@'{net.network_address}/{net.netmask}'; "
            f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4;"
        )
        subprocess.run(
            ["mariadb", f"--socket={self.dir}/mysqld.sock", "-uroot", "-e", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return (
            f"mysql+pymysql://chat_test:chat_test@{self.cluster.root_ip}:{self.port}/{name}"
            "?charset=utf8mb4"
        )

    def remove(self) -> None:
        """Stop it (bounded wait) and delete its data directory."""
        pid_file = self.dir / "mysqld.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _ready(timeout_s: float) -> int:
    """Run inside a host's namespace (`python -m chatroom.hosts ready SECONDS`): until
    its bus and its three services pass their own health checks."""
    import dataclasses

    from chatroom import config_env
    from chatroom.health import Unhealthy, check_bus, check_service

    settings = config_env.load(dict(os.environ))
    deadline = time.monotonic() + timeout_s
    last = ""
    checks = [("bus", lambda: check_bus(settings, 1.0))]
    for name, port in HEALTH_PORTS.items():
        one = dataclasses.replace(settings, health_port=port)
        checks.append((name, lambda one=one: check_service(one, 1.0)))  # type: ignore[misc]
    for name, check in checks:
        while True:
            try:
                check()
                break
            except (Unhealthy, OSError) as exc:
                last = f"{name}: {exc}"
            except Exception as exc:  # a ZeroMQ error while the port is not bound yet
                last = f"{name}: {exc!r}"
            if time.monotonic() > deadline:
                print(last, file=sys.stderr)
                return 1
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "ready":
        sys.exit(_ready(float(sys.argv[2])))
    sys.exit("usage: python -m chatroom.hosts ready SECONDS")
