"""Avatar images: check an upload and turn it into square PNGs, with Pillow.

Nothing of the upload survives but pixels: the output is a new image (no EXIF, no
metadata, no animation), so location tags and malformed chunks cannot be passed on.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
SIZES = (256, 64)


@dataclass(frozen=True)
class Avatar:
    hash: str
    pngs: dict[int, bytes]  # size in px -> PNG bytes


def _refuse(message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_IMAGE, message)


def normalise(data: bytes, max_bytes: int, max_pixels: int) -> Avatar:
    if len(data) > max_bytes:
        raise _refuse(f"the image is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise _refuse("the image is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on huge images; we check the size ourselves,
            # before decoding any pixel, and turn its warning into a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width * height > max_pixels or width <= 0 or height <= 0:
                raise _refuse(
                    f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels"
                )
            image.load()  # decodes everything: truncated or corrupt data fails here
            image = ImageOps.exif_transpose(image)
    except ServiceError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse("this is not a PNG, JPEG, GIF or WebP image we can read") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise _refuse("the image is damaged or truncated; choose another file") from None
    return _squares(image)


def _squares(image: Image.Image) -> Avatar:
    image = image.convert("RGBA")
    side = min(image.size)
    square = ImageOps.fit(image, (side, side), method=Image.Resampling.LANCZOS)
    pngs = {}
    for size in SIZES:
        out = io.BytesIO()
        square.resize((size, size), Image.Resampling.LANCZOS).save(out, "PNG", optimize=True)
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
