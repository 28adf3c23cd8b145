"""Desktop notifications and the tray icon.

A DM, a friend request or a mention that arrives while the window is not focused is
shown as a tray balloon / platform notification (QSystemTrayIcon.showMessage, which
Qt maps to the desktop's notification service), and the taskbar entry asks for
attention. The tray icon's tooltip carries the unread total; clicking it brings the
window back. `history` keeps what was shown, for the activity of tests and people
alike; where no tray exists (some desktops, offscreen) it is the only record.
"""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from . import theme
from .ui import on_click


class Notifier:
    def __init__(self, window: QWidget) -> None:
        self.window = window
        self.history: list[tuple[str, str]] = []
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(theme.app_icon(), window)
            self.tray.setToolTip("ChatRoom")
            menu = QMenu(window)
            on_click(menu.addAction("Show ChatRoom"), self.bring_back)
            on_click(menu.addAction("Quit"), QApplication.quit)
            self.tray.setContextMenu(menu)
            self.tray.activated.connect(lambda _reason: self.bring_back())
            self.tray.messageClicked.connect(self.bring_back)
            self.tray.show()

    def notify(self, title: str, body: str) -> None:
        self.history.append((title, body))
        if self.tray is not None:
            self.tray.showMessage(title, body, theme.app_icon(), 8000)
        QApplication.alert(self.window)

    def set_unread(self, total: int) -> None:
        if self.tray is not None:
            self.tray.setToolTip(f"ChatRoom — {total} unread" if total else "ChatRoom")

    def bring_back(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
