"""Light and dark looks, chosen to follow the system (or forced by a setting), and the
app's icon. Every colour the views paint comes from `colors()`, so a theme switch is a
palette change plus a repaint, never a hunt through style sheets."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPainterPath, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

LIGHT, DARK, SYSTEM = "light", "dark", "system"
# CHAT_CLIENT_THEME=light|dark forces a look (screenshots, people who prefer one);
# anything else follows the system's colour scheme.
THEME_ENV = "CHAT_CLIENT_THEME"


@dataclass(frozen=True)
class Colors:
    name: str
    window: str
    base: str  # lists, the message view, fields
    text: str
    muted: str
    accent: str
    mine_bubble: str
    their_bubble: str
    failed_bubble: str
    error: str
    online: str
    offline: str
    selected: str
    hover: str
    card: str  # friend-request card, notices
    card_border: str
    warning: str
    mention: str


LIGHT_COLORS = Colors(
    name=LIGHT,
    window="#f6f7f9",
    base="#ffffff",
    text="#111827",
    muted="#6b7280",
    accent="#2f6fed",
    mine_bubble="#d8e6ff",
    their_bubble="#f1f2f4",
    failed_bubble="#fde2e1",
    error="#c0392b",
    online="#22a559",
    offline="#b8bcc4",
    selected="#e4ecfd",
    hover="#f3f5f9",
    card="#fff7e6",
    card_border="#f5d28a",
    warning="#e67e22",
    mention="#fff1c2",
)

DARK_COLORS = Colors(
    name=DARK,
    window="#1e1f22",
    base="#2b2d31",
    text="#e6e7ea",
    muted="#9aa0aa",
    accent="#5b8def",
    mine_bubble="#2f4a7a",
    their_bubble="#3a3c42",
    failed_bubble="#6b2b2b",
    error="#ff7b6b",
    online="#3ccf78",
    offline="#70757e",
    selected="#35456a",
    hover="#34363c",
    card="#3d3524",
    card_border="#7a6530",
    warning="#f0a050",
    mention="#5a4d1e",
)

_current = LIGHT_COLORS


def colors() -> Colors:
    return _current


def wanted_scheme(preference: str | None = None) -> str:
    """LIGHT or DARK: the forced preference if any, else the system's scheme."""
    preference = (preference or os.environ.get(THEME_ENV, SYSTEM)).lower()
    if preference in (LIGHT, DARK):
        return preference
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)  # Qt ≥ 6.5
    if scheme is not None and scheme() == Qt.ColorScheme.Dark:
        return DARK
    return LIGHT


def apply(app: QApplication, scheme: str) -> Colors:
    """Set the palette for LIGHT or DARK on the whole app; returns the colours."""
    global _current
    _current = DARK_COLORS if scheme == DARK else LIGHT_COLORS
    c = _current
    # Fusion draws every widget from the palette, so both looks are complete on every
    # platform (native styles ignore a dark palette in places).
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window,
        QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.base,
        QPalette.ColorRole.AlternateBase: c.hover,
        QPalette.ColorRole.Text: c.text,
        QPalette.ColorRole.Button: c.base,
        QPalette.ColorRole.ButtonText: c.text,
        QPalette.ColorRole.Highlight: c.accent,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: c.base,
        QPalette.ColorRole.ToolTipText: c.text,
        QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Link: c.accent,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(c.muted))
    app.setPalette(palette)
    return c


def app_icon() -> QIcon:
    """A speech bubble in the accent colour, drawn here so no image file has to be
    found at run time (installed, frozen or from a checkout alike)."""
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        s = size / 64
        bubble = QPainterPath()
        bubble.addRoundedRect(QRectF(4 * s, 6 * s, 56 * s, 40 * s), 12 * s, 12 * s)
        tail = QPainterPath()
        tail.moveTo(16 * s, 44 * s)
        tail.lineTo(12 * s, 58 * s)
        tail.lineTo(30 * s, 44 * s)
        painter.fillPath(bubble.united(tail), QColor("#2f6fed"))
        painter.setBrush(QColor("#ffffff"))
        painter.setPen(Qt.PenStyle.NoPen)
        for x in (20, 32, 44):
            painter.drawEllipse(QRectF((x - 4) * s, 22 * s, 8 * s, 8 * s))
        painter.end()
        icon.addPixmap(pixmap)
    return icon
