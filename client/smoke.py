"""Smoke checks of an installed or bundled client, run as `chatroom-client --smoke MODE`.

They drive the real app (App, the real windows, the real network code) and print what
happened on stdout, so a test can check a fresh install or a PyInstaller bundle from
the outside, with nothing but the process's exit code and output:

  --smoke signin
      Show the sign-in window, print "smoke: shown: <window title>" once it is exposed,
      and quit (exit 0). Used on the standalone build (scripts/build-client.sh).

  --smoke flood --server HOST:PORT --username NAME --password PW --expect N --sender WHO
      Sign in through the sign-in window, print "smoke: ready", then wait until N
      messages from WHO are shown in the lobby's message model, resizing the main window
      at each quarter of the way and again at the end (the sizes of --sizes), forcing
      a repaint each time. Prints "smoke: done shown=N paints=P" and exits 0; exits 2
      with a "smoke: timeout ..." line if a condition is not met in time.

Every wait is on a condition, with a deadline (--timeout seconds).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from .app import App

DEFAULT_SIZES = "420x360,1600x1000,980x660"


def say(line: str) -> None:
    print(f"smoke: {line}", flush=True)


def wait_until(predicate: Callable[[], bool], timeout: float, poll_ms: int = 20) -> bool:
    """Run the event loop until predicate() is true or `timeout` seconds have passed."""
    if predicate():
        return True
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(poll_ms)
    result = False

    def check() -> None:
        nonlocal result
        if predicate():
            result = True
            loop.quit()
        elif time.monotonic() >= deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return result


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def exposed(widget: QWidget) -> bool:
    handle = widget.windowHandle()
    return widget.isVisible() and handle is not None and handle.isExposed()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        width, height = part.lower().split("x")
        sizes.append((int(width), int(height)))
    return sizes


def make_app(workdir: Path) -> App:
    # Own settings, avatar cache and kept session: a smoke run leaves the user's alone.
    settings = QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat)
    cache = workdir / "avatars"
    cache.mkdir(exist_ok=True)
    return App(settings, cache_dir=cache, data_dir=workdir)


def signin(args: argparse.Namespace, workdir: Path) -> int:
    app = make_app(workdir)
    app.show()
    window = app.login_window
    if not wait_until(lambda: exposed(window), args.timeout):
        say("timeout: the sign-in window was not shown")
        return 2
    say(f"shown: {window.windowTitle()}")
    window.close()
    return 0


def flood(args: argparse.Namespace, workdir: Path) -> int:
    host, _, port = args.server.rpartition(":")
    app = make_app(workdir)
    app.show()
    login = app.login_window
    login.host.setText(host)
    login.port.setValue(int(port))
    login.username.setText(args.username)
    login.password.setText(args.password)
    login.sign_in_button.click()
    if not wait_until(
        lambda: app.main_window is not None and exposed(app.main_window), args.timeout
    ):
        say(f"timeout: not signed in ({login.error.text()!r})")
        return 2
    window = app.main_window
    assert window is not None  # wait_until saw it
    counter = PaintCounter()
    window.chat.view.viewport().installEventFilter(counter)

    def shown() -> int:
        return sum(1 for m in window.chat.model.messages if m["from"]["username"] == args.sender)

    say("ready")
    sizes = parse_sizes(args.sizes)
    steps = [args.expect * k // 4 for k in (1, 2, 3, 4)]
    for index, target in enumerate(steps):
        if not wait_until(lambda t=target: shown() >= t, args.timeout):  # type: ignore[misc]
            say(f"timeout: {shown()} of {args.expect} messages shown (waited for {target})")
            return 2
        width, height = sizes[index % len(sizes)]
        window.resize(width, height)
        window.repaint()
        say(f"shown {shown()}/{args.expect}, resized to {width}x{height}")
    # All shown: every size once more, scrolled to the end, painted at each size.
    for width, height in sizes:
        window.resize(width, height)
        window.chat.view.scrollToBottom()
        before = counter.paints
        window.chat.view.viewport().update()
        if not wait_until(
            lambda w=width, h=height, b=before: (  # type: ignore[misc]
                window.size().width() == w and window.size().height() == h and counter.paints > b
            ),
            args.timeout,
        ):
            say(f"timeout: no repaint at {width}x{height}")
            return 2
    say(f"done shown={shown()} paints={counter.paints}")
    window.close()  # as the user quits: the app closes its connection
    login.close()
    return 0


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chatroom-client --smoke")
    parser.add_argument("--smoke", choices=["signin", "flood"], required=True)
    parser.add_argument("--server", default="127.0.0.1:2019")
    parser.add_argument("--username", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--sender", default="")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # None in a windowed Windows build
        sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    qt_app.setApplicationName("ChatRoom")
    with tempfile.TemporaryDirectory(prefix="chatroom-smoke-") as tmp:
        code = signin(args, Path(tmp)) if args.smoke == "signin" else flood(args, Path(tmp))
        qt_app.processEvents()
    return code
