"""Log in or register: server address (remembered), username, password, clear errors."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from chatroom.protocol import ErrorCode

from . import theme
from .net import ChatClient
from .ui import button, fit_words

FRIENDLY = {
    ErrorCode.BAD_CREDENTIALS: "Wrong username or password. New here? Click “Create account”.",
    ErrorCode.USERNAME_TAKEN: "That username is taken. Choose another one.",
    ErrorCode.TIMEOUT: "The server did not answer. Try again in a moment.",
    ErrorCode.SERVICE_UNAVAILABLE: "The server is busy or restarting. Try again in a moment.",
}


ERROR_LINES = 3


class LoginWindow(QWidget):
    loggedIn = Signal()

    def __init__(self, client: ChatClient, settings: QSettings) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.setWindowTitle("ChatRoom — sign in")
        self.setWindowIcon(theme.app_icon())
        self.setMinimumWidth(380)

        self.title = QLabel("ChatRoom")
        self.subtitle = QLabel("Sign in, or create an account on this server.")
        self.subtitle.setWordWrap(True)

        self.host = QLineEdit(str(settings.value("server/host", "localhost")))
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(str(settings.value("server/port", 2019))))
        server_row = QHBoxLayout()
        server_row.addWidget(self.host, 1)
        server_row.addWidget(self.port)
        self.tls = QCheckBox("Secure (TLS)")
        self.tls.setChecked(settings.value("server/tls", "false") in (True, "true"))
        self.ca_file = QLineEdit(str(settings.value("server/ca_file", "")))
        self.ca_file.setPlaceholderText("CA file (optional)")
        self.ca_file.setToolTip(
            "The server's CA certificate (PEM), for a server with its own CA; "
            "empty: the system's CAs"
        )
        self.ca_file.setEnabled(self.tls.isChecked())
        self.tls.toggled.connect(self.ca_file.setEnabled)
        tls_row = QHBoxLayout()
        tls_row.addWidget(self.tls)
        tls_row.addWidget(self.ca_file, 1)
        self.username = QLineEdit(str(settings.value("login/username", "")))
        self.username.setPlaceholderText("e.g. 小明 or alice")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.returnPressed.connect(self.sign_in)

        form = QFormLayout()
        form.addRow("Server", server_row)
        form.addRow("", tls_row)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)

        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        # A fixed place for the message from the start, ERROR_LINES high: an error must
        # not resize the window (it used to grow, and focus jumped to the Server field)
        # nor move the fields (a three-line one pushed them up). A longer one is cut
        # with "…", the whole of it in the tooltip.
        self.error.setFixedHeight(ERROR_LINES * self.error.fontMetrics().lineSpacing() + 4)
        self.error.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._error_text = ""
        self.sign_in_button = button("Sign in", self.sign_in, "sign_in")
        self.sign_in_button.setDefault(True)
        self.register_button = button("Create account", self.create_account, "create_account")
        buttons = QHBoxLayout()
        buttons.addWidget(self.register_button)
        buttons.addStretch(1)
        buttons.addWidget(self.sign_in_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 24)
        layout.setSpacing(12)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.restyle()
        (self.password if self.username.text() else self.username).setFocus()

    def restyle(self) -> None:
        c = theme.colors()
        self.title.setStyleSheet(f"font-size: 22px; font-weight: 600; color: {c.text};")
        self.subtitle.setStyleSheet(f"color: {c.muted};")
        self.error.setStyleSheet(f"color: {c.error};")
        self.setStyleSheet(
            "QLineEdit, QSpinBox { padding: 5px; } QPushButton { padding: 6px 14px; }"
        )

    # ------------------------------------------------------------------ actions

    def _busy(self, busy: bool) -> None:
        for widget in (self.sign_in_button, self.register_button):
            widget.setEnabled(not busy)

    def show_info(self, text: str) -> None:
        """A neutral line where errors go ("You are signed out.")."""
        self.error.setStyleSheet(f"color: {theme.colors().muted};")
        self._set_error(text)

    def show_problem(self, text: str) -> None:
        self.error.setStyleSheet(f"color: {theme.colors().error};")
        self._set_error(text)

    def _set_error(self, text: str) -> None:
        self._error_text = text
        self._fit_error()

    def _fit_error(self) -> None:
        """The message wrapped in its fixed place; cut at a word with "…" if longer."""
        text = self._error_text
        width = self.error.contentsRect().width()
        metrics = QFontMetrics(self.error.font())
        shown = fit_words(metrics, text, width, self.error.height()) if width > 0 else text
        self.error.setText(shown)
        self.error.setToolTip(text if shown != text else "")

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_error()

    def _show_error(self, reply: dict[str, Any]) -> None:
        self._busy(False)
        error = reply["error"]
        self.show_problem(FRIENDLY.get(error["code"], error["message"]))
        # Back to the field to fix: the password after a wrong one, the name if taken.
        field = {
            ErrorCode.BAD_CREDENTIALS: self.password,
            ErrorCode.INVALID_PASSWORD: self.password,
            ErrorCode.USERNAME_TAKEN: self.username,
            ErrorCode.INVALID_USERNAME: self.username,
        }.get(error["code"])
        if field is not None:
            field.setFocus()
            field.selectAll()

    def _credentials(self) -> tuple[str, str] | None:
        username, password = self.username.text().strip(), self.password.text()
        if not username or not password:
            self.show_problem("Enter a username and a password.")
            (self.password if username else self.username).setFocus()
            return None
        return username, password

    def _connect_then(self, action: Any) -> None:
        self.settings.setValue("server/host", self.host.text().strip())
        self.settings.setValue("server/port", self.port.value())
        self.settings.setValue("server/tls", "true" if self.tls.isChecked() else "false")
        self.settings.setValue("server/ca_file", self.ca_file.text().strip())
        self._busy(True)
        self._set_error("")
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

    def resume(self, token: str, failed: Any) -> None:
        """Sign in with a kept session token (stay signed in); `failed` gets the error
        reply when the token no longer works or the server cannot be reached."""
        self.show_info("Signing you in…")
        self._busy(True)

        def done(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._logged_in(reply)
            else:
                self._busy(False)
                self._set_error("")
                failed(reply)

        self.client.open(
            str(self.settings.value("server/host", "localhost")),
            int(str(self.settings.value("server/port", 2019))),
            lambda: self.client.login_with_token(token, done),
            done,
            tls=self.settings.value("server/tls", "false") in (True, "true"),
            ca_file=str(self.settings.value("server/ca_file", "")) or None,
        )

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        super().keyPressEvent(event)
