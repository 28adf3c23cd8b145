"""A three-node MariaDB Galera cluster behind HAProxy, on 127.0.0.1, for the failover
tests (tests/test_galera.py; docs/past-one-host.md, "A replicated database"). The nodes
and the proxy are chatroom/galera.py's, which says why "committed" holds and how the
proxy keeps one writer: when the writer dies, HAProxy closes the sessions to it and the
next connection goes to another node; the services reconnect (as they do when a lone
database restarts) and go on with what Galera committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from chatroom import galera
from chatroom.galera import Node
from chatroom.localstack import free_port_block, wait_for_port

NODES = 3
# Ports a node needs besides its client port: Galera replication, IST, SST (rsync).
PORTS_PER_NODE = 4
available = galera.available

__all__ = ["NODES", "GaleraCluster", "Node", "available"]


class GaleraCluster:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        base = free_port_block(1 + NODES * PORTS_PER_NODE)
        self.proxy_port = base
        self.nodes = [
            Node(
                f"node{i}",
                workdir / f"node{i}",
                "127.0.0.1",
                galera.Ports(*range(base + 1 + i * PORTS_PER_NODE, base + 5 + i * PORTS_PER_NODE)),
            )
            for i in range(NODES)
        ]
        galera.connect_nodes(self.nodes)
        self.proxy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Where the services connect: HAProxy, which picks the writer."""
        return f"mysql+pymysql://chat_test:chat_test@127.0.0.1:{self.proxy_port}/"

    def start(self) -> GaleraCluster:
        galera.found(
            self.nodes,
            [
                "CREATE USER IF NOT EXISTS 'chat_test'@'127.0.0.1' IDENTIFIED BY 'chat_test'",
                "GRANT ALL PRIVILEGES ON *.* TO 'chat_test'@'127.0.0.1'",
                "CREATE USER IF NOT EXISTS 'haproxy'@'127.0.0.1'",
            ],
        )
        config = self.dir / "haproxy.cfg"
        config.write_text(galera.proxy_config(f"127.0.0.1:{self.proxy_port}", self.nodes))
        self.proxy = galera.start_proxy(config)
        wait_for_port(self.proxy_port)
        return self

    def writer(self) -> Node:
        """The node the services write to now (the one holding their connections)."""
        found = galera.writer(self.nodes)
        assert found is not None, "no node is running"
        return found

    def stop(self) -> None:
        galera.stop_process(self.proxy)
        for node in reversed(self.nodes):
            node.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
