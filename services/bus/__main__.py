"""python -m services.bus"""

import signal
import threading

from chatroom import logs
from services.bus.switchboard import Switchboard


def main() -> None:
    settings = logs.configure("bus")
    with logs.fatal_config_errors("bus"):
        board = Switchboard(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    board.start()
    stop.wait()
    board.stop()


if __name__ == "__main__":
    main()
