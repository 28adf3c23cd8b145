"""The ``chatroom`` command: run the whole system locally, print the schema, check
health, and operator commands (``chatroom admin``)."""

from __future__ import annotations

import argparse
import sys

from chatroom import admin, buskeys, config, config_env, logs


def version() -> str:
    """The installed distribution's version (pyproject.toml), e.g. 0.1.0."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("chatroom")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def cmd_up(args: argparse.Namespace) -> int:
    """Run every component locally as its own process (chatroom/up.py)."""
    from chatroom import up
    from chatroom.storage.migrate import migrate_database

    settings = logs.configure("up")
    return up.run(settings, migrate_database)


def cmd_bus_keys(args: argparse.Namespace) -> int:
    """Create the bus's CURVE key pairs that do not exist yet (used by scripts/deploy.sh)."""
    directory = args.directory or config_env.load().bus_keys_dir
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
    from chatroom.storage.migrate import migrate_database

    settings = logs.configure("migrate")
    return migrate_database(settings, check_only=args.check)


def cmd_ping(args: argparse.Namespace) -> int:
    """Health check: a real request through the bus to one service (used by compose)."""
    from chatroom.health import ping_through_bus

    try:
        result = ping_through_bus(config_env.load(), args.service, args.timeout_ms)
    except Exception as exc:  # any failure means unhealthy
        print(f"{args.service}: unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"{args.service}: ok {result}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Container health check of the component running in this container."""
    from chatroom.health import CHECKS, Unhealthy

    try:
        result = CHECKS[args.component](config_env.load(), args.timeout, live=args.live)
    except Unhealthy as exc:
        print(f"{args.component}: unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"{args.component}: healthy {result}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatroom", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chatroom {version()}")
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
    health.add_argument(
        "--live",
        action="store_true",
        help="alive rather than ready: a service's event loop answers, database or not",
    )
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
