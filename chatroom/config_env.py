"""Settings from the environment: ``load()`` reads every ``CHAT_*`` variable (or, for
compose/Docker secrets, the file ``CHAT_X_FILE`` names when ``CHAT_X`` is not set or is
empty), parses it to its field's type and checks the result at start (a bad value is a
ConfigError naming the variable); ``unknown_names()`` warns of ``CHAT_*`` names nothing
reads. What each setting is: chatroom.config.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping

from chatroom.config import PREFIX, RATED_ACTIONS, ConfigError, Settings, env_name
from chatroom.names import MAX_NAME_CHARS
from chatroom.protocol import PRELOGIN_MAX_FRAME_BYTES

DB_MIGRATE_MODES = ("auto", "check")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
# CHAT_* names read by something other than the server processes' settings: compose
# files, scripts, the desktop client, the tests and benchmarks. Not warned about.
OTHER_NAMES = frozenset(
    {
        "CHAT_ENV_FILE",
        "CHAT_PUBLISH_ADDR",
        "CHAT_PUBLISHED_PORT",
        "CHAT_TLS_DIR",
        "CHAT_TLS_PUBLISHED_PORT",
        "CHAT_EDGE_NOFILE",
        "CHAT_AUTH_REPLICAS",
        "CHAT_SOCIAL_REPLICAS",
        "CHAT_MEDIA_REPLICAS",
        "CHAT_SWARM_ENDPOINT_MODE",
        "CHAT_SWARM_PUBLISH_MODE",
        "CHAT_CLIENT_THEME",
        "CHAT_BUILD_DIR",
        "CHAT_DIST_DIR",
        "CHAT_PYINSTALLER",
        "CHAT_TEST_MYSQL_URL",
        "CHAT_TEST_MYSQL_DIR",
        "CHAT_TEST_MYSQL_PORT",
        "CHAT_TEST_MYSQL_ARGS",
        "CHAT_BENCH_MYSQL_URL",
        "CHAT_REQUIRE_COMPOSE",
        "CHAT_FUZZ_EXAMPLES",
        "CHAT_FUZZ_OPS_EXAMPLES",
    }
)
VISIBILITY = ("friends", "everyone")  # whose avatars / status a user may see
# max_reply_bytes may use at most this fraction of a frame: the rest is room for the
# reply's envelope and for the one message a reply always carries even if it is larger.
REPLY_SHARE_OF_FRAME = 2
# The slow-reader cut needs room for a whole frame the client is still reading plus as
# much again of pushes queued behind it: a reader keeping up is never cut.
OUTBOUND_FRAMES_OF_SLACK = 2


def _parse(field: dataclasses.Field, raw: str) -> object:
    kind = field.type
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{PREFIX}{field.name.upper()}={raw!r} is not a valid {kind}") from None


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        name = env_name(f.name)
        # An empty CHAT_X counts as unset when CHAT_X_FILE names a file: a `.env` copied
        # from .env.example (CHAT_DB_PASSWORD=) must not hide compose's secret file.
        if name in env and (env[name] != "" or not env.get(name + "_FILE")):
            values[f.name] = _parse(f, env[name])
        elif env.get(name + "_FILE"):
            path = env[name + "_FILE"]
            try:
                with open(path, encoding="utf-8") as fh:
                    values[f.name] = _parse(f, fh.read().strip())
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={path}: {exc.strerror}") from None
    settings = Settings(**values)  # type: ignore[arg-type]  # _parse gave each its type
    _check(settings)
    return settings


def unknown_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """A sentence for each CHAT_* variable that nothing reads (a typo is otherwise
    silently ignored), with the closest setting's name when there is one."""
    env = os.environ if environ is None else environ
    settings = [env_name(f.name) for f in dataclasses.fields(Settings)]
    known = set(settings) | {name + "_FILE" for name in settings} | OTHER_NAMES
    found = []
    for name in sorted(n for n in env if n.startswith(PREFIX) and n not in known):
        guess = difflib.get_close_matches(name.removesuffix("_FILE"), settings, n=1, cutoff=0.8)
        hint = f" (did you mean {guess[0]}?)" if guess else " (see .env.example)"
        found.append(f"{name} is not a ChatRoom setting and is ignored{hint}")
    return found


