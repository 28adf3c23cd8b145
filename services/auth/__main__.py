"""python -m chatroom.services.auth"""

from chatroom.services.auth.handlers import AuthHandlers

from chatroom.runtime import Service
from chatroom.service_main import serve

if __name__ == "__main__":
    serve("auth", lambda engine, settings: Service(AuthHandlers(engine, settings).table()))
