"""MariaDB Galera nodes and the HAProxy that picks their writer, as processes on this
machine: for the failover tests (tests/galera.py: three nodes on 127.0.0.1) and for the
hosts you can kill (chatroom/host_galera.py: a node and a proxy on each namespace host).
The compose deployment runs the same design in containers (compose.galera.yaml,
db/galera, db/haproxy); docs/past-one-host.md, "A replicated database", argues it.

A node is a mariadbd of its own (Debian's galera-4 provider; a data directory, client
port and Galera ports of its own on its address), started as root and running as the
mysql user. The settings that matter for ChatRoom's promise are the compose nodes' own
(db/galera/galera.cnf): a read waits until the node has applied every write set
certified before it (`wsrep-sync-wait=1`: after a failover the new writer finds a
resent client_id, instead of storing it twice), and a dead peer is noticed within ~3 s.
`innodb_flush_log_at_trx_commit=2` on each node is safe against one node's crash (the
copies elsewhere), not against every node losing power at once: the tests kill nodes,
not the machine.

The proxy sends every connection to ONE node, the writer: the first that passes its
checks, and it stays the writer until it fails (a one-entry stick table), so one proxy
never makes a second writer to conflict with. With `agent_port` each node's agent (the
compose image's db/galera/galera-agent.sh, served by socat) also says whether the node
is Synced in a primary component: a node cut off in a minority still answers a MySQL
handshake, but every write to it would fail. Several proxies (one per host) share their
stick table through HAProxy's peers, so that they mostly agree on the writer; when they
do not for a while, Galera's certification keeps it safe (a conflicting commit fails as
a deadlock and the services run it again): docs/past-one-host.md says when it happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
HAPROXY = "/usr/sbin/haproxy"
# The compose image's health agent (galera-agent.sh runs galera-health.sh from PATH).
AGENT_DIR = Path(__file__).resolve().parents[1] / "db" / "galera"


def available(agent: bool = False) -> str | None:
    """Why this machine cannot run nodes and their proxy (None: it can)."""
    needs = [(PROVIDER, "galera-4"), (HAPROXY, "haproxy")]
    for path, package in needs:
        if not Path(path).exists():
            return f"{package} is not installed ({path} missing)"
    for tool in ("rsync",) + (("socat",) if agent else ()):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "mariadbd runs as the mysql user: needs root"
    return None


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until `condition()` holds; the seconds it took (TimeoutError after)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


def in_netns(netns: str | None, args: list[str]) -> list[str]:
    """The command `args`, run in network namespace `netns` when there is one."""
    return ["ip", "netns", "exec", netns, *args] if netns else args


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 30) -> None:
    """SIGTERM, SIGKILL after `timeout_s`; nothing if it is not running."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass(frozen=True)
class Ports:
    client: int = 3306
    galera: int = 4567  # replication
    ist: int = 4568  # incremental state transfer
    sst: int = 4444  # state snapshot transfer (rsync)


