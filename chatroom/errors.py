"""The typed error handlers raise; the runtime turns it into an error reply."""

from __future__ import annotations

import math
from typing import Any

from chatroom.protocol import ErrorCode


class ServiceError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def bad_request(field: str, message: str) -> ServiceError:
    return ServiceError(ErrorCode.BAD_REQUEST, message, field=field)


def rate_limited(message: str, wait_ms: int) -> ServiceError:
    """A refusal by a rate limit, saying when to try again (also in retry_after_ms)."""
    seconds = max(1, math.ceil(wait_ms / 1000))
    return ServiceError(
        ErrorCode.RATE_LIMITED, f"{message}; try again in {seconds} s", retry_after_ms=wait_ms
    )
