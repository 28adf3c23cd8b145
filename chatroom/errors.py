"""The typed error handlers raise; the runtime turns it into an error reply."""

from __future__ import annotations

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
