"""Avatar images: check an upload and turn it into square PNGs, with Pillow.

Nothing of the upload survives but pixels: the output is a new image (no EXIF, no
metadata, no animation), so location tags and malformed chunks cannot be passed on.

Memory is the cost to watch: an upload is at most `avatar_max_bytes`, but a few KB of
PNG can declare 20,000 x 20,000 pixels (1.6 GB decoded). So the declared size is read
from the header and checked before any pixel is decoded, text chunks are bounded, and
the decode itself never holds more than the decoded picture plus small copies (JPEG is
decoded at reduced scale, the square is resized straight from the picture).
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps, PngImagePlugin, UnidentifiedImageError

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
SIZES = (256, 64)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
JPEG_SOS = b"\xff\xda"  # cannot occur inside entropy-coded data (an 0xFF there is stuffed)
# Scans a JPEG may have. libjpeg walks every block of the picture once per scan, so a
# progressive JPEG repeating a 33-byte scan 13,000 times (500 KB, 4096 x 4096) kept the
# decode worker, and so every user's avatar.set, busy for two minutes. Encoders write
# at most about 10 per picture (libjpeg's progressive script), a thumbnail as many again.
MAX_JPEG_SCANS = 64
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
# Text chunks (comments, XMP) in a PNG, as stored: real pictures carry a few KB; all of
# it is dropped anyway.
MAX_PNG_TEXT_BYTES = 64 * 1024
# What Pillow may inflate compressed text chunks to (its defaults, 1 MiB per chunk and
# 64 MiB in all, would let 64 KiB of zTXt grow a thousandfold).
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024
# Pillow's own bomb guard warns above Image.MAX_IMAGE_PIXELS; we check the size first,
# but a warning must never let a picture through (this module runs in the media process
# only, so the filter is process-wide on purpose: warnings.catch_warnings is not
# thread-safe).
warnings.simplefilter("error", Image.DecompressionBombWarning)
# Pillow resizes by an integer factor with a box filter first, then with LANCZOS from at
# least this many times the target size: the same result to the eye, and the large
# intermediate copies are never made.
REDUCING_GAP = 3.0
# Modes LANCZOS resizes as they are; others are converted first (1-bit to grey, the
# rest to RGBA as before).
RESIZABLE_MODES = ("RGB", "RGBA", "L", "LA")


@dataclass(frozen=True)
class Avatar:
    hash: str
    pngs: dict[int, bytes]  # size in px -> PNG bytes


def _refuse(message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_IMAGE, message)


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ServiceError:
    return _refuse(f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")


def normalise(data: bytes, max_bytes: int, max_pixels: int) -> Avatar:
    if len(data) > max_bytes:
        raise _refuse(f"the image is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise _refuse("the image is empty")
    check_headers(data, max_pixels)
    try:
        # Lazy: reads the header (for GIF also the first frame's descriptor, which may
        # enlarge the canvas), decodes no pixel.
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        width, height = image.size
        if width * height > max_pixels or width <= 0 or height <= 0:
            raise _too_many_pixels(width, height, max_pixels)
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale while still at least the largest size.
            image.draft("RGB", (SIZES[0], SIZES[0]))
        image.load()  # decodes the first frame: truncated or corrupt data fails here
        ImageOps.exif_transpose(image, in_place=True)
        return _squares(image)
    except ServiceError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard, when the header declares a vast size.
        raise _refuse(f"the image has more than {max_pixels} pixels; that is the limit") from None
    except UnidentifiedImageError:
        raise _refuse("this is not a PNG, JPEG, GIF or WebP image we can read") from None
    except ValueError as exc:
        if "MAX_TEXT" in str(exc):  # Pillow's text chunk limits (set above)
            raise _refuse("the image carries too much text metadata") from None
        raise _refuse("the image is damaged or truncated; choose another file") from None
    except (OSError, SyntaxError, EOFError):
        raise _refuse("the image is damaged or truncated; choose another file") from None


def check_headers(data: bytes, max_pixels: int) -> None:
    """What Pillow would act on before we see the size: WebP allocates its canvas when
    the file is opened; PNG inflates text chunks found before the pixels. And what the
    size does not bound: the work of a JPEG with thousands of scans."""
    if data.startswith(PNG_SIGNATURE):
        text_bytes = sum(length for kind, length in _png_chunks(data) if kind in PNG_TEXT_CHUNKS)
        if text_bytes > MAX_PNG_TEXT_BYTES:
            raise _refuse(
                f"the image carries {text_bytes} bytes of text chunks; "
                f"the limit is {MAX_PNG_TEXT_BYTES}"
            )
    elif data.startswith(JPEG_SOI):
        scans = data.count(JPEG_SOS)
        if scans > MAX_JPEG_SCANS:
            raise _refuse(f"the image has {scans} JPEG scans; the limit is {MAX_JPEG_SCANS}")
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = webp_canvas_size(data)
        if size is None:
            raise _refuse("the image is damaged or truncated; choose another file")
        if size[0] * size[1] > max_pixels:
            raise _too_many_pixels(*size, max_pixels)


def _png_chunks(data: bytes) -> list[tuple[bytes, int]]:
    """(type, length) of each chunk, from the headers alone."""
    chunks = []
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        chunks.append((kind, length))
        if kind == b"IEND":
            break
        offset += 12 + length  # length, type, data, CRC
    return chunks


def webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP header (lossy VP8, lossless VP8L or extended VP8X,
    whose canvas also bounds every animation frame); None if it cannot be read."""
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8X":
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _squares(image: Image.Image) -> Avatar:
    if image.mode == "1":
        image = image.convert("L")  # 1 byte per pixel, not 4
    elif image.mode not in RESIZABLE_MODES:
        image = image.convert("RGBA")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    # The centred square, resized straight from the picture (no full-size crop copy).
    square = image.resize(
        (SIZES[0], SIZES[0]),
        Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side),
        reducing_gap=REDUCING_GAP,
    ).convert("RGBA")
    pngs = {}
    for size in SIZES:
        out = io.BytesIO()
        resized = (
            square if size == SIZES[0] else square.resize((size, size), Image.Resampling.LANCZOS)
        )
        resized.save(out, "PNG", optimize=True)
        pngs[size] = out.getvalue()
    return Avatar(hashlib.sha256(pngs[SIZES[0]]).hexdigest(), pngs)


def default_avatar() -> Avatar:
    """The avatar of users who have not chosen one: a neutral head-and-shoulders."""
    size = SIZES[0]
    image = Image.new("RGBA", (size, size), (214, 222, 235, 255))
    draw = ImageDraw.Draw(image)
    grey = (140, 153, 176, 255)
    draw.ellipse((80, 40, 176, 136), fill=grey)
    draw.ellipse((36, 150, 220, 330), fill=grey)
    return _squares(image)
