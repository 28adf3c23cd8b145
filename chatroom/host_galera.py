"""A replicated database across the hosts you can kill (issue #18): on each namespace
host of a cluster (chatroom/hosts.py) a MariaDB Galera node, its health agent and a
writer proxy, beside the host's bus, services and edge.

```
 host h0 (10.X.Y.10)                host h1 (10.X.Y.11)             host h2 ...
 bus auth social media edge         (the same)
   │ 127.0.0.1:3306                   │ 127.0.0.1:3306
 HAProxy ──┬─ writer: node h0 ─────── HAProxy: the same writer
           └─ backups: h1, h2         (stick table shared by peers, port 10000)
 Galera node h0 :3306 ◀── replication :4567 ──▶ node h1 ◀──▶ node h2
 agent :9200 (Synced in a primary component?)
```

Each host's services connect to their own proxy (127.0.0.1:3306 in the host's
namespace: the same URL everywhere). The proxies send every connection to one node, the
first that passes its checks in the order h0, h1, h2, and keep it until it fails; they
share that choice (HAProxy peers), so a proxy that was cut off or restarted learns the
writer the others moved to instead of starting a second one (mostly: each proxy still
decides on its own checks; docs/past-one-host.md says when two nodes take writes for a
while and why that is safe). A node's agent says "down"
while it is not Synced in a primary component: a host cut off from the others keeps its
node running, but that node is a minority of one and refuses writes, and its proxy has
no writer to offer, so nothing on that host is acknowledged (the fault suite checks it).

Killing the host kills its node, agent and proxy with everything else (`Host.kill_all`);
starting it again starts them first (`Host.start_all` calls `start_missing`): the node
rejoins by a state transfer from a synced peer (asking the proxies' last choice of
writer first). A rolling restart restarts the proxy and the node.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

from chatroom import galera
from chatroom.galera import Node, Peer
from chatroom.hosts import Cluster, Host

PROXY_PORT = 3306  # on 127.0.0.1 in each host: where its services connect
AGENT_PORT = 9200
PEER_PORT = 10000
USER = "chat_test"


class GaleraSide:
    """One host's node, agent and proxy (a chatroom.hosts.HostSide)."""

    def __init__(self, owner: HostGalera, host: Host, node: Node) -> None:
        self.owner = owner
        self.host = host
        self.node = node
        self.agent: subprocess.Popen | None = None
        self.proxy: subprocess.Popen | None = None

    def _config(self) -> Path:
        path = self.node.dir.parent / f"{self.host.name}-haproxy.cfg"
        path.write_text(
            galera.proxy_config(
                f"127.0.0.1:{PROXY_PORT}",
                self.owner.nodes,
                agent_port=AGENT_PORT,
                peers=self.owner.peers,
                local_peer=self.host.name,
            )
        )
        return path

    def _start_proxy(self) -> None:
        self.proxy = galera.start_proxy(self._config(), self.host.ns)

    def start_missing(self) -> None:
        if not self.node.running():
            self.node.start(wait_s=None)  # joins; the proxies use a synced node meanwhile
        if self.agent is None or self.agent.poll() is not None:
            self.agent = galera.start_agent(self.node, AGENT_PORT)
        if self.proxy is None or self.proxy.poll() is not None:
            self._start_proxy()

    def restart(self) -> None:
        """The proxy (its sessions closed: the services reconnect), then the node (a
        clean leave; it rejoins by an incremental transfer), each in turn."""
        galera.stop_process(self.proxy)
        self._start_proxy()
        self.node.stop()
        self.node.start(wait_s=120)

    def wait_stopped(self, timeout_s: float = 30) -> None:
        """After the host's processes were killed: until the node, agent and proxy
        are reaped (so that start_missing sees them gone)."""
        for proc in (self.node.proc, self.agent, self.proxy):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout_s)

    def proxy_answers(self) -> bool:
        """A query through this host's proxy reaches a node (the writer)."""
        try:
            out = self.host.netns(
                "mariadb",
                "-h127.0.0.1",
                f"-P{PROXY_PORT}",
                f"-u{USER}",
                f"-p{USER}",
                "--connect-timeout=2",
                "-e",
                "SELECT 1",
                check=False,
            )
        except subprocess.SubprocessError:
            return False
        return out.returncode == 0


class HostGalera:
    """The cluster's database: a Galera node per host. Like HostDatabase: `start` gives
    the URL the hosts' services use, `remove` ends it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # Not under the cluster's workdir: the nodes run as the mysql user. The name
        # makes chatroom.hosts.remove_stale delete it after a run that was killed.
        self.dir = Path(f"/var/tmp/chatroom-hosts-{cluster.tag}-galera")
        self.nodes = [
            Node(host.name, self.dir / host.name, host.ip, galera.Ports(), netns=host.ns)
            for host in cluster.hosts
        ]
        galera.connect_nodes(self.nodes)
        self.peers = [Peer(host.name, host.ip, PEER_PORT) for host in cluster.hosts]
        self.sides = [
            GaleraSide(self, host, node)
            for host, node in zip(cluster.hosts, self.nodes, strict=True)
        ]

    def start(self, name: str = "chat_hosts") -> str:
        """Found the cluster (h0 first), start every host's agent and proxy; the URL."""
        net = self.cluster.subnet
        subnet = f"{net.network_address}/{net.netmask}"
        galera.found(
            self.nodes,
            [
                f"CREATE USER IF NOT EXISTS '{USER}'@'{subnet}' IDENTIFIED BY '{USER}'",
                f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{subnet}'",
                f"CREATE USER IF NOT EXISTS 'haproxy'@'{subnet}'",
                f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4",
            ],
        )
        for side in self.sides:
            side.host.side = side
            side.start_missing()
        for side in self.sides:
            galera.wait_for(side.proxy_answers, 30, f"{side.host.name}'s database proxy")
        return f"mysql+pymysql://{USER}:{USER}@127.0.0.1:{PROXY_PORT}/{name}?charset=utf8mb4"

    def writer(self) -> Node | None:
        return galera.writer(self.nodes)

    def wait_whole(self, timeout_s: float = 120) -> float:
        """Until every node is Synced in one component of all (a node that rejoined
        after the last fault has caught up); the seconds it took."""
        return galera.wait_for(lambda: galera.whole(self.nodes), timeout_s, "every node synced")

    def states(self) -> dict[str, str]:
        """Each node's view of itself (for a failure's message)."""
        out = {}
        for node in self.nodes:
            try:
                out[node.name] = (
                    f"{node.status('wsrep_cluster_status')}, "
                    f"{node.status('wsrep_local_state_comment')}, "
                    f"size {node.status('wsrep_cluster_size')}"
                )
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                out[node.name] = f"not answering: {exc}"
        return out

    def remove(self) -> None:
        """Stop the proxies and nodes (the cluster's close kills what is left) and
        delete the nodes' data."""
        for side in self.sides:
            galera.stop_process(side.proxy)
            galera.stop_process(side.agent)
        for node in reversed(self.nodes):
            node.kill()  # nothing is kept
        # Their logs beside the hosts' own (Cluster.logs, the fault suite's --logs).
        for side in self.sides:
            for source, kind in (
                (side.node.dir / "error.log", "galera"),
                (side.node.dir.parent / f"{side.host.name}-haproxy.log", "haproxy"),
            ):
                if source.exists():
                    shutil.copy(source, self.cluster.workdir / f"{side.host.name}-{kind}.log")
        shutil.rmtree(self.dir, ignore_errors=True)
