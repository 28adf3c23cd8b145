"""Device names: the optional label a login carries (`login`'s `device`, listed by
`account.sessions`), so that a user can tell their sessions apart ("ChatRoom on
ann-laptop (Linux)"). One rule for auth, which checks it, and the desktop client, which
makes its default. Standard library only.

A device name is shown to its own user only, but it is still text from the network in a
list the user acts on (which session to end): it must be short and draw as what it is,
so control characters, line breaks and invisible format characters (bidi overrides,
zero-width joiners) are refused, not stripped.
"""

from __future__ import annotations

import unicodedata

from chatroom.protocol import DEVICE_MAX_CHARS


def device_problem(name: str) -> str | None:
    """What is wrong with `name` as a device name, for the user; None if it is fine."""
    if not name.strip():
        return "the device name is blank; leave it out or give a few words"
    if len(name) > DEVICE_MAX_CHARS:
        return f"the device name is longer than {DEVICE_MAX_CHARS} characters"
    if name != name.strip():
        return "the device name starts or ends with spaces"
    if not name.isprintable():
        return (
            "the device name has a control or invisible character (a line break, tab or"
            " direction mark); use letters, digits, spaces and punctuation"
        )
    return None


def default_device_name(hostname: str, system: str) -> str:
    """'ChatRoom on <hostname> (<OS>)', made valid whatever the host reports: characters
    that are not printable become spaces, runs of spaces one, cut to DEVICE_MAX_CHARS."""
    raw = f"ChatRoom on {hostname or 'this computer'} ({system or 'unknown system'})"
    printable = "".join(c if c.isprintable() else " " for c in unicodedata.normalize("NFC", raw))
    return " ".join(printable.split())[:DEVICE_MAX_CHARS].strip()
