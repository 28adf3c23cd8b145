"""python -m chatroom.services.media

Avatars land with their own issue; until then media answers health pings only.
"""

from chatroom.service_main import serve

if __name__ == "__main__":
    serve("media", lambda engine, settings: {})
