"""python -m services.media"""

from chatroom.service_main import serve
from services.media.decoding import return_large_blocks_promptly
from services.media.handlers import MediaHandlers

if __name__ == "__main__":
    return_large_blocks_promptly()
    serve("media", lambda engine, settings: MediaHandlers(engine, settings).service())
