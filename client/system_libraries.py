"""Before Qt opens its first window on Linux/X11: the system libraries its xcb plugin
loads, and what to install when some are missing.

Why: PySide6's wheels carry Qt but not these. On a machine without them (a minimal
Debian, seen here: libxcb-icccm4 and libxcb-keysyms1 missing) Qt prints "Could not
load the Qt platform plugin "xcb"" with a hint about libxcb-cursor0 (which was
installed) and aborts, naming no package that was missing.
The check only advises: it never stops a start that Qt could have managed (a Wayland
session, a library found in a place the loader knows but this check does not).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence

# What Qt 6's xcb platform plugin links or opens (ldd of libqxcb.so and
# libQt6XcbQpa.so.6; libxcb-cursor is opened at run time since Qt 6.5).
XCB_PLUGIN_LIBRARIES = (
    "libxcb.so.1",
    "libX11-xcb.so.1",
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-image.so.0",
    "libxcb-keysyms.so.1",
    "libxcb-randr.so.0",
    "libxcb-render-util.so.0",
    "libxcb-render.so.0",
    "libxcb-shape.so.0",
    "libxcb-shm.so.0",
    "libxcb-sync.so.1",
    "libxcb-util.so.1",
    "libxcb-xfixes.so.0",
    "libxcb-xkb.so.1",
    "libxkbcommon-x11.so.0",
    "libxkbcommon.so.0",
)


def debian_package(soname: str) -> str:
    """Debian's package for a shared library (its naming policy): libxcb-icccm.so.4 is
    in libxcb-icccm4, libxkbcommon-x11.so.0 in libxkbcommon-x11-0."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    return f"{name}{'-' if name[-1].isdigit() else ''}{version}"


def missing(sonames: Sequence[str]) -> list[str]:
    """The libraries of `sonames` that the dynamic loader cannot open."""
    absent = []
    for soname in sonames:
        try:
            ctypes.CDLL(soname)
        except OSError:
            absent.append(soname)
    return absent


def uses_xcb(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether Qt will pick its xcb plugin: asked for, or the default on Linux outside
    a Wayland session."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return sys.platform.startswith("linux") and not environ.get("WAYLAND_DISPLAY")


def advice(absent: list[str]) -> str:
    packages = " ".join(debian_package(s) for s in absent)
    return (
        f"chatroom-client: Qt needs system libraries to open windows on X11 that this "
        f"machine lacks: {', '.join(absent)}.\n"
        f"Install them and start again; on Debian or Ubuntu: sudo apt install {packages}\n"
        "(Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms "
        "xcb-util-image xcb-util-renderutil libxkbcommon-x11)"
    )


def warn_if_missing() -> None:
    """Say what to install, on stderr, before Qt would abort without saying it."""
    if not uses_xcb(os.environ):
        return
    absent = missing(XCB_PLUGIN_LIBRARIES)
    if absent:
        print(advice(absent), file=sys.stderr)
