"""Take the client screenshots in docs/screenshots/ from the real app and a real server.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py

Starts the services locally (SQLite in a temporary folder), drives two client windows
through sign-up, lobby chat in Chinese and English, a friend request, a private chat and
an avatar change, and saves a PNG of each screen.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]


from PIL import Image, ImageDraw  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QPushButton  # noqa: E402

from chatroom.client.app import App  # noqa: E402
from chatroom.client.profile_dialog import ProfileDialog  # noqa: E402
from chatroom.client.state import dm_key, room_key  # noqa: E402
from chatroom.localstack import Stack, free_port  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def pump(qapp: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents(QEventLoop.AllEvents, 50)
        time.sleep(0.01)


def wait(qapp: QApplication, condition, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the app did not get there in time")
        pump(qapp, 0.05)


def portrait(color: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (400, 300), (245, 240, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((140, 50, 260, 170), fill=color)
    draw.ellipse((90, 170, 310, 400), fill=color)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    qapp = QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "make-tls-cert.sh"), str(tmp / "tls"), "127.0.0.1"],
            check=True,
            capture_output=True,
        )
        tls = {
            "tls_port": free_port(),
            "tls_cert_file": tmp / "tls" / "server.pem",
            "tls_key_file": tmp / "tls" / "server.key",
        }
        stack = Stack(tmp, f"sqlite:///{tmp}/chat.db", **tls).start()
        try:
            run(qapp, stack, tmp)
        finally:
            stack.stop()
    print(f"screenshots written to {OUT}")


def new_app(tmp: Path, name: str) -> App:
    (tmp / name).mkdir()
    return App(QSettings(str(tmp / f"{name}.ini"), QSettings.IniFormat), cache_dir=tmp / name)


def sign_up(qapp: QApplication, app: App, port: int, username: str) -> None:
    window = app.login_window
    window.host.setText("127.0.0.1")
    window.port.setValue(port)
    window.username.setText(username)
    window.password.setText("correct horse")
    app.show()
    window.create_account()
    wait(qapp, lambda: app.main_window is not None and app.main_window.isVisible())


def run(qapp: QApplication, stack: Stack, tmp: Path) -> None:
    ming, alice = new_app(tmp, "ming"), new_app(tmp, "alice")
    # Login screen, filled in, before signing in.
    window = ming.login_window
    window.host.setText("127.0.0.1")
    window.port.setValue(stack.port)
    window.username.setText("小明")
    window.password.setText("correct horse")
    ming.show()
    pump(qapp, 0.3)
    window.grab().save(str(OUT / "login.png"))

    # TLS to a server whose certificate the system does not trust: refused, and why.
    stranger = new_app(tmp, "stranger")
    window = stranger.login_window
    window.host.setText("127.0.0.1")
    window.port.setValue(stack.settings.tls_port)
    window.tls.setChecked(True)
    window.username.setText("stranger")
    window.password.setText("correct horse")
    stranger.show()
    window.sign_in()
    wait(qapp, lambda: "securely" in window.error.text())
    pump(qapp, 0.2)
    window.grab().save(str(OUT / "login-tls-refused.png"))
    stranger.login_window.close()

    sign_up(qapp, ming, stack.port, "小明")
    sign_up(qapp, alice, stack.port, "alice")
    for app, color in ((ming, (220, 90, 60)), (alice, (60, 120, 200))):
        picture = tmp / f"{app.state.me['username']}.png"
        picture.write_bytes(portrait(color))
        dialog = ProfileDialog(app.client, app.state, app.avatars, app.main_window)
        dialog.use_file(str(picture))
        dialog.status.setText("在写代码 ☕" if app is ming else "on holiday 🏖")
        dialog.save()
        wait(qapp, lambda app=app: app.state.my_avatar is not None)
        dialog.close()

    lines = [
        (alice, "Hi everyone! Is the new server up? 🎉"),
        (ming, "大家好！服务器已经上线了，欢迎来聊天。"),
        (alice, "Great — messages, history and avatars all work here."),
        (ming, "试试私聊和好友功能吧 😀"),
    ]
    for app, text in lines:
        app.state.send(room_key("lobby"), text)
        pump(qapp, 0.3)

    # Friend request: Alice asks 小明; his window shows the prompt.
    alice.main_window.add_friend("小明")
    wait(qapp, lambda: ming.main_window.findChild(QPushButton, "accept:alice") is not None)
    pump(qapp, 0.5)
    ming.main_window.grab().save(str(OUT / "friend-request.png"))
    ming.main_window.findChild(QPushButton, "accept:alice").click()
    wait(qapp, lambda: "小明" in alice.state.friends)
    pump(qapp, 0.5)
    alice.main_window.open(room_key("lobby"))
    pump(qapp, 0.5)
    alice.main_window.grab().save(str(OUT / "main-lobby.png"))

    # A private conversation, with the friend's avatar and status in the list.
    ming.state.send(dm_key("alice"), "周末一起去爬山吗？")
    pump(qapp, 0.3)
    alice.main_window.open(dm_key("小明"))
    alice.state.send(dm_key("小明"), "Sure! Saturday morning works for me.")
    pump(qapp, 1.0)
    alice.main_window.grab().save(str(OUT / "main-private.png"))

    # Avatar change: 小明 picks a new picture; Alice's window updates live.
    picture = tmp / "new.png"
    picture.write_bytes(portrait((40, 160, 100)))
    dialog = ProfileDialog(ming.client, ming.state, ming.avatars, ming.main_window)
    dialog.use_file(str(picture))
    dialog.show()
    pump(qapp, 0.3)
    dialog.grab().save(str(OUT / "avatar-dialog.png"))
    old = alice.state.friends["小明"]["avatar"]
    dialog.save()
    wait(qapp, lambda: alice.state.friends["小明"]["avatar"] != old)
    pump(qapp, 1.0)
    alice.main_window.grab().save(str(OUT / "avatar-updated.png"))

    # Connection lost: the state is visible and typed messages wait.
    stack.kill("edge#0")
    wait(qapp, lambda: alice.client.state == "reconnecting")
    alice.state.send(dm_key("小明"), "This one waits until we are back online.")
    pump(qapp, 0.5)
    alice.main_window.grab().save(str(OUT / "reconnecting.png"))


if __name__ == "__main__":
    main()
