"""The client side must not need server packages; installed names stay namespaced."""

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
        "import chatroom.services.tcp_edge.server, chatroom.services.auth.handlers\n"
        "import chatroom.services.social.handlers, chatroom.cli\nprint('ok')"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_no_generic_top_level_packages_installed():
    # From the repository root the folders are importable as plain directories, so look
    # from elsewhere: the installed distribution maps them under chatroom.*.
    code = "import importlib.util as u; print(u.find_spec('services'), u.find_spec('client'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert proc.stdout.strip() == "None None", proc.stdout + proc.stderr
