"""Real image files for avatar tests, made with Pillow and zlib."""

from __future__ import annotations

import io
import random

from PIL import Image

from loadtest.hostile_images import (  # noqa: F401 - the tests' bombs too
    WORST_FORMATS,
    gif_bomb,
    png_bomb,
    png_huge_text,
    png_ztxt_bomb,
    webp_bomb,
    worst_allowed,
)


def png(width: int = 300, height: int = 200, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (120, 80), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def everyday() -> dict[str, bytes]:
    """Ordinary avatars in every accepted format and the modes decoders produce."""
    frames = [Image.new("RGB", (120, 90), (i * 60, 80, 200)) for i in range(3)]
    transparent = Image.new("P", (100, 140), 1)
    transparent.info["transparency"] = 0
    return {
        "png_rgb": png(300, 200),
        "png_rgba": _save(Image.new("RGBA", (200, 300), (0, 90, 200, 128)), "PNG"),
        "png_grey_alpha": _save(Image.new("LA", (64, 64), (90, 200)), "PNG"),
        "png_1bit": _save(Image.new("1", (80, 80), 1), "PNG"),
        "png_16bit": _save(Image.new("I;16", (80, 80), 40000), "PNG"),
        "jpeg": _save(Image.new("RGB", (1200, 900), (30, 140, 90)), "JPEG"),
        "jpeg_cmyk": _save(Image.new("CMYK", (300, 300), (0, 80, 80, 0)), "JPEG"),
        "gif": _save(transparent, "GIF"),
        "gif_animated": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": _save(Image.new("RGB", (300, 200), (200, 30, 30)), "WEBP"),
        "webp_lossless_alpha": _save(
            Image.new("RGBA", (90, 120), (1, 2, 3, 100)), "WEBP", lossless=True
        ),
        "webp_animated": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
    }


def noisy_png(width: int = 200, height: int = 150, seed: int = 7) -> bytes:
    """A PNG of random pixels: it does not compress, so it is about width*height*3 bytes."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "PNG")
    return out.getvalue()


def jpeg_scan_bomb(side: int = 4096, size: int = 500_000) -> bytes:
    """A progressive JPEG within the byte and pixel limits whose smallest scan is repeated
    until it is `size` bytes long: ~13,000 scans, each a pass over every block."""
    data = _save(Image.new("L", (side, side), 128), "JPEG", progressive=True, quality=50)
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    end = data.rindex(b"\xff\xd9")
    scans = [data[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    smallest = min(scans[1:], key=len)
    return data[:end] + smallest * ((size - len(data)) // len(smallest)) + data[end:]
