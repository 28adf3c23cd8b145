"""The bytes of the client protocol: a frame is a 4-byte big-endian unsigned length
followed by that many bytes of UTF-8 JSON encoding one object.

The JSON codec (orjson when installed), framing an object or an already-encoded payload,
decoding one payload, and FrameDecoder, which cuts a byte stream into payloads without
doing any I/O. What the objects mean is chatroom.protocol. Standard library only: the
desktop client, the edge and the load generator all use it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from chatroom.protocol import ErrorCode, MessageError

try:  # optional: several times faster; the standard library's json is the fallback
    import orjson
except ImportError:  # pragma: no cover - the client may run without it
    orjson = None  # type: ignore[assignment]

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_FRAME_BYTES = 1024 * 1024


class FrameError(Exception):
    """The byte stream can no longer be trusted; the connection must be closed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def dumps(obj: dict[str, Any]) -> bytes:
    """Encode one object as compact UTF-8 JSON (not yet framed)."""
    if orjson is not None:
        return orjson.dumps(obj)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes) -> Any:
    """Decode UTF-8 JSON; NaN and Infinity are refused. Raises ValueError (which
    includes UnicodeDecodeError) or RecursionError."""
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


def encode_frame(obj: dict[str, Any]) -> bytes:
    payload = dumps(obj)
    return HEADER.pack(len(payload)) + payload


def frame_payload(payload: bytes) -> bytes:
    """Frame an already-encoded payload (lets the edge encode a fan-out push once)."""
    return HEADER.pack(len(payload)) + payload


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode one frame's payload; raise MessageError(bad_frame) if it is not an object."""
    try:
        obj = loads(payload)
    except (ValueError, RecursionError) as exc:
        raise MessageError(ErrorCode.BAD_FRAME, _why_not_json(payload, exc)) from None
    if not isinstance(obj, dict):
        raise MessageError(ErrorCode.BAD_FRAME, "frame must encode a JSON object")
    return obj


def _why_not_json(payload: bytes, exc: Exception) -> str:
    """A precise reason, worked out only on the error path."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"frame is not valid UTF-8 ({bad.reason})"
    if isinstance(exc, RecursionError) or "recursion" in str(exc).lower():
        return "JSON is nested too deeply"
    return f"frame is not valid JSON: {exc}"


class FrameDecoder:
    """Sans-IO decoder: feed it bytes as they arrive, get back complete payloads.

    Raises FrameError for a length of 0 or above ``max_frame_bytes``; after that the
    decoder is poisoned because the stream's framing is lost.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._need: int | None = None  # payload length of the frame being read
        self._failed: FrameError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed:
            raise self._failed
        self._buffer += data
        frames: list[bytes] = []
        buf = self._buffer
        pos = 0
        while True:
            if self._need is None:
                if len(buf) - pos < HEADER_SIZE:
                    break
                (length,) = HEADER.unpack_from(buf, pos)
                pos += HEADER_SIZE
                if length == 0:
                    self._failed = FrameError(ErrorCode.BAD_FRAME, "frame length 0 is not allowed")
                elif length > self.max_frame_bytes:
                    self._failed = FrameError(
                        ErrorCode.FRAME_TOO_LARGE,
                        f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}",
                    )
                if self._failed:
                    del buf[:]
                    raise self._failed
                self._need = length
            if len(buf) - pos < self._need:
                break
            frames.append(bytes(buf[pos : pos + self._need]))
            pos += self._need
            self._need = None
        if pos:
            del buf[:pos]
        return frames
