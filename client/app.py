"""The desktop app: `App` wires the network, state and windows (started by client.main)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from chatroom.protocol import ErrorCode

from . import theme
from .actions import ChatActions
from .avatars import AvatarCache
from .login_window import LoginWindow
from .main_window import MainWindow
from .net import ChatClient
from .session_store import TokenStore
from .state import ChatState


def default_data_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or "."
    return Path(base)


class App:
    """Wires the layers together: network -> state (and the actions on it) -> windows;
    keeps the session token (stay signed in) and the look (light/dark, following the
    system)."""

    def __init__(
        self,
        settings: QSettings | None = None,
        cache_dir: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.settings = settings or QSettings("ChatRoom", "ChatRoom")
        self.tokens = TokenStore((data_dir or default_data_dir()) / "session")
        self.client = ChatClient()
        self.state = ChatState(self.client, self.settings)
        self.actions = ChatActions(self.state)
        self.avatars = AvatarCache(self.client, cache_dir)
        self._follow_theme()
        self.login_window = LoginWindow(self.client, self.settings)
        self.main_window: MainWindow | None = None
        self.login_window.loggedIn.connect(self._show_main)
        self.client.loggedIn.connect(self._keep_token)
        self.client.sessionEnded.connect(self._session_ended)

    # ------------------------------------------------------------------ look

    def _follow_theme(self) -> None:
        app = QApplication.instance()
        if not isinstance(app, QApplication):
            return
        theme.apply(app, theme.wanted_scheme())
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):  # Qt ≥ 6.5
            hints.colorSchemeChanged.connect(lambda _scheme: self.restyle())

    def restyle(self) -> None:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        theme.apply(app, theme.wanted_scheme())
        self.login_window.restyle()
        if self.main_window is not None:
            self.main_window.restyle()

    # ------------------------------------------------------------------ session

    @property
    def account(self) -> str:
        """Which token to keep: one signed-in account per server."""
        host = self.settings.value("server/host", "localhost")
        return f"{host}:{self.settings.value('server/port', 2019)}"

    def show(self) -> None:
        """The main window straight away if a kept session still works, else sign-in."""
        self.login_window.show()
        token = self.tokens.load(self.account)
        if token:
            self.login_window.resume(token, self._resume_failed)

    def _resume_failed(self, reply: dict) -> None:
        error = reply["error"]
        if error["code"] == ErrorCode.BAD_CREDENTIALS:  # ended or expired: sign in again
            self.tokens.forget(self.account)
            self.login_window.show_problem("Your session has ended. Sign in again.")
        else:
            self.login_window._show_error(reply)

    def _keep_token(self, reply: dict) -> None:
        self.tokens.save(self.account, reply["token"])

    def _show_main(self) -> None:
        if self.main_window is None:
            self.main_window = MainWindow(self.client, self.state, self.actions, self.avatars)
            self.main_window.signOutRequested.connect(self.sign_out)
            self.main_window.accountDeleted.connect(self.account_deleted)
            self.main_window.closed.connect(self.client.close)
        self.main_window.start()
        self.main_window.show()
        self.main_window.activateWindow()
        self.login_window.hide()

    def sign_out(self) -> None:
        """End the session on the server, forget the kept token, back to sign-in."""
        self.tokens.forget(self.account)
        self.client.logout()
        if self.main_window is not None:
            self.main_window.hide()
        self.login_window.show_info("You are signed out.")
        self.login_window.show()
        self.login_window.password.setFocus()

    def account_deleted(self) -> None:
        """The server deleted the account (and logged this connection out)."""
        self.sign_out()
        self.login_window.show_info("Your account is deleted.")

    def _session_ended(self, message: str) -> None:
        self.tokens.forget(self.account)
        if self.main_window is not None:
            self.main_window.hide()
        # The server's reason says what to do ("...; sign in with the new one").
        self.login_window.show_problem(message[:1].upper() + message[1:] + ".")
        self.login_window.show()
