"""Driving the desktop client as a person does: find the widget on screen, click it,
type into it, answer the dialog that opens. Nothing here calls a slot.

Used by tests/test_client*.py and scripts/screenshots.py (so the screenshots come
from clicking through the app too). Every wait is on a condition, with a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QPoint, QSettings, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)

from client.app import App
from client.conversations import FAILED, shown_text

WAIT_S = 15.0
PASSWORD = "correct horse"


def pump(seconds: float = 0.0) -> None:
    end = time.monotonic() + seconds
    while True:
        QApplication.processEvents(QEventLoop.AllEvents, 20)
        if time.monotonic() >= end:
            return
        time.sleep(0.005)


def wait(condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    """Process events until condition() is truthy; returns its value."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"gave up waiting{': ' + what if what else ''}")
        pump(0.01)


def new_app(tmp: Path, name: str) -> App:
    """An app with its own settings file, avatar cache and session store (a separate
    'computer'); the same name again is the same computer."""
    settings = QSettings(str(tmp / f"{name}.ini"), QSettings.IniFormat)
    cache = tmp / f"{name}-avatars"
    cache.mkdir(exist_ok=True)
    return App(settings, cache_dir=cache, data_dir=tmp / f"{name}-data")


def click(widget: QWidget) -> None:
    """A left click in the middle of a visible, enabled widget."""
    wait(lambda: widget.isVisible() and widget.isEnabled(), what=f"{widget.objectName()} clickable")
    QTest.mouseClick(widget, Qt.LeftButton)
    pump()


def button(parent: QWidget, name: str) -> QAbstractButton:
    """The visible button with this objectName (waits for it)."""

    def find() -> QAbstractButton | None:
        for found in parent.findChildren(QAbstractButton, name):
            if found.isVisible():
                return found
        return None

    return wait(find, what=f"button {name!r}")


def click_button(parent: QWidget, name: str) -> None:
    click(button(parent, name))


def type_into(widget: QWidget, text: str) -> None:
    """Type as a person does; Qt's key simulation cannot type non-ASCII, so such text
    is pasted in whole (as from an input method)."""
    widget.setFocus()
    if text.isascii():
        QTest.keyClicks(widget, text)
    elif isinstance(widget, QLineEdit):
        widget.insert(text)
    else:
        widget.insertPlainText(text)
    pump()


def focus_window(widget: QWidget) -> None:
    """Bring the widget's window to the front, as a person does before typing."""
    window = widget.window()
    window.raise_()
    window.activateWindow()
    try:
        wait(window.isActiveWindow, timeout=1.0)
    except TimeoutError:
        # An X server with no window manager (bare Xvfb) may ignore the request; the
        # click that would focus it there is what this stands for.
        QApplication.setActiveWindow(window)
        wait(window.isActiveWindow, what=f"{window.windowTitle()} focused")


def press(widget: QWidget, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.NoModifier) -> None:
    focus_window(widget)
    widget.setFocus()
    QTest.keyClick(widget, key, modifier)
    pump()


def dialog(kind: type, name: str) -> Any:
    """The open top-level dialog of this type and objectName."""

    def find() -> Any:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, kind) and widget.objectName() == name and widget.isVisible():
                return widget
        return None

    return wait(find, what=f"dialog {name!r}")


def answer_text(name: str, text: str) -> None:
    """Type into the open text prompt and click OK."""
    prompt = dialog(QInputDialog, name)
    field = prompt.findChild(QLineEdit)
    field.clear()
    type_into(field, text)
    click(prompt.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok))


def answer_lines(name: str, text: str) -> None:
    """In the open multi-line editor (ui.ask_lines): clear it, type `text` a line at a
    time (Enter between the lines, as a person starts a new one) and click Save."""
    prompt = dialog(QDialog, name)
    field = prompt.findChild(QPlainTextEdit)
    field.clear()
    for n, line in enumerate(text.split("\n")):
        if n:
            press(field, Qt.Key_Return)
        type_into(field, line)
    click(prompt.findChild(QAbstractButton, "save"))


def answer_confirm(name: str, yes: bool = True) -> None:
    box = dialog(QMessageBox, name)
    click(box.findChild(QAbstractButton, "yes" if yes else "no"))


def choose_file(name: str, path: Path) -> None:
    """Type the file's path into the open file chooser and press Enter."""
    chooser = dialog(QFileDialog, name)
    field = chooser.findChild(QLineEdit, "fileNameEdit")
    field.clear()
    type_into(field, str(path))
    press(field, Qt.Key_Return)


