"""Change your picture (preview, square crop) and status text."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QStandardPaths, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from . import theme
from .avatars import AvatarCache, round_pixmap
from .net import ChatClient
from .state import ChatState
from .ui import button

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
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # The stubs say bytes, but this PySide6 takes only str here.
    image.save(buffer, "PNG")  # type: ignore[call-overload]
    return bytes(data.data())


class ProfileDialog(QDialog):
    """Your picture, your status, and signing out."""

    signOutRequested = Signal()
    accountSettingsRequested = Signal()

    def __init__(
        self, client: ChatClient, state: ChatState, avatars: AvatarCache, parent: Any = None
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.state = state
        self.setWindowTitle("Your profile")
        self.setObjectName("profile")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.image: QImage | None = None
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW, PREVIEW)
        me = state.me.get("username", "")
        self.preview.setPixmap(avatars.pixmap(state.my_avatar, me, PREVIEW))
        choose = button("Choose picture…", self.choose, "choose_picture")
        self.status = QLineEdit(state.my_status)
        self.status.setObjectName("status")
        self.status.setCursorPosition(0)  # a long status reads from its start
        self.status.setPlaceholderText("What are you up to?")
        self.status.setMaxLength(client.limits.get("max_status_chars", 140))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.colors().error};")
        save = button("Save", self.save, "save")
        save.setDefault(True)
        cancel = button("Cancel", self.reject, "cancel")
        sign_out = button("Sign out", self.sign_out, "sign_out", "Sign out on this computer")
        settings = button(
            "Account…", self.open_account, "account_settings", "Password, devices, your data"
        )

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
        buttons.addWidget(sign_out)
        buttons.addWidget(settings)
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
        """Open the file chooser without blocking; a chosen file is previewed."""
        chooser = QFileDialog(
            self, "Choose a picture", "", "Images (*.png *.jpg *.jpeg *.gif *.webp)"
        )
        chooser.setObjectName("picture_chooser")
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        chooser.setDirectory(pictures if Path(pictures).is_dir() else str(Path.home()))
        chooser.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        chooser.fileSelected.connect(self.use_file)
        chooser.open()

    def open_account(self) -> None:
        """The account settings take this dialog's place (the main window opens them)."""
        self.accountSettingsRequested.emit()
        self.accept()

    def sign_out(self) -> None:
        self.signOutRequested.emit()
        self.accept()

    def use_file(self, path: str) -> bool:
        image = QImage(path)
        if image.isNull():
            self.message.setText("That file is not an image this app can read.")
            return False
        self.image = square_crop(image).scaled(
            UPLOAD_SIDE,
            UPLOAD_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
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
