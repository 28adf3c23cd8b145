"""The compose deployment, for real: images built, containers started, port 2019 used.

Runs where a Docker engine answers (scripts/test.sh starts one with
../shared/containers/up.sh when that exists). Set CHAT_REQUIRE_COMPOSE=1 to fail
instead of skipping when there is no engine. The project is `chatroom-test`, published
on a free loopback port; it is torn down with its volume at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatroom import buskeys
from chatroom.config import RATED_ACTIONS

from harness import free_port
from wire import ConnectionClosed, WireClient, befriend

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "chatroom-test"
RESULTS = ROOT / "var" / "results" / "compose-timings.json"  # docs/ quotes a copy


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def require_docker() -> None:
    """Skip without an engine, or fail where one is required (CHAT_REQUIRE_COMPOSE=1)."""
    if not docker_available():
        if os.environ.get("CHAT_REQUIRE_COMPOSE") == "1":
            pytest.fail("CHAT_REQUIRE_COMPOSE=1 but no Docker engine answers")
        pytest.skip("no Docker engine")


IMAGES_ENV = Path("/var/tmp/chatroom-containers/images.env")  # written by shared up.sh


def image_settings() -> dict[str, str]:
    """PYTHON_IMAGE/MYSQL_IMAGE: from the environment, else from the local stand-ins
    that ../shared/containers/up.sh built, else compose's defaults (official images)."""
    if "PYTHON_IMAGE" in os.environ or not IMAGES_ENV.exists():
        return {}
    pairs = re.findall(r"^(PYTHON_IMAGE|MYSQL_IMAGE)=(\S+)$", IMAGES_ENV.read_text(), re.M)
    return dict(pairs)


