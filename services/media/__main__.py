"""python -m chatroom.services.media"""

from chatroom.services.media.handlers import MediaHandlers

from chatroom.service_main import serve

if __name__ == "__main__":
    serve("media", lambda engine, settings: MediaHandlers(engine, settings).service())
