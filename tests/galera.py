"""A three-node MariaDB Galera cluster behind HAProxy, on this machine, for the failover
tests (tests/test_galera.py; docs/architecture.md, "A replicated database").

Each node is a mariadbd of its own (Debian's galera-4 provider; a data directory, client
port and Galera ports of its own on 127.0.0.1). HAProxy gives the services one address
and sends every connection to ONE node, the writer: the first that passes its health
check, and it stays the writer until it fails (a one-entry stick table), so there is
never a second writer to conflict with. When the writer dies, HAProxy closes the
sessions to it and the next connection goes to another node; the services reconnect (as
they do when a lone database restarts) and go on with what Galera committed.

Why "committed" holds: Galera replicates a transaction's write set to every node of the
primary component, and certifies it, before COMMIT returns. So a commit the services saw
succeed (and acknowledged to a client) is on the surviving nodes when the writer dies;
`innodb_flush_log_at_trx_commit=2` on each node is safe against one node's crash for
the same reason (the copies elsewhere), not against every node losing power at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from chatroom.localstack import free_port_block, wait_for_port

from wire import wait_until

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
NODES = 3
# Ports a node needs besides its client port: Galera replication, IST, SST (rsync).
PORTS_PER_NODE = 4


def available() -> str | None:
    """Why this machine cannot run the cluster (None: it can)."""
    for path, package in ((PROVIDER, "galera-4"), ("/usr/sbin/haproxy", "haproxy")):
        if not Path(path).exists():
            return f"{package} is not installed ({path} missing)"
    if shutil.which("rsync") is None:
        return "rsync (Galera's state transfer) is not installed"
    if os.geteuid() != 0:
        return "mariadbd runs as the mysql user: needs root"
    return None


class Node:
    def __init__(self, cluster: GaleraCluster, index: int, base: int) -> None:
        self.cluster = cluster
        self.index = index
        self.name = f"node{index}"
        self.port, self.galera_port, self.ist_port, self.sst_port = range(base, base + 4)
        self.dir = cluster.dir / self.name
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "mysqld.sock"

    def start(self, new_cluster: bool = False) -> None:
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
        peers = ",".join(f"127.0.0.1:{n.galera_port}" for n in self.cluster.nodes)
        options = ";".join(
            [
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.galera_port}",
                f"ist.recv_addr=127.0.0.1:{self.ist_port}",
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
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.dir / 'mysqld.pid'}",
            f"--log-error={self.dir / 'error.log'}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=1000",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=64M",
            # What Galera requires of InnoDB and the binary log format.
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON",
            f"--wsrep-provider={PROVIDER}",
            "--wsrep-cluster-name=chatroom_test",
            f"--wsrep-cluster-address=gcomm://{'' if new_cluster else peers}",
            f"--wsrep-node-name={self.name}",
            f"--wsrep-node-address=127.0.0.1:{self.galera_port}",
            f"--wsrep-provider-options={options}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
        ]
        log = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self.synced, 120, f"galera {self.name} synced")

    def sql(self, statement: str, timeout: float = 10) -> str:
        out = subprocess.run(
            ["mariadb", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise RuntimeError(f"{self.name}: {out.stderr.strip()}")
        return out.stdout.strip()

    def synced(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {self.dir / 'error.log'}")
        try:
            state = self.sql("SHOW STATUS LIKE 'wsrep_local_state_comment'", timeout=3)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return state.endswith("Synced")

    def status(self, name: str) -> str:
        return self.sql(f"SHOW STATUS LIKE '{name}'").split("\t")[-1]

    def kill(self) -> None:
        """kill -9: the node's crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


class GaleraCluster:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        base = free_port_block(1 + NODES * PORTS_PER_NODE)
        self.proxy_port = base
        self.nodes = [Node(self, i, base + 1 + i * PORTS_PER_NODE) for i in range(NODES)]
        self.proxy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Where the services connect: HAProxy, which picks the writer."""
        return f"mysql+pymysql://chat_test:chat_test@127.0.0.1:{self.proxy_port}/"

    def start(self) -> GaleraCluster:
        first, *others = self.nodes
        first.start(new_cluster=True)  # bootstraps the cluster
        # Users replicate to the other nodes (DDL is replicated in total order).
        first.sql(
            "CREATE USER IF NOT EXISTS 'chat_test'@'127.0.0.1' IDENTIFIED BY 'chat_test';"
            "GRANT ALL PRIVILEGES ON *.* TO 'chat_test'@'127.0.0.1';"
            "CREATE USER IF NOT EXISTS 'haproxy'@'127.0.0.1';"
        )
        for node in others:
            node.start()  # joins by state transfer from a synced node
        wait_until(lambda: first.status("wsrep_cluster_size") == str(NODES), 60, "3 nodes")
        self._start_proxy()
        return self

    def _start_proxy(self) -> None:
        servers = "\n".join(
            f"  server {n.name} 127.0.0.1:{n.port} check" + ("" if n.index == 0 else " backup")
            for n in self.nodes
        )
        config = self.dir / "haproxy.cfg"
        config.write_text(
            f"""global
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  retries 2
  option redispatch
listen galera
  bind 127.0.0.1:{self.proxy_port}
  # Is it up: a MySQL handshake as a user with no rights.
  option mysql-check user haproxy
  # One writer: every connection goes to the server the table holds, until it fails.
  stick-table type integer size 1 nopurge
  stick on int(1)
  # Checked every 0.5 s, down after 2 misses; its sessions closed at once, so the
  # services reconnect (to the next writer) instead of waiting on a dead socket.
  default-server inter 500 fall 2 rise 3 on-marked-down shutdown-sessions
{servers}
"""
        )
        self.proxy = subprocess.Popen(
            ["/usr/sbin/haproxy", "-f", str(config), "-db"],
            stdout=open(self.dir / "haproxy.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.proxy_port)

    def writer(self) -> Node:
        """The node the services write to now (the one holding their connections)."""
        counts = {}
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                counts[node] = int(
                    node.sql(
                        "SELECT COUNT(*) FROM information_schema.processlist "
                        "WHERE user = 'chat_test'"
                    )
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        return max(counts, key=lambda n: counts[n])

    def stop(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(30)
        for node in reversed(self.nodes):
            node.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_writable(cluster: GaleraCluster, timeout: float = 60) -> None:
    """Until a write through HAProxy commits (the cluster has a primary component)."""

    def writable() -> bool:
        for node in cluster.nodes:
            try:
                if node.status("wsrep_cluster_status") == "Primary":
                    return True
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        return False

    wait_until(writable, timeout, "a primary component")
