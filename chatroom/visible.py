"""Whether a text shows anything: a message of only invisible characters is refused.

Python's unicodedata has no Default_Ignorable_Code_Point property, so its ranges are
copied here from Unicode's DerivedCoreProperties.txt (15.1; the property is stable:
code points are only ever added to it, from reserved ones already listed below).
"""

from __future__ import annotations

import bisect
import unicodedata

# Default_Ignorable_Code_Point: zero-width spaces and joiners, bidi marks, word joiner,
# invisible operators, variation selectors, the BOM, Hangul fillers, tag characters...
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_STARTS = [start for start, _ in _IGNORABLE_RANGES]
# Assigned, not ignorable, but drawn as nothing by every font: the Braille blank (a
# favourite for "empty" names and messages) and the musical null notehead.
BLANK_GLYPHS = frozenset({"\u2800", "\U0001d159"})


def is_default_ignorable(ch: str) -> bool:
    i = bisect.bisect_right(_STARTS, ord(ch)) - 1
    return i >= 0 and ord(ch) <= _IGNORABLE_RANGES[i][1]


def draws_nothing(ch: str) -> bool:
    """Default-ignorable, or a blank glyph: "ali\u200bce" would look like "alice"."""
    return is_default_ignorable(ch) or ch in BLANK_GLYPHS


def is_invisible(ch: str) -> bool:
    """Shows nothing by itself: white space, a control or format character, a
    default-ignorable code point, or one not assigned (or a private-use one a font
    may not have is still shown as something, so it counts as visible)."""
    if ch.isspace() or draws_nothing(ch):
        return True
    return unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Cs", "Zl", "Zp", "Zs")


def shows_something(text: str) -> bool:
    return not all(is_invisible(ch) for ch in text)
