"""Reusable widgets: the message list (model + painted bubbles), contact rows, the
compose box. They read ChatState; none of them touches the socket."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import QPlainTextEdit, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .avatars import AvatarCache
from .state import FAILED, PENDING

MESSAGE_ROLE = Qt.UserRole + 1
MINE_ROLE = Qt.UserRole + 2
CONTACT_ROLE = Qt.UserRole + 3

ACCENT = QColor("#2f6fed")
MINE_BUBBLE = QColor("#d8e6ff")
THEIR_BUBBLE = QColor("#f1f2f4")
FAILED_BUBBLE = QColor("#fde2e1")
MUTED = QColor("#6b7280")
ONLINE = QColor("#22a559")
OFFLINE = QColor("#b8bcc4")

AVATAR = 36
PAD = 10
BUBBLE_PAD = 9


def format_time(ts_ms: int | None) -> str:
    if not ts_ms:
        return ""
    seconds = ts_ms / 1000
    if time.strftime("%Y%m%d", time.localtime(seconds)) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", time.localtime(seconds))
    return time.strftime("%d %b %H:%M", time.localtime(seconds))


class MessageModel(QAbstractListModel):
    """The messages of the open conversation, oldest first."""

    def __init__(self, me: str = "") -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.me = me

    def set_messages(self, messages: list[dict[str, Any]], me: str) -> None:
        self.beginResetModel()
        self.messages = list(messages)
        self.me = me
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.messages)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid():
            return None
        message = self.messages[index.row()]
        if role == Qt.DisplayRole:
            return message["text"]
        if role == MESSAGE_ROLE:
            return message
        if role == MINE_ROLE:
            return message["from"]["username"] == self.me
        return None


class MessageDelegate(QStyledItemDelegate):
    """Paints a message: avatar, name and time, and the text in a rounded bubble; your
    own messages on the right in blue, pending ones marked, failed ones in red."""

    def __init__(self, avatars: AvatarCache, avatar_of: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.avatars = avatars
        self.avatar_of = avatar_of  # username -> avatar hash or None

    def _text_rect(self, option: QStyleOptionViewItem, text: str) -> QRect:
        width = max(120, int(option.rect.width() * 0.66))
        metrics = QFontMetrics(option.font)
        return metrics.boundingRect(QRect(0, 0, width, 100_000), Qt.TextWordWrap, text)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        text = self._text_rect(option, index.data(Qt.DisplayRole))
        header = QFontMetrics(option.font).height()
        height = max(AVATAR, header + 4 + text.height() + 2 * BUBBLE_PAD) + 2 * PAD // 2 + 6
        return QSize(option.rect.width(), height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        message = index.data(MESSAGE_ROLE)
        mine = index.data(MINE_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        rect = option.rect.adjusted(PAD, 4, -PAD, -4)
        sender = message["from"]["username"]
        # A friend's avatar as we know it now; else the one the message carried.
        avatar_hash = self.avatar_of(sender) or message["from"].get("avatar")
        avatar = self.avatars.pixmap(avatar_hash, sender, AVATAR)
        text_rect = self._text_rect(option, message["text"])
        bubble_w = text_rect.width() + 2 * BUBBLE_PAD
        bubble_h = text_rect.height() + 2 * BUBBLE_PAD
        header_h = QFontMetrics(option.font).height()
        if mine:
            avatar_x = rect.right() - AVATAR
            bubble_x = avatar_x - 8 - bubble_w
        else:
            avatar_x = rect.left()
            bubble_x = avatar_x + AVATAR + 8
        painter.drawPixmap(avatar_x, rect.top(), avatar)

        state = message.get("state")
        header = f"{sender}  {format_time(message.get('ts'))}"
        if state == PENDING:
            header = f"{sender}  sending…"
        elif state == FAILED:
            header = f"{sender}  not sent: {message.get('error', 'failed')}"
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
        painter.setFont(small)
        painter.setPen(QColor("#c0392b") if state == FAILED else MUTED)
        header_rect = QRect(bubble_x, rect.top(), max(bubble_w, 260), header_h)
        if mine:
            header_rect.moveRight(bubble_x + bubble_w)
        painter.drawText(header_rect, Qt.AlignRight if mine else Qt.AlignLeft, header)

        bubble = QRect(bubble_x, rect.top() + header_h + 2, bubble_w, bubble_h)
        color = FAILED_BUBBLE if state == FAILED else (MINE_BUBBLE if mine else THEIR_BUBBLE)
        if state == PENDING:
            color = color.lighter(104)
        painter.setPen(Qt.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(bubble, 10, 10)
        painter.setFont(option.font)
        painter.setPen(QColor("#111827") if state != PENDING else MUTED)
        painter.drawText(
            bubble.adjusted(BUBBLE_PAD, BUBBLE_PAD, -BUBBLE_PAD, -BUBBLE_PAD),
            Qt.TextWordWrap,
            message["text"],
        )
        painter.restore()


class ContactDelegate(QStyledItemDelegate):
    """A friend or room row: avatar (or #), online dot, name, status, unread badge."""

    def __init__(self, avatars: AvatarCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.avatars = avatars

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(option.rect.width(), 52)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        contact = index.data(CONTACT_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        if option.state & QStyle.State_Selected:
            painter.fillRect(option.rect, QColor("#e4ecfd"))
        elif option.state & QStyle.State_MouseOver:
            painter.fillRect(option.rect, QColor("#f3f5f9"))
        rect = option.rect.adjusted(10, 8, -10, -8)
        size = rect.height()
        if contact["kind"] == "friend":
            painter.drawPixmap(
                rect.left(),
                rect.top(),
                self.avatars.pixmap(contact.get("avatar"), contact["name"], size),
            )
            painter.setPen(QPen(Qt.white, 2))
            painter.setBrush(ONLINE if contact.get("online") else OFFLINE)
            painter.drawEllipse(rect.left() + size - 11, rect.top() + size - 11, 11, 11)
        else:
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor("#e8ebf0"))
            painter.drawRoundedRect(QRect(rect.left(), rect.top(), size, size), 8, 8)
            painter.setPen(MUTED)
            painter.drawText(QRect(rect.left(), rect.top(), size, size), Qt.AlignCenter, "#")
        text_left = rect.left() + size + 10
        badge_w = 0
        if contact.get("unread"):
            label = str(min(contact["unread"], 99)) + ("+" if contact["unread"] > 99 else "")
            badge_w = max(20, QFontMetrics(option.font).horizontalAdvance(label) + 10)
            badge = QRect(rect.right() - badge_w, rect.center().y() - 10, badge_w, 20)
            painter.setPen(Qt.NoPen)
            painter.setBrush(ACCENT)
            painter.drawRoundedRect(badge, 10, 10)
            painter.setPen(Qt.white)
            painter.drawText(badge, Qt.AlignCenter, label)
        name_font = QFont(option.font)
        name_font.setBold(bool(contact.get("unread")))
        painter.setFont(name_font)
        painter.setPen(QColor("#111827"))
        text_w = rect.right() - badge_w - 6 - text_left
        subtitle = contact.get("subtitle", "")
        name_rect = QRect(text_left, rect.top(), text_w, size // 2 if subtitle else size)
        painter.drawText(name_rect, Qt.AlignVCenter | Qt.AlignLeft, contact["name"])
        if subtitle:
            painter.setFont(option.font)
            painter.setPen(MUTED)
            elided = QFontMetrics(option.font).elidedText(subtitle, Qt.ElideRight, text_w)
            painter.drawText(
                QRect(text_left, rect.top() + size // 2, text_w, size // 2),
                Qt.AlignVCenter | Qt.AlignLeft,
                elided,
            )
        painter.restore()


class ComposeBox(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line."""

    sendRequested = Signal(str)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not (
            event.modifiers() & Qt.ShiftModifier
        ):
            text = self.toPlainText()
            if text.strip():
                self.sendRequested.emit(text)
            return
        super().keyPressEvent(event)
