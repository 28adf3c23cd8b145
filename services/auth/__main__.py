"""python -m services.auth: settings -> store -> handlers -> serve."""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.service import Service
from chatroom.service_main import serve
from services.auth.handlers import AuthHandlers
from services.auth.store import AuthStore


def build(engine: Engine, settings: Settings) -> Service:
    handlers = AuthHandlers(AuthStore(engine), settings)
    return Service(handlers.ops(), handlers.jobs())


if __name__ == "__main__":
    serve("auth", build)
