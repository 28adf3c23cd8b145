"""Log in or register: server address (remembered), username, password, clear errors."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .net import ChatClient

FRIENDLY = {
    "bad_credentials": "Wrong username or password.",
    "username_taken": "That username is taken. Choose another one.",
    "timeout": "The server did not answer. Try again in a moment.",
    "service_unavailable": "The server is busy or restarting. Try again in a moment.",
}


class LoginWindow(QWidget):
    loggedIn = Signal()

    def __init__(self, client: ChatClient, settings: QSettings) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.setWindowTitle("ChatRoom — sign in")
        self.setMinimumWidth(380)

        title = QLabel("ChatRoom")
        title.setStyleSheet("font-size: 22px; font-weight: 600; color: #1f2937;")
        subtitle = QLabel("Sign in, or create an account on this server.")
        subtitle.setStyleSheet("color: #6b7280;")

        self.host = QLineEdit(str(settings.value("server/host", "localhost")))
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(settings.value("server/port", 2019)))
        server_row = QHBoxLayout()
        server_row.addWidget(self.host, 1)
        server_row.addWidget(self.port)
        self.tls = QCheckBox("Secure (TLS)")
        self.tls.setChecked(settings.value("server/tls", "false") in (True, "true"))
        self.ca_file = QLineEdit(str(settings.value("server/ca_file", "")))
        self.ca_file.setPlaceholderText("CA file (optional; default: system CAs)")
        self.ca_file.setEnabled(self.tls.isChecked())
        self.tls.toggled.connect(self.ca_file.setEnabled)
        tls_row = QHBoxLayout()
        tls_row.addWidget(self.tls)
        tls_row.addWidget(self.ca_file, 1)
        self.username = QLineEdit(str(settings.value("login/username", "")))
        self.username.setPlaceholderText("e.g. 小明 or alice")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.password.returnPressed.connect(self.sign_in)

        form = QFormLayout()
        form.addRow("Server", server_row)
        form.addRow("", tls_row)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)

        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b;")
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.setDefault(True)
        self.sign_in_button.clicked.connect(self.sign_in)
        self.register_button = QPushButton("Create account")
        self.register_button.clicked.connect(self.create_account)
        buttons = QHBoxLayout()
        buttons.addWidget(self.register_button)
        buttons.addStretch(1)
        buttons.addWidget(self.sign_in_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 24)
        layout.setSpacing(12)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.setStyleSheet(
            "QLineEdit, QSpinBox { padding: 5px; } QPushButton { padding: 6px 14px; }"
        )

    # ------------------------------------------------------------------ actions

    def _busy(self, busy: bool) -> None:
        for widget in (self.sign_in_button, self.register_button):
            widget.setEnabled(not busy)

    def _show_error(self, reply: dict[str, Any]) -> None:
        self._busy(False)
        error = reply["error"]
        self.error.setText(FRIENDLY.get(error["code"], error["message"]))
        self.adjustSize()  # room for a long message without squeezing the fields

    def _credentials(self) -> tuple[str, str] | None:
        username, password = self.username.text().strip(), self.password.text()
        if not username or not password:
            self.error.setText("Enter a username and a password.")
            return None
        return username, password

    def _connect_then(self, action: Any) -> None:
        self.settings.setValue("server/host", self.host.text().strip())
        self.settings.setValue("server/port", self.port.value())
        self.settings.setValue("server/tls", "true" if self.tls.isChecked() else "false")
        self.settings.setValue("server/ca_file", self.ca_file.text().strip())
        self._busy(True)
        self.error.setText("")
        self.client.open(
            self.host.text().strip(),
            self.port.value(),
            action,
            self._show_error,
            tls=self.tls.isChecked(),
            ca_file=self.ca_file.text().strip() or None,
        )

    def sign_in(self) -> None:
        creds = self._credentials()
        if creds:
            self._connect_then(lambda: self.client.login(*creds, self._logged_in))

    def create_account(self) -> None:
        creds = self._credentials()
        if not creds:
            return

        def registered(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.client.login(*creds, self._logged_in)
            else:
                self._show_error(reply)

        self._connect_then(lambda: self.client.register(*creds, registered))

    def _logged_in(self, reply: dict[str, Any]) -> None:
        if not reply.get("ok"):
            self._show_error(reply)
            return
        self._busy(False)
        self.settings.setValue("login/username", self.username.text().strip())
        self.password.clear()
        self.loggedIn.emit()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.key() == Qt.Key_Escape:
            self.close()
        super().keyPressEvent(event)
