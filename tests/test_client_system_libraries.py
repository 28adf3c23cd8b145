"""The desktop client's advice when Qt's X11 plugin would not load (client/
system_libraries.py): the missing libraries found by the dynamic loader itself, named
as the Debian packages to install, before Qt aborts without naming them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

from client import system_libraries  # noqa: E402


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ],
)
def test_a_library_is_named_by_its_debian_package(soname, package):
    assert system_libraries.debian_package(soname) == package


def test_the_loader_decides_what_is_missing():
    assert system_libraries.missing(["libc.so.6", "libchatroom-not-there.so.3"]) == [
        "libchatroom-not-there.so.3"
    ]


def test_only_an_xcb_start_is_checked():
    uses = system_libraries.uses_xcb
    assert uses({"QT_QPA_PLATFORM": "xcb"})
    assert not uses({"QT_QPA_PLATFORM": "offscreen"})
    assert not uses({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":0"})
    assert uses({"DISPLAY": ":0"}) == sys.platform.startswith("linux")
    assert not uses({"WAYLAND_DISPLAY": "wayland-0"})


def test_the_client_says_what_to_install_before_qt_gives_up(tmp_path):
    """The installed command started for X11 where a library is missing (one that
    exists nowhere, standing for a machine without libxcb-icccm4): the advice, with
    the package, comes first on stderr."""
    code = (
        "import sys; from client import system_libraries as s;"
        " s.XCB_PLUGIN_LIBRARIES = ('libxcb-chatroom-test.so.4',);"
        " from client.main import main; sys.argv = ['chatroom-client']; sys.exit(main())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    # No X server at this display: Qt fails after the advice, whatever is installed.
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=":87", HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    first = result.stderr.splitlines()[0]
    assert first.startswith("chatroom-client: Qt needs system libraries"), result.stderr
    assert "sudo apt install libxcb-chatroom-test4" in result.stderr
