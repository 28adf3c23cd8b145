"""python -m services.tcp_edge

With CHAT_EDGE_WORKERS=N > 1 the process forks N workers that share the port through
SO_REUSEPORT (the kernel spreads connections), so the edge can use every core.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import shutil
import signal
import sys

from loguru import logger

from chatroom import event_loop, logs, metrics
from chatroom.config import Settings
from services.tcp_edge.server import Edge, tls_context


def run_worker(settings: Settings) -> None:
    async def main() -> None:
        await Edge(settings).run()

    # Start-up objects live for the whole run: frozen, full collections skip them.
    gc.collect()
    gc.freeze()

    event_loop.run(main())


def run_workers(settings: Settings) -> int:
    # Each worker writes its metrics to files of its own; this process serves their sum.
    made_dir = metrics.MULTIPROC_ENV not in os.environ
    metrics_dir = metrics.use_multiprocess()
    children: list[int] = []
    for index in range(settings.edge_workers):
        pid = os.fork()
        if pid == 0:
            # The child must never return into the parent's loop, whatever happens.
            status = 1
            try:
                logs.setup(f"edge.{index}", settings)
                with logs.fatal_config_errors(f"edge.{index}"):
                    run_worker(settings)
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            finally:
                os._exit(status)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # After the fork: a child must not inherit the server's thread.
    metrics.serve_aggregate("tcp_edge", settings, metrics_dir)
    status = 0
    for _ in children:
        pid, wait_status = os.wait()
        metrics.worker_gone(pid, metrics_dir)
        if code := os.waitstatus_to_exitcode(wait_status):
            logger.error("edge worker {} exited with status {}", pid, code)
            status = 1
    if made_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return status


def raise_open_files_limit() -> None:
    """One descriptor per connection: take the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    raise_open_files_limit()
    settings = logs.configure("tcp_edge")
    with logs.fatal_config_errors("tcp_edge"):
        if settings.tls_port:
            tls_context(settings)  # fail at start, with the reason, not in every worker
        if settings.edge_workers == 1:
            metrics.serve("tcp_edge", settings)
            run_worker(settings)
            return
    sys.exit(run_workers(settings))


if __name__ == "__main__":
    main()