class Compose:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.tls_port = free_port()
        # The defaults, except that one test sends 400 messages as fast as it can and
        # one registers and logs in 500 users at once from one address (the load
        # generator's idle run): no rate limits or per-address cap, and cheap hashing
        # (neither is what these tests measure).
        env_file = workdir / "chatroom.env"
        env_file.write_text(
            "".join(f"CHAT_RATE_{action.upper()}=off\n" for action in RATED_ACTIONS)
            + "CHAT_MAX_CONNS_PER_IP=100000\nCHAT_ARGON2_TIME_COST=1\n"
            "CHAT_ARGON2_MEMORY_KIB=1024\nCHAT_ARGON2_PARALLELISM=1\n"
        )
        # With TLS, as scripts/deploy.sh runs it when there is a certificate.
        self.tls_dir = workdir / "tls"
        subprocess.run(
            ["bash", str(ROOT / "scripts/make-tls-cert.sh"), str(self.tls_dir), "127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for name in ("server.pem", "server.key"):
            (self.tls_dir / name).chmod(0o644)
        self.env = dict(
            os.environ,
            **image_settings(),
            CHAT_PUBLISHED_PORT=str(port),
            CHAT_PUBLISH_ADDR="127.0.0.1",
            CHAT_ENV_FILE=str(env_file),
            COMPOSE_FILE="compose.yaml:compose.tls.yaml",
            CHAT_TLS_DIR=str(self.tls_dir),
            CHAT_TLS_PUBLISHED_PORT=str(self.tls_port),
        )
        self.timings: dict[str, float] = {}

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        cmd = ["docker", "compose", "-p", PROJECT, *args]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout + proc.stderr

    def timed(self, name: str, *args: str, timeout: float = 600) -> str:
        started = time.monotonic()
        out = self.run(*args, timeout=timeout)
        self.timings[name] = round(time.monotonic() - started, 1)
        return out

    def containers(self, service: str) -> list[str]:
        out = self.run("ps", "-q", service)
        return [line for line in out.split() if line]

    def client(self, timeout: float = 15) -> WireClient:
        return WireClient(self.port, timeout=timeout)

    def wait_for_login_service(self, timeout: float = 90) -> None:
        """After a disruption: poll until a request that needs the database succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(timeout=10) as c:
                    reply = c.request("login", username="nobody-at-all", password="x" * 8)
                    if reply.get("error", {}).get("code") == "bad_credentials":
                        return
            except (OSError, ConnectionClosed):
                pass  # not listening yet (Docker's port proxy accepts, then closes)
            if time.monotonic() > deadline:
                raise TimeoutError("the stack did not recover in time")
            time.sleep(1)  # the poll interval of this wait (each try is a new connection)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory):
    require_docker()
    stack = Compose(free_port(), tmp_path_factory.mktemp("compose"))
    stack.run("down", "-v", "--remove-orphans", check=False)
    _ensure_secrets()
    stack.timed("build_s", "build")
    stack.timed("up_to_healthy_s", "up", "-d", "--wait", "--wait-timeout", "180")
    yield stack
    logs = stack.run("logs", "--no-color", check=False)
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / "compose-test.log").write_text(logs)
    stack.run("down", "-v", "--remove-orphans", check=False)
    _record(stack)


def _ensure_secrets() -> None:
    secrets = ROOT / "secrets"
    secrets.mkdir(exist_ok=True)
    for name in ("db_password", "db_root_password"):
        path = secrets / name
        if not path.exists() or not path.read_text().strip():
            path.write_text(os.urandom(18).hex())
        path.chmod(0o644)
    # The bus's CURVE keys, as scripts/deploy.sh makes them.
    keys = secrets / "bus-keys"
    buskeys.ensure_keys(keys)
    for path in keys.iterdir():
        path.chmod(0o644)


def _record(stack: Compose) -> None:
    sizes = subprocess.run(
        ["docker", "image", "inspect", "chatroom-server:latest", "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    result = {**stack.timings}
    if sizes.isdigit():
        result["server_image_mb"] = round(int(sizes) / 1e6)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncompose timings: {result}")


def test_end_to_end_through_published_port(compose):
    with compose.client() as ann, compose.client() as ben, compose.client() as cid:
        ann.register_and_login("ann")
        ben.register_and_login("ben")
        cid.register_and_login("cid")
        ann.call("room.send", room="lobby", text="hello 你好 from compose")
        assert ben.event("message")["text"] == "hello 你好 from compose"
        befriend(ann, ben)
        ben.close()
        assert ann.event("presence", timeout=15)["online"] is False
        cid.call("friend.request", username="ann")
        ann.event("friend.request")
        ann.call("friend.reject", username="cid")
        assert cid.event("friend.rejected")["by"]["username"] == "ann"
        import base64

        import images

        with compose.client() as ben2:
            ben2.login("ben", "correct horse")
            ann.event("presence", timeout=15)
            image = base64.b64encode(images.png(64, 64)).decode()
            hash_ = ann.call("avatar.set", image=image)["hash"]
            assert ben2.event("avatar")["hash"] == hash_
            assert ben2.call("avatar.get", hash=hash_, size=64)["size"] == 64


def test_loadtest_idle_targets_the_running_stack(compose, tmp_path):
    """`python -m loadtest idle --target compose:PROJECT` (docs/benchmarks.md): 500 users
    log in and are held on the deployed stack, spread over the edge's workers, and the
    edge's memory per connection is reported from its container."""
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "loadtest", "idle", "--connections", "500"]
    cmd += ["--target", f"compose:{PROJECT}", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "idle.json").read_text())
    result = doc["results"][0]
    assert (result["delivered"], result["lost"], result["errors"]) == (500, 0, 0), (
        result["extra"]["failed_logins"],
        result["extra"]["retried_attempts"],
        proc.stdout[-3000:],
    )
    per_connection = result["extra"]["kib_per_connection"]
    assert 0 < per_connection["edge_rss"] < 64, per_connection
    assert per_connection["cgroup_usage"] > 0, per_connection
    held = [p["open_files"] for p in result["extra"]["edge_after"]["processes"]]
    assert sum(held) >= 500 and sorted(held)[-2] > 50, held  # both workers hold some
    assert doc["target"]["project"] == PROJECT
    assert doc["database"]["innodb_flush_log_at_trx_commit"] in ("1", "2")


def test_tls_port_and_admin_tool_in_containers(compose):
    """compose.tls.yaml: the edge's TLS port, verified with the deployment's CA; the
    operator's admin tool run with `docker compose exec`."""
    with (
        WireClient(compose.tls_port, tls_ca=str(compose.tls_dir / "ca.pem"), timeout=15) as c,
        compose.client() as plain,
    ):
        c.register_and_login("tls-user")
        plain.register_and_login("plain-user")
        c.call("room.send", room="lobby", text="sealed")
        assert plain.event("message")["text"] == "sealed"
        online = compose.run("exec", "-T", "auth", "chatroom", "admin", "online")
        assert "tls-user" in online and "plain-user" in online
        compose.run("exec", "-T", "auth", "chatroom", "admin", "kick", "tls-user")
        frames = c.wait_closed(timeout=15)
        assert any(f.get("code") == "kicked" for f in frames)


