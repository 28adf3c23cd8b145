"""python -m chatroom.services.auth"""

from chatroom.service_main import serve
from chatroom.services.auth.handlers import AuthHandlers

if __name__ == "__main__":
    serve("auth", lambda engine, settings: AuthHandlers(engine, settings).table())