def _check(s: Settings) -> None:
    positive = (
        "max_frame_bytes",
        "max_text_chars",
        "request_timeout_ms",
        "request_attempts",
        "max_inflight_per_conn",
        "outbound_queue_bytes",
        "worker_threads",
        "avatar_decode_workers",
        "edge_workers",
        "max_reply_bytes",
        "max_prelogin_conns",
        "argon2_concurrency",
        "argon2_queue",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{env_name(name)} must be positive, got {getattr(s, name)}")
    if s.max_reply_bytes > s.max_frame_bytes // REPLY_SHARE_OF_FRAME:
        raise ConfigError(
            f"{env_name('max_reply_bytes')} must be at most 1/{REPLY_SHARE_OF_FRAME} of "
            f"{env_name('max_frame_bytes')} ({s.max_frame_bytes // REPLY_SHARE_OF_FRAME}), "
            f"got {s.max_reply_bytes}"
        )
    if s.outbound_queue_bytes < OUTBOUND_FRAMES_OF_SLACK * s.max_frame_bytes:
        raise ConfigError(
            f"{env_name('outbound_queue_bytes')} must be at least {OUTBOUND_FRAMES_OF_SLACK} "
            f"times {env_name('max_frame_bytes')} "
            f"({OUTBOUND_FRAMES_OF_SLACK * s.max_frame_bytes}), got {s.outbound_queue_bytes}: "
            "else a client reading one large reply could be cut as a slow reader"
        )
    for name in ("max_frame_bytes", "max_prelogin_bytes"):
        if getattr(s, name) < PRELOGIN_MAX_FRAME_BYTES:
            raise ConfigError(
                f"{env_name(name)} must be at least {PRELOGIN_MAX_FRAME_BYTES} (the longest "
                f"login request), got {getattr(s, name)}"
            )
    if not 1 <= s.max_username_chars <= MAX_NAME_CHARS:
        raise ConfigError(
            f"{env_name('max_username_chars')} must be 1 to {MAX_NAME_CHARS} (the width of "
            f"the username column), got {s.max_username_chars}"
        )
    if s.max_conns_per_ip <= 0:
        raise ConfigError(f"{env_name('max_conns_per_ip')} must be positive")
    for name in ("edge_port", "tls_port"):
        port = getattr(s, name)
        if not 0 <= port < 65536 or (port == 0 and name == "edge_port"):
            raise ConfigError(f"{env_name(name)} must be a TCP port, got {port}")
    for action in RATED_ACTIONS:
        try:
            s.rate(action)
        except ValueError as exc:
            raise ConfigError(f"{env_name('rate_' + action)}: {exc}") from None
    try:
        peers = s.bus_peers()
    except ValueError:
        peers = []
    if not peers or any(not host or not 0 < base < 65536 for host, base in peers):
        raise ConfigError(
            f"{env_name('bus_hosts')} must list HOST or HOST:PORT_BASE, comma-separated, "
            f"got {s.bus_hosts!r}"
        )
    if len(set(peers)) != len(peers):
        raise ConfigError(f"{env_name('bus_hosts')} names a bus twice: {s.bus_hosts!r}")
    port = s.metrics_port.strip().lower()
    if port not in ("auto", "off") and not (port.isdigit() and int(port) < 65536):
        raise ConfigError(
            f"{env_name('metrics_port')} must be auto, off or a TCP port, got {s.metrics_port!r}"
        )
    if s.session_retention_days < 0:
        raise ConfigError(f"{env_name('session_retention_days')} must be 0 or more")
    if s.edit_window_s < 0:
        raise ConfigError(f"{env_name('edit_window_s')} must be 0 or more")
    if s.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"{env_name('log_level')} must be one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}"
        )
    if s.db_migrate not in DB_MIGRATE_MODES:
        raise ConfigError(f"{env_name('db_migrate')} must be one of {', '.join(DB_MIGRATE_MODES)}")
    for name in ("avatar_visibility", "status_visibility"):
        if getattr(s, name) not in VISIBILITY:
            raise ConfigError(f"{env_name(name)} must be one of {', '.join(VISIBILITY)}")
    if s.tls_port and not (s.tls_cert_file and s.tls_key_file):
        raise ConfigError(
            f"{env_name('tls_port')} needs {env_name('tls_cert_file')} and "
            f"{env_name('tls_key_file')} (PEM files)"
        )
