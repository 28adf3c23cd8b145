"""python -m chatroom.services.media"""

from chatroom.service_main import serve
from chatroom.services.media.handlers import MediaHandlers

if __name__ == "__main__":
    serve("media", lambda engine, settings: MediaHandlers(engine, settings).service())
