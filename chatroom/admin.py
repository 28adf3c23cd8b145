"""``chatroom admin``: operator commands against a running system.

They go over the bus to auth (accounts, sessions) and social (who is online) on the
operators' path, which only the admin CURVE key may enter (chatroom/buskeys.py): run them
where that key and the CHAT_BUS_* settings are, e.g.
``docker compose exec auth chatroom admin online``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import os
import sys
from typing import Any

from chatroom import config
from chatroom.bus_contract import AdminOp

# command -> (service, op)
COMMANDS = {
    "users": ("auth", AdminOp.USERS),
    "disable": ("auth", AdminOp.DISABLE),
    "enable": ("auth", AdminOp.ENABLE),
    "reset-password": ("auth", AdminOp.RESET_PASSWORD),
    "kick": ("auth", AdminOp.KICK),
    "online": ("social", AdminOp.ONLINE),
}


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
    admin.set_defaults(func=run)


def _request_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.admin_command == "users":
        return {"match": args.match, "limit": args.limit}
    if args.admin_command == "online":
        return {}
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


async def _call(settings: config.Settings, service: str, op: str, request: dict, timeout_ms: int):
    import zmq.asyncio

    from chatroom.bus_client import BusClient

    zctx = zmq.asyncio.Context()
    client = BusClient(settings, f"admin:{os.getpid()}", zctx, admin=True)
    client.start()
    try:
        return await client.call(service, op, request, timeout_ms=timeout_ms)
    finally:
        client.close()
        zctx.term()


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _show(command: str, result: dict[str, Any]) -> None:
    if command == "users":
        rows = [dict(u, created_at=_when(u["created_at"])) for u in result["users"]]
        _print_table(rows, ["id", "username", "disabled", "tokens", "created_at"])
        print(f"{len(rows)} users")
    elif command == "online":
        rows = [dict(u, since=_when(u["since"])) for u in result["online"]]
        _print_table(rows, ["id", "username", "connections", "edges", "since"])
        print(f"{len(rows)} users online")
    else:
        ended = result.get("sessions_ended")
        tail = f"; {ended} sessions ended" if ended is not None else ""
        print(f"{command}: done (user id {result['user_id']}{tail})")


def run(args: argparse.Namespace) -> int:
    from chatroom.errors import ServiceError

    settings = config.load()
    service, op = COMMANDS[args.admin_command]
    request = _request_args(args)
    try:
        result = asyncio.run(_call(settings, service, op, request, args.timeout_ms))
    except ServiceError as exc:
        print(f"{args.admin_command}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        _show(args.admin_command, result)
    return 0
