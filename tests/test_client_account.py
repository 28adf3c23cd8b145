"""The desktop client, as a person uses it (tests/clicks.py: clicks, keys, answers to
dialogs, never a slot): how views wire their buttons, the look, signing in and out,
staying signed in, and keeping the session through a lost connection or a huge
backlog, and over TLS. Each test starts its apps (`apps`, tests/conftest.py) against
real local services.
"""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import signal  # noqa: E402
import stat  # noqa: E402
from pathlib import Path  # noqa: E402

from PySide6.QtCore import Qt  # noqa: E402

from client.conversations import PENDING, SENT, room_key  # noqa: E402
from client.net import DISCONNECTED, ONLINE, RECONNECTING  # noqa: E402
from client.profile_dialog import ProfileDialog  # noqa: E402

from clicks import (  # noqa: E402
    click,
    click_button,
    dialog,
    fill_login,
    press,
    pump,
    send,
    shown,
    sign_in,
    sign_up,
    type_into,
    wait,
)

CLIENT_DIR = Path(__file__).resolve().parents[1] / "client"


# ---------------------------------------------------------------------- the pattern


def test_no_button_is_wired_around_on_click():
    """`clicked(bool)`/`triggered(bool)` hand `checked` to the slot; a slot with an optional
    parameter then gets False (the dead "Add friend" button). Views connect buttons only
    through ui.on_click, which calls the action with no arguments."""
    offenders = []
    for path in CLIENT_DIR.glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if (".clicked.connect(" in line or ".triggered.connect(" in line) and (
                path.name != "ui.py" and "view.clicked.connect(" not in line  # (index)
            ):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_on_click_calls_the_action_with_no_arguments(qtbot):
    """The bug behind the dead buttons, on a real button: `clicked` passes `checked`
    (False) to a slot with an optional parameter. Through on_click it gets nothing."""
    from PySide6.QtWidgets import QPushButton

    from client.ui import on_click

    received = []

    def add_friend(username=None):
        received.append(username)

    plain, wrapped = QPushButton("plain"), QPushButton("wrapped")
    for widget in (plain, wrapped):
        qtbot.addWidget(widget)
        widget.show()
    plain.clicked.connect(add_friend)  # what the views used to do
    on_click(wrapped, add_friend)
    qtbot.mouseClick(plain, Qt.LeftButton)
    qtbot.mouseClick(wrapped, Qt.LeftButton)
    assert received == [False, None]


