"""``chatroom admin``: operator commands against a running system.

They go over the bus to auth (accounts, sessions), social (who is online) and, for
export and erase, to all three services, on the operators' path, which only the admin
CURVE key may enter (chatroom/buskeys.py): run them where that key and the CHAT_BUS_*
settings are, e.g. ``docker compose exec auth chatroom admin online``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from chatroom import account_steps, config, config_env
from chatroom.account_steps import Call
from chatroom.bus_contract import AdminOp

# command -> (service, op)
COMMANDS = {
    "users": ("auth", AdminOp.USERS),
    "disable": ("auth", AdminOp.DISABLE),
    "enable": ("auth", AdminOp.ENABLE),
    "reset-password": ("auth", AdminOp.RESET_PASSWORD),
    "kick": ("auth", AdminOp.KICK),
    "online": ("social", AdminOp.ONLINE),
    "room": ("social", AdminOp.ROOM),
    "audit": ("social", AdminOp.AUDIT),
}
# `chatroom admin room ACTION ROOM ...`: the operator's moderation (any room; the lobby
# is theirs alone): action -> (admin.room's action, what follows the room's name).
ROOM_ACTIONS = {
    "invite": ("invite", ("username",), "add a user to a room (private rooms too)"),
    "kick": ("kick", ("username",), "remove a user (the lobby: until they log in again)"),
    "ban": ("ban", ("username",), "keep a user out of a room (join, read, post)"),
    "unban": ("unban", ("username",), "lift a ban"),
    "role": ("set_role", ("username", "role"), "make a user owner, moderator or member"),
    "topic": ("update", ("topic",), 'set the topic ("" clears it)'),
    "announce": ("update", ("announce",), "announcement mode on/off: only moderators post"),
}
# Commands that ask several services (chatroom.admin's own functions below).
MULTI_STEP = ("export", "erase")


def add_parser(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="operator commands: users, disable, kick, online, ...")
    admin.add_argument("--json", action="store_true", help="print the raw JSON result")
    admin.add_argument("--timeout-ms", type=int, default=5000)
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    users = cmds.add_parser("users", help="list accounts")
    users.add_argument("--match", help="only usernames containing this (ignoring case)")
    users.add_argument("--limit", type=int, default=100)
    for name, text in (
        ("disable", "disable an account and close its sessions"),
        ("enable", "enable a disabled account"),
        ("kick", "end every session of a user (they must log in again)"),
        ("reset-password", "set a new password and end every session"),
    ):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("username")
        if name == "reset-password":
            cmd.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the new password from standard input instead of prompting",
            )
    cmds.add_parser("online", help="who is connected now")
    room = cmds.add_parser("room", help="moderate a room as the operator (the lobby's owner)")
    actions = room.add_subparsers(dest="room_action", required=True)
    for name, (_op, fields, text) in ROOM_ACTIONS.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("room")
        for field in fields:
            if field == "announce":
                action.add_argument(field, choices=("on", "off"))
            elif field == "role":
                action.add_argument(field, choices=("owner", "moderator", "member"))
            else:
                action.add_argument(field)
    audit = cmds.add_parser("audit", help="a room's moderation actions, oldest first")
    audit.add_argument("room")
    export = cmds.add_parser("export", help="everything stored about a user, as JSON")
    export.add_argument("username")
    export.add_argument("--output", metavar="FILE", help="write it to FILE (0600), not stdout")
    erase = cmds.add_parser(
        "erase", help='delete an account and its data; others see its messages as "deleted user"'
    )
    erase.add_argument("username")
    erase.add_argument("--yes", action="store_true", help="do not ask to type the username")
    admin.set_defaults(func=run)


async def _export(call: Call, username: str) -> dict[str, Any]:
    """auth's part (by name), then social's (by the id auth gave; its messages page by
    page) and media's, as one object."""
    auth = await call("auth", AdminOp.EXPORT, {"username": username})
    user_id = auth["account"]["id"]
    social: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []
    while True:
        after = sent[-1]["id"] if sent else 0
        page = await call("social", AdminOp.EXPORT, {"user_id": user_id, "messages_after": after})
        sent += page.pop("messages")
        more = page.pop("has_more")
        social = social or page
        if not more:
            break
    media = await call("media", AdminOp.EXPORT, {"user_id": user_id})
    return account_steps.assembled({**auth, **social}, sent, media["avatar"])


async def _erase(call: Call, username: str) -> dict[str, Any]:
    begun = await call("auth", AdminOp.ERASE, {"username": username})
    again = "run the same command again to finish"
    steps = await account_steps.erase_after_begin(
        call, account_steps.OPERATOR, begun["user_id"], again
    )
    return {"auth_begin": begun, **steps}


def _confirmed(username: str) -> bool:
    print(
        f"This deletes the account '{username}' and its personal data for good; its messages"
        ' stay in others\' conversations as "deleted user".',
        file=sys.stderr,
    )
    try:
        typed = input("Type the username to confirm: ")
    except EOFError:
        return False
    return typed.strip() == username.strip()


