"""python -m services.auth"""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.runtime import Job, Service
from chatroom.service_main import serve
from chatroom.storage.db import now_ms
from services.auth.handlers import AuthHandlers
from services.auth.retention import RETENTION_PASS_S, forget_old_sessions


def build(engine: Engine, settings: Settings) -> Service:
    def retention(_ctx: object) -> None:
        forget_old_sessions(engine, now_ms(), settings.session_retention_days)

    return Service(
        AuthHandlers(engine, settings).table(),
        jobs=[Job("forget-old-sessions", RETENTION_PASS_S, retention)],
    )


if __name__ == "__main__":
    serve("auth", build)
