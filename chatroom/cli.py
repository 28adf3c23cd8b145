"""The ``chatroom`` command: run the whole system locally, print the schema, check
health, and operator commands (``chatroom admin``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

from chatroom import admin, buskeys, config, logs

SERVICES = ("bus", "auth", "social", "media", "tcp_edge")


def module_of(service: str) -> str:
    return f"services.{service}"


def cmd_up(args: argparse.Namespace) -> int:
    """Start every service as its own process; restart any that dies; Ctrl-C stops all."""
    settings = logs.configure("up")
    from loguru import logger

    procs: dict[str, subprocess.Popen] = {}
    stopping = False

    def start(service: str) -> None:
        procs[service] = subprocess.Popen([sys.executable, "-m", module_of(service)])

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if settings.bus_curve:
        created = buskeys.ensure_keys(settings.bus_keys_dir)
        if created:
            logger.info("created bus keys in {}: {}", settings.bus_keys_dir, ", ".join(created))
    logger.info("database: {}", settings.db_url if "@" not in settings.db_url else "(MySQL)")
    if migrate_database(settings) != 0:
        return 2
    for service in SERVICES:
        start(service)
        if service == "bus":
            time.sleep(0.3)  # services connect lazily, but a bound bus avoids noisy retries
    logger.info("chatroom is up: clients connect to {}:{}", settings.edge_host, settings.edge_port)
    restarts: dict[str, float] = {}
    while not stopping:
        time.sleep(0.2)
        for service, proc in list(procs.items()):
            if proc.poll() is not None and not stopping:
                since = time.monotonic() - restarts.get(service, 0)
                if since < 2:
                    continue  # crash looping: wait a moment between restarts
                logger.error("{} exited with {}; restarting it", service, proc.returncode)
                restarts[service] = time.monotonic()
                start(service)
    logger.info("stopping all services")
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


def cmd_bus_keys(args: argparse.Namespace) -> int:
    """Create the bus's CURVE key pairs that do not exist yet (used by scripts/deploy.sh)."""
    directory = args.directory or config.load().bus_keys_dir
    created = buskeys.ensure_keys(directory)
    print(f"{directory}: created {', '.join(created) if created else 'nothing (all exist)'}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from chatroom.storage.initsql import render_init_sql

    sys.stdout.write(render_init_sql())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database schema to this release's (compose runs it as a one-shot
    before the services); --check only reports, and exits 1 when an upgrade is due."""
    settings = logs.configure("migrate")
    return migrate_database(settings, check_only=args.check)


def migrate_database(settings: config.Settings, check_only: bool = False) -> int:
    from loguru import logger

    from chatroom.storage.db import make_engine, wait_for_database
    from chatroom.storage.migrate import SchemaError, current_revision, head_revision, upgrade

    engine = make_engine(settings)
    try:
        wait_for_database(engine)
        if check_only:
            with engine.connect() as conn:
                current = current_revision(conn)
            head = head_revision()
            print(f"database schema: {current or 'empty'}; this release: {head}")
            return 0 if current == head else 1
        before, after = upgrade(engine)
    except SchemaError as exc:
        logger.error("cannot migrate: {}", exc)
        return 2
    finally:
        engine.dispose()
    if before == after:
        logger.info("database schema is at {}: nothing to do", after)
    else:
        logger.info("database schema upgraded from {} to {}", before or "empty", after)
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    """Health check: a real request through the bus to one service (used by compose)."""
    import zmq.asyncio

    from chatroom.bus_client import BusClient

    settings = config.load()

    async def ping() -> dict:
        zctx = zmq.asyncio.Context()
        client = BusClient(settings, f"health:{os.getpid()}", zctx)
        client.start()
        try:
            return await client.ping(args.service, timeout_ms=args.timeout_ms)
        finally:
            client.close()
            zctx.term()

    try:
        result = asyncio.run(ping())
    except Exception as exc:  # any failure means unhealthy
        print(f"{args.service}: unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"{args.service}: ok {result}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Container health check of the component running in this container."""
    from chatroom.health import CHECKS, Unhealthy

    try:
        result = CHECKS[args.component](config.load(), args.timeout)
    except Unhealthy as exc:
        print(f"{args.component}: unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"{args.component}: healthy {result}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run bus, auth, social, media and tcp_edge locally").set_defaults(
        func=cmd_up
    )
    keys = sub.add_parser("bus-keys", help="create missing CURVE key pairs for the bus")
    keys.add_argument("directory", nargs="?", help="default: CHAT_BUS_KEYS_DIR")
    keys.set_defaults(func=cmd_bus_keys)
    sub.add_parser("schema", help="print db/init.sql for MySQL").set_defaults(func=cmd_schema)
    migrate = sub.add_parser("migrate", help="upgrade the database schema to this release's")
    migrate.add_argument("--check", action="store_true", help="only say whether one is due")
    migrate.set_defaults(func=cmd_migrate)
    ping = sub.add_parser("ping", help="health-check one service through the bus")
    ping.add_argument("service", choices=("auth", "social", "media"))
    ping.add_argument("--timeout-ms", type=int, default=2000)
    ping.set_defaults(func=cmd_ping)
    health = sub.add_parser("health", help="container health check of one component")
    health.add_argument("component", choices=("bus", "auth", "social", "media", "tcp_edge"))
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=cmd_health)
    admin.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