def test_scaled_social_spreads_load_and_survives_a_kill(compose):
    compose.timed("scale_social_3_s", "up", "-d", "--wait", "--scale", "social=3", "--no-recreate")
    replicas = compose.containers("social")
    assert len(replicas) == 3
    with compose.client(timeout=30) as writer, compose.client(timeout=30) as reader:
        writer.register_and_login("writer")
        reader.register_and_login("reader")
        start = {str(c["id"]): c["last_seq"] for c in reader.call("sync")["conversations"]}
        acknowledged: dict[str, int] = {}
        retryable = 0
        killer = threading.Timer(
            2.0, lambda: subprocess.run(["docker", "kill", replicas[1]], capture_output=True)
        )
        killer.start()
        deadline = time.monotonic() + 120
        for i in range(400):
            client_id = f"w-{i}"
            while time.monotonic() < deadline:
                reply = writer.request("room.send", room="lobby", text=f"m{i}", client_id=client_id)
                if reply["ok"]:
                    acknowledged[client_id] = reply["message"]["id"]
                    break
                assert reply["error"]["code"] == "service_unavailable", reply
                retryable += 1  # the client retries with the same client_id: no duplicate
            time.sleep(0.01)  # the writer's pace while the killer works
        killer.join()
        assert len(acknowledged) == 400
        got = []
        cursors = dict(start)
        while True:
            convs = reader.call("sync", cursors=cursors, limit=500)["conversations"]
            if not convs:
                break
            for conv in convs:
                got.extend(m for m in conv["messages"] if m["from"]["username"] == "writer")
                cursors[str(conv["id"])] = conv["messages"][-1]["seq"]
        ids = [m["id"] for m in got]
        assert sorted(ids) == sorted(acknowledged.values())  # none lost, none twice
        compose.timings["kill_retryable_errors"] = retryable
    logs = compose.run("logs", "--no-color", "social")
    serving = {m for m in re.findall(r"(social-\d+)\s+\|.*stored message", logs)}
    assert len(serving) == 3, f"messages were stored by {serving}"
    compose.run("up", "-d", "--wait", "--scale", "social=1")


def test_database_restart_recovers_without_restarting_services(compose):
    before = {s: compose.containers(s) for s in ("auth", "social", "media", "tcp_edge")}
    with compose.client() as c:
        c.register_and_login("dora")
    started = time.monotonic()
    compose.run("restart", "db")
    compose.wait_for_login_service()
    compose.timings["db_restart_recovery_s"] = round(time.monotonic() - started, 1)
    with compose.client() as c:
        c.login("dora", "correct horse")
        c.call("room.send", room="lobby", text="after the db restart")
    assert {s: compose.containers(s) for s in before} == before  # nothing else restarted


def test_down_then_up_keeps_accounts_friends_and_history(compose):
    compose.timed("down_s", "down")
    compose.timed("up_again_s", "up", "-d", "--wait", "--wait-timeout", "180")
    with compose.client() as ann:
        reply = ann.login("ann", "correct horse")
        assert [f["username"] for f in reply["friends"]] == ["ben"]
        texts = [m["text"] for m in ann.call("room.history", room="lobby", limit=200)["messages"]]
        assert "hello 你好 from compose" in " ".join(texts) or "after the db restart" in texts
        assert "after the db restart" in texts


def test_backup_then_restore_into_a_wiped_deployment(compose):
    """The commands of docs/operations.md, run for real."""
    root_pw = '"$(cat /run/secrets/db_root_password)"'
    dump = compose.run(
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        f"mysqldump -uroot -p{root_pw} --single-transaction --routines --hex-blob chat",
    )
    assert "CREATE TABLE `messages`" in dump
    compose.run("down", "-v")  # the volume is gone: an empty database comes up
    compose.run("up", "-d", "--wait", "--wait-timeout", "180")
    with compose.client() as c:
        assert c.error_of("login", username="ann", password="correct horse")["code"] == (
            "bad_credentials"
        )
    compose.run("stop", "auth", "social", "media", "tcp_edge")
    proc = subprocess.run(
        [
            "docker",
            "compose",
            "-p",
            PROJECT,
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            f"mysql -uroot -p{root_pw} chat",
        ],
        cwd=ROOT,
        env=compose.env,
        input=dump,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    compose.run("start", "auth", "social", "media", "tcp_edge")
    compose.run("up", "-d", "--wait")
    with compose.client() as ann:
        reply = ann.login("ann", "correct horse")
        assert [f["username"] for f in reply["friends"]] == ["ben"]
