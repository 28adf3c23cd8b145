"""python -m chatroom.services.social"""

from chatroom.services.social.handlers import SocialHandlers
from chatroom.services.social.rooms import ensure_lobby

from chatroom.service_main import serve


def build(engine, settings):  # noqa: ANN001, ANN201 - see chatroom.service_main.serve
    ensure_lobby(engine)
    return SocialHandlers(engine, settings).table()


if __name__ == "__main__":
    serve("social", build)
