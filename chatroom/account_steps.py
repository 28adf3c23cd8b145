"""A user's export and erase across the services, in one order for both who may ask: an
operator (``chatroom admin export|erase``, over the admin path, chatroom/admin.py) and
the user themselves (account.export / account.delete, run by the edge over the ordinary
path, services/tcp_edge/account.py). Only the op names differ (`OPERATOR`, `SELF`);
each step is idempotent, so a chain stopped half-way is finished by running it again.

Standard library only (with the contracts): the desktop client assembles its export
file with `assembled` too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chatroom.bus_contract import AdminOp, InternalOp
from chatroom.protocol import EXPORT_FORMAT

# call(service, op, args) -> the service's result
Call = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Path:
    """The op names of one asker's path to the services."""

    export: str  # auth, social, media: what that service keeps
    erase: str  # social, media: their data (refused until auth has marked the account)
    erase_finish: str  # auth: the account itself, last


OPERATOR = Path(AdminOp.EXPORT, AdminOp.ERASE, AdminOp.ERASE_FINISH)
SELF = Path(InternalOp.SELF_EXPORT, InternalOp.SELF_ERASE, InternalOp.SELF_ERASE_FINISH)

ERASE_STEPS = (
    # (service, what it erases), in order, after auth marked the account (no new data
    # from then on); the account itself goes last, so a failed step can be run again.
    ("social", "friends, requests, rooms, status"),
    ("media", "avatar"),
    ("auth", "sessions, password, name"),
)


async def erase_after_begin(call: Call, path: Path, user_id: int, again: str) -> dict[str, Any]:
    """Social's, media's and auth's last erase steps for an account auth has marked
    erased; each result under "erase_<service>" ("erase_finish_auth"). A failing step's
    error gets a note: how far it got, and `again` (how to finish)."""
    done: dict[str, Any] = {}
    for service, _what in ERASE_STEPS:
        op = path.erase_finish if service == "auth" else path.erase
        key = "erase_finish" if service == "auth" else "erase"
        try:
            done[f"{key}_{service}"] = await call(service, op, {"user_id": user_id})
        except Exception as exc:
            exc.add_note(
                f"user {user_id} is disabled and marked erased, but its {service} data is not"
                f" all gone: {again}"
            )
            raise
    return done


# Keys of the account part that are not the user's data: the reply's envelope (`id`,
# `ok`; the desktop client hands over the account.export reply whole), the paging
# (`part`, `next`) and social's internal `user_id`.
NOT_DATA = ("id", "ok", "part", "next", "user_id")
ISO_SUFFIX = "_iso"  # beside each time in ms: the same time, readable


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: float) -> str:
    """A time in ms since the epoch as ISO 8601 UTC: 2023-11-14T22:13:20.000Z."""
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_time(key: str) -> bool:
    """The export's times: every `*_at`, a message's `ts`, `since`, `last_seen`."""
    return key.endswith("_at") or key in ("ts", "since", "last_seen")


def readable(value: Any) -> Any:
    """`value` with an ISO 8601 string beside every time in ms (`ts` -> `ts_iso`; null
    beside a null time). The ms stay: a program reading the file keeps its numbers."""
    if isinstance(value, list):
        return [readable(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = readable(item)
        is_number = isinstance(item, int | float) and not isinstance(item, bool)
        if isinstance(key, str) and _is_time(key) and (is_number or item is None):
            out[key + ISO_SUFFIX] = iso(item) if item is not None else None
    return out


def assembled(
    account: dict[str, Any], messages: list[dict[str, Any]], avatar: dict[str, Any] | None
) -> dict[str, Any]:
    """The export file, for a person to read: auth's and social's parts (`account`, the
    first reply as it came or the services' results), the messages sent, the avatar
    (null: the default picture); no protocol fields, every time also in ISO 8601."""
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    parts = {k: v for k, v in account.items() if k not in NOT_DATA}
    return readable(
        {
            "format": EXPORT_FORMAT,
            "exported_at": now,
            **parts,
            "messages_sent": messages,
            "avatar": avatar,
        }
    )
