"""The desktop client, driven like a person would, against the real local stack.

Qt runs offscreen. Two or three App instances talk through real edges; each has its own
settings file and avatar cache directory.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import images

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402

from chatroom.client.app import App  # noqa: E402
from chatroom.client.net import ONLINE, RECONNECTING  # noqa: E402
from chatroom.client.state import FAILED, PENDING, SENT, dm_key, room_key  # noqa: E402

WAIT = 15_000
PASSWORD = "correct horse"


def make_app(tmp_path: Path, name: str) -> App:
    settings = QSettings(str(tmp_path / f"{name}.ini"), QSettings.IniFormat)
    cache = tmp_path / f"{name}-avatars"
    cache.mkdir()
    return App(settings, cache_dir=cache)


def sign_up(qtbot, app: App, port: int, username: str) -> None:
    """Fill in the login window and create the account, as a user would."""
    window = app.login_window
    app.show()
    qtbot.addWidget(window)
    window.host.setText("127.0.0.1")
    window.port.setValue(port)
    window.username.clear()
    if username.isascii():
        qtbot.keyClicks(window.username, username)
    else:
        window.username.setText(username)  # keyClicks cannot type non-ASCII text
    qtbot.keyClicks(window.password, PASSWORD)
    qtbot.mouseClick(window.register_button, Qt.LeftButton)
    qtbot.waitUntil(
        lambda: app.main_window is not None and app.main_window.isVisible(), timeout=WAIT
    )
    qtbot.addWidget(app.main_window)


def type_and_send(qtbot, app: App, text: str) -> None:
    box = app.main_window.compose
    if text.isascii():
        qtbot.keyClicks(box, text)
    else:
        box.setPlainText(text)
    qtbot.keyClick(box, Qt.Key_Return)


def texts(app: App, key) -> list[str]:
    return [m["text"] for m in app.state.conversation(key).messages]


def shown(app: App) -> list[str]:
    return [m["text"] for m in app.main_window.model.messages]


def test_login_errors_are_clear(qtbot, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    app = make_app(tmp_path, "x")
    window = app.login_window
    app.show()
    qtbot.addWidget(window)
    window.host.setText("127.0.0.1")
    window.port.setValue(stack.port)
    qtbot.keyClicks(window.username, "nobody")
    qtbot.keyClicks(window.password, "wrong-password")
    qtbot.mouseClick(window.sign_in_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Wrong username or password" in window.error.text(), timeout=WAIT)
    # Unreachable server.
    from harness import free_port

    window.port.setValue(free_port())
    qtbot.mouseClick(window.sign_in_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Cannot connect to 127.0.0.1:" in window.error.text(), timeout=WAIT)
    # The server address is remembered for next time.
    assert app.settings.value("server/host") == "127.0.0.1"


def test_two_windows_talk_befriend_and_share_avatars(qtbot, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    alice, bob, carol = (make_app(tmp_path, n) for n in ("alice", "bob", "carol"))
    sign_up(qtbot, alice, stack.port, "alice")
    sign_up(qtbot, bob, stack.port, "小明")
    sign_up(qtbot, carol, stack.port, "carol")
    assert alice.client.state == ONLINE
    assert "Online" in alice.main_window.connection.text()

    # Lobby: typed in one window, shown in the other.
    type_and_send(qtbot, alice, "hello lobby")
    qtbot.waitUntil(lambda: "hello lobby" in shown(bob), timeout=WAIT)
    type_and_send(qtbot, bob, "你好 😀 from 小明")
    qtbot.waitUntil(lambda: "你好 😀 from 小明" in shown(alice), timeout=WAIT)
    sent = alice.state.conversation(room_key("lobby")).messages[-1]
    assert sent["state"] == SENT and sent["id"]

    # Friend request: Alice adds 小明, who accepts from the notification row.
    alice.main_window.add_friend("小明")
    accept = None

    def accept_button():
        nonlocal accept
        accept = bob.main_window.findChild(QPushButton, "accept:alice")
        return accept is not None and accept.isVisible()

    qtbot.waitUntil(accept_button, timeout=WAIT)
    qtbot.mouseClick(accept, Qt.LeftButton)
    qtbot.waitUntil(lambda: "小明" in alice.state.friends, timeout=WAIT)
    qtbot.waitUntil(lambda: "alice" in bob.state.friends, timeout=WAIT)
    assert alice.main_window.friends.count() == 1 and alice.state.friends["小明"]["online"]

    # Carol asks 小明, who rejects: Carol is told.
    carol.main_window.add_friend("小明")

    def reject_button():
        button = bob.main_window.findChild(QPushButton, "reject:carol")
        return button if button is not None and button.isVisible() else None

    qtbot.waitUntil(lambda: reject_button() is not None, timeout=WAIT)
    qtbot.mouseClick(reject_button(), Qt.LeftButton)
    qtbot.waitUntil(
        lambda: "小明 rejected your friend request" in carol.main_window.notice.text(), timeout=WAIT
    )
    assert carol.main_window.notice.isVisible()

    # Private message: unread badge on the receiving side until opened.
    alice.main_window.open(dm_key("小明"))
    type_and_send(qtbot, alice, "just between us")
    qtbot.waitUntil(lambda: "just between us" in texts(bob, dm_key("alice")), timeout=WAIT)
    assert bob.state.conversation(dm_key("alice")).unread == 1
    bob.main_window.open(dm_key("alice"))
    assert bob.state.conversation(dm_key("alice")).unread == 0
    assert "just between us" in shown(bob)
    assert "just between us" not in texts(carol, dm_key("alice"))

    # Avatar: Alice picks a picture; 小明's window shows it, cached on disk by hash.
    from chatroom.client.profile_dialog import ProfileDialog

    picture = tmp_path / "me.png"
    picture.write_bytes(images.png(640, 480, (30, 160, 90)))
    dialog = ProfileDialog(alice.client, alice.state, alice.avatars, alice.main_window)
    qtbot.addWidget(dialog)
    assert dialog.use_file(str(picture))
    dialog.save()
    qtbot.waitUntil(lambda: alice.state.my_avatar is not None, timeout=WAIT)
    new_hash = alice.state.my_avatar
    qtbot.waitUntil(lambda: bob.state.friends["alice"]["avatar"] == new_hash, timeout=WAIT)
    bob.avatars.pixmap(new_hash, "alice", 36)  # what the friend row paints
    qtbot.waitUntil(lambda: (bob.avatars.directory / f"{new_hash}.png").exists(), timeout=WAIT)
    assert carol.state.friends == {}

    # A text file renamed .png is refused in the dialog, before any upload.
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert not dialog.use_file(str(fake))
    assert "not an image" in dialog.message.text()


def test_connection_loss_recovers_with_nothing_lost(qtbot, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url, edges=2)
    alice, bob = make_app(tmp_path, "alice"), make_app(tmp_path, "bob")
    sign_up(qtbot, alice, stack.edge_ports[0], "alice")
    sign_up(qtbot, bob, stack.edge_ports[1], "bob")
    type_and_send(qtbot, bob, "before the outage")
    qtbot.waitUntil(lambda: "before the outage" in shown(alice), timeout=WAIT)

    stack.kill("edge#0", signal.SIGKILL)  # Alice's server process dies
    qtbot.waitUntil(lambda: alice.client.state == RECONNECTING, timeout=WAIT)
    qtbot.waitUntil(lambda: "Reconnecting" in alice.main_window.connection.text(), timeout=WAIT)

    # While Alice is cut off: Bob keeps talking, Alice types a message.
    for i in range(5):
        type_and_send(qtbot, bob, f"while you were away {i}")
    type_and_send(qtbot, alice, "typed while offline")
    pending = alice.state.conversation(room_key("lobby")).messages[-1]
    assert pending["text"] == "typed while offline" and pending["state"] == PENDING

    stack.restart("edge#0")
    qtbot.waitUntil(lambda: alice.client.state == ONLINE, timeout=30_000)
    expected = [f"while you were away {i}" for i in range(5)]
    qtbot.waitUntil(lambda: all(t in shown(alice) for t in expected), timeout=WAIT)
    qtbot.waitUntil(lambda: "typed while offline" in shown(bob), timeout=WAIT)
    lobby = alice.state.conversation(room_key("lobby")).messages
    assert [m["text"] for m in lobby].count("typed while offline") == 1
    assert all(m["state"] == SENT for m in lobby)
    seqs = [m["seq"] for m in lobby]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_send_refused_by_server_is_marked_failed(qtbot, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url, max_text_chars=10)
    app = make_app(tmp_path, "dora")
    sign_up(qtbot, app, stack.port, "dora")
    # Bypass the window's own length check to see what a server refusal looks like.
    local = app.state.send(room_key("lobby"), "x" * 11)
    qtbot.waitUntil(
        lambda: app.state.conversation(room_key("lobby")).messages[-1]["state"] == FAILED,
        timeout=WAIT,
    )
    failed = app.state.conversation(room_key("lobby")).messages[-1]
    assert failed["client_id"] == local["client_id"] and "at most 10" in failed["error"]
    # The window refuses it up front and says why.
    type_and_send(qtbot, app, "y" * 11)
    assert "at most 10 characters" in app.main_window.notice.text()


def test_older_history_loads_when_scrolled_to_top(qtbot, make_stack, sqlite_url, tmp_path):
    from wire import WireClient

    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as writer:
        writer.register_and_login("writer")
        for i in range(120):
            writer.call("room.send", room="lobby", text=f"old message {i}")
    app = make_app(tmp_path, "reader")
    sign_up(qtbot, app, stack.port, "reader")
    qtbot.waitUntil(lambda: len(shown(app)) == 50, timeout=WAIT)
    assert shown(app)[-1] == "old message 119"
    view = app.main_window.view
    for expected in (100, 120):
        qtbot.waitUntil(lambda: view.verticalScrollBar().maximum() > 0, timeout=WAIT)
        view.verticalScrollBar().setValue(0)
        qtbot.waitUntil(lambda expected=expected: len(shown(app)) == expected, timeout=WAIT)
    assert shown(app) == [f"old message {i}" for i in range(120)]


def test_tls_login_verifies_the_server(qtbot, make_stack, sqlite_url, tmp_path):
    """Over the edge's TLS port: refused without the server's CA (system CAs do not know
    it), then works with the CA file, and the whole session runs encrypted."""
    from tls import make_certificates

    certs = make_certificates(tmp_path / "tls")
    stack = make_stack(sqlite_url, **certs.settings())
    app = make_app(tmp_path, "tina")
    window = app.login_window
    app.show()
    qtbot.addWidget(window)
    window.host.setText("127.0.0.1")
    window.port.setValue(stack.settings.tls_port)
    window.tls.setChecked(True)
    qtbot.keyClicks(window.username, "tina")
    qtbot.keyClicks(window.password, PASSWORD)
    qtbot.mouseClick(window.register_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Cannot connect securely" in window.error.text(), timeout=WAIT)
    assert "certificate" in window.error.text().lower()
    window.grab().save(str(tmp_path / "tls-refused.png"))

    window.ca_file.setText(str(certs.ca))
    qtbot.mouseClick(window.register_button, Qt.LeftButton)
    qtbot.waitUntil(
        lambda: app.main_window is not None and app.main_window.isVisible(), timeout=WAIT
    )
    qtbot.addWidget(app.main_window)
    assert app.settings.value("server/tls") == "true"
    type_and_send(qtbot, app, "sent over TLS")
    qtbot.waitUntil(
        lambda: app.state.conversation(room_key("lobby")).messages[-1]["state"] == SENT,
        timeout=WAIT,
    )


def test_rate_limited_sends_are_retried_when_the_server_says(
    qtbot, make_stack, sqlite_url, tmp_path
):
    stack = make_stack(sqlite_url, rate_message="2/2s")
    app = make_app(tmp_path, "quick")
    sign_up(qtbot, app, stack.port, "quick")
    for i in range(5):
        type_and_send(qtbot, app, f"fast {i}")
    conv = app.state.conversation(room_key("lobby"))
    qtbot.waitUntil(lambda: [m["state"] for m in conv.messages] == [SENT] * 5, timeout=WAIT)
    assert sorted(texts(app, room_key("lobby"))) == [f"fast {i}" for i in range(5)]
