"""Account rules: what a valid username and password are, and how they are compared."""

from __future__ import annotations

import unicodedata

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode
from chatroom.storage.schema import users

USERNAME_CHARS = users.c.username.type.length
USERNAME_KEY_CHARS = users.c.username_key.type.length

# Letters, marks and digits of any script (Chinese works), plus a few separators.
_ALLOWED_PUNCTUATION = set("_-.")


def normalise_username(raw: str, max_chars: int) -> str:
    """The display form: NFC, no surrounding spaces. Raises invalid_username."""
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        raise ServiceError(ErrorCode.INVALID_USERNAME, "choose a username (it is empty)")
    if len(name) > max_chars:
        raise ServiceError(
            ErrorCode.INVALID_USERNAME, f"usernames are at most {max_chars} characters long"
        )
    for ch in name:
        category = unicodedata.category(ch)
        if category[0] not in "LMN" and ch not in _ALLOWED_PUNCTUATION:
            raise ServiceError(
                ErrorCode.INVALID_USERNAME,
                "usernames may contain letters, digits and _ - . only",
            )
    # Case folding can lengthen a name ('ß' -> 'ss', 'ﬃ' -> 'ffi'); its key must still
    # fit the key column.
    if len(username_key(name)) > USERNAME_KEY_CHARS or len(name) > USERNAME_CHARS:
        raise ServiceError(
            ErrorCode.INVALID_USERNAME,
            "that username is too long once its letters are case-folded (ß becomes ss)",
        )
    return name


def username_key(name: str) -> str:
    """Case-insensitive identity of a username: 'Alice' and 'ALICE' are one account."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def check_password(password: str, min_chars: int) -> None:
    if len(password) < min_chars:
        raise ServiceError(
            ErrorCode.INVALID_PASSWORD, f"passwords must be at least {min_chars} characters long"
        )
    if not password.strip():
        raise ServiceError(ErrorCode.INVALID_PASSWORD, "a password cannot be only spaces")
