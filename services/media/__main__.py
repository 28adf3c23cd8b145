"""python -m services.media: settings -> store -> handlers -> serve."""

from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.service import Service
from chatroom.service_main import serve
from services.media.decoding import return_large_blocks_promptly
from services.media.handlers import MediaHandlers
from services.media.store import MediaStore


def build(engine: Engine, settings: Settings) -> Service:
    return Service(MediaHandlers(MediaStore(engine), settings).ops())


if __name__ == "__main__":
    return_large_blocks_promptly()
    serve("media", build)
