"""Stay signed in between launches: the resume token, kept in the OS keyring (Secret
Service, macOS Keychain, Windows Credential Locker) through `keyring`, or, where no
keyring works, in a file only the user can read (0600). "Sign out" forgets it.

The token is the only secret kept; the password never is. Which server and account
it belongs to is not secret and lives in QSettings beside the other preferences.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from loguru import logger

SERVICE = "ChatRoom"


def _keyring():
    """The keyring module if a real backend is there, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # not installed, or a broken backend at import
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or backend.priority < 1:
        return None
    return keyring


class TokenStore:
    """One token per (server, username); `directory` holds the fallback files."""

    def __init__(self, directory: Path, use_keyring: bool = True) -> None:
        self.directory = directory
        self._keyring = _keyring() if use_keyring else None

    @property
    def where(self) -> str:
        return "keyring" if self._keyring else "file"

    def _file(self, account: str) -> Path:
        safe = "".join(ch if ch.isalnum() else "_" for ch in account.encode().hex())
        return self.directory / f"token-{safe[:120]}"

    def save(self, account: str, token: str) -> None:
        if self._keyring is not None:
            try:
                self._keyring.set_password(SERVICE, account, token)
                return
            except Exception as exc:  # a locked or refusing keyring: use the file
                logger.warning("keyring refused the session token ({}); using a file", exc)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file(account)
        # Created 0600 from the start (not chmod after writing: no moment it is readable).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)
        os.chmod(path, 0o600)

    def load(self, account: str) -> str | None:
        if self._keyring is not None:
            try:
                token = self._keyring.get_password(SERVICE, account)
                if token:
                    return token
            except Exception:
                pass
        path = self._file(account)
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def forget(self, account: str) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):  # nothing stored there
                self._keyring.delete_password(SERVICE, account)
        self._file(account).unlink(missing_ok=True)
