"""loguru set-up shared by every process.

Human-readable lines on a terminal, one JSON object per line with CHAT_LOG_JSON=1.
Request context (op, request id, user) is set with ``request_context`` and shown after
the message. Nothing here ever logs a password, token or message body at INFO:
handlers log ids and sizes, not content.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loguru import logger

from chatroom import config, config_env
from chatroom.config import Settings

if TYPE_CHECKING:
    from loguru import Record


def _human_format(record: Record) -> str:
    extra = record["extra"]
    context = " ".join(f"{key}={{extra[{key}]}}" for key in extra if key != "service")
    line = (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        "<cyan>{extra[service]: <9}</cyan> {message}"
    )
    if context:
        line += " <dim>" + context + "</dim>"
    return line + "\n{exception}"


_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("chat_request", default=None)


class request_context:  # noqa: N801 - used like a function: with request_context(op=...)
    """Fields added to every log line written while handling one request.

    Not loguru's ``contextualize``: that copies its context dict on every request, and
    on the edge and in social (thousands of requests a second, most of which log
    nothing) it cost ~5 % of the process. This sets a context variable, and the fields
    are only merged into a record when a line is actually written (``_add_request``).
    """

    __slots__ = ("fields", "token")

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __enter__(self) -> None:
        self.token = _REQUEST.set(self.fields)

    def __exit__(self, *exc_info: object) -> None:
        _REQUEST.reset(self.token)


def _add_request(record: Any) -> None:
    fields = _REQUEST.get()
    if fields:
        record["extra"].update(fields)


def configure(service: str) -> Settings:
    """A process's start: its settings from the environment, then logging. A bad setting
    is one line on stderr and exit status 2 (no traceback); a CHAT_* name that nothing
    reads is a warning naming the setting it probably meant."""
    try:
        settings = config_env.load()
    except config.ConfigError as exc:
        sys.stderr.write(f"{service}: configuration error: {exc}\n")
        raise SystemExit(2) from None
    setup(service, settings)
    for warning in config_env.unknown_names():
        logger.warning("{}", warning)
    return settings


@contextlib.contextmanager
def fatal_config_errors(service: str) -> Iterator[None]:
    """Around a process's start-up: a configuration problem found there (a missing key
    file, a bad certificate) is one error line and exit status 2, not a traceback."""
    try:
        yield
    except config.ConfigError as exc:
        logger.error("{} cannot start: {}", service, exc)
        raise SystemExit(2) from None


def setup(service: str, settings: Settings) -> None:
    logger.remove()
    logger.configure(extra={"service": service}, patcher=_add_request)
    if settings.log_json:
        logger.add(sys.stderr, level=settings.log_level.upper(), serialize=True, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=settings.log_level.upper(),
            format=_human_format,
            colorize=sys.stderr.isatty(),
            backtrace=False,
            diagnose=False,  # diagnose would print local variables: passwords, tokens
        )


class RepeatedErrors:
    """Which crashes get their traceback logged: the first of each kind (e.g. op and
    exception type) per `window_s`, so a client repeating one bad request cannot fill
    the disk (21 KB of such requests once made 760 KB of log). The next one logged
    after a quiet spell says how many were left out in between."""

    def __init__(self, window_s: float = 60.0, max_kinds: int = 10_000) -> None:
        self.window_s = window_s
        self.max_kinds = max_kinds
        self._kinds: dict[object, tuple[float, int]] = {}  # kind -> (logged at, left out)

    def should_log(self, kind: object, now: float) -> tuple[bool, int]:
        """(log this one's traceback?, how many of its kind were left out before it)."""
        logged_at, left_out = self._kinds.get(kind, (None, 0))
        if logged_at is not None and now - logged_at < self.window_s:
            self._kinds[kind] = (logged_at, left_out + 1)
            return False, 0
        if len(self._kinds) >= self.max_kinds:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        return True, left_out
