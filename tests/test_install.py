"""Fresh-install smoke: install the client the way README/docs/client.md tell a user
(`scripts/bootstrap.sh client` in a checkout), with versions resolved fresh from the
package index, then run the installed `chatroom-client` against a real local stack
while another client floods the lobby, resizing the main window as it goes.

It exists because a fresh install once resolved PySide6-Essentials 6.12.0, with which
the app died on Python 3.11 ("Fatal Python error: none_dealloc" / "bool_dealloc") after a
few hundred repaints of a busy lobby; pyproject.toml now excludes it. The test fails on a
non-zero exit, a signal, a hang, or Qt/shiboken refcount trouble on stderr.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from clientrun import ClientProcess, clean_env, copy_tracked_tree, flood_lobby, flood_texts
from wire import WireClient

FLOOD = 400  # a busy lobby: hundreds of messages, each shown and painted
PASSWORD = "correct horse"


def run_flood(client: list[str], port: int, workdir: Path, count: int = FLOOD) -> None:
    """Sign `client` (argv of an installed chatroom-client) in as a new user, flood the
    lobby with `count` messages from another user, and require a clean run."""
    with WireClient(port) as setup:
        setup.call("register", username="观众viewer", password=PASSWORD)
    texts = flood_texts(count)
    proc = ClientProcess(
        [
            *client,
            "--smoke",
            "flood",
            "--server",
            f"127.0.0.1:{port}",
            "--username",
            "观众viewer",
            "--password",
            PASSWORD,
            "--sender",
            "flood者",
            "--expect",
            str(count),
            "--timeout",
            "90",
        ],
        clean_env(HOME=str(workdir)),
        workdir,
    )
    proc.wait_line("smoke: ready", timeout=60)
    flood_lobby(port, "flood者", texts)
    proc.wait_line("smoke: done", timeout=120)
    result = proc.finish(timeout=30)
    result.check_clean()
    assert f"smoke: done shown={count}" in result.stdout, result.describe()


@pytest.fixture(scope="module")
def fresh_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway checkout with its own .venv made by the documented command."""
    checkout = copy_tracked_tree(tmp_path_factory.mktemp("checkout"))
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/bootstrap.sh", "client"],
        cwd=checkout,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"bootstrap.sh client: {time.monotonic() - started:.0f}s")
    return checkout / ".venv"


@pytest.mark.install
@pytest.mark.timeout(1200)
def test_fresh_install_survives_a_flooded_lobby(fresh_client, make_stack, sqlite_url, tmp_path):
    versions = subprocess.run(
        [
            str(fresh_client / "bin/python"),
            "-c",
            "import PySide6, shiboken6, sys; print(PySide6.__version__, shiboken6.__version__,"
            " sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert versions.returncode == 0, versions.stderr
    print(f"fresh install: PySide6 shiboken6 python = {versions.stdout.strip()}")
    stack = make_stack(sqlite_url)
    run_flood([str(fresh_client / "bin/chatroom-client")], stack.port, tmp_path)
