"""Prometheus metrics of the server processes, served at /metrics over HTTP.

Every process (the edge, its workers, the bus and each service) has its own port
(`CHAT_METRICS_PORT`, `auto` = the component's default in DEFAULT_PORTS, 0 = off) on
`CHAT_METRICS_HOST`. A port that is taken is a warning, never a reason to stop.

The metric families are made on first use (`get()`), not at import: an edge with
`CHAT_EDGE_WORKERS` > 1 first switches prometheus_client to its multiprocess mode
(`use_multiprocess`: each worker writes its values to files of its own in
PROMETHEUS_MULTIPROC_DIR), then forks, and only the workers make metrics; the parent
serves what all of them wrote, added up (`serve_aggregate`), and marks a worker that
died (`worker_gone`) so its gauges stop counting.

Hot paths bind their label children once (`RequestMeter`, the attributes components
keep): an observation is then a method call on a child, without building labels.
docs/operations.md ("Metrics and alerts") lists every metric with its labels.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable
from typing import Any

from loguru import logger
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
    start_http_server,
    values,
)

from chatroom.config import Settings

# Each component's default port, so that a whole stack on one host (`chatroom up`)
# serves without clashes; CHAT_METRICS_PORT overrides it per process.
DEFAULT_PORTS = {"tcp_edge": 9120, "auth": 9121, "social": 9122, "media": 9123, "bus": 9124}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latencies: a DM takes about a millisecond end to end, a login with argon2
# tens of milliseconds, a timeout seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Every metric family of ChatRoom (one instance per process: see get())."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        # The edge.
        self.connections = Gauge(
            "chatroom_connections",
            "Open client connections",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.outbound_queued_bytes = Gauge(
            "chatroom_outbound_queued_bytes",
            "Bytes written to client sockets and not yet sent (sampled every second)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.logins = Counter(
            "chatroom_logins", "Login attempts at the edge", ["outcome"], registry=r
        )
        self.pushes = Counter(
            "chatroom_pushes",
            "Pushed events the edge's fan-out wrote to a client (delivered) or could not "
            "(dropped: the connection was closing or was cut as a slow reader)",
            ["outcome"],
            registry=r,
        )
        self.slow_reader_cuts = Counter(
            "chatroom_slow_reader_cuts",
            "Connections cut because they did not read their replies and pushes",
            registry=r,
        )
        self.bus_timeouts = Counter(
            "chatroom_bus_request_timeouts",
            "Requests over the bus that got no reply in time (per attempt)",
            ["service"],
            registry=r,
        )
        # The edge and every service runtime.
        self.requests = Counter(
            "chatroom_requests",
            "Requests handled, by component, op and outcome (ok or the error code)",
            ["component", "op", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "chatroom_request_duration_seconds",
            "Time to handle a request, by component and op",
            ["component", "op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Services.
        self.messages_stored = Counter(
            "chatroom_messages_stored", "Messages committed to the database", registry=r
        )
        self.write_batch_size = Histogram(
            "chatroom_write_batch_size",
            "Items handled together by a batching thread (group commit, session opens, ...)",
            ["batcher"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.db_checked_out = Gauge(
            "chatroom_db_pool_checked_out",
            "Database connections checked out of the pool",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_errors = Counter(
            "chatroom_db_errors",
            "Database errors, by SQLAlchemy exception class",
            ["kind"],
            registry=r,
        )
        self.avatar_decodes = Counter(
            "chatroom_avatar_decodes",
            "Avatar uploads at the decode pool, by outcome",
            ["outcome"],
            registry=r,
        )


_metrics: Metrics | None = None


def get() -> Metrics:
    """This process's metrics, made on first use."""
    global _metrics
    if _metrics is None:
        disable_created_metrics()  # *_created series: noise in every scrape
        _metrics = Metrics()
    return _metrics


