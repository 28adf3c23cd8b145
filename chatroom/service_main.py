"""The common start-up of a backend service: config -> logging -> database -> run."""

from __future__ import annotations

import functools
from collections.abc import Callable

from loguru import logger
from sqlalchemy import Engine

from chatroom import config, logs
from chatroom.runtime import Service, run_service
from chatroom.storage.db import create_schema, database_ping, make_engine, wait_for_database

ServiceFactory = Callable[[Engine, config.Settings], Service]


def serve(name: str, build: ServiceFactory) -> None:
    settings = config.load()
    logs.setup(name, settings)
    engine = make_engine(settings)
    logger.info("{} starting; database {}", name, engine.url.render_as_string(hide_password=True))
    wait_for_database(engine)
    create_schema(engine)
    service = build(engine, settings)
    service.health_check = functools.partial(database_ping, engine)
    run_service(name, settings, service)
    engine.dispose()
