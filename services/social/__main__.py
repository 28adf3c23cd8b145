"""python -m services.social: settings -> store -> handlers -> serve."""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.service import Service
from chatroom.service_main import serve
from chatroom.storage.schema import LOBBY
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore


def build(engine: Engine, settings: Settings) -> Service:
    store = SocialStore(engine, settings.group_commit_delay_ms / 1000)
    store.ensure_lobby()
    store.room_identity(LOBBY)  # known before the first send
    store.start()
    handlers = SocialHandlers(store, settings)
    return Service(handlers.ops(), handlers.jobs())


if __name__ == "__main__":
    serve("social", build)
