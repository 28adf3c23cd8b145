"""Avatar images: fetched by hash with avatar.get, cached on disk by hash (a hash never
changes meaning, so the cache never goes stale), shown as round pixmaps."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from PySide6.QtCore import QObject, QRectF, QStandardPaths, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPixmap

from .net import ChatClient

DEFAULT = "default"


def cache_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation) or "."
    path = Path(base) / "avatars"
    path.mkdir(parents=True, exist_ok=True)
    return path


def round_pixmap(source: QPixmap, size: int) -> QPixmap:
    out = QPixmap(size, size)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addEllipse(QRectF(0, 0, size, size))
    painter.setClipPath(path)
    painter.drawPixmap(
        0,
        0,
        source.scaled(
            size,
            size,
            Qt.AspectRatioMode.KeepAspectRatioByExpanding,
            Qt.TransformationMode.SmoothTransformation,
        ),
    )
    painter.end()
    return out


def initials_pixmap(name: str, size: int) -> QPixmap:
    """Placeholder while an avatar loads: the first letter on a colour from the name."""
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 360
    out = QPixmap(size, size)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor.fromHsl(hue, 140, 150))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(0, 0, size, size)
    font = QFont()
    font.setPixelSize(int(size * 0.45))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(Qt.GlobalColor.white)
    painter.drawText(
        QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, (name[:1] or "?").upper()
    )
    painter.end()
    return out


class AvatarCache(QObject):
    loaded = Signal(str)  # hash

    def __init__(self, client: ChatClient, directory: Path | None = None) -> None:
        super().__init__(client)
        self.client = client
        self.directory = directory or cache_dir()
        self._memory: dict[tuple[str, int], QPixmap] = {}
        self._asked: set[str] = set()

    def pixmap(self, avatar_hash: str | None, name: str, size: int) -> QPixmap:
        """A round pixmap now: the image if we have it, else initials while it loads."""
        key_hash = avatar_hash or DEFAULT
        cached = self._memory.get((key_hash, size))
        if cached is not None:
            return cached
        source = self._from_disk(key_hash)
        if source is None:
            self._fetch(key_hash)
            return initials_pixmap(name, size)
        result = round_pixmap(source, size)
        self._memory[(key_hash, size)] = result
        return result

    def _path(self, avatar_hash: str) -> Path:
        safe = "".join(ch for ch in avatar_hash if ch.isalnum())[:64]
        return self.directory / f"{safe}.png"

    def _from_disk(self, avatar_hash: str) -> QPixmap | None:
        path = self.directory / "default.png" if avatar_hash == DEFAULT else self._path(avatar_hash)
        if not path.exists():
            return None
        pixmap = QPixmap(str(path))
        return None if pixmap.isNull() else pixmap

    def _fetch(self, avatar_hash: str) -> None:
        if avatar_hash in self._asked or self.client.state != "online":
            return
        self._asked.add(avatar_hash)

        def done(reply: dict) -> None:
            if not reply.get("ok"):
                self._asked.discard(avatar_hash)
                return
            data = base64.b64decode(reply["image"])
            name = "default.png" if avatar_hash == DEFAULT else f"{reply['hash']}.png"
            (self.directory / name).write_bytes(data)
            self.loaded.emit(avatar_hash)

        self.client.request("avatar.get", {"hash": avatar_hash, "size": 256}, done)
