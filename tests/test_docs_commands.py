"""The operator's path, as written: every shell block of docs/operations.md and then of
README.md, run verbatim and in order on a fresh `git clone` of this repository, each
in a new shell (so nothing a block exports reaches the next one, as when an operator
comes back the next day), with the container engine. Between blocks the test plays the
users (accounts, messages) and checks what each step promised.

Markers in the markdown, an HTML comment right above a block:
- `<!-- not-run: why -->`: the block is not run here (kept to a few, each with a reason).
- `<!-- docs-test: step=NAME; same-shell-as-next; if-exists=PATH; run-by=TEST -->`: NAME
  ties the block to the checks below; same-shell-as-next runs it in one shell with the
  next block; if-exists skips it where PATH (relative to the clone) does not exist;
  run-by skips it here because the test file TEST runs it, verbatim, by its step NAME
  (a stack of its own, e.g. tests/test_galera_compose.py for the Galera cluster).
`<your copy of chatroom>` is the one placeholder: this repository's path.

The operator's shell has COMPOSE_PROJECT_NAME, CHATROOM_VERSION and the published ports
set, so that the stack and its image tag are this test's own on a shared engine.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_compose import Compose, require_docker

from chatroom.framing import FrameDecoder, encode_frame, parse_payload

from harness import free_port
from test_social import befriend
from wire import WireClient

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/operations.md", "README.md")
# Per run: two runs on one engine (a CI run beside a developer's) must not share a stack.
PROJECT = f"chatroom-docs-{os.getpid()}"
VERSION = f"docs-test-{os.getpid()}"
SHELLS = ("sh", "bash", "shell")
# The blocks that may not run, and at most how many: each needs a reason in the markdown.
MAX_NOT_RUN = 8
CHECKED_STEPS = {
    "clone",
    "deploy",
    "tls",
    "admin",
    "admin-erase",
    "scale",
    "upgrade",
    "backup",
    "restore",
    "logs",
    "readme-deploy",
}


@dataclass
class Block:
    doc: str
    line: int
    code: str
    options: dict[str, str] = field(default_factory=dict)
    not_run: str | None = None

    @property
    def step(self) -> str | None:
        return self.options.get("step")

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def shell_blocks(doc: str) -> list[Block]:
    lines = (ROOT / doc).read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if fence[1] in SHELLS:
            block = Block(doc, i + 1, "\n".join(lines[i + 1 : end]) + "\n")
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            comment = re.match(r"^<!--\s*(not-run|docs-test):\s*(.*?)\s*-->$", lines[k])
            if comment and comment[1] == "not-run":
                block.not_run = comment[2]
            elif comment:
                for item in comment[2].split(";"):
                    key, _, value = item.strip().partition("=")
                    block.options[key] = value
            blocks.append(block)
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in shell_blocks(doc)]


def step_code(step: str, doc: str = "docs/operations.md") -> str:
    """The code of the block of `doc` with that step, as written (for a run-by test)."""
    found = [b for b in shell_blocks(doc) if b.step == step]
    assert len(found) == 1, f"{doc}: no block with step={step}"
    return found[0].code


def test_every_shell_block_is_run_or_says_why():
    blocks = all_blocks()
    not_run = [b for b in blocks if b.not_run is not None]
    for block in not_run:
        assert len(block.not_run) >= 10, f"{block.where()}: not-run needs a reason"
    assert len(not_run) <= MAX_NOT_RUN, [b.where() for b in not_run]
    steps = [b.step for b in blocks if b.step]
    assert len(steps) == len(set(steps)), steps
    # A doc change that drops a checked step fails here, not silently.
    assert set(steps) >= CHECKED_STEPS, CHECKED_STEPS - set(steps)
    for block in blocks:
        unknown = set(block.options) - {"step", "same-shell-as-next", "if-exists", "run-by"}
        assert not unknown, f"{block.where()}: unknown docs-test option {unknown}"
        if "run-by" in block.options:  # that test runs it, by its step's name
            runner = ROOT / block.options["run-by"]
            assert block.step and f'"{block.step}"' in runner.read_text(), block.where()


# --- the walk ----------------------------------------------------------------------------


class Operator:
    """The operator's terminal: a clone, an environment without the test's own settings,
    and a new shell for each block."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.clone = workdir / "chatroom"
        self.port = free_port()
        self.tls_port = free_port()
        shared = ROOT.parent / "shared"
        if shared.is_dir():  # ../shared/containers/up.sh, as beside the repository
            (workdir / "shared").symlink_to(shared)
        drop = ("PYTHON_IMAGE", "MYSQL_IMAGE", "CHATROOM_COMPOSE", "COMPOSE_FILE", "VIRTUAL_ENV")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in drop and not k.startswith(("CHAT_", "COMPOSE_", "PYTEST"))
        }
        self.env.update(
            COMPOSE_PROJECT_NAME=PROJECT,
            CHATROOM_VERSION=VERSION,
            CHAT_PUBLISHED_PORT=str(self.port),
            CHAT_TLS_PUBLISHED_PORT=str(self.tls_port),
        )
        self.log: list[str] = []

    def shell(self, code: str, where: str, cwd: Path, timeout: float = 600) -> str:
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        out = proc.stdout + proc.stderr
        self.log.append(f"$ # {where} ({time.monotonic() - started:.0f} s)\n{code}{out}")
        assert proc.returncode == 0, f"{where} failed ({proc.returncode}):\n{code}\n{out[-4000:]}"
        return proc.stdout

    def compose(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["docker", "compose", *args],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def client(self, timeout: float = 15) -> WireClient:
        return WireClient(self.port, timeout=timeout)

    def wait_for_service(self, timeout: float = 120) -> None:
        """Until a request that needs auth and its database gets its answer."""
        Compose.wait_for_login_service(self, timeout)  # it uses only self.client()


def tls_ping(port: int, ca: Path) -> dict:
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    with context.wrap_socket(raw, server_hostname="chat.example.org") as sock:
        sock.sendall(encode_frame({"op": "ping", "id": 1}))
        decoder = FrameDecoder()
        while True:
            for payload in decoder.feed(sock.recv(65536)):
                return parse_payload(payload)


def private(path: Path, owner: int | None = None) -> None:
    """A file 0600 (or a folder 0700), owned by `owner` when given."""
    st = path.stat()
    want = 0o700 if path.is_dir() else 0o600
    assert stat.S_IMODE(st.st_mode) == want, f"{path} is {oct(stat.S_IMODE(st.st_mode))}"
    if owner is not None:
        assert st.st_uid == owner, f"{path} is owned by {st.st_uid}"


# Checks before and after the steps (named in the markdown). Each gets the Operator.


def after_deploy(op: Operator) -> None:
    op.wait_for_service()
    secrets = op.clone / "secrets"
    private(secrets)
    private(secrets / "bus-keys")
    private(secrets / "db_password", owner=10001)
    private(secrets / "db_root_password", owner=0)
    for key in (secrets / "bus-keys").iterdir():
        private(key, owner=10001)
    dotenv = (op.clone / ".env").read_text()
    if (op.workdir / "shared").exists():  # the stand-ins' names are kept for new shells
        assert re.search(r"^MYSQL_IMAGE=\S", dotenv, re.M), dotenv
    with op.client() as ann, op.client() as ben:
        ann.register_and_login("ann")
        ben.register_and_login("ben")
        befriend(ann, ben)
        ann.call("room.send", room="lobby", text="before the upgrade")
    # Every container of the stack runs hardened, as compose.yaml says.
    for cid in op.compose("ps", "-q").split():
        inspect = subprocess.run(
            ["docker", "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", cid],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert inspect == "true", cid


def after_tls(op: Operator) -> None:
    op.wait_for_service()
    tls = op.clone / "secrets" / "tls"
    private(tls)
    private(tls / "server.key", owner=10001)
    private(tls / "server.pem", owner=10001)
    assert tls_ping(op.tls_port, tls / "ca.pem")["ok"] is True


def before_admin(op: Operator) -> None:
    with op.client() as alice:
        alice.register_and_login("alice")


def after_admin(op: Operator) -> None:
    new_password = (op.clone / "newpw.txt").read_text().strip()
    with op.client() as alice:
        alice.login("alice", new_password)  # reset, disabled, enabled again


def before_admin_erase(op: Operator) -> None:
    with op.client() as mallory, op.client() as ben:
        mallory.register_and_login("mallory")
        ben.login("ben", "correct horse")
        befriend(mallory, ben)
        mallory.call("dm.send", to="ben", text="for ben only")
        mallory.call("room.send", room="lobby", text="mallory was here")


def after_admin_erase(op: Operator) -> None:
    exported = op.clone / "mallory.json"
    private(exported)
    data = json.loads(exported.read_text())
    sent = [(m["conversation"], m["text"]) for m in data["messages_sent"]]
    assert sent == [("direct with ben", "for ben only"), ("lobby", "mallory was here")], sent
    assert [f["username"] for f in data["friends"]] == ["ben"]
    with op.client() as mallory, op.client() as ben:
        assert mallory.error_of("login", username="mallory", password="correct horse")["code"] == (
            "bad_credentials"
        )
        reply = ben.login("ben", "correct horse")
        assert [f["username"] for f in reply["friends"]] == ["ann"]
        assert [d["with"]["username"] for d in reply["direct"]] == ["deleted user"]
        lobby = ben.call("room.history", room="lobby")["messages"]
        assert ("deleted user", "mallory was here") in [
            (m["from"]["username"], m["text"]) for m in lobby
        ]


def after_scale(op: Operator) -> None:
    counts = {s: len(op.compose("ps", "-q", s).split()) for s in ("auth", "social", "media")}
    assert counts == {"auth": 2, "social": 3, "media": 2}, counts
    # A new shell's compose command kept TLS (COMPOSE_FILE in .env).
    assert tls_ping(op.tls_port, op.clone / "secrets/tls/ca.pem")["ok"] is True


def after_upgrade(op: Operator) -> None:
    op.wait_for_service()
    with op.client() as ann:
        ann.login("ann", "correct horse")
        texts = [m["text"] for m in ann.call("room.history", room="lobby")["messages"]]
        assert "before the upgrade" in texts
        ann.call("room.send", room="lobby", text="after the upgrade")


def after_backup(op: Operator) -> None:
    dumps = list(op.clone.glob("chat-*.sql.gz"))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 1000, dumps


def before_restore(op: Operator) -> None:
    # "Another host": the same clone and dump, but no containers and no data volume.
    op.compose("--profile", "monitoring", "down", "-v")


def after_restore(op: Operator) -> None:
    op.wait_for_service()
    with op.client() as ann:
        reply = ann.login("ann", "correct horse")
        assert [f["username"] for f in reply["friends"]] == ["ben"]
        texts = [m["text"] for m in ann.call("room.history", room="lobby")["messages"]]
        assert "after the upgrade" in texts
        ann.call("room.send", room="lobby", text="after the restore")  # for the logs step


def after_readme_deploy(op: Operator) -> None:
    op.wait_for_service()
    with op.client() as ann:
        ann.login("ann", "correct horse")


BEFORE = {"admin": before_admin, "admin-erase": before_admin_erase, "restore": before_restore}
AFTER = {
    "deploy": after_deploy,
    "tls": after_tls,
    "admin": after_admin,
    "admin-erase": after_admin_erase,
    "scale": after_scale,
    "upgrade": after_upgrade,
    "backup": after_backup,
    "restore": after_restore,
    "readme-deploy": after_readme_deploy,
}


@pytest.mark.compose
@pytest.mark.timeout(900)  # every documented step, builds included: ~5 min on 2 busy cores
def test_operator_runs_the_documented_commands(tmp_path):
    require_docker()
    op = Operator(tmp_path)
    blocks = [b for b in all_blocks() if b.not_run is None and "run-by" not in b.options]
    pending = ""
    ran: list[str] = []
    try:
        for block in blocks:
            code = block.code.replace("<your copy of chatroom>", str(ROOT))
            cwd = op.workdir if "git clone" in code else op.clone
            if "if-exists" in block.options and not (cwd / block.options["if-exists"]).exists():
                continue
            if "same-shell-as-next" in block.options:
                pending += code
                continue
            if block.step in BEFORE:
                BEFORE[block.step](op)
            op.shell(pending + code, block.where(), cwd)
            pending = ""
            if block.step in AFTER:
                AFTER[block.step](op)
            ran.append(block.step or block.where())
        assert set(ran) >= CHECKED_STEPS, CHECKED_STEPS - set(ran)
    finally:
        (ROOT / "var").mkdir(exist_ok=True)
        log = "\n".join(op.log)
        if op.clone.exists():
            log += "\n" + op.compose("logs", "--no-color", "--tail", "200", check=False)
            op.compose("--profile", "monitoring", "down", "-v", "--remove-orphans", check=False)
        (ROOT / "var" / "docs-commands.log").write_text(log)
        subprocess.run(["docker", "image", "rm", f"chatroom-server:{VERSION}"], capture_output=True)