def metric_names() -> list[str]:
    """Every family's name (without _total, _bucket, ...): what the docs and the
    dashboard may refer to."""
    families = [m for m in vars(get()).values() if isinstance(m, Counter | Gauge | Histogram)]
    return sorted(family.name for metric in families for family in metric.describe())


class RequestMeter:
    """Requests of one component by op and outcome, with their latency. The children
    of an op are bound on its first request; ops outside `ops` count as "other", so a
    stray op name cannot grow the label set."""

    def __init__(self, component: str, ops: Iterable[str]) -> None:
        m = get()
        self._component = component
        self._requests = m.requests
        self._seconds = m.request_seconds
        self._ops = frozenset(ops)
        self._ok: dict[str, Any] = {}  # op -> (latency child, ok child)
        self._errors: dict[tuple[str, str], Any] = {}

    def ok(self, op: str, seconds: float) -> None:
        bound = self._ok.get(op)
        if bound is None:
            bound = self._bind(op)
        bound[0].observe(seconds)
        bound[1].inc()

    def failed(self, op: str, outcome: str, seconds: float) -> None:
        bound = self._ok.get(op)
        if bound is None:
            bound = self._bind(op)
        bound[0].observe(seconds)
        child = self._errors.get((op, outcome))
        if child is None:
            label = op if op in self._ops else "other"
            child = self._errors[op, outcome] = self._requests.labels(
                self._component, label, outcome
            )
        child.inc()

    def _bind(self, op: str) -> tuple[Any, Any]:
        label = op if op in self._ops else "other"
        bound = (
            self._seconds.labels(self._component, label),
            self._requests.labels(self._component, label, "ok"),
        )
        self._ok[op] = bound
        return bound


# ---------------------------------------------------------------------- serving


def port_of(component: str, settings: Settings) -> int:
    """The port this component serves /metrics on; 0 = none."""
    configured = settings.metrics_port.strip().lower()
    if configured == "auto":
        return DEFAULT_PORTS[component]
    return 0 if configured == "off" else int(configured)


def serve(component: str, settings: Settings, registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics on a thread of its own; return the port, 0 when off or taken."""
    port = port_of(component, settings)
    if not port:
        return 0
    if registry is REGISTRY:
        get()  # every family is listed from the start, at zero
    host = settings.metrics_host
    try:
        start_http_server(port, host, registry)
    except OSError as exc:
        logger.warning(
            "metrics: cannot listen on {}:{} ({}); running without /metrics",
            host,
            port,
            exc.strerror or exc,
        )
        return 0
    logger.info("metrics at http://{}:{}/metrics", host, port)
    return port


def use_multiprocess() -> str:
    """Before forking workers: metrics made from now on write to files in a directory
    (PROMETHEUS_MULTIPROC_DIR, else a new temporary one), one set per process."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):  # a previous run's
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="chatroom-edge-metrics-")
        os.environ[MULTIPROC_ENV] = path
    values.ValueClass = values.MultiProcessValue()
    return path


def serve_aggregate(component: str, settings: Settings, path: str) -> int:
    """The parent of forked workers: serve the sum of what they wrote to `path`."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return serve(component, settings, registry)


def worker_gone(pid: int, path: str) -> None:
    """A worker exited: its live gauges (connections, queued bytes) stop counting; its
    counters stay in the sums."""
    multiprocess.mark_process_dead(pid, path)


# ---------------------------------------------------------------------- the database


def instrument_engine(engine: Any) -> None:
    """Pool check-outs (a gauge) and errors (by SQLAlchemy exception class) of an
    engine, through SQLAlchemy's events."""
    from sqlalchemy import event

    m = get()
    checked_out = m.db_checked_out
    errors = m.db_errors

    def on_checkout(*_: object) -> None:
        checked_out.inc()

    def on_checkin(*_: object) -> None:
        checked_out.dec()

    def on_error(context: Any) -> None:
        errors.labels(
            type(context.sqlalchemy_exception or context.original_exception).__name__
        ).inc()

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine.pool, "checkin", on_checkin)
    event.listen(engine, "handle_error", on_error)
