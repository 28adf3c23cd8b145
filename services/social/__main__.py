"""python -m chatroom.services.social"""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.runtime import Service
from chatroom.service_main import serve
from chatroom.services.social.handlers import SocialHandlers
from chatroom.services.social.rooms import ensure_lobby, room_identity
from chatroom.storage.schema import LOBBY


def build(engine: Engine, settings: Settings) -> Service:
    ensure_lobby(engine)
    room_identity(engine, LOBBY)  # known before the first send
    return SocialHandlers(engine, settings).service()


if __name__ == "__main__":
    serve("social", build)
