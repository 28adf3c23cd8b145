"""The client side must not need server packages; import names are the folders."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = ("zmq", "sqlalchemy", "pymysql", "argon2", "PIL")
BLOCK = f"import sys\nfor m in {SERVER_ONLY!r}: sys.modules[m] = None\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_protocol_imports_without_server_packages():
    result = run(BLOCK + "import chatroom.protocol, chatroom.config, chatroom.logs\nprint('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_server_code_does_not_import_qt():
    code = (
        "import sys\nsys.modules['PySide6'] = None\n"
        "import services.tcp_edge.server, services.auth.handlers\n"
        "import services.social.handlers, chatroom.cli\nprint('ok')"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_import_names_are_the_folders_from_anywhere():
    # Outside the repository (no "." on sys.path) the installed distribution must still
    # give each module under the name its path shows: services/auth/handlers.py is
    # services.auth.handlers, client/state.py is client.state.
    code = (
        "import services.auth.handlers as a, client.state as c, chatroom.protocol as p\n"
        "print(a.__file__); print(c.__file__); print(p.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    handlers, state, protocol = proc.stdout.split()
    assert handlers.endswith("services/auth/handlers.py")
    assert state.endswith("client/state.py")
    assert protocol.endswith("chatroom/protocol.py")
