"""Account rules: what a valid username and password are, and how usernames compare.

The username rule itself is chatroom.names' (check_username, username_key), shared with
every service that looks a user up by name; this module gives it auth's error codes.
"""

from __future__ import annotations

from chatroom.errors import ServiceError
from chatroom.names import NameRefused, check_username, username_key
from chatroom.protocol import ErrorCode

__all__ = ["check_password", "normalise_username", "username_key"]


def normalise_username(raw: str, max_chars: int) -> str:
    """The display form (NFKC, no surrounding spaces). Raises invalid_username."""
    try:
        return check_username(raw, max_chars)
    except NameRefused as exc:
        raise ServiceError(ErrorCode.INVALID_USERNAME, str(exc)) from None


def check_password(password: str, min_chars: int) -> None:
    if len(password) < min_chars:
        raise ServiceError(
            ErrorCode.INVALID_PASSWORD, f"passwords must be at least {min_chars} characters long"
        )
    if not password.strip():
        raise ServiceError(ErrorCode.INVALID_PASSWORD, "a password cannot be only spaces")
