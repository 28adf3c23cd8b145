"""`chatroom up` as an operator runs it (scripts/run-local.sh): it says "up" only when a
client can log in, and Ctrl-C stops everything in order, quickly, with no warnings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from chatroom.localstack import free_port, free_port_block

from wire import WireClient


class Output:
    """The process's combined output, read as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                assert left > 0, f"no {text!r} in:\n" + "\n".join(self.lines)
                self.changed.wait(left)


def test_up_announces_only_when_serving_and_ctrl_c_stops_cleanly(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(CHAT_EDGE_PORT=str(port), CHAT_BUS_PORT_BASE=str(free_port_block()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatroom.cli", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,  # as a terminal does: Ctrl-C goes to the whole group
    )
    output = Output(proc)
    try:
        output.wait_for("chatroom is up", timeout_s=90)
        # At the moment it says so, a new user can register and send.
        with WireClient(port, timeout=5) as client:
            client.register_and_login("first-user")
            client.call("room.send", room="lobby", text="hello")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = "\n".join(output.lines)
    problems = [line for line in output.lines if " WARNING " in line or " ERROR " in line]
    assert problems == [], log
    assert "Traceback" not in log
    stopping = output.wait_for("stopping: the edge, then the services", timeout_s=1)
    assert log.index(stopping) < log.index("edge stopped") < log.index("stopped after")
