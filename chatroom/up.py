"""`chatroom up`: every component as its own process on this machine, supervised.

Order matters at both ends. Start: bus, then the backends, then the edge; "up" is
announced only once the edge answers a ping on its port and every backend answers one
through the bus. Stop (Ctrl-C or SIGTERM): the edge first, so it can still tell social
that its users went offline, then the backends, then the bus. The children run in a
process group of their own, so the terminal's Ctrl-C reaches only this supervisor and
the order holds; they still get SIGTERM if the supervisor itself dies.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from loguru import logger

from chatroom import buskeys, config, health
from chatroom.localstack import die_with_parent

START_ORDER = ("bus", "auth", "social", "media", "tcp_edge")
BACKENDS = ("auth", "social", "media")
READY_TIMEOUT_S = 60.0
RESTART_PAUSE_S = 2.0  # between restarts of a component that keeps dying


class Supervisor:
    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarted_at: dict[str, float] = {}
        self.stopping = False

    def start(self, service: str) -> None:
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            process_group=0,  # Ctrl-C in the terminal reaches only the supervisor
            preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def wait_until_serving(self) -> bool:
        """True once the edge and every backend answer; False if a component died or
        READY_TIMEOUT_S passed (the log says which is missing)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = [*BACKENDS, "tcp_edge"]
        while waiting and not self.stopping:
            for service in list(waiting):
                if self.procs[service].poll() is not None:
                    logger.error(
                        "{} exited with {} while starting", service, self.procs[service].returncode
                    )
                    return False
                # A backend's ping waits in the bus until a replica connects: one ask,
                # with the time that is left, rather than a stream of timeouts.
                left_s = max(1.0, deadline - time.monotonic())
                try:
                    if service == "tcp_edge":
                        health.check_edge(self.settings, 1.0)
                    else:
                        health.ping_through_bus(self.settings, service, int(left_s * 1000))
                except Exception:  # noqa: BLE001 - not answering yet, whatever the reason
                    continue
                waiting.remove(service)
            if time.monotonic() > deadline:
                logger.error(
                    "not serving after {:g} s: {} did not answer",
                    READY_TIMEOUT_S,
                    ", ".join(waiting),
                )
                return False
            if waiting:
                time.sleep(0.2)
        return not waiting

    def supervise(self) -> None:
        """Restart any component that dies, until asked to stop."""
        while not self.stopping:
            time.sleep(0.2)
            for service, proc in list(self.procs.items()):
                if proc.poll() is None or self.stopping:
                    continue
                if time.monotonic() - self.restarted_at.get(service, 0) < RESTART_PAUSE_S:
                    continue
                logger.error("{} exited with {}; restarting it", service, proc.returncode)
                self.restarted_at[service] = time.monotonic()
                self.start(service)

    def stop_all(self) -> None:
        logger.info("stopping: the edge, then the services, then the bus")
        grace_s = self.settings.drain_timeout_s + 5
        for group in (("tcp_edge",), BACKENDS, ("bus",)):
            running = [self.procs[s] for s in group if s in self.procs]
            for proc in running:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for proc in running:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    logger.warning("pid {} did not stop in {:g} s; killing it", proc.pid, grace_s)
                    proc.kill()
                    proc.wait()


def run(settings: config.Settings, migrate: Callable[[config.Settings], int]) -> int:
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    if settings.bus_curve:
        created = buskeys.ensure_keys(settings.bus_keys_dir)
        if created:
            logger.info("created bus keys in {}: {}", settings.bus_keys_dir, ", ".join(created))
    logger.info("database: {}", settings.db_url if "@" not in settings.db_url else "(MySQL)")
    if migrate(settings) != 0:
        return 2
    for service in START_ORDER:
        supervisor.start(service)
    if supervisor.wait_until_serving():
        logger.info(
            "chatroom is up: clients connect to {}:{}", settings.edge_host, settings.edge_port
        )
        supervisor.supervise()
        status = 0
    else:
        status = 0 if supervisor.stopping else 1
    supervisor.stop_all()
    return status