def _write_private(path: str, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)
        out.write(text)


def _request_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.admin_command == "users":
        return {"match": args.match, "limit": args.limit}
    if args.admin_command == "online":
        return {}
    if args.admin_command == "audit":
        return {"room": args.room}
    if args.admin_command == "room":
        action, fields, _text = ROOM_ACTIONS[args.room_action]
        request = {"action": action, "room": args.room}
        for field in fields:
            value = getattr(args, field)
            request[field] = value == "on" if field == "announce" else value
        return request
    request = {"username": args.username}
    if args.admin_command == "reset-password":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("new password: ")
            if getpass.getpass("again: ") != password:
                raise SystemExit("the passwords differ; nothing changed")
        request["password"] = password
    return request


async def _over_the_bus(
    settings: config.Settings, timeout_ms: int, work: Callable[[Call], Awaitable[Any]]
) -> Any:
    """Run `work` with a call(service, op, request) that asks over the admin path."""
    import zmq.asyncio

    from chatroom.bus_client import BusClient

    zctx = zmq.asyncio.Context()
    client = BusClient(settings, f"admin:{os.getpid()}", zctx, admin=True)
    client.start()

    async def call(service: str, op: str, request: dict[str, Any]) -> dict[str, Any]:
        return await client.call(service, op, request, timeout_ms=timeout_ms)

    try:
        return await work(call)
    finally:
        client.close()
        zctx.term()


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _show(command: str, result: dict[str, Any]) -> None:
    if command == "users":
        rows = [dict(u, created_at=account_steps.when(u["created_at"])) for u in result["users"]]
        _print_table(rows, ["id", "username", "disabled", "tokens", "created_at"])
        print(f"{len(rows)} users")
    elif command == "online":
        rows = [dict(u, since=account_steps.when(u["since"])) for u in result["online"]]
        _print_table(rows, ["id", "username", "connections", "edges", "since"])
        print(f"{len(rows)} users online")
    elif command == "room":
        for event in result["events"]:
            target = f" {event['target']['username']}" if event["target"] else ""
            detail = f" {event['detail']}" if event["detail"] else ""
            print(f"room {event['room']}: {event['action']}{target}{detail} (seq {event['seq']})")
    elif command == "audit":
        rows = [
            dict(a, at=account_steps.when(a["at"]), actor=a["actor"] or "(operator)")
            for a in result["audit"]
        ]
        _print_table(rows, ["at", "actor", "action", "target", "detail"])
        print(f"{len(rows)} actions in {result['room']}")
    elif command == "erase":
        begun = result["auth_begin"]
        again = " (it was being erased already: finished now)" if begun["erased_before"] else ""
        social, media = result["erase_social"], result["erase_media"]
        # CHAT_DELETE_MESSAGES_ON_ACCOUNT_DELETE decides which (social says how many).
        if "messages_deleted" in social:
            messages = f"{social['messages_deleted']} of its messages deleted"
        else:
            messages = 'its messages now show as "deleted user"'
        print(
            f"erase: done (user id {begun['user_id']}{again}): {begun['sessions_ended']} sessions"
            f" ended; {social['friendships_deleted']} friends, {social['requests_deleted']}"
            f" friend requests, {social['rooms_left']} rooms left; {media['avatars_deleted']}"
            f" avatar; {messages}"
        )
    else:
        ended = result.get("sessions_ended")
        tail = f"; {ended} sessions ended" if ended is not None else ""
        print(f"{command}: done (user id {result['user_id']}{tail})")


def run(args: argparse.Namespace) -> int:
    from chatroom.errors import ServiceError

    settings = config_env.load()
    command = args.admin_command
    work: Callable[[Call], Awaitable[Any]]
    if command in MULTI_STEP:
        username = args.username.strip()
        if not username:
            print(f"{command}: give a username", file=sys.stderr)
            return 2
        if command == "erase" and not args.yes and not _confirmed(username):
            print("erase: not confirmed; nothing changed", file=sys.stderr)
            return 1
        steps = _export if command == "export" else _erase

        def work(call: Call) -> Awaitable[Any]:
            return steps(call, username)
    else:
        service, op = COMMANDS[command]
        request = _request_args(args)

        def work(call: Call) -> Awaitable[Any]:
            return call(service, op, request)

    try:
        result = asyncio.run(_over_the_bus(settings, args.timeout_ms, work))
    except ServiceError as exc:
        print(f"{command}: {exc.code}: {exc.message}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"{command}: {note}", file=sys.stderr)
        return 1
    if command == "export":
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
        if args.output:
            _write_private(args.output, text)
            print(f"export: wrote {args.output} ({len(result['messages_sent'])} messages)")
        else:
            sys.stdout.write(text)
        return 0
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        _show(args.admin_command, result)
    return 0