class Node:
    def __init__(
        self,
        name: str,
        workdir: Path,
        address: str,
        ports: Ports,
        netns: str | None = None,
    ) -> None:
        """`workdir` must be enterable by the mysql user (not under a test's tmp_path).
        With `netns` the node runs in that network namespace."""
        self.name = name
        self.dir = workdir
        self.address = address
        self.ports = ports
        self.netns = netns
        self.peers: list[Node] = [self]
        # Whom to ask for a state transfer, first choice first (connect_nodes).
        self.donors: list[str] = []
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "mysqld.sock"

    @property
    def galera_address(self) -> str:
        return f"{self.address}:{self.ports.galera}"

    def start(self, new_cluster: bool = False, wait_s: float | None = 120) -> None:
        """Start it: founding a new cluster, or joining its peers (by a state transfer
        from a synced one). Waits until it is Synced unless `wait_s` is None."""
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "mysql", "mysql")
        if not (self.dir / "data" / "mysql").exists():
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--user=mysql",
                    f"--datadir={self.dir / 'data'}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        peers = ",".join(n.galera_address for n in self.peers)
        options = ";".join(
            [
                f"gmcast.listen_addr=tcp://{self.galera_address}",
                f"ist.recv_addr={self.address}:{self.ports.ist}",
                # Notice a dead peer within ~3 s instead of the default ~5-15 s.
                "evs.suspect_timeout=PT3S",
                "evs.inactive_timeout=PT6S",
                "evs.keepalive_period=PT0.5S",
            ]
        )
        args = [
            "/usr/sbin/mariadbd",
            "--no-defaults",
            "--user=mysql",
            f"--datadir={self.dir / 'data'}",
            f"--socket={self.socket}",
            f"--port={self.ports.client}",
            f"--bind-address={self.address}",
            f"--pid-file={self.dir / 'mysqld.pid'}",
            f"--log-error={self.dir / 'error.log'}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=1000",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=64M",
            # What Galera requires of InnoDB and the binary log format.
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--wsrep-sync-wait=1",
            "--wsrep-on=ON",
            f"--wsrep-provider={PROVIDER}",
            "--wsrep-cluster-name=chatroom_test",
            f"--wsrep-cluster-address=gcomm://{'' if new_cluster else peers}",
            f"--wsrep-node-name={self.name}",
            f"--wsrep-node-address={self.galera_address}",
            f"--wsrep-provider-options={options}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address={self.address}:{self.ports.sst}",
        ]
        if self.donors:  # the trailing comma: any other node when none of these can
            args.append(f"--wsrep-sst-donor={','.join(self.donors)},")
        log = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            in_netns(self.netns, args), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        if wait_s is not None:
            wait_for(self.synced, wait_s, f"galera {self.name} synced")

    def sql(self, statement: str, timeout: float = 10) -> str:
        """As root, by the socket (root has no password and no network access)."""
        out = subprocess.run(
            ["mariadb", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise RuntimeError(f"{self.name}: {out.stderr.strip()}")
        return out.stdout.strip()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def synced(self) -> bool:
        if not self.running():
            raise RuntimeError(f"{self.name} exited; see {self.dir / 'error.log'}")
        try:
            state = self.sql("SHOW STATUS LIKE 'wsrep_local_state_comment'", timeout=3)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return state.endswith("Synced")

    def status(self, name: str) -> str:
        return self.sql(f"SHOW STATUS LIKE '{name}'").split("\t")[-1]

    def clients(self, user: str = "chat_test") -> int:
        """How many connections `user` has open here (the writer has the services')."""
        return int(
            self.sql(f"SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{user}'")
        )

    def kill(self) -> None:
        """kill -9: the node's crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        stop_process(self.proc, 60)  # a clean leave may take a while


def connect_nodes(nodes: list[Node]) -> None:
    """Each node joins the others (their Galera addresses are its cluster address), and
    asks them for a state transfer in the reverse of the proxy's order: its last choice
    of writer first. A donor is out of the proxy while it serves (its agent says "down"),
    so a rejoining node that picked the writer would move the writes a second time
    (db/galera/galera-start.sh does the same in compose)."""
    for node in nodes:
        node.peers = nodes
        node.donors = [n.name for n in reversed(nodes) if n is not node]


def found(nodes: list[Node], users: list[str], wait_s: float = 60) -> None:
    """Found a cluster of `nodes`: the first bootstraps it, the users are made there
    (DDL replicates in total order), the others join; until all are in it."""
    first, *others = nodes
    first.start(new_cluster=True)
    first.sql(";".join(users))
    for node in others:
        node.start()
    wait_for(lambda: whole(nodes), wait_s, f"{len(nodes)} nodes in the cluster")


def whole(nodes: list[Node]) -> bool:
    """Every node running, Synced, in one primary component of all of them."""
    try:
        return all(
            node.running()
            and node.status("wsrep_local_state_comment") == "Synced"
            and node.status("wsrep_cluster_size") == str(len(nodes))
            for node in nodes
        )
    except (RuntimeError, subprocess.SubprocessError):
        return False


@dataclass(frozen=True)
class Peer:
    """A proxy that shares its writer with the others (`peers` of HAProxy)."""

    name: str
    address: str
    port: int


def proxy_config(
    bind: str,
    nodes: list[Node],
    agent_port: int | None = None,
    peers: list[Peer] | None = None,
    local_peer: str | None = None,
) -> str:
    """HAProxy's configuration: one writer among `nodes`, listening on `bind`."""
    servers = "\n".join(
        f"  server {n.name} {n.address}:{n.ports.client} check" + ("" if i == 0 else " backup")
        for i, n in enumerate(nodes)
    )
    agent = f" agent-check agent-port {agent_port} agent-inter 1s" if agent_port else ""
    shared = ""
    sharing = ""
    if peers:
        shared = "peers writers\n" + "".join(
            f"  peer {p.name} {p.address}:{p.port}\n" for p in peers
        )
        sharing = " peers writers"
    local = f"  localpeer {local_peer}\n" if local_peer else ""
    return f"""global
  maxconn 4000
{local}defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  retries 2
  option redispatch
{shared}listen galera
  bind {bind}
  # Is it up: a MySQL handshake as a user with no rights.
  option mysql-check user haproxy
  # One writer: every connection goes to the server the table holds, until it fails.
  stick-table type integer size 1 nopurge{sharing}
  stick on int(1)
  # Checked every 0.5 s, each given 1 s, down after 3 misses (a check lost on a lossy
  # link is not a failover); its sessions closed at once, so the services reconnect
  # (to the next writer) instead of waiting on a dead socket.
  timeout check 1s
  default-server inter 500 fall 3 rise 3 on-marked-down shutdown-sessions{agent}
{servers}
"""


def start_proxy(config: Path, netns: str | None = None) -> subprocess.Popen:
    """HAProxy in the foreground on `config` (its log beside it)."""
    args = [HAPROXY, "-f", str(config), "-db"]
    log = open(config.with_suffix(".log"), "ab")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(in_netns(netns, args), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def start_agent(node: Node, port: int) -> subprocess.Popen:
    """The node's health agent for the proxies' agent checks: the compose image's
    galera-agent.sh, one run per check, on the node's address (and in its namespace)."""
    env = dict(
        os.environ,
        PATH=f"{AGENT_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        GALERA_SOCKET=str(node.socket),  # where galera-health.sh's client connects
    )
    args = [
        "socat",
        f"TCP-LISTEN:{port},bind={node.address},fork,reuseaddr",
        f"EXEC:{AGENT_DIR / 'galera-agent.sh'}",
    ]
    log = open(node.dir / "agent.log", "ab")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(
        in_netns(node.netns, args), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    return proc


def connections(nodes: list[Node], user: str = "chat_test") -> dict[Node, int]:
    """Per node, how many connections `user` has open on it (0: not running, -1: not
    answering)."""
    counts = {}
    for node in nodes:
        try:
            counts[node] = node.clients(user) if node.running() else 0
        except (RuntimeError, subprocess.SubprocessError):
            counts[node] = -1
    return counts


def writer(nodes: list[Node]) -> Node | None:
    """The node the services write to now: the one holding most of their connections
    (None while no node holds any)."""
    counts = {node: n for node, n in connections(nodes).items() if n > 0}
    return max(counts, key=lambda n: counts[n]) if counts else None
