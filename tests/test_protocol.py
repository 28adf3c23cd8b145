"""Unit tests of the wire protocol module: no I/O."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import FrameDecoder, FrameError, encode_frame, parse_payload
from chatroom.protocol import OPS, ErrorCode, MessageError, request_id_of, validate_request

# Property/fuzz budget: tens of thousands of cases per run in CI; raise it for a longer
# hunt, e.g. CHAT_FUZZ_EXAMPLES=500000 pytest tests/test_protocol.py -k fuzz
FUZZ = int(os.environ.get("CHAT_FUZZ_EXAMPLES", "10000"))
FUZZ_SETTINGS = settings(max_examples=FUZZ, deadline=None)

json_values = st.recursive(
    # Protocol integers are signed 64-bit (larger ones are a bad_frame).
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def decode_all(data: bytes, chunk: int, max_frame: int = 1 << 20) -> list[dict]:
    decoder = FrameDecoder(max_frame)
    out = []
    for i in range(0, len(data), chunk):
        out.extend(parse_payload(p) for p in decoder.feed(data[i : i + chunk]))
    assert decoder.buffered == 0
    return out


@settings(max_examples=300)
@given(st.lists(json_objects, min_size=1, max_size=8), st.integers(1, 64))
def test_frames_round_trip_in_any_chunking(objects, chunk):
    data = b"".join(encode_frame(o) for o in objects)
    assert decode_all(data, chunk) == objects


def test_byte_by_byte_and_all_at_once():
    objects = [{"op": "ping", "id": i, "text": "你好😀" * i} for i in range(50)]
    data = b"".join(encode_frame(o) for o in objects)
    assert decode_all(data, 1) == objects
    assert decode_all(data, len(data)) == objects


def test_partial_header_waits_for_more():
    decoder = FrameDecoder()
    frame = encode_frame({"op": "ping", "id": 1})
    assert decoder.feed(frame[:3]) == []
    assert decoder.feed(frame[3:10]) == []
    assert decoder.feed(frame[10:]) == [frame[4:]]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (struct.pack(">I", 0), ErrorCode.BAD_FRAME),
        (struct.pack(">I", 1025), ErrorCode.FRAME_TOO_LARGE),
        (b"\xff\xff\xff\xff", ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_bad_lengths_poison_the_decoder(header, code):
    decoder = FrameDecoder(max_frame_bytes=1024)
    ok = encode_frame({"a": 1})
    with pytest.raises(FrameError) as err:
        decoder.feed(ok + header + b"{}")
    assert err.value.code == code
    with pytest.raises(FrameError):  # the stream stays untrusted
        decoder.feed(ok)


def test_exactly_max_size_is_accepted():
    payload = b'{"x":"' + b"a" * (1024 - 8) + b'"}'
    assert len(payload) == 1024
    assert FrameDecoder(1024).feed(struct.pack(">I", 1024) + payload) == [payload]


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\xc3\x28",  # invalid continuation byte
        b"\xed\xa0\x80",  # UTF-8 encoded surrogate
        b"[1]",
        b'"text"',
        b"3",
        b"null",
        b"",
        b"{",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":1}{"b":2}',
    ],
)
def test_parse_payload_rejects_non_objects(payload):
    with pytest.raises(MessageError) as err:
        parse_payload(payload)
    assert err.value.code == ErrorCode.BAD_FRAME


@FUZZ_SETTINGS
@given(st.binary(max_size=64))
def test_fuzz_parse_payload_never_crashes(payload):
    try:
        assert isinstance(parse_payload(payload), dict)
    except MessageError as err:
        assert err.code == ErrorCode.BAD_FRAME


def test_request_ids():
    assert request_id_of({"id": 3}) == 3
    assert request_id_of({"id": "abc"}) == "abc"
    for bad in (True, None, 1.5, [], {}, "x" * 65):
        assert request_id_of({"id": bad}) is None


@pytest.mark.parametrize(
    ("msg", "code", "field"),
    [
        ({"op": "ping"}, ErrorCode.BAD_REQUEST, "id"),
        ({"op": "ping", "id": 1.5}, ErrorCode.BAD_REQUEST, "id"),
        ({"id": 1}, ErrorCode.BAD_REQUEST, "op"),
        ({"id": 1, "op": 7}, ErrorCode.BAD_REQUEST, "op"),
        ({"id": 1, "op": "nope"}, ErrorCode.UNKNOWN_OP, "op"),
        ({"id": 1, "op": "register", "username": "a"}, ErrorCode.BAD_REQUEST, "password"),
        (
            {"id": 1, "op": "register", "username": 1, "password": "p"},
            ErrorCode.BAD_REQUEST,
            "username",
        ),
        (
            {"id": 1, "op": "room.send", "room": "lobby", "text": "\ud800"},
            ErrorCode.BAD_REQUEST,
            "text",
        ),
        (
            {"id": 1, "op": "room.history", "room": "lobby", "limit": True},
            ErrorCode.BAD_REQUEST,
            "limit",
        ),
        (
            {"id": 1, "op": "room.history", "room": "lobby", "limit": 0},
            ErrorCode.BAD_REQUEST,
            "limit",
        ),
        (
            {"id": 1, "op": "room.history", "room": "lobby", "limit": 10**6},
            ErrorCode.BAD_REQUEST,
            "limit",
        ),
        (
            {"id": 1, "op": "room.send", "room": "x" * 257, "text": "t"},
            ErrorCode.BAD_REQUEST,
            "room",
        ),
    ],
)
def test_validate_request_names_the_bad_field(msg, code, field):
    with pytest.raises(MessageError) as err:
        validate_request(msg)
    assert (err.value.code, err.value.field) == (code, field)


def test_validate_request_keeps_declared_fields_only():
    op, args = validate_request(
        {"id": 1, "op": "room.send", "room": "lobby", "text": "hi", "extra": 1, "client_id": None}
    )
    assert op is OPS["room.send"]
    assert args == {"room": "lobby", "text": "hi"}


@FUZZ_SETTINGS
@given(json_objects)
def test_fuzz_validate_request_never_crashes(msg):
    try:
        validate_request(msg)
    except MessageError as err:
        assert err.code in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_OP)


def test_every_op_event_and_error_code_is_documented():
    from pathlib import Path

    from chatroom.protocol import EVENTS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    codes = [v for k, v in vars(ErrorCode).items() if k.isupper()]
    for name in [*OPS, *EVENTS, *codes]:
        assert f"`{name}`" in doc, f"docs/protocol.md does not mention `{name}`"


@FUZZ_SETTINGS
@given(st.binary(max_size=200), st.integers(1, 32), st.integers(1, 300))
def test_fuzz_decoder_on_random_bytes(data, chunk, max_frame):
    """Any byte stream, in any chunking: frames come out (each within the limit) or the
    decoder raises FrameError and stays poisoned. Nothing else."""
    decoder = FrameDecoder(max_frame)
    try:
        for i in range(0, len(data), chunk):
            for payload in decoder.feed(data[i : i + chunk]):
                assert 0 < len(payload) <= max_frame
    except FrameError as err:
        assert err.code in (ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE)
        with pytest.raises(FrameError):
            decoder.feed(b"\x00")


@st.composite
def requests_for_real_ops(draw):
    """Requests for ops that exist, with each declared field present or not and holding
    a value of any JSON type: the validator's real input space."""
    name = draw(st.sampled_from(sorted(OPS)))
    msg = {"op": name, "id": draw(st.integers(0, 2**63 - 1) | st.text(max_size=70))}
    for field_name in OPS[name].fields:
        if draw(st.booleans()):
            msg[field_name] = draw(json_values)
    return msg


@FUZZ_SETTINGS
@given(requests_for_real_ops())
def test_fuzz_validate_requests_for_real_ops(msg):
    try:
        op, args = validate_request(msg)
    except MessageError as err:
        assert err.code == ErrorCode.BAD_REQUEST and err.field in ("id", *OPS[msg["op"]].fields)
        return
    assert op is OPS[msg["op"]]
    for field_name, value in args.items():
        spec = op.fields[field_name]
        assert isinstance(value, spec.kind) and not (isinstance(value, bool) and spec.kind is int)