def click_row(listing: QListWidget, text: str, key: tuple[str, str] | None = None) -> None:
    """Click the row whose text is `text` (a room or friend name); of rows with the same
    text (two deleted accounts' chats), the one for conversation `key`."""

    def find() -> Any:
        for row in range(listing.count()):
            item = listing.item(row)
            if item.text() == text and key in (None, item.data(Qt.ItemDataRole.UserRole)):
                return item
        return None

    listing.scrollToItem(wait(find, what=f"row {text!r}"))
    pump()
    # Found again right before the click: the lists are refilled as pushes arrive.
    rect = listing.visualItemRect(wait(find, what=f"row {text!r}"))
    QTest.mouseClick(listing.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    pump()


def fill_login(app: App, port: int, username: str, password: str = PASSWORD) -> None:
    window = app.login_window
    window.host.clear()
    type_into(window.host, "127.0.0.1")
    window.port.setValue(port)  # a spin box: typed digits would append to the old value
    window.username.clear()
    type_into(window.username, username)
    window.password.clear()
    type_into(window.password, password)


def sign_up(app: App, port: int, username: str, password: str = PASSWORD) -> None:
    """Open the app, fill in the form, click "Create account", wait for the main window."""
    app.show()
    fill_login(app, port, username, password)
    click(app.login_window.register_button)
    wait(lambda: app.main_window is not None and app.main_window.isVisible(), what="main window")


def sign_in(app: App, port: int, username: str, password: str = PASSWORD) -> None:
    app.show()
    fill_login(app, port, username, password)
    click(app.login_window.sign_in_button)
    wait(lambda: app.main_window is not None and app.main_window.isVisible(), what="main window")


def send(app: App, text: str, by_button: bool = False) -> None:
    """Type a message into the compose box; Enter (or the Send button) sends it."""
    box = app.main_window.chat.compose
    type_into(box, text)
    if by_button:
        click(app.main_window.chat.send_button)
    else:
        press(box, Qt.Key_Return)


def shown(app: App) -> list[str]:
    """The texts in the open conversation, as the message view has them."""
    return [m["text"] for m in app.main_window.chat.model.messages]


def open_conversation(app: App, key: tuple[str, str]) -> None:
    listing = app.main_window.side.rooms if key[0] == "room" else app.main_window.side.friends
    click_row(listing, key[1])
    wait(lambda: app.state.active == key, what=f"{key} open")


def texts(app: App, key: tuple[str, str]) -> list[str]:
    """What the app holds for a conversation, shown or not."""
    return [m["text"] for m in app.state.conversation(key).messages]


def befriend(asker: App, answerer: App) -> None:
    """`asker` clicks Add friend and types the name; `answerer` clicks Accept."""
    assert asker.main_window is not None and answerer.main_window is not None
    click(asker.main_window.add_friend_button)
    answer_text("add_friend_dialog", answerer.state.me["username"])
    name = asker.state.me["username"]
    click_button(answerer.main_window, f"accept:{name}")
    wait(lambda: answerer.state.me["username"] in asker.state.friends)
    wait(lambda: name in answerer.state.friends)


def right_click_message(app: App, text: str, across: float = 0.5) -> None:
    """Right-click the message showing `text` in the open conversation (the press, and
    the context-menu event the window system sends with it); `across`: where in the
    row, from its left (0) to its right (1)."""
    chat = app.main_window.chat
    # A message still pending (sent, no id yet) has no menu, as a person sees by its
    # clock: wait until it is stored (or refused) first (on a loaded machine the ack can take
    # longer than the click; seen in CI: no menu).
    rows = wait(
        lambda: [
            n
            for n, m in enumerate(chat.model.messages)
            if m["text"] == text and (m.get("id") or m.get("state") == FAILED)
        ],
        what=f"message {text!r} shown, stored or refused",
    )
    row = rows[0]

    def settled() -> QPoint | None:
        """Where to click, once the row is laid out where it stays: on a loaded machine
        a layout (a message arriving, the scroll) can still be pending, and a click at
        the old place hits nothing (seen in CI: no menu)."""
        chat.view.scrollTo(chat.model.index(row))
        pump()
        rect = chat.view.visualRect(chat.model.index(row))
        pos = QPoint(rect.left() + int(rect.width() * across), rect.center().y())
        pump(0.02)
        if rect.isEmpty() or chat.view.visualRect(chat.model.index(row)) != rect:
            return None
        return pos if chat.view.indexAt(pos).row() == row else None

    pos = wait(settled, what=f"message {text!r} laid out")
    viewport = chat.view.viewport()
    QTest.mousePress(viewport, Qt.RightButton, Qt.NoModifier, pos)
    QApplication.sendEvent(
        viewport, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, viewport.mapToGlobal(pos))
    )
    QTest.mouseRelease(viewport, Qt.RightButton, Qt.NoModifier, pos)
    pump()


