"""The standalone client: scripts/build-client.sh (PyInstaller) builds it from a throwaway
copy of the repository into a temporary directory; the artefact starts offscreen, shows
the sign-in window, says so, and quits cleanly."""

from __future__ import annotations

import subprocess
import time

import pytest

from clientrun import BAD_STDERR, clean_env, copy_tracked_tree


@pytest.mark.installer
@pytest.mark.timeout(1200)
def test_standalone_build_shows_the_sign_in_window(tmp_path):
    checkout = copy_tracked_tree(tmp_path / "checkout")
    work, dist = tmp_path / "build", tmp_path / "dist"
    started = time.monotonic()
    build = subprocess.run(
        ["bash", "scripts/build-client.sh"],
        cwd=checkout,
        env=clean_env(CHAT_BUILD_DIR=str(work), CHAT_DIST_DIR=str(dist)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout + build.stderr[-6000:]
    print(f"build-client.sh: {time.monotonic() - started:.0f}s; {build.stdout.strip()}")
    artefact = dist / "chatroom-client" / "chatroom-client"
    assert artefact.is_file()

    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run(
        [str(artefact), "--smoke", "signin"],
        cwd=home,
        env=clean_env(HOME=str(home)),
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    stdout = run.stdout.decode("utf-8", "replace")
    stderr = run.stderr.decode("utf-8", "replace")
    assert run.returncode == 0, f"exit {run.returncode}\n{stdout}\n{stderr}"
    assert "smoke: shown: ChatRoom" in stdout.splitlines()[-1], stdout + stderr
    assert BAD_STDERR.search(stderr) is None, stderr
