"""Reusable widgets: the message list (model + painted bubbles), contact rows, the
compose box. They read ChatState; none of them touches the socket."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import QPlainTextEdit, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from . import theme
from .avatars import AvatarCache
from .conversations import FAILED, PENDING, mentions, shown_text

# What Qt hands a model or delegate as an index (the overridden methods accept both).
AnyIndex = QModelIndex | QPersistentModelIndex
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
MINE_ROLE = Qt.ItemDataRole.UserRole + 2
CONTACT_ROLE = Qt.ItemDataRole.UserRole + 3
LAYOUT_ROLE = Qt.ItemDataRole.UserRole + 4  # RowLayout: date separator? header? found?

AVATAR = 36
PAD = 10
BUBBLE_PAD = 9
DATE_H = 28
GROUP_GAP_MS = 5 * 60 * 1000  # a new header after five quiet minutes
MAX_CACHED_SIZES = 20_000


def day_of(ts_ms: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts_ms / 1000)) if ts_ms else ""


def format_day(ts_ms: int) -> str:
    day = day_of(ts_ms)
    if day == day_of(int(time.time() * 1000)):
        return "Today"
    if day == day_of(int(time.time() * 1000) - 86_400_000):
        return "Yesterday"
    return time.strftime("%A, %d %B %Y", time.localtime(ts_ms / 1000))


def format_time(ts_ms: int | None) -> str:
    if not ts_ms:
        return ""
    seconds = ts_ms / 1000
    if time.strftime("%Y%m%d", time.localtime(seconds)) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", time.localtime(seconds))
    return time.strftime("%d %b %H:%M", time.localtime(seconds))


def format_last_seen(ts_ms: int | None) -> str:
    if not ts_ms:
        return "offline"
    minutes = (time.time() * 1000 - ts_ms) / 60_000
    if minutes < 1:
        return "last seen just now"
    if minutes < 60:
        return f"last seen {int(minutes)} min ago"
    return f"last seen {format_time(ts_ms)}"


def message_key(message: dict[str, Any]) -> tuple:
    """Stable across a message's life: pending (client_id only), then stored (id too)."""
    if message.get("client_id"):
        return (message["from"]["username"], message["client_id"])
    return ("id", message.get("id"))


class RowLayout(NamedTuple):
    date: str  # the day to show above the message, or ""
    header: bool  # avatar, name and time (the first of a run by one sender)
    found: bool  # the find bar's current match


