"""Who may use the bus: ZeroMQ CURVE keys and the table of which key may connect where.

Every bus socket is a CURVE server (the bus's key pair) and every process connecting to
it is a CURVE client with a key pair of its own role: an ``edge`` key, one per backend
service (``auth``, ``social``, ``media``), an ``admin`` key for ``chatroom admin``, and
the bus's own key for its health check. Traffic is encrypted; the bus's ZAP handler
(pyzmq's ``zmq.auth``) admits a connection only if its public key belongs to a role that
``ENDPOINT_ROLES`` lets onto that endpoint (the socket's ZAP domain is the endpoint's
name). A process without a known key completes no handshake, so it can send nothing and
receive nothing.

Operator ops are told apart by where they arrive, not by what they claim: they come in
through ``<service>.admin.front``, which admits only the admin key, and reach replicas on
a socket of their own (``<service>.admin.back``); the runtime refuses ``admin.*`` ops on
the ordinary path (see runtime.py).

Keys are files in ``CHAT_BUS_KEYS_DIR`` in zmq.auth's format: ``<role>.key`` (public) and
``<role>.key_secret`` (both halves). A client needs its own ``.key_secret`` and
``bus.key``; the bus needs ``bus.key_secret`` and every client role's ``.key``.
``CHAT_BUS_CURVE=off`` turns all of this off, for benchmark comparisons only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from loguru import logger

from chatroom.config import (
    ADMIN_SERVICES,
    BACKEND_SERVICES,
    BUS_PORT_OFFSETS,
    ConfigError,
    Settings,
)
from chatroom.files import private_folder
from chatroom.logs import RepeatedErrors

SERVER_ROLE = "bus"
EDGE_ROLE = "edge"
ADMIN_ROLE = "admin"
# The bus is a client too, of its own events pair, in its health check.
ROLES = (SERVER_ROLE, EDGE_ROLE, *BACKEND_SERVICES, ADMIN_ROLE)


def _endpoint_roles() -> dict[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {
        # Events: services publish; edges subscribe; the bus's health check does both.
        "events.in": frozenset({*BACKEND_SERVICES, SERVER_ROLE}),
        "events.out": frozenset({EDGE_ROLE, SERVER_ROLE}),
    }
    for service in BACKEND_SERVICES:
        table[f"{service}.front"] = frozenset({EDGE_ROLE})  # requests come from edges
        table[f"{service}.back"] = frozenset({service})  # only its replicas get them
    for service in ADMIN_SERVICES:
        table[f"{service}.admin.front"] = frozenset({ADMIN_ROLE})
        table[f"{service}.admin.back"] = frozenset({service})
    assert table.keys() == BUS_PORT_OFFSETS.keys(), "every bus endpoint needs its roles"
    return table


ENDPOINT_ROLES = _endpoint_roles()


class BusKeyError(ConfigError):
    """A key file is missing or unreadable: the process cannot start until it is there."""


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server_public: bytes


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.exists():
        # In a deployment each container holds only its own role's key: the usual cause
        # is running a command in the wrong container (e.g. `chatroom ping` outside the
        # edge's), not a missing key pair.
        raise BusKeyError(
            f"bus key {path} is not here: this process needs the key of role"
            f" '{path.name.split('.')[0]}' (in compose, run it in the container of that"
            " role; locally, `chatroom bus-keys` creates the keys in CHAT_BUS_KEYS_DIR)"
        )
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise BusKeyError(
            f"bus key {path}: {exc} (CHAT_BUS_KEYS_DIR; `chatroom bus-keys` creates them)"
        ) from None


def warn_if_off(settings: Settings) -> None:
    if not settings.bus_curve:
        logger.warning(
            "CHAT_BUS_CURVE=off: the bus is UNAUTHENTICATED and UNENCRYPTED - anyone who "
            "can reach its ports can read every message and act as any service. Use it "
            "only to measure what CURVE costs, never in service."
        )


def client_keys(settings: Settings, role: str) -> ClientKeys | None:
    """The key pair of `role` and the bus's public key (None when CURVE is off)."""
    if not settings.bus_curve:
        warn_if_off(settings)
        return None
    keys = Path(settings.bus_keys_dir)
    public, secret = _load(keys / f"{role}.key_secret")
    server_public, _ = _load(keys / f"{SERVER_ROLE}.key")
    if secret is None:
        raise BusKeyError(f"bus key {keys / role}.key_secret holds no secret key")
    return ClientKeys(public, secret, server_public)


def secure_client(sock: zmq.Socket, keys: ClientKeys | None) -> None:
    """Make `sock` a CURVE client (before it connects)."""
    if keys is None:
        return
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public


class BusGuard:
    """The bus's side: its key pair, and a ZAP handler admitting known keys by endpoint."""

    def __init__(self, settings: Settings, zctx: zmq.Context) -> None:
        self.enabled = settings.bus_curve
        self.zctx = zctx
        self.authenticator: zmq.auth.thread.ThreadAuthenticator | None = None
        self.refusals = RepeatedErrors(window_s=60.0)  # of refused handshakes, for the log
        if not self.enabled:
            warn_if_off(settings)
            return
        keys = Path(settings.bus_keys_dir)
        _, secret = _load(keys / f"{SERVER_ROLE}.key_secret")
        if secret is None:
            raise BusKeyError(f"bus key {keys}/{SERVER_ROLE}.key_secret holds no secret key")
        self.secret = secret
        # z85 public key -> role, for the roles whose public key is in the directory.
        self.roles: dict[bytes, str] = {}
        for role in ROLES:
            path = keys / f"{role}.key"
            if path.exists():
                self.roles[_load(path)[0]] = role
            else:
                logger.warning("no {} in {}: that role cannot connect", path.name, keys)

    def start(self) -> None:
        if not self.enabled:
            return
        from zmq.auth.thread import ThreadAuthenticator

        self.authenticator = ThreadAuthenticator(self.zctx)
        self.authenticator.start()
        # zmq.auth looks a provider up by the exact domain ("*" only covers sockets
        # without one): so one registration per endpoint.
        for endpoint in ENDPOINT_ROLES:
            self.authenticator.configure_curve_callback(endpoint, self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """zmq.auth's credentials provider: is this z85 public key welcome on `domain`?"""
        role = self.roles.get(client_key)
        allowed = role is not None and role in ENDPOINT_ROLES.get(domain, ())
        if not allowed:
            # A warning, not an error: anything on the network can knock, as often as it
            # likes, so once per kind a minute with a count of those left out.
            kind = (role or "unknown", domain)
            log_it, left_out = self.refusals.should_log(kind, time.monotonic())
            if log_it:
                more = f" ({left_out} more refused in the last minute)" if left_out else ""
                logger.warning("bus refused a {} key on {}{}", kind[0], domain, more)
        return allowed

    def secure_server(self, sock: zmq.Socket, endpoint: str) -> None:
        """Make `sock` a CURVE server whose peers are checked against `endpoint`'s roles."""
        if not self.enabled:
            return
        sock.curve_server = True
        sock.curve_secretkey = self.secret
        sock.zap_domain = endpoint.encode()

    def stop(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()


def ensure_keys(directory: str | os.PathLike) -> list[str]:
    """Create the key pair of every role that has none in `directory`; return their
    names. Existing keys are kept (delete a role's two files to rotate it)."""
    keys = private_folder(directory)
    created = []
    for role in ROLES:
        if not (keys / f"{role}.key_secret").exists():
            zmq.auth.create_certificates(keys, role)
            os.chmod(keys / f"{role}.key_secret", 0o600)
            created.append(role)
    return created
