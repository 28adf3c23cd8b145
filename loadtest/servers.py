"""The systems under test, started fresh for each run on 127.0.0.1: our stack against
MariaDB (or SQLite), and ngIRCd as the peer."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from chatroom.config import RATED_ACTIONS
from chatroom.hosts import Cluster, HostDatabase, available
from chatroom.localstack import Stack, free_port, wait_for_port
from loadtest import measure, results

ROOT = Path(__file__).resolve().parents[1]

# Receivers in most scenarios send nothing while they listen (a real client pings every
# limits.idle_timeout_s / 3): over a long run the production idle timeout (60 s) would
# cut them, and their missed deliveries would count as lost. The soak keeps the
# production value and pings like the desktop client.
QUIET_CLIENTS_IDLE_TIMEOUT_S = 3600
# Production settings except where a scenario says otherwise; quieter logs (a log line per
# message costs the services a few percent; the operator default is INFO); no rate limits
# and no per-IP connection cap, since every simulated user comes from 127.0.0.1 and the
# point is to measure the server, not its throttles; see above for the idle timeout.
BENCH_DEFAULTS = {
    "CHAT_LOG_LEVEL": "WARNING",
    "CHAT_IDLE_TIMEOUT_S": str(QUIET_CLIENTS_IDLE_TIMEOUT_S),
    "CHAT_REQUEST_TIMEOUT_MS": "10000",
    **{f"CHAT_RATE_{action.upper()}": "off" for action in RATED_ACTIONS},
    "CHAT_MAX_CONNS_PER_IP": "1000000",
    # Scenarios sign in thousands of users at once from one machine: auth's queue for
    # sign-ins from unknown devices (64 deep by default, then rate_limited at once) is
    # an admission limit like the rate limits, so off too. With it, `idle --connections
    # 10000` held 3,807 after 68,565 refused attempts, and `login --users 100` failed.
    "CHAT_ARGON2_QUEUE": "100000",
}
CHEAP_ARGON2 = {
    "CHAT_ARGON2_TIME_COST": "1",
    "CHAT_ARGON2_MEMORY_KIB": "1024",
    "CHAT_ARGON2_PARALLELISM": "1",
}


def cluster_settings(overrides: Iterable[tuple[str, str]] = ()) -> dict[str, object]:
    """BENCH_DEFAULTS and then `--set`'s overrides, as a cluster of hosts takes settings
    (chatroom/hosts.py: names without the CHAT_ prefix, over its TEST_DEFAULTS): the
    benchmarks' request timeout and log level, not the tests' (a 3-s timeout turned
    most of 100,000 registrations into retries)."""
    bench = {name.removeprefix("CHAT_").lower(): value for name, value in BENCH_DEFAULTS.items()}
    return {**bench, **{name.lower(): value for name, value in overrides}}


@contextlib.contextmanager
def cluster(hosts: int, settings: dict[str, object]) -> Iterator[Cluster]:
    """A fresh cluster of `hosts` network-namespace hosts on their own MariaDB, running
    (chatroom/hosts.py; needs root); its processes' logs printed if the block fails;
    everything removed however it ends. Exits saying why where hosts cannot be built."""
    if (why := available()) is not None:
        raise SystemExit(f"--hosts: {why}")
    with (
        tempfile.TemporaryDirectory(prefix="chatroom-hosts-") as tmp,
        Cluster(hosts, Path(tmp), **settings) as built,
    ):
        built.build_network()
        db = HostDatabase(built)
        try:
            built.start(db.start())
            yield built
        except BaseException:
            print(built.logs(), flush=True)
            raise
        finally:
            db.remove()


def mariadb_url() -> str:
    url = (
        os.environ.get("CHAT_BENCH_MYSQL_URL")
        or subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-mariadb.sh")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    return url


def fresh_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"chat_bench_{secrets.token_hex(3)}"
    engine = create_engine(server_url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    engine.dispose()
    return server_url.rstrip("/") + f"/{name}?charset=utf8mb4"


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    engine = create_engine(parsed.set(database=""))
    with engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {parsed.database}"))
    engine.dispose()


def start_chatroom(
    workdir: Path,
    db: str = "mariadb",
    cheap_hashing: bool = True,
    overrides: Iterable[tuple[str, str]] = (),
    **settings: object,
) -> tuple[Stack, str]:
    """A started stack on a fresh database. `overrides` (the command line's --set)
    win over the scenario's `settings`, which win over BENCH_DEFAULTS."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = fresh_database(mariadb_url()) if db == "mariadb" else f"sqlite:///{workdir}/chat.db"
    # Every result states what "persisted" meant (innodb_flush_log_at_trx_commit, ...).
    results.note(database=measure.durability(url))
    defaults = {**BENCH_DEFAULTS, **(CHEAP_ARGON2 if cheap_hashing else {})}
    stack = Stack(workdir, url, defaults=defaults, **{**settings, **dict(overrides)})
    stack.start()
    return stack, url


def stop_chatroom(stack: Stack, url: str) -> None:
    stack.stop()
    if url.startswith("mysql"):
        drop_database(url)


@contextlib.contextmanager
def chatroom(
    db: str = "mariadb", overrides: Iterable[tuple[str, str]] = (), **settings: object
) -> Iterator[tuple[Stack, str]]:
    """start_chatroom in a temporary folder; stopped, its database dropped and the
    folder removed however the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        stack, url = start_chatroom(Path(tmp) / "chatroom", db, overrides=overrides, **settings)
        try:
            yield stack, url
        finally:
            stop_chatroom(stack, url)


def persisted_count(url: str) -> int:
    """Messages stored in the stack's database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
    engine.dispose()
    return count


NGIRCD_CONF = """\
[Global]
    Name = bench.chatroom.local
    Info = ChatRoom benchmark peer
    Listen = 127.0.0.1
    Ports = {port}
    PidFile = {workdir}/ngircd.pid
    MotdPhrase = bench

[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 30
    # No penalties: the sender may flood (the benchmark's own flow control applies).
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 600

[Options]
    DNS = no
    Ident = no
    PAM = no
    AllowRemoteOper = no
"""


@contextlib.contextmanager
def ngircd() -> Iterator[Ngircd]:
    """ngIRCd in a temporary folder, stopped however the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        irc = Ngircd(Path(tmp) / "ngircd")
        try:
            yield irc
        finally:
            irc.stop()


class Ngircd:
    def __init__(self, workdir: Path) -> None:
        if not shutil.which("ngircd") and not Path("/usr/sbin/ngircd").exists():
            raise RuntimeError("ngircd is not installed: apt-get install ngircd")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = workdir / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(port=self.port, workdir=workdir))
        self.proc = subprocess.Popen(
            ["/usr/sbin/ngircd", "--nodaemon", "--config", str(conf)],
            stdout=open(workdir / "ngircd.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)
        time.sleep(0.2)

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
