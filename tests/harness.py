"""The tests' view of chatroom.localstack (kept so test modules import one name), and a
MariaDB of a test's own."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from chatroom.localstack import Stack, free_port, wait_for_port

from wire import wait_until

__all__ = ["PrivateMariaDB", "Stack", "free_port", "wait_for_port"]
ROOT = Path(__file__).resolve().parents[1]


class PrivateMariaDB:
    """A MariaDB of this test's own (scripts/test-mariadb.sh on another port and data
    directory), so that restarting it disturbs no other test."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(f"/var/tmp/chatroom-faults-{secrets.token_hex(3)}")
        self.env = dict(
            os.environ, CHAT_TEST_MYSQL_PORT=str(self.port), CHAT_TEST_MYSQL_DIR=str(self.dir)
        )

    def start(self) -> str:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-mariadb.sh")],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        pid_file = self.dir / "mysqld.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not _alive(pid), 60, "MariaDB stopped")

    def remove(self) -> None:
        self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _signal(self, sig: signal.Signals) -> None:
        pid_file = self.dir / "mysqld.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), sig)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, queries hang."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