def right_click_row(listing: QListWidget, text: str) -> None:
    """Right-click the row whose text is `text` (a friend, a member): the press, and the
    context-menu event the window system sends with it."""

    def find() -> Any:
        for row in range(listing.count()):
            if listing.item(row).text() == text:
                return listing.item(row)
        return None

    listing.scrollToItem(wait(find, what=f"row {text!r}"))
    pump()
    pos = listing.visualItemRect(wait(find, what=f"row {text!r}")).center()
    viewport = listing.viewport()
    QTest.mousePress(viewport, Qt.RightButton, Qt.NoModifier, pos)
    QApplication.sendEvent(
        viewport, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, viewport.mapToGlobal(pos))
    )
    QTest.mouseRelease(viewport, Qt.RightButton, Qt.NoModifier, pos)
    pump()


def choose_menu_item(menu_name: str, item: str) -> None:
    """Click the item (its objectName) of the open pop-up menu."""
    menu = dialog(QMenu, menu_name)
    action = next(a for a in menu.actions() if a.objectName() == item)
    QTest.mouseClick(menu, Qt.LeftButton, Qt.NoModifier, menu.actionGeometry(action).center())
    pump()


def click_message(app: App, text: str) -> None:
    """A left click on the message showing `text` (e.g. a reply's quote)."""
    chat = app.main_window.chat
    row = next(n for n, m in enumerate(chat.model.messages) if m["text"] == text)
    chat.view.scrollTo(chat.model.index(row))
    pump()
    rect = chat.view.visualRect(chat.model.index(row))
    QTest.mouseClick(chat.view.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    pump()


def open_settings(app: App) -> Any:
    """The account settings, opened as a person does: the avatar, then the profile's
    Account settings button."""
    from client.account_dialog import AccountDialog
    from client.profile_dialog import ProfileDialog

    click(app.main_window.me_avatar)
    click_button(dialog(ProfileDialog, "profile"), "account_settings")
    return dialog(AccountDialog, "account")


def choose_notify_level(app: App, level: str) -> None:
    """In the open room's header: Notifications, then the level (all, mentions, none)."""
    click(app.main_window.chat.notify.widget)
    choose_menu_item("notify_menu", f"notify:{level}")


def wheel(widget: QWidget, notches: int) -> None:
    """Turn the mouse wheel over the widget (a list's viewport): positive notches scroll
    up, towards older messages, negative ones down."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(widget.rect().center())
    step = QPoint(0, 120 if notches > 0 else -120)
    for _ in range(abs(notches)):
        event = QWheelEvent(
            pos,
            QPointF(widget.mapToGlobal(pos.toPoint())),
            QPoint(0, 0),
            step,
            Qt.NoButton,
            Qt.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)
        pump()


class Redraws:
    """The rows of the open conversation's list that the view was told to draw again
    (its model's dataChanged, inserted rows, a reset): what a person sees change. The
    model's data alone is not the screen: a message changed without a signal kept its
    old text on screen until something else repainted the list (a new user's trial)."""

    def __init__(self, app: App) -> None:
        self.model = app.main_window.chat.model
        self.rows: set[int] = set()
        self.reset = False
        self.model.dataChanged.connect(self._changed)
        self.model.rowsInserted.connect(lambda _parent, first, last: self._rows(first, last))
        self.model.modelReset.connect(self._reset)

    def _changed(self, top: Any, bottom: Any, *_roles: Any) -> None:
        self._rows(top.row(), bottom.row())

    def _rows(self, first: int, last: int) -> None:
        self.rows.update(range(first, last + 1))

    def _reset(self) -> None:
        self.reset = True

    def of(self, text: str) -> bool:
        """Whether the row now showing `text` was drawn again since this began."""
        rows = [n for n, m in enumerate(self.model.messages) if text in shown_text(m)]
        return bool(rows) and (self.reset or any(row in self.rows for row in rows))
