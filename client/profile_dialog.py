"""Change your picture (preview, square crop) and status text."""

from __future__ import annotations

import base64
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from .avatars import AvatarCache, round_pixmap
from .net import ChatClient
from .state import ChatState

PREVIEW = 160
UPLOAD_SIDE = 512  # the server makes 256 px and 64 px from it


def square_crop(image: QImage) -> QImage:
    side = min(image.width(), image.height())
    x = (image.width() - side) // 2
    y = (image.height() - side) // 2
    return image.copy(x, y, side, side)


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


class ProfileDialog(QDialog):
    def __init__(
        self, client: ChatClient, state: ChatState, avatars: AvatarCache, parent: Any = None
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.state = state
        self.setWindowTitle("Your profile")
        self.image: QImage | None = None
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW, PREVIEW)
        me = state.me.get("username", "")
        self.preview.setPixmap(avatars.pixmap(state.my_avatar, me, PREVIEW))
        choose = QPushButton("Choose picture…")
        choose.clicked.connect(self.choose)
        self.status = QLineEdit(state.my_status)
        self.status.setPlaceholderText("What are you up to?")
        self.status.setMaxLength(client.limits.get("max_status_chars", 140))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b;")
        save = QPushButton("Save")
        save.setDefault(True)
        save.clicked.connect(self.save)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)

        top = QHBoxLayout()
        top.addWidget(self.preview)
        side = QVBoxLayout()
        name = QLabel(me)
        name.setStyleSheet("font-size: 18px; font-weight: 600;")
        side.addWidget(name)
        side.addWidget(choose)
        side.addStretch(1)
        top.addLayout(side)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(save)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Status"))
        layout.addWidget(self.status)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a picture", "", "Images (*.png *.jpg *.jpeg *.gif *.webp)"
        )
        if path:
            self.use_file(path)

    def use_file(self, path: str) -> bool:
        image = QImage(path)
        if image.isNull():
            self.message.setText("That file is not an image this app can read.")
            return False
        self.image = square_crop(image).scaled(
            UPLOAD_SIDE, UPLOAD_SIDE, Qt.KeepAspectRatio, Qt.SmoothTransformation
        )
        self.preview.setPixmap(round_pixmap(QPixmap.fromImage(self.image), PREVIEW))
        self.message.setText("")
        return True

    def save(self) -> None:
        pending = []
        if self.image is not None:
            encoded = base64.b64encode(png_bytes(self.image)).decode("ascii")
            pending.append(("avatar.set", {"image": encoded}))
        if self.status.text().strip() != self.state.my_status:
            pending.append(("presence.set", {"status": self.status.text().strip()}))
        self._run(pending)

    def _run(self, pending: list[tuple[str, dict]]) -> None:
        if not pending:
            self.accept()
            return
        op, fields = pending[0]

        def done(reply: dict) -> None:
            if not reply.get("ok"):
                self.message.setText(reply["error"]["message"])
                return
            if op == "avatar.set":
                self.state.my_avatar = reply["hash"]
                self.state.profileChanged.emit()
            self._run(pending[1:])

        self.client.request(op, fields, done)
