"""The authorisation table of docs/security.md, run row by row: every caller it names
is refused with the error it names, every client op has a row, and nothing refused
left a trace (the direct chat of two ex-friends holds only what was said before)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from chatroom.protocol import OPS

from images import png
from wire import WireClient, befriend, users

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = "left_out"  # sync: the conversation is simply not in the reply


def authorisation_table() -> dict[str, dict[str, str]]:
    """op -> {caller: error code}, from docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Authorisation", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z._]+)`", cells[0]) if len(cells) == 4 else None
        if match is None:
            continue
        refused = {}
        if cells[3] != "—":
            for part in cells[3].split(";"):
                caller, code = (p.strip() for p in part.split(":"))
                refused[caller] = code
        table[match.group(1)] = refused
    return table


def test_every_client_op_has_a_row():
    assert set(authorisation_table()) == set(OPS)


class World:
    """ann and bob were friends and wrote to each other, then ann unfriended bob; cat
    knows nobody and is in no group room; ann made the group room 'den' and an avatar."""

    def __init__(self, ann: WireClient, bob: WireClient, cat: WireClient) -> None:
        self.ann, self.bob, self.cat = ann, bob, cat
        befriend(ann, bob)
        sent = ann.call("dm.send", to="bob", text="before the falling-out")["message"]
        self.dm, self.dm_id, self.dm_message = sent["room"], sent["room_id"], sent["id"]
        self.bobs_dm = bob.call("dm.send", to="ann", text="me too")["message"]["id"]
        ann.call("room.create", room="den")
        self.in_den = ann.call("room.send", room="den", text="den only")["message"]["id"]
        self.in_lobby = ann.call("room.send", room="lobby", text="ann's")["message"]["id"]
        self.deleted = ann.call("room.send", room="lobby", text="oops")["message"]["id"]
        ann.call("message.delete", message=self.deleted)
        image = base64.b64encode(png(64, 64)).decode()
        self.avatar_hash = ann.call("avatar.set", image=image)["hash"]
        ann.call("friend.remove", username="bob")
        bob.event("friend.removed")
        self.ann_session = self.own_session(ann)

    @staticmethod
    def own_session(client: WireClient) -> int:
        sessions = client.call("account.sessions")["sessions"]
        return next(s["id"] for s in sessions if s["current"])

    def attempts(self, op: str, caller: str) -> list[tuple[WireClient, dict]]:
        """The requests by which `caller` tries `op` on what is not theirs."""
        ann, bob, cat, dm = self.ann, self.bob, self.cat, self.dm
        client = {"stranger": cat, "non-member": cat, "anyone": cat, "ex-friend": bob, "self": ann}[
            caller
        ]
        # The direct chat by its name in any case: the side door that must stay shut.
        on_dm = [{"room": dm}, {"room": dm.upper()}]
        table = {
            "login": [{"token": ann.token}],
            "friend.request": [{"username": "ann"}],
            "friend.accept": [{"username": "ann"}],
            "friend.reject": [{"username": "ann"}],
            "friend.remove": [{"username": "ann"}],
            "block.add": [{"username": "ann"}],
            "block.remove": [{"username": "ann"}],
            "room.create": [{"room": dm}],
            "room.join": on_dm,
            "room.leave": [{"room": "den"}] if caller == "non-member" else on_dm,
            "room.members": [{"room": "den"}] if caller == "non-member" else on_dm,
            "room.send": [
                {**target, "text": "through the side door", "client_id": "side"}
                for target in ([{"room": "den"}] if caller == "non-member" else on_dm)
            ],
            "room.history": [{"room": "den"}] if caller == "non-member" else on_dm,
            "dm.send": [{"to": "ann", "text": "still there?"}],
            "dm.history": [{"with": "ann"}],
            "sync": [{"cursors": {str(self.dm_id): 0}}],
            "read.mark": [
                {**target, "seq": 0}
                for target in (
                    [{"room": "den"}] if caller == "non-member" else [{"with": "ann"}, *on_dm]
                )
            ],
            "room.notify": [
                {**target, "level": "none"}
                for target in ([{"room": "den"}] if caller == "non-member" else on_dm)
            ],
            "avatar.get": [{"hash": self.avatar_hash}],
            # Another user's session id, ann's password: neither is anyone else's to use.
            "account.logout_others": [
                {"session": self.ann_session if caller == "anyone" else self.own_session(ann)}
            ],
            "account.password": [{"old_password": "ann's password", "new_password": "x" * 12}],
            "account.delete": [{"password": "ann's password"}],
            "typing": [
                {**target, "on": True}
                for target in {
                    "non-member": [{"room": "den"}],
                    "stranger": on_dm,
                    "ex-friend": [{"to": "ann"}],
                    "self": [{"to": "ann"}],
                }.get(caller, [])
            ],
        }
        # Moderation: a non-member on ann's room 'den', a stranger through the direct
        # chat's name, ann on herself.
        acting_on = {
            "room.invite": {"username": "cat"},
            "room.kick": {"username": "ann"},
            "room.ban": {"username": "ann"},
            "room.unban": {"username": "bob"},
            "room.set_role": {"username": "ann", "role": "member"},
            "room.update": {"topic": "taken over"},
            "room.delete": {},
            "room.bans": {},
        }
        for name, extra in acting_on.items():
            rooms = [{"room": "den"}] if caller in ("non-member", "self") else on_dm
            table[name] = [{**room, **extra} for room in rooms]
        # edits and deletes: each caller on the message they must not change
        target = {
            "stranger": self.dm_message,
            "non-member": self.in_den,
            "ex-friend": self.bobs_dm,
            "anyone": self.in_lobby,
            "self": self.deleted,
        }[caller]
        table["message.edit"] = [{"message": target, "text": "changed"}]
        table["message.delete"] = [{"message": target}]
        return [(client, fields) for fields in table[op]]


@pytest.fixture
def world(stack):
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat):
        yield World(ann, bob, cat)


CASES = [
    (op, caller, code) for op, row in authorisation_table().items() for caller, code in row.items()
]


@pytest.mark.parametrize(
    ("op", "caller", "code"), CASES, ids=[f"{op}-{caller}" for op, caller, _ in CASES]
)
def test_each_caller_the_table_names_is_refused(world, op, caller, code):
    for client, fields in world.attempts(op, caller):
        reply = client.request(op, **fields)
        if code == LEFT_OUT:
            assert reply["ok"], reply
            assert world.dm_id not in [c["id"] for c in reply["conversations"]]
            continue
        assert not reply["ok"], f"{caller} did {op} {fields}: {reply}"
        assert reply["error"]["code"] == code, (caller, op, fields, reply)
    # Whatever was tried, the direct chat holds only what was said before.
    history = world.ann.call("dm.history", **{"with": "bob"})["messages"]
    assert [m["text"] for m in history] == ["before the falling-out", "me too"]


def test_every_op_needing_a_login_refuses_before_one(stack):
    with WireClient(stack.port) as anonymous:
        for name, op in sorted(OPS.items()):
            if op.needs_login:
                # Well-formed fields: the schema is checked before the login.
                fields = {f: PLAIN[spec.kind] for f, spec in op.fields.items()}
                assert anonymous.error_of(name, **fields)["code"] == "not_authenticated", name


PLAIN = {str: "x", int: 1, bool: True, dict: {}}
