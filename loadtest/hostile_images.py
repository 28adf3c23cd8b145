"""Pictures that cost a server the most: the worst allowed avatars and decompression
bombs, built in memory (used by the avatarbomb benchmark and the avatar tests)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

# The default CHAT_AVATAR_MAX_PIXELS is 4096 x 4096.
WORST_SIDE = 4096


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def worst_allowed(fmt: str, side: int = WORST_SIDE) -> bytes:
    """side x side pixels of one colour, in the mode that decodes to the most bytes per
    pixel: a few KB to ~260 KB on the wire, up to ~16 bytes per pixel while decoded."""
    if fmt == "PNG":
        return _save(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG")
    if fmt == "GIF":  # decoded as palette, converted to RGBA
        return _save(Image.new("P", (side, side), 3), "GIF")
    if fmt == "WEBP":
        return _save(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "WEBP", lossless=True)
    if fmt == "JPEG":
        return _save(Image.new("RGB", (side, side), (200, 30, 30)), "JPEG", quality=50)
    raise ValueError(fmt)


WORST_FORMATS = ("PNG", "GIF", "WEBP", "JPEG")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, before_pixels: bytes = b"") -> bytes:
    """A valid 1-bit PNG of width x height pixels: tiny on disk, whatever its size."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + before_pixels
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def png_bomb(side: int = 20_000) -> bytes:
    """20,000 x 20,000 by default: ~60 KB on the wire, 400 M pixels decoded."""
    return _png(side, side)


def png_ztxt_bomb(chunks: int = 60, inflated: int = 1024 * 1024) -> bytes:
    """A 16 x 16 PNG whose compressed text chunks (~1 KB each) inflate to `inflated`
    bytes each: 60 MiB of comments in 60 KB by default."""
    text = zlib.compress(b"\x00" * inflated, 9)
    ztxt = b"".join(_chunk(b"zTXt", b"c%d\x00\x00" % i + text) for i in range(chunks))
    return _png(16, 16, ztxt)


def png_huge_text(total: int = 400 * 1024) -> bytes:
    """A 16 x 16 PNG carrying `total` bytes of plain tEXt comments."""
    step = 64 * 1024
    text = b"".join(_chunk(b"tEXt", b"c%d\x00" % i + b"x" * step) for i in range(0, total, step))
    return _png(16, 16, text)


def gif_bomb(side: int = 20_000, screen: int = 16) -> bytes:
    """A GIF whose logical screen is `screen` pixels square but whose first frame
    declares side x side (a decoder that trusts the screen size is fooled)."""
    small = bytearray(_save(Image.new("P", (16, 16), 1), "GIF"))
    struct.pack_into("<HH", small, 6, screen, screen)  # logical screen
    descriptor = small.index(b"\x2c", 13)
    struct.pack_into("<HH", small, descriptor + 5, side, side)  # first frame
    return bytes(small)


def webp_bomb(side: int = 12_000) -> bytes:
    """A 40-byte lossless WebP that decodes to side x side pixels of one colour (its
    entropy code spends no bits per pixel, so only the header says how many there are).
    12,000 x 12,000: below Pillow's own error threshold (2 x 89 M pixels)."""
    data = bytearray(_save(Image.new("RGBA", (16, 16), (1, 2, 3, 255)), "WEBP", lossless=True))
    (bits,) = struct.unpack_from("<I", data, 21)
    bits = (bits & ~((1 << 28) - 1)) | ((side - 1) & 0x3FFF) | (((side - 1) & 0x3FFF) << 14)
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)
