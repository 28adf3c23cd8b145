"""python -m services.social"""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.runtime import Service
from chatroom.service_main import serve
from chatroom.storage.schema import LOBBY
from services.social.handlers import SocialHandlers
from services.social.rooms import ensure_lobby, room_identity


def build(engine: Engine, settings: Settings) -> Service:
    ensure_lobby(engine)
    room_identity(engine, LOBBY)  # known before the first send
    return SocialHandlers(engine, settings).service()


if __name__ == "__main__":
    serve("social", build)