class MessageModel(QAbstractListModel):
    """The messages of the open conversation, oldest first, with what each row shows:
    a date line when the day changes, and the sender's header only at the start of a
    run of messages by the same person."""

    def __init__(self, me: str = "") -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.layouts: list[RowLayout] = []
        self.me = me
        self.found_row = -1

    def set_messages(self, messages: list[dict[str, Any]], me: str) -> None:
        """Show these messages. When they are the ones shown plus newer ones (a busy
        room), only the new rows are inserted and changed rows updated: a reset would
        make the view measure every message again, for every message that arrives."""
        old = [message_key(m) for m in self.messages]
        new = [message_key(m) for m in messages]
        if not old or me != self.me or new[: len(old)] != old:
            self.beginResetModel()
            self.messages, self.me, self.found_row = list(messages), me, -1
            self.layouts = self._layouts()
            self.endResetModel()
            return
        shown = len(old)
        fresh = self._layouts(messages)
        changed = [
            row
            for row in range(shown)
            if self.messages[row] is not messages[row] or self.layouts[row] != fresh[row]
        ]
        self.messages[:shown] = messages[:shown]
        self.layouts[:shown] = fresh[:shown]
        for row in changed:
            self.dataChanged.emit(self.index(row), self.index(row))
        if len(messages) > shown:
            self.beginInsertRows(QModelIndex(), shown, len(messages) - 1)
            self.messages, self.layouts = list(messages), fresh
            self.endInsertRows()

    def _layouts(self, messages: list[dict[str, Any]] | None = None) -> list[RowLayout]:
        out = []
        previous: dict[str, Any] | None = None
        previous_day = None
        for row, message in enumerate(self.messages if messages is None else messages):
            ts = message.get("ts")
            day = day_of(ts)
            new_day = bool(ts) and day != previous_day
            previous_day = day
            header = (
                previous is None
                or bool(new_day)
                or previous["from"]["username"] != message["from"]["username"]
                or message.get("state") != previous.get("state")
                or (ts or 0) - (previous.get("ts") or 0) > GROUP_GAP_MS
            )
            out.append(
                RowLayout(format_day(ts or 0) if new_day else "", header, row == self.found_row)
            )
            previous = message
        return out

    def set_found(self, row: int) -> None:
        old, self.found_row = self.found_row, row
        for changed in (old, row):
            if 0 <= changed < len(self.layouts):
                self.layouts[changed] = self.layouts[changed]._replace(found=changed == row)
                index = self.index(changed)
                self.dataChanged.emit(index, index)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.messages)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        message = self.messages[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return message["text"]
        if role == MESSAGE_ROLE:
            return message
        if role == MINE_ROLE:
            return message["from"]["username"] == self.me
        if role == LAYOUT_ROLE:
            return self.layouts[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole and message.get("state") == FAILED:
            # The bubble's header is cut to its width: the whole reason, and what to do.
            return f"Not sent: {message.get('error', 'failed')}\nRight-click: Send again or Remove"
        return None


class MessageDelegate(QStyledItemDelegate):
    """Paints a message: a date line when the day changes; avatar, name and time at the
    start of a run by one sender; the text in a rounded bubble. Your own messages on the
    right, pending ones marked, failed ones in red, ones that mention you highlighted."""

    def __init__(
        self, avatars: AvatarCache, avatar_of: Any, me: Any, parent: Any = None, ticks: Any = None
    ) -> None:
        super().__init__(parent)
        self.avatars = avatars
        self.avatar_of = avatar_of  # username -> avatar hash or None
        self.me = me  # () -> my username
        self.ticks = ticks or (lambda _message: "")  # our message -> "", "✓" or "✓✓"
        self._sizes: dict[tuple, QSize] = {}

    def _text_rect(self, option: QStyleOptionViewItem, text: str) -> QRect:
        width = max(120, int(option.rect.width() * 0.66) - AVATAR)
        metrics = QFontMetrics(option.font)
        return metrics.boundingRect(QRect(0, 0, width, 100_000), Qt.TextFlag.TextWordWrap, text)

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:  # noqa: N802
        # The view asks for every row's size whenever it lays out (a row added, a
        # resize); measuring wrapped text is the costly part, so sizes are kept.
        layout: RowLayout = index.data(LAYOUT_ROLE)
        message = index.data(MESSAGE_ROLE)
        key = (
            message_key(message),
            shown_text(message),
            option.rect.width(),
            option.font.key(),
            bool(layout.date),
            layout.header,
        )
        size = self._sizes.get(key)
        if size is None:
            if len(self._sizes) > MAX_CACHED_SIZES:
                self._sizes.clear()
            if message.get("kind") == "event":
                size = self._measure_event(option, layout)
            else:
                size = self._measure(option, layout, shown_text(message))
            self._sizes[key] = size
        return size

    def _measure_event(self, option: QStyleOptionViewItem, layout: RowLayout) -> QSize:
        height = QFontMetrics(option.font).height() + 8 + (DATE_H if layout.date else 0)
        return QSize(option.rect.width(), height)

    def _paint_event(self, painter: QPainter, option: QStyleOptionViewItem, text: str) -> None:
        """A moderation event ("ann banned bob"): a muted centred line, no bubble."""
        c = theme.colors()
        font = QFont(option.font)
        font.setItalic(True)
        painter.setFont(font)
        painter.setPen(QColor(c.muted))
        line = QRect(
            option.rect.left() + PAD,
            option.rect.bottom() - QFontMetrics(font).height() - 4,
            option.rect.width() - 2 * PAD,
            QFontMetrics(font).height() + 4,
        )
        elided = QFontMetrics(font).elidedText(text, Qt.TextElideMode.ElideRight, line.width())
        painter.drawText(line, Qt.AlignmentFlag.AlignCenter, elided)

    def _measure(self, option: QStyleOptionViewItem, layout: RowLayout, text_: str) -> QSize:
        text = self._text_rect(option, text_)
        header = QFontMetrics(option.font).height() + 2 if layout.header else 0
        height = text.height() + 2 * BUBBLE_PAD + header + (8 if layout.header else 3)
        if layout.header:
            height = max(AVATAR + 8, height)
        if layout.date:
            height += DATE_H
        return QSize(option.rect.width(), height)

    def _paint_date(self, painter: QPainter, option: QStyleOptionViewItem, day: str) -> None:
        c = theme.colors()
        band = QRect(option.rect.left(), option.rect.top(), option.rect.width(), DATE_H)
        painter.setPen(QPen(QColor(c.muted), 1))
        middle = band.center().y()
        label_w = QFontMetrics(option.font).horizontalAdvance(day) + 24
        left_end = band.center().x() - label_w // 2
        painter.drawLine(band.left() + PAD, middle, left_end, middle)
        painter.drawLine(left_end + label_w, middle, band.right() - PAD, middle)
        painter.drawText(band, Qt.AlignmentFlag.AlignCenter, day)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        c = theme.colors()
        message = index.data(MESSAGE_ROLE)
        mine = index.data(MINE_ROLE)
        layout: RowLayout = index.data(LAYOUT_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if layout.found:
            painter.fillRect(option.rect, QColor(c.selected))
        rect = option.rect.adjusted(PAD, 4 if layout.header else 1, -PAD, -2)
        if layout.date:
            self._paint_date(painter, option, layout.date)
            rect.setTop(rect.top() + DATE_H)
        if message.get("kind") == "event":
            self._paint_event(painter, option, message["text"])
            painter.restore()
            return
        sender = message["from"]["username"]
        text = shown_text(message)
        text_rect = self._text_rect(option, text)
        bubble_w = text_rect.width() + 2 * BUBBLE_PAD
        bubble_h = text_rect.height() + 2 * BUBBLE_PAD
        header_h = QFontMetrics(option.font).height() if layout.header else -2
        if mine:
            avatar_x = rect.right() - AVATAR
            bubble_x = avatar_x - 8 - bubble_w
        else:
            avatar_x = rect.left()
            bubble_x = avatar_x + AVATAR + 8
        state = message.get("state")
        if layout.header:
            # A friend's avatar as we know it now; else the one the message carried.
            avatar_hash = self.avatar_of(sender) or message["from"].get("avatar")
            painter.drawPixmap(
                avatar_x, rect.top(), self.avatars.pixmap(avatar_hash, sender, AVATAR)
            )
            header = f"{sender}  {format_time(message.get('ts'))}"
            if state == PENDING:
                header = f"{sender}  sending…"
            elif state == FAILED:
                header = f"{sender}  not sent: {message.get('error', 'failed')}"
            small = QFont(option.font)
            small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
            painter.setFont(small)
            painter.setPen(QColor(c.error) if state == FAILED else QColor(c.muted))
            # Room for "name  not sent: <why>" even over a short bubble (whole in the tooltip).
            header_w = min(max(bubble_w, 340), max(60, rect.width() - AVATAR - 8))
            header_rect = QRect(bubble_x, rect.top(), header_w, header_h)
            if mine:
                header_rect.moveRight(bubble_x + bubble_w)
            elided = QFontMetrics(small).elidedText(header, Qt.TextElideMode.ElideRight, header_w)
            painter.drawText(
                header_rect,
                Qt.AlignmentFlag.AlignRight if mine else Qt.AlignmentFlag.AlignLeft,
                elided,
            )

        bubble = QRect(bubble_x, rect.top() + header_h + 2, bubble_w, bubble_h)
        if state == FAILED:
            color = QColor(c.failed_bubble)
        elif not mine and mentions(message["text"], self.me()):
            color = QColor(c.mention)
        else:
            color = QColor(c.mine_bubble if mine else c.their_bubble)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(bubble, 10, 10)
        painter.setFont(option.font)
        painter.setPen(QColor(c.muted if state == PENDING else c.text))
        painter.drawText(
            bubble.adjusted(BUBBLE_PAD, BUBBLE_PAD, -BUBBLE_PAD, -BUBBLE_PAD),
            Qt.TextFlag.TextWordWrap,
            text,
        )
        ticks = self.ticks(message) if mine else ""
        if ticks:  # read receipts: left of our bubble's last line, accented once read
            marks = QFont(option.font)
            marks.setBold(True)
            painter.setFont(marks)
            painter.setPen(QColor(c.accent if ticks == "✓✓" else c.muted))
            line_h = QFontMetrics(marks).height()
            where = QRect(bubble.left() - 40, bubble.bottom() - line_h - 2, 34, line_h)
            painter.drawText(where, Qt.AlignmentFlag.AlignRight, ticks)
        painter.restore()


class ContactDelegate(QStyledItemDelegate):
    """A friend or room row: avatar (or #), online dot, name, a preview or status, and
    the unread badge. Long names and previews are elided (the row's tooltip has them)."""

    def __init__(self, avatars: AvatarCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.avatars = avatars

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:  # noqa: N802
        return QSize(max(60, option.rect.width()), 52)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        c = theme.colors()
        contact = index.data(CONTACT_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, QColor(c.selected))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(option.rect, QColor(c.hover))
        rect = option.rect.adjusted(8, 8, -8, -8)
        size = rect.height()
        if contact["kind"] == "friend":
            painter.drawPixmap(
                rect.left(),
                rect.top(),
                self.avatars.pixmap(contact.get("avatar"), contact["name"], size),
            )
            painter.setPen(QPen(QColor(c.base), 2))
            painter.setBrush(QColor(c.online if contact.get("online") else c.offline))
            painter.drawEllipse(rect.left() + size - 11, rect.top() + size - 11, 11, 11)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(c.hover))
            painter.drawRoundedRect(QRect(rect.left(), rect.top(), size, size), 8, 8)
            painter.setPen(QColor(c.muted))
            painter.drawText(
                QRect(rect.left(), rect.top(), size, size),
                Qt.AlignmentFlag.AlignCenter,
                "🔒" if contact.get("private") else "#",  # as the header shows it
            )
        text_left = rect.left() + size + 8
        badge_w = 0
        metrics = QFontMetrics(option.font)
        if contact.get("unread"):
            label = str(min(contact["unread"], 99)) + ("+" if contact["unread"] > 99 else "")
            if contact.get("mentions"):  # "@2 · 5": 2 of the 5 unread mention you
                label = f"@{min(contact['mentions'], 99)} · {label}"
            badge_w = max(20, metrics.horizontalAdvance(label) + 10)
            badge = QRect(rect.right() - badge_w, rect.center().y() - 10, badge_w, 20)
            painter.setPen(Qt.PenStyle.NoPen)
            # A room whose notifications are off ("None": not even mentions) counts
            # quietly, in grey; the @count still says how many mention you.
            quiet = contact.get("notify") == "none"
            painter.setBrush(QColor(c.muted if quiet else c.accent))
            painter.drawRoundedRect(badge, 10, 10)
            painter.setPen(Qt.GlobalColor.white)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
        name_font = QFont(option.font)
        name_font.setBold(bool(contact.get("unread")))
        painter.setFont(name_font)
        painter.setPen(QColor(c.text))
        text_w = max(0, rect.right() - badge_w - 6 - text_left)
        subtitle = contact.get("subtitle", "").replace("\n", " ")
        name_rect = QRect(text_left, rect.top(), text_w, size // 2 if subtitle else size)
        name = QFontMetrics(name_font).elidedText(
            contact["name"], Qt.TextElideMode.ElideRight, text_w
        )
        painter.drawText(
            name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name
        )
        if subtitle:
            painter.setFont(option.font)
            painter.setPen(QColor(c.muted))
            elided = metrics.elidedText(subtitle, Qt.TextElideMode.ElideRight, text_w)
            painter.drawText(
                QRect(text_left, rect.top() + size // 2, text_w, size // 2),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                elided,
            )
        painter.restore()


class ComposeBox(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line."""

    sendRequested = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            text = self.toPlainText()
            if text.strip():
                self.sendRequested.emit(text)
            return
        super().keyPressEvent(event)
