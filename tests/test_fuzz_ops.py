"""Every op of the protocol, with arbitrary values in every field, against a real stack:
each reply is a result or a typed error, never `internal`, and no process logs a
traceback. Values are drawn near each field's declared type and bounds (where the
service, not the schema check, has to cope: huge ints, case-folding strings that grow,
odd cursor keys) as well as any JSON at all.

CHAT_FUZZ_OPS_EXAMPLES sets the requests per op (default 100, so about 2,300 per backend)."""

from __future__ import annotations

import json
import os
import string
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatroom.protocol import OPS, Field

from wire import WireClient, befriend

EXAMPLES = int(os.environ.get("CHAT_FUZZ_OPS_EXAMPLES", "100"))

# Strings that change length or meaning when normalised or case-folded, and names that
# exist in the fuzzed stack (so the deeper paths run too).
_TRICKY = [
    "ß" * 32,
    "ß" * 64,
    "ﬃ" * 30,
    "ΐ" * 40,
    "İ" * 60,
    "\u0345" * 100,
    "dm:1:2",
    "DM:2:1",
    "dm:1:1",
    "lobby",
    "Lobby ",
    "den",
    "ann",
    "bob",
    "0",
    "-1",
    "1e3",
    "\u200b",
    "\u2060\ufeff",
    "\U000e0041",
    "\x00",
    " ",
    "",
]
# Mostly the edges of the ranges databases and JSON libraries can hold.
_EDGES = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64]
_INTS = st.one_of(st.sampled_from(_EDGES), st.sampled_from(_EDGES), st.integers())
_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | _INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_KEYS = st.one_of(
    st.text(max_size=8),
    st.integers().map(str),
    st.sampled_from(["1", "2", "01", "-1", "1.5", "1e9", "٣", "²", "9" * 30, " 1", "0x1"]),
    st.text(string.digits, min_size=1, max_size=40),
)


def _text(spec: Field) -> st.SearchStrategy:
    limit = min(spec.max_len or 300, 300)
    return st.one_of(st.text(max_size=limit), st.sampled_from(_TRICKY))


# Values that exist in the fuzzed stack, so that requests get past "not found".
_EXISTING = {
    "room": ["lobby", "den", "LOBBY", "dm:1:2"],
    "to": ["bob", "ann", "BOB"],
    "with": ["bob", "ann"],
    "with_id": [1, 2, 3],
    "username": ["bob", "ann", "Bob"],
}


def value_for(name: str, spec: Field) -> st.SearchStrategy:
    """Mostly values of the declared type (they pass the schema and reach the service),
    sometimes anything."""
    if name in _EXISTING:
        existing = st.sampled_from(_EXISTING[name])
        typed = st.one_of(existing, existing, _text(spec))
    elif spec.kind is str:
        typed = _text(spec)
    elif spec.kind is int:
        typed = _INTS
    elif spec.kind is dict:
        typed = st.dictionaries(_KEYS, _INTS | _INTS | _ANY_JSON, max_size=5)
    else:
        typed = _ANY_JSON
    return st.one_of(typed, typed, typed, typed, _ANY_JSON)


# Sent on a socket of their own, not logged in (logout is tested elsewhere).
_LOGGED_OUT = {"login", "register"}


@st.composite
def requests(draw: st.DrawFn, names: list[str]) -> dict:
    op = draw(st.sampled_from(names))
    request = {"op": op, "id": 1}
    for name, spec in OPS[op].fields.items():
        if spec.required or draw(st.integers(0, 3)):
            request[name] = draw(value_for(name, spec))
    return request


def _fuzz(stack) -> None:
    with WireClient(stack.port) as ann, WireClient(stack.port) as bob:
        ann.register_and_login("ann")
        bob.register_and_login("bob")
        befriend(ann, bob)
        ann.call("dm.send", to="bob", text="hi")
        ann.call("room.create", room="den")

        def answer(request: dict) -> dict:
            if request["op"] in _LOGGED_OUT:
                # A fresh socket each time: an idle one is closed at the login timeout.
                with WireClient(stack.port) as anon:
                    return _request(anon, request)
            return _request(ann, request)

        # Each op gets its own run, so every one is tried as often.
        for op in sorted(set(OPS) - {"logout"}):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(request=requests([op]))
            def send(request: dict) -> None:
                reply = answer(request)
                assert not _internal(reply), (request, reply)

            send()
    logs = stack.logs()
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:6000]


def _request(client: WireClient, request: dict) -> dict:
    """Send with the standard library's encoder: orjson refuses ints beyond 64 bits,
    and a client in another language would not."""
    request_id = next(client.ids)
    payload = json.dumps({**request, "id": request_id}).encode()
    client.send_raw(struct.pack(">I", len(payload)) + payload)
    return client.next_matching(lambda f: f.get("id") == request_id and "ok" in f, 10)


def _internal(reply: dict) -> bool:
    return not reply.get("ok") and reply.get("error", {}).get("code") == "internal"


def test_any_value_in_any_field_gets_a_typed_answer(make_stack, db_url):
    _fuzz(make_stack(db_url))
