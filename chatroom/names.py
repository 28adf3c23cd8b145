"""Usernames and room names: how a name is checked, shown and compared.

One rule for the server (auth registers usernames, social creates rooms, both look names
up by their key) and the desktop client (where an @mention ends). Importable with the
standard library alone; the mixed-script rule needs the server's confusable-homoglyphs
package, imported only when a name is checked.
"""

from __future__ import annotations

import unicodedata

from chatroom.visible import draws_nothing

# Usernames and room names are shown as typed (in NFKC) and compared by a key, so that
# names a reader cannot tell apart are one name: "ＡＬＩＣＥ", "𝐚𝐥𝐢𝐜𝐞" and "alice" all have
# the key "alice" and the second one registered is "taken". A name mixing scripts the way
# spoofers do ("lоbby" with a Cyrillic о) is refused outright (UTS #39, Highly
# Restrictive); a name in any one script (小明, Ελένη, Иван) or in a common combination
# (Latin + Han + kana, Latin + Han + Hangul, Latin + Han + Bopomofo) is fine.

# Width of the username_key and rooms.name_key columns (chatroom/storage/schema.py), in
# characters: a key is refused rather than truncated or overflowing ('ß' * 32 folds to
# 64 characters, 'ﬃ' to three).
MAX_NAME_KEY_CHARS = 64
# Widest name the users.username and rooms.name columns hold, in characters.
MAX_NAME_CHARS = 64
USERNAME_PUNCTUATION = frozenset("_-.")

# The script mixes UTS #39 section 5.2 allows in a Highly Restrictive identifier.
_COMMON_SCRIPT_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),  # Japanese
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),  # Chinese with zhuyin
    frozenset({"LATIN", "HAN", "HANGUL"}),  # Korean
)
# Characters of every script: digits, punctuation, combining marks.
_ANY_SCRIPT = frozenset({"COMMON", "INHERITED"})


class NameRefused(ValueError):
    """A username or room name is not acceptable; str() says why, for the user."""


def name_key(name: str) -> str:
    """The identity of a name: NFKC, case-folded, NFKC again (Unicode's NFKC_Casefold,
    less the removal of default-ignorables, which check_*_name refuses). 'Alice',
    'ALICE', 'Ａｌｉｃｅ' and '𝐀𝐥𝐢𝐜𝐞' have one key."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def check_username(raw: str, max_chars: int) -> str:
    """The username to store and show (NFKC, no surrounding spaces): letters, marks and
    digits of one script or a common mix, and _ - . Raises NameRefused."""
    name = _clean_name(raw, max_chars, "username")
    _check_name_characters(name, "username")
    for ch in name:
        if not is_username_char(ch):
            raise NameRefused("usernames may contain letters, digits and _ - . only")
    return name


def is_username_char(ch: str) -> bool:
    """A character a username may contain (besides the script rules): a letter, a mark,
    a digit or one of _ - . (the client uses it to find where an @mention ends)."""
    return unicodedata.category(ch)[0] in "LMN" or ch in USERNAME_PUNCTUATION


def username_key(name: str) -> str:
    """The identity of a username as typed: 'Alice', ' ALICE' and 'Ａｌｉｃｅ' are one account."""
    return name_key(name.strip())


def check_room_name(raw: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """The room name to store and show (NFKC, no surrounding spaces): any visible
    characters, letters of one script or a common mix. Raises NameRefused."""
    name = _clean_name(raw, max_chars, "room name")
    _check_name_characters(name, "room name")
    return name


def _clean_name(raw: str, max_chars: int, what: str) -> str:
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise NameRefused(f"choose a {what} (it is empty)")
    if len(name) > max_chars:
        raise NameRefused(f"a {what} is at most {max_chars} characters long")
    if len(name_key(name)) > MAX_NAME_KEY_CHARS:
        raise NameRefused(f"this {what} is too long once its letters are folded; shorten it")
    return name


def _check_name_characters(name: str, what: str) -> None:
    from confusable_homoglyphs import categories  # server side only: see the docstring

    scripts: set[str] = set()
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cn":
            raise NameRefused(f"a {what} cannot contain unassigned characters (U+{ord(ch):04X})")
        if draws_nothing(ch):  # "ali\u200bce" would look like "alice"
            raise NameRefused(f"a {what} cannot contain invisible characters (U+{ord(ch):04X})")
        if category[0] == "C" or category in ("Zl", "Zp"):
            raise NameRefused(f"a {what} cannot contain control or format characters")
        script = categories.alias(ch)
        if script is None:  # newer than the script data: unknown, so not trusted
            raise NameRefused(f"a {what} cannot contain U+{ord(ch):04X} yet")
        if script not in _ANY_SCRIPT:
            scripts.add(script)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _COMMON_SCRIPT_MIXES):
        raise NameRefused(
            f"a {what} cannot mix the scripts {', '.join(sorted(s.title() for s in scripts))} "
            "(lookalike letters); use one script"
        )


# Every character whose NFKC has an '@' (checked over all of Unicode when written).
AT_SIGNS = ("@", "\ufe6b", "\uff20")


def may_mention(text: str) -> bool:
    """Whether the text could hold an @name at all (most messages do not: no work)."""
    return any(sign in text for sign in AT_SIGNS)


def mention_keys(text: str, cap: int) -> list[tuple[str, ...]]:
    """The @names in a message, in order, each once, at most `cap` of them: for each,
    its candidate username keys, longest first ('@bob.' at the end of a sentence is
    'bob.' or 'bob'). An @name starts after a character that cannot be in a username
    (or at the start: 'me@bob.example' mentions nobody) and runs while the characters
    can be; the text is NFKC first, so '＠ＢＯＢ' is '@BOB', whose key is 'bob'."""
    text = unicodedata.normalize("NFKC", text)
    found: list[tuple[str, ...]] = []
    seen: set[str] = set()
    start = text.find("@")
    while start != -1 and len(found) < cap:
        end = start + 1
        while end < len(text) and is_username_char(text[end]):
            end += 1
        name = text[start + 1 : end]
        after_name_char = start > 0 and is_username_char(text[start - 1])
        if name and not after_name_char and len(name) <= MAX_NAME_CHARS:
            forms = (name_key(name), name_key(name.rstrip("._-")))
            keys = tuple(dict.fromkeys(key for key in forms if key))
            if keys[0] not in seen:
                seen.add(keys[0])
                found.append(keys)
        start = text.find("@", end if end > start + 1 else start + 1)
    return found
