"""A Docker Swarm of several nodes on one machine, for tests/test_swarm_nodes.py (issue #18).

Each node is a container of the image deploy/swarm/node (Debian's docker.io on the local
Debian base: docker-in-docker) with an engine of its own, on a bridge network of its own;
a registry (Debian's docker-registry, same image) is on that network as `registry:5000`,
and every node's engine takes it as an insecure (plain HTTP) registry. The test talks to
each engine through a socket its container shares with the host (`/ctl/docker.sock`).

The nodes would be `--privileged`; a host whose root lacks a capability cannot start such
a container (runc: "unable to apply caps: operation not permitted"; this project's CI
machine lacks CAP_SYS_RESOURCE in its bounding set, /proc/self/status CapBnd). Then they
get what --privileged gives, less what the host lacks: every capability the host has, no
seccomp or AppArmor profile, /proc and /sys unmasked and writable (the entrypoint remounts
the cgroup folders writable), every device, and a cgroup namespace of their own so that
their engine's cgroups nest in the node's.

Everything carries the label org.chatroom.swarm-nodes=<tag>; `close()` removes it all,
and a later run removes what a run that died left (its process gone).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "deploy" / "swarm" / "node"
IMAGE_REPO = "chatroom-local/swarm-node"
RECIPE_LABEL = "org.chatroom.recipe"
LABEL = "org.chatroom.swarm-nodes"
REGISTRY = "registry:5000"  # the registry as the nodes name it (its alias on the network)
TAG_RE = re.compile(r"^swn(\d+)x[0-9a-f]$")
# Linux capabilities by number (capability(7)), as Docker names them.
CAPS = (  # noqa: SIM905
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split()


def docker(
    *args: str,
    host: Path | None = None,
    timeout: float = 120,
    check: bool = True,
    stdin: Any = None,
) -> str:
    """`docker ARGS` on the test's engine, or on a node's (`host`: its socket)."""
    env = dict(os.environ)
    env.pop("DOCKER_CONTEXT", None)
    if host is not None:
        env["DOCKER_HOST"] = f"unix://{host}"
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, stdin=stdin
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def image_exists(image: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60)
    return proc.returncode == 0


def poll(condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 1.0) -> float:
    """Until condition() is truthy (seconds it took); AssertionError after timeout_s."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)
    return time.monotonic() - started


def missing_caps() -> list[str]:
    """The capabilities this host's root cannot hand out (not in its bounding set)."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^CapBnd:\s*([0-9a-f]+)$", status, re.M)
    bound = int(found[1], 16) if found else -1
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return [CAPS[i] for i in range(min(last + 1, len(CAPS))) if not (bound >> i) & 1]


def node_flags() -> list[str]:
    """`docker run` flags of a node: --privileged, or its equivalent less what is missing."""
    missing = missing_caps()
    if not missing:
        return ["--privileged", "--cgroupns", "private"]
    flags = ["--cap-add", "ALL"]
    for cap in missing:
        flags += ["--cap-drop", cap]
    return [
        *flags,
        *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
        *("--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm"),
        *("--cgroupns", "private"),
    ]


def base_image() -> str:
    """The Debian base: DEBIAN_IMAGE, else the local one ../shared/containers/up.sh
    builds, else the official slim image."""
    if os.environ.get("DEBIAN_IMAGE"):
        return os.environ["DEBIAN_IMAGE"]
    local = "chatroom-local/debian:bookworm"
    if image_exists(local):
        return local
    return "debian:bookworm-slim"


def node_image() -> str:
    """The node image, built when no image of this recipe (its files and base) exists:
    its tag is the recipe's hash, so a changed recipe builds anew."""
    base = base_image()
    digest = hashlib.sha256(docker("image", "inspect", "--format", "{{.Id}}", base).encode())
    for path in sorted(RECIPE.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"{IMAGE_REPO}:{digest.hexdigest()[:16]}"
    if image_exists(tag):
        return tag
    env = {"DOCKER_BUILDKIT": "0"}  # the classic builder: no buildx plugin needed
    proc = subprocess.run(
        [
            "docker",
            "build",
            "--build-arg",
            f"DEBIAN_IMAGE={base}",
            "--label",
            f"{RECIPE_LABEL}={tag}",
            "--tag",
            tag,
            str(RECIPE),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building {tag}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    # Earlier recipes' images go (their layers are shared or stale).
    for old in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO).split():
        if old != tag:
            docker("image", "rm", old, check=False)
    return tag


def remove_stale() -> list[str]:
    """Remove the containers, networks and socket folders of runs whose process is gone."""
    removed = []
    for kind in ("container", "network"):
        listed = docker(
            kind,
            "ls",
            *(["-a"] if kind == "container" else []),
            "--filter",
            f"label={LABEL}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{LABEL}"}}}}',
            check=False,
        )
        for line in listed.splitlines():
            ident, _, tag = line.partition(" ")
            found = TAG_RE.match(tag.strip())
            if found and not Path(f"/proc/{found[1]}").exists():  # its run's process is gone
                if kind == "container":
                    docker("rm", "-f", "-v", ident, check=False)
                else:
                    docker("network", "rm", ident, check=False)
                removed.append(f"{kind} {ident}")
    for ctl in Path("/tmp").glob("swn*x*-*"):  # the sockets' folders (SwarmNodes.ctl)
        found = re.match(r"^swn(\d+)x[0-9a-f]-", ctl.name)
        if found and ctl.is_dir() and not Path(f"/proc/{found[1]}").exists():
            shutil.rmtree(ctl, ignore_errors=True)
            removed.append(f"folder {ctl}")
    return removed


