"""loguru set-up shared by every process.

Human-readable lines on a terminal, one JSON object per line with CHAT_LOG_JSON=1.
Request context (op, request id, user) is bound with ``logger.contextualize`` and shown
after the message. Nothing here ever logs a password, token or message body at INFO:
handlers log ids and sizes, not content.
"""

from __future__ import annotations

import sys

from loguru import logger

from chatroom.config import Settings


def _human_format(record: dict) -> str:
    extra = record["extra"]
    context = " ".join(f"{key}={{extra[{key}]}}" for key in extra if key != "service")
    line = (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        "<cyan>{extra[service]: <9}</cyan> {message}"
    )
    if context:
        line += " <dim>" + context + "</dim>"
    return line + "\n{exception}"


def setup(service: str, settings: Settings) -> None:
    logger.remove()
    logger.configure(extra={"service": service})
    if settings.log_json:
        logger.add(sys.stderr, level=settings.log_level, serialize=True, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=settings.log_level,
            format=_human_format,
            colorize=sys.stderr.isatty(),
            backtrace=False,
            diagnose=False,  # diagnose would print local variables: passwords, tokens
        )
