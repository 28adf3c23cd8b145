"""The common start-up of a backend service: config -> logging -> database -> run."""

from __future__ import annotations

import functools
from collections.abc import Callable

from loguru import logger
from sqlalchemy import Engine

from chatroom import config, logs, metrics
from chatroom.runtime import run_service
from chatroom.service import Service
from chatroom.storage.db import database_ping, make_engine, until_reachable, wait_for_database
from chatroom.storage.migrate import SchemaError, ensure_schema

ServiceFactory = Callable[[Engine, config.Settings], Service]


def serve(name: str, build: ServiceFactory) -> None:
    settings = logs.configure(name)
    engine = make_engine(settings)
    metrics.instrument_engine(engine)
    metrics.serve(name, settings)
    logger.info("{} starting; database {}", name, engine.url.render_as_string(hide_password=True))
    wait_for_database(engine)

    def start() -> Service:
        """The schema checked, and the service's own start-up writes (the lobby, the
        default avatar): repeatable, and repeated if the database drops the connection
        meanwhile (seen: a Galera cluster's only Synced node became a donor)."""
        ensure_schema(engine, settings.db_migrate)
        return build(engine, settings)

    try:
        with logs.fatal_config_errors(name):
            service = until_reachable(engine, start)
    except SchemaError as exc:
        logger.error("{} cannot start: {}", name, exc)
        raise SystemExit(2) from None
    with logs.fatal_config_errors(name):
        service.health_check = functools.partial(database_ping, engine)
        run_service(name, settings, service)
    engine.dispose()