def test_dark_theme_when_asked(apps, monkeypatch):
    """CHAT_CLIENT_THEME=dark (or a dark system scheme) gives the dark palette."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from client import theme

    monkeypatch.setenv(theme.THEME_ENV, "dark")
    app = apps("night")
    app.show()
    window_color = QApplication.instance().palette().color(QPalette.Window)
    assert window_color.lightness() < 60
    assert theme.colors().name == "dark"
    monkeypatch.setenv(theme.THEME_ENV, "light")
    app.restyle()
    assert QApplication.instance().palette().color(QPalette.Window).lightness() > 200


# ---------------------------------------------------------------------- sign in / out


def test_create_account_sign_out_and_sign_in(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    app = apps("ann")
    sign_up(app, stack.port, "ann")
    assert app.client.state == ONLINE
    assert "Online" in app.main_window.connection.text()

    # Sign out from the profile dialog (click the avatar, then "Sign out").
    click(app.main_window.me_avatar)
    profile = dialog(ProfileDialog, "profile")
    click_button(profile, "sign_out")
    wait(lambda: app.login_window.isVisible() and not app.main_window.isVisible())
    assert "signed out" in app.login_window.error.text()
    wait(lambda: app.client.state == DISCONNECTED)

    # And back in with the password.
    sign_in(app, stack.port, "ann")
    assert app.state.me["username"] == "ann"


def test_wrong_password_error_stays_put(apps, make_stack, sqlite_url):
    """A failed sign-in says so, keeps saying so after the server drops the unused
    connection (its login timeout: not "cannot connect"), does not resize the window,
    and puts the cursor back in the password field."""
    stack = make_stack(sqlite_url, login_timeout_s=1)
    sign_up(apps("real"), stack.port, "real")
    app = apps("guess")
    window = app.login_window
    app.show()
    pump(0.1)
    size = window.size()
    fill_login(app, stack.port, "real", "wrong-password")
    click(window.sign_in_button)
    wait(lambda: "Wrong username or password" in window.error.text())
    assert window.password.hasFocus() and window.password.selectedText() == "wrong-password"
    assert window.size() == size
    # The server closes the connection it was never logged in on after 1 s.
    wait(lambda: app.client.state == DISCONNECTED, timeout=10)
    pump(0.3)
    assert "Wrong username or password" in window.error.text()
    assert "Cannot connect" not in window.error.text()
    assert window.size() == size
    # Trying again with the right password works on a new connection.
    window.password.clear()
    type_into(window.password, "correct horse")
    press(window.password, Qt.Key_Return)
    wait(lambda: app.main_window is not None and app.main_window.isVisible())


def test_unreachable_server_is_explained(apps):
    from harness import free_port

    app = apps("lost")
    app.show()
    fill_login(app, free_port(), "lost")
    click(app.login_window.sign_in_button)
    wait(lambda: "Cannot connect to 127.0.0.1:" in app.login_window.error.text())
    assert app.settings.value("server/host") == "127.0.0.1"


def test_stays_signed_in_until_sign_out(apps, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    first = apps("laptop")
    sign_up(first, stack.port, "stay")
    token_files = list((tmp_path / "laptop-data" / "session").iterdir())
    assert len(token_files) == 1
    assert stat.S_IMODE(token_files[0].stat().st_mode) == 0o600
    first.main_window.close()

    # The app is started again on the same computer: straight in, nothing typed.
    again = apps("laptop")
    again.show()
    wait(lambda: again.main_window is not None and again.main_window.isVisible())
    assert again.state.me["username"] == "stay"

    click(again.main_window.me_avatar)
    click_button(dialog(ProfileDialog, "profile"), "sign_out")
    wait(lambda: again.login_window.isVisible())
    assert not any((tmp_path / "laptop-data" / "session").iterdir())

    # Next start: the sign-in window, and the old token no longer works anywhere.
    third = apps("laptop")
    third.show()
    pump(0.5)
    assert third.main_window is None and third.login_window.isVisible()


# ---------------------------------------------------------------------- recovery


def test_connection_loss_recovers_with_nothing_lost(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url, edges=2)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.edge_ports[0], "alice")
    sign_up(bob, stack.edge_ports[1], "bob")
    send(bob, "before the outage")
    wait(lambda: "before the outage" in shown(alice))

    stack.kill("edge#0", signal.SIGKILL)  # Alice's server process dies
    wait(lambda: alice.client.state == RECONNECTING)
    wait(lambda: "Reconnecting" in alice.main_window.connection.text())

    # While Alice is cut off: Bob keeps talking, Alice types a message.
    for i in range(5):
        send(bob, f"while you were away {i}")
    send(alice, "typed while offline")
    pending = alice.state.conversation(room_key("lobby")).messages[-1]
    assert pending["text"] == "typed while offline" and pending["state"] == PENDING

    stack.restart("edge#0")
    wait(lambda: alice.client.state == ONLINE, timeout=30)
    expected = [f"while you were away {i}" for i in range(5)]
    wait(lambda: all(t in shown(alice) for t in expected))
    wait(lambda: "typed while offline" in shown(bob))
    lobby = alice.state.conversation(room_key("lobby")).messages
    assert [m["text"] for m in lobby].count("typed while offline") == 1
    assert all(m["state"] == SENT for m in lobby)
    seqs = [m["seq"] for m in lobby]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_huge_backlog_is_fetched_in_pages_without_reconnecting(apps, make_stack, sqlite_url):
    """A lobby full of long control-character messages (each JSON-escapes to ~24 KB):
    the client pages sync and history within its frame cap and never loops."""
    from wire import WireClient

    stack = make_stack(sqlite_url)
    reader = apps("reader")
    sign_up(reader, stack.port, "reader")
    reader.main_window.close()  # quits; starts again on the same computer below
    noisy = "\x01\x02\x1b" * 1332  # 3,996 characters, ~24 KB as JSON
    with WireClient(stack.port) as writer:
        writer.register_and_login("writer")
        for i in range(150):
            writer.call("room.send", room="lobby", text=f"{i:03d}{noisy}")
    back = apps("reader")
    back.show()
    wait(lambda: back.main_window is not None and back.main_window.isVisible())
    lobby = back.state.conversation(room_key("lobby"))
    wait(lambda: len(lobby.messages) >= 150, timeout=30)
    assert [m["text"][:3] for m in lobby.messages[-150:]] == [f"{i:03d}" for i in range(150)]
    assert back.client.state == ONLINE and back.client._attempt == 0


def test_tls_login_verifies_the_server(apps, make_stack, sqlite_url, tmp_path):
    """Over the edge's TLS port: refused without the server's CA (system CAs do not know
    it), then works with the CA file, and the whole session runs encrypted."""
    from tls import make_certificates

    certs = make_certificates(tmp_path / "tls")
    stack = make_stack(sqlite_url, **certs.settings())
    app = apps("tina")
    window = app.login_window
    app.show()
    fill_login(app, stack.settings.tls_port, "tina")
    click(window.tls)
    click(window.register_button)
    wait(lambda: "Cannot connect securely" in window.error.text())
    assert "certificate" in window.error.text().lower()

    type_into(window.ca_file, str(certs.ca))
    click(window.register_button)
    wait(lambda: app.main_window is not None and app.main_window.isVisible())
    assert app.settings.value("server/tls") == "true"
    send(app, "sent over TLS")
    wait(lambda: app.state.conversation(room_key("lobby")).messages[-1]["state"] == SENT)