class Node:
    def __init__(self, swarm: SwarmNodes, name: str, role: str) -> None:
        self.swarm = swarm
        self.name = name  # also its container's and its host name
        self.role = role  # "manager" or "worker"
        self.ctl = swarm.ctl / name
        self.ip = ""
        self.killed = False

    @property
    def sock(self) -> Path:
        return self.ctl / "docker.sock"

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: Any = None
    ) -> str:
        return docker(*args, host=self.sock, timeout=timeout, check=check, stdin=stdin)

    def engine_up(self) -> bool:
        return self.sock.exists() and bool(
            self.docker("version", "--format", "{{.Server.Version}}", timeout=10, check=False)
        )

    def kill(self) -> None:
        """The whole node lost at once, as a machine that loses its power: cut off from
        the network first (its veth goes, so no FIN or RST of its dying sockets reaches
        anyone: its peers must notice the silence), then `docker kill` (its engine and
        every container in it)."""
        docker("network", "disconnect", "--force", self.swarm.network, self.name)
        docker("kill", self.name)
        self.killed = True

    def logs(self, tail: int = 40) -> str:
        proc = subprocess.run(
            ["docker", "logs", "--tail", str(tail), self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.stdout + proc.stderr


class SwarmNodes:
    """A registry and `1 + workers` node containers (not yet a swarm: the test forms it
    with `docker swarm init` on `manager` and `join` on the workers). A context manager:
    everything goes at the end, also when the test failed."""

    def __init__(self, workers: int = 2, mounts: tuple[Path, ...] = ()) -> None:
        remove_stale()
        self.tag = f"swn{os.getpid()}x{os.urandom(1)[0] % 16:x}"
        self.network = f"{self.tag}-net"
        self.registry = f"{self.tag}-registry"
        # Short: a unix socket's path has at most 107 bytes.
        self.ctl = Path(tempfile.mkdtemp(prefix=f"{self.tag}-", dir="/tmp"))
        self.mounts = mounts
        self.nodes = [Node(self, f"{self.tag}-manager", "manager")] + [
            Node(self, f"{self.tag}-worker{i}", "worker") for i in range(1, workers + 1)
        ]
        self.image = ""

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout_s: float = 90) -> float:
        """Network, registry and nodes up, every engine answering; seconds it took."""
        started = time.monotonic()
        self.image = node_image()
        label = ("--label", f"{LABEL}={self.tag}")
        docker("network", "create", *label, self.network)
        # The registry's blobs and each engine's images live in memory (tmpfs): fast,
        # and gone with the container.
        docker(
            "run",
            "-d",
            *label,
            "--name",
            self.registry,
            "--network",
            self.network,
            "--network-alias",
            "registry",
            "--mount",
            "type=tmpfs,destination=/var/lib/docker-registry",
            self.image,
            "registry",
        )
        flags = node_flags()
        for node in self.nodes:
            node.ctl.mkdir()
            mounts = [f"--volume={node.ctl}:/ctl"]
            if node.role == "manager":  # files the stack bind-mounts, at the same path
                mounts += [f"--volume={path}:{path}:ro" for path in self.mounts]
            docker(
                "run",
                "-d",
                *label,
                "--name",
                node.name,
                "--hostname",
                node.name,
                "--network",
                self.network,
                "--init",
                *flags,
                *mounts,
                "--mount",
                "type=tmpfs,destination=/var/lib/docker",
                self.image,
                "node",
                f"--insecure-registry={REGISTRY}",
            )
        for node in self.nodes:
            poll(node.engine_up, timeout_s, f"{node.name}'s engine", every_s=0.3)
            node.ip = docker(
                "inspect",
                "--format",
                f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}',
                node.name,
            )
        return time.monotonic() - started

    def load(self, node: Node, *images: str) -> None:
        """Images of the test's engine into a node's (`docker save | docker load`)."""
        with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as save:
            node.docker("load", "-q", stdin=save.stdout, timeout=600)
            assert save.wait(timeout=60) == 0, f"docker save {images}"

    def join(self, command: str, timeout_s: float = 60) -> None:
        """Every worker joins with the `docker swarm join ...` command `init` printed."""
        args = command.split()
        assert args[:3] == ["docker", "swarm", "join"], command
        for node in self.workers:
            node.docker(*args[1:], timeout=timeout_s)

    def node_states(self) -> dict[str, tuple[str, str]]:
        """The manager's view: node name -> (status, availability)."""
        out = self.manager.docker(
            "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}", timeout=30
        )
        return {
            name: (status, avail) for name, status, avail in (x.split() for x in out.splitlines())
        }

    def leftovers(self) -> list[str]:
        found = []
        for kind in ("container", "network"):
            listed = docker(
                kind,
                "ls",
                *(["-a"] if kind == "container" else []),
                "--filter",
                f"label={LABEL}={self.tag}",
                "--format",
                "{{.Names}}" if kind == "container" else "{{.Name}}",
                check=False,
            )
            found += [f"{kind} {name}" for name in listed.split()]
        return found

    def close(self) -> None:
        names = [n.name for n in self.nodes] + [self.registry]
        docker("rm", "-f", "-v", *names, check=False, timeout=180)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.ctl, ignore_errors=True)

    def __enter__(self) -> SwarmNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
