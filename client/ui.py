"""Small building blocks every view uses: buttons wired to actions, dialogs that do not
block, labels that elide, lists that say what to do when they are empty.

The one rule for buttons: connect them with `on_click`. Qt's `clicked(bool)` and
`triggered(bool)` pass `checked` to the slot, and a slot with an optional parameter
(`add_friend(username=None)`) then receives False instead of its default: that made
"Add friend" and "+" do nothing. `on_click` calls the action with no arguments, always.
tests/test_client_account.py fails if any view connects `clicked`/`triggered` another way.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QAction, QFontMetrics, QKeySequence, QPainter, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QLabel,
    QListView,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from . import theme

Action = Callable[[], object]


def on_click(widget: QAbstractButton | QAction, action: Action) -> None:
    """Run `action()` when the button is clicked or the menu action triggered."""
    signal = widget.triggered if isinstance(widget, QAction) else widget.clicked
    signal.connect(lambda *_checked: action())


def button(text: str, action: Action, name: str = "", tip: str = "") -> QPushButton:
    widget = QPushButton(text)
    widget.setObjectName(name or text)
    if tip:
        widget.setToolTip(tip)
    on_click(widget, action)
    return widget


def ask_text(
    parent: QWidget, title: str, label: str, on_ok: Callable[[str], None], name: str
) -> QInputDialog:
    """A text prompt that does not block the event loop (messages keep arriving while it
    is open); `on_ok` gets the stripped text when the user confirms a non-empty one."""
    dialog = QInputDialog(parent)
    dialog.setObjectName(name)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def done(text: str) -> None:
        if text.strip():
            on_ok(text.strip())

    dialog.textValueSelected.connect(done)
    dialog.open()
    return dialog


def ask_lines(
    parent: QWidget, title: str, text: str, on_save: Callable[[str], None], name: str
) -> QDialog:
    """A multi-line editor prefilled with `text` (a message keeps its line breaks: Enter
    starts a new line, as in the compose box), not blocking either. Save or Ctrl+Enter
    gives `on_save` the text as it stands (the compose box sends its text untrimmed
    too); Save is disabled while the text is blank: an edit cannot empty a message
    (Delete… does that)."""
    dialog = QDialog(parent)
    dialog.setObjectName(name)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    editor = QPlainTextEdit(text)
    editor.setObjectName("text")
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
    )
    save = buttons.button(QDialogButtonBox.StandardButton.Save)
    save.setObjectName("save")
    save.setToolTip("Save (Ctrl+Enter)")
    buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName("cancel")
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    editor.textChanged.connect(lambda: save.setEnabled(bool(editor.toPlainText().strip())))
    save.setEnabled(bool(text.strip()))
    # Return belongs to the editor (a new line); Ctrl+Enter, on either Enter key, saves.
    for keys in ("Ctrl+Return", "Ctrl+Enter"):
        QShortcut(QKeySequence(keys), dialog).activated.connect(save.click)
    layout = QVBoxLayout(dialog)
    layout.addWidget(editor)
    layout.addWidget(buttons)
    dialog.resize(420, 220)
    dialog.accepted.connect(lambda: on_save(editor.toPlainText()))
    dialog.open()
    editor.setFocus()
    return dialog


def confirm(
    parent: QWidget, title: str, text: str, yes: str, on_yes: Action, name: str
) -> QMessageBox:
    """Ask before something that cannot be undone; `on_yes` runs only on `yes`."""
    box = QMessageBox(parent)
    box.setObjectName(name)
    box.setWindowTitle(title)
    box.setText(text)
    box.setIcon(QMessageBox.Icon.Question)
    yes_button = box.addButton(yes, QMessageBox.ButtonRole.DestructiveRole)
    yes_button.setObjectName("yes")
    box.addButton(QMessageBox.StandardButton.Cancel).setObjectName("no")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def finished() -> None:
        if box.clickedButton() is yes_button:
            on_yes()

    box.finished.connect(lambda *_result: finished())
    box.open()
    return box


class ElidedLabel(QLabel):
    """A one-line label that shows `full text…` when narrow (the full text in its
    tooltip) and never asks for more width than it is given."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(20)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802
        self._full = text
        self.setToolTip(text if text else "")
        self._elide()

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        metrics = QFontMetrics(self.font())
        shown = metrics.elidedText(
            self._full.replace("\n", " "), Qt.TextElideMode.ElideRight, self.width()
        )
        super().setText(shown)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()


def fit_words(metrics: QFontMetrics, text: str, width: int, height: int) -> str:
    """`text` wrapped at `width`, cut at a word with "…" so it is at most `height` high."""
    room = QRect(0, 0, max(1, width), 100_000)

    def fits(candidate: str) -> bool:
        return metrics.boundingRect(room, Qt.TextFlag.TextWordWrap, candidate).height() <= height

    if fits(text):
        return text
    words = text.split(" ")
    while len(words) > 1 and not fits(" ".join(words) + "…"):
        words.pop()
    return " ".join(words) + "…"


def _paint_hint(view: QListView, hint: str) -> None:
    """The hint in the empty list: with a wide margin when there is room, a narrow one
    when not (a short list in a small window), cut with "…" if it still does not fit."""
    painter = QPainter(view.viewport())
    painter.setPen(theme.colors().muted)
    metrics = QFontMetrics(view.font())
    flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
    for margin in (16, 6):
        rect = view.viewport().rect().adjusted(margin, margin, -margin, -margin)
        shown = fit_words(metrics, hint, rect.width(), rect.height())
        if shown == hint:
            break
    painter.drawText(rect, flags, shown)
    painter.end()


class HintListWidget(QListWidget):
    """A list that shows a hint ("No friends yet…") while it has no rows."""

    hint = ""

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.count() == 0 and self.hint:
            _paint_hint(self, self.hint)


class HintListView(QListView):
    hint = ""

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        model = self.model()
        if self.hint and (model is None or model.rowCount() == 0):
            _paint_hint(self, self.hint)
