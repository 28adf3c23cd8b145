"""chatroom-client: start the desktop app, or (--smoke) check an installed or bundled
one (client/smoke.py). Apart from client.app so that the smoke checks, which drive an
App, do not import the module that imports them."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from . import system_libraries, theme
from .app import App
from .smoke import run as run_smoke_checks


def main() -> int:
    if "--smoke" in sys.argv[1:]:  # checks of an installed or bundled app: client/smoke.py
        return run_smoke_checks(sys.argv[1:])
    system_libraries.warn_if_missing()  # Qt aborts without naming what to install
    qt_app = QApplication(sys.argv)
    qt_app.setApplicationName("ChatRoom")
    qt_app.setWindowIcon(theme.app_icon())
    app = App()
    app.show()
    return qt_app.exec()


if __name__ == "__main__":
    sys.exit(main())
