"""chatroom-client: the desktop app."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from .avatars import AvatarCache
from .login_window import LoginWindow
from .main_window import MainWindow
from .net import ChatClient
from .state import ChatState


class App:
    """Wires the layers together: network -> state -> windows."""

    def __init__(self, settings: QSettings | None = None, cache_dir: Path | None = None) -> None:
        self.settings = settings or QSettings("ChatRoom", "ChatRoom")
        self.client = ChatClient()
        self.state = ChatState(self.client)
        self.avatars = AvatarCache(self.client, cache_dir)
        self.login_window = LoginWindow(self.client, self.settings)
        self.main_window: MainWindow | None = None
        self.login_window.loggedIn.connect(self._show_main)
        self.client.sessionEnded.connect(self._session_ended)

    def show(self) -> None:
        self.login_window.show()

    def _show_main(self) -> None:
        if self.main_window is None:
            self.main_window = MainWindow(self.client, self.state, self.avatars)
        self.main_window.start()
        self.main_window.show()
        self.login_window.hide()

    def _session_ended(self, message: str) -> None:
        if self.main_window is not None:
            self.main_window.hide()
        self.login_window.error.setText(f"Your session ended ({message}). Sign in again.")
        self.login_window.show()


def main() -> int:
    qt_app = QApplication(sys.argv)
    qt_app.setApplicationName("ChatRoom")
    app = App()
    app.show()
    return qt_app.exec()


if __name__ == "__main__":
    sys.exit(main())
