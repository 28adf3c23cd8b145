"""python -m services.auth"""

from chatroom.runtime import Service
from chatroom.service_main import serve
from services.auth.handlers import AuthHandlers

if __name__ == "__main__":
    serve("auth", lambda engine, settings: Service(AuthHandlers(engine, settings).table()))
