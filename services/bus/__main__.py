"""python -m services.bus"""

import signal
import threading

from chatroom import config, logs
from services.bus.switchboard import Switchboard


def main() -> None:
    settings = config.load()
    logs.setup("bus", settings)
    board = Switchboard(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    board.start()
    stop.wait()
    board.stop()


if __name__ == "__main__":
    main()
