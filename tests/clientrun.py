"""Helpers for the fresh-install and standalone-build smokes: a throwaway copy of the
repository, a client process driven by `--smoke` (client/smoke.py), the lobby flood."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wire import WireClient

REPO = Path(__file__).resolve().parent.parent

# What a dying or leaking PySide6/shiboken prints: CPython's fatal error (none_dealloc,
# bool_dealloc, ...), shiboken's own warnings, Qt's "QObject ... destroyed while ...".
BAD_STDERR = re.compile(
    r"Fatal Python error|_dealloc|refcount|libshiboken|Shiboken::|Segmentation fault"
    r"|Aborted|Traceback \(most recent call last\)",
    re.IGNORECASE,
)


def copy_tracked_tree(dest: Path) -> Path:
    """The repository's files as a fresh clone would have them, plus files not yet
    committed (tracked or new, not ignored): a checkout to install from without
    touching this one (a build writes build/ and *.egg-info next to the sources)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the work tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a client process: no venv or PYTHONPATH leaking in from the
    test run, Qt offscreen, settings under a private HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("CHAT_")
    }
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        how = (
            f"killed by signal {-self.returncode}"
            if self.returncode < 0
            else f"exit {self.returncode}"
        )
        return (
            f"{how} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}\n--- stderr\n"
            f"{self.stderr[-6000:]}"
        )

    def check_clean(self) -> None:
        assert self.returncode == 0, self.describe()
        bad = BAD_STDERR.search(self.stderr)
        assert bad is None, f"stderr has {bad.group(0)!r}:\n{self.describe()}"


class ClientProcess:
    """A client started with --smoke; its stdout read line by line on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.started = time.monotonic()
        self.stderr_path = cwd / "client-stderr.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with `prefix`; AssertionError on timeout/exit."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, remaining))
            except queue.Empty:
                line = ""
                if remaining <= 0:
                    raise AssertionError(
                        f"no {prefix!r} line within {timeout}s\n{self.finish(5).describe()}"
                    ) from None
                continue
            if line is None:
                raise AssertionError(
                    f"client ended before {prefix!r}:\n{self.finish(5).describe()}"
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.seen.append(f"<hung: killed after {timeout}s>")
        while True:  # the rest of stdout (the pump ends at EOF)
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        self._stderr.close()
        return Finished(
            self.proc.returncode,
            "\n".join(self.seen),
            self.stderr_path.read_text("utf-8", "replace"),
            time.monotonic() - self.started,
        )


def flood_texts(count: int) -> list[str]:
    """Hard texts for the lobby: Chinese, emoji (ZWJ sequences, flags, skin tones),
    4,000 characters (the server's default limit), control characters, RTL."""
    long_base = "长消息 long message with 中文 and emoji 😀 — " * 200
    kinds = [
        lambda i: f"你好，世界！第 {i} 条消息：今天的天气很好，我们去公园散步吧。",
        lambda i: f"emoji {i} 😀🎉👍🏽🇨🇳👨‍👩‍👧‍👦🧑🏾‍🚀 ❤️‍🔥",
        lambda i: (f"[{i}] " + long_base)[:4000],
        lambda i: f"ctl {i}:\x01\x02\x07\x08\x0b\x0c\x1b[31mred\x1b[0m\t\r\n\x7f\u200b\u202e end",
        lambda i: f"مرحبا {i} שלום mixed RTL/LTR טקסט",
        lambda i: f"line {i}\n" * 12,
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


def flood_lobby(port: int, username: str, texts: list[str], window: int = 20) -> None:
    """Send `texts` to the lobby as `username` (registered here), `window` requests in
    flight at a time; each must be acknowledged."""
    with WireClient(port, timeout=30) as flooder:
        flooder.register_and_login(username)
        pending: set[int] = set()
        next_id = 10_000
        for text in texts:
            flooder.send({"op": "room.send", "id": next_id, "room": "lobby", "text": text})
            pending.add(next_id)
            next_id += 1
            while len(pending) >= window:
                reply = flooder.next_matching(lambda f: f.get("id") in pending and "ok" in f)
                assert reply["ok"], reply
                pending.discard(reply["id"])
        while pending:
            reply = flooder.next_matching(lambda f: f.get("id") in pending and "ok" in f)
            assert reply["ok"], reply
            pending.discard(reply["id"])
