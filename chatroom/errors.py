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

    @classmethod
    def from_dict(cls, error: dict[str, Any] | None) -> ServiceError:
        """The error a reply carries (to_dict's shape), raised again where it arrives."""
        error = error or {}
        extra = {k: v for k, v in error.items() if k not in ("code", "message")}
        return cls(
            error.get("code", ErrorCode.INTERNAL), error.get("message", "unknown error"), **extra
        )

    def copy(self) -> ServiceError:
        """The same error, for another waiter (an exception object is raised once)."""
        return ServiceError(self.code, self.message, **self.extra)


def database_unavailable() -> ServiceError:
    """The answer to a request the database could not serve (it is down or restarting)."""
    return ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "the database is unavailable; try again")


def internal_error() -> ServiceError:
    """The answer to a request that hit a bug (its traceback is in the log)."""
    return ServiceError(ErrorCode.INTERNAL, "internal error; it has been logged")


def bad_request(field: str, message: str) -> ServiceError:
    return ServiceError(ErrorCode.BAD_REQUEST, message, field=field)


def user_id_arg(args: dict[str, Any]) -> int:
    """The `user_id` of an operator op that names a user by id; bad_request otherwise."""
    user_id = args.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**63:
        raise bad_request("user_id", "give the user's id (a positive integer)")
    return user_id


def rate_limited(message: str, wait_ms: int) -> ServiceError:
    """A refusal by a rate limit, saying when to try again (also in retry_after_ms)."""
    seconds = max(1, math.ceil(wait_ms / 1000))
    return ServiceError(
        ErrorCode.RATE_LIMITED, f"{message}; try again in {seconds} s", retry_after_ms=wait_ms
    )
