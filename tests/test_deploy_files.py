"""The deployment files as an operator gets them, rendered by their own tools: compose
(`docker compose config`, with `.env` copied from `.env.example`), the Swarm stack file
(`docker stack config`) and the Kubernetes manifests (`kubectl kustomize`). Checks what
holds the benchmarks and what keeps a host safe; nothing is started here (the
docs-commands test deploys).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom import config, config_env
from chatroom.cli import version as chatroom_version

ROOT = Path(__file__).resolve().parents[1]
SERVER_SERVICES = ("migrate", "bus", "auth", "social", "media", "tcp_edge")
MIB = 1024 * 1024
# What one server process holds besides its work (measured: ~45-50 MiB of RSS).
PROCESS_BASE_BYTES = 64 * MIB


def _bytes(value: int | str) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)([kmg]?)b?", value.strip().lower())
    assert match, value
    return int(match[1]) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[match[2]]


def _need(tool: str) -> str:
    """The tool's path: on PATH, or in this venv (scripts/test.sh puts kubectl there
    where the machine has none)."""
    found = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{tool} is not installed (scripts/test.sh installs kubectl)")
    return found


def render_compose(workdir: Path, *files: str, dotenv: bool = True) -> dict:
    """`docker compose config` of a copy of the repository's deployment files, run in
    that copy, with `.env` from `.env.example` as docs/operations.md says."""
    _need("docker")
    for name in ("compose.yaml", "compose.tls.yaml", "compose.galera.yaml", ".env.example"):
        shutil.copy(ROOT / name, workdir / name)
    (workdir / "db").mkdir(exist_ok=True)
    if dotenv:
        shutil.copy(workdir / ".env.example", workdir / ".env")
    args = [arg for name in files or ("compose.yaml",) for arg in ("-f", name)]
    proc = subprocess.run(
        ["docker", "compose", *args, "config", "--format", "json"],
        cwd=workdir,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 and "is not a docker command" in proc.stderr:
        pytest.skip("Docker Compose v2 is not installed")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- .env from .env.example ---------------------------------------------------------


def test_empty_value_does_not_hide_its_file(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("from-the-file\n")
    env = {"CHAT_DB_PASSWORD": "", "CHAT_DB_PASSWORD_FILE": str(secret)}
    assert config_env.load(env).db_password == "from-the-file"
    # A value that is set still wins over the file; an empty one without a file is empty.
    assert config_env.load({**env, "CHAT_DB_PASSWORD": "given"}).db_password == "given"
    assert config_env.load({"CHAT_DB_PASSWORD": ""}).db_password == ""


def test_env_example_overrides_nothing_and_names_the_deploy_variables():
    text = (ROOT / ".env.example").read_text()
    active = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert active == [], f"cp .env.example .env would set {active}"
    for name in ("CHAT_PUBLISH_ADDR", "CHAT_PUBLISHED_PORT", "PYTHON_IMAGE", "MYSQL_IMAGE"):
        assert re.search(rf"^# {name}=", text, re.M), f"{name} missing from .env.example"


def test_env_from_example_renders_the_same_stack(tmp_path):
    with_env = render_compose(tmp_path)
    (tmp_path / ".env").unlink()
    without = render_compose(tmp_path, dotenv=False)
    assert with_env == without
    edge = with_env["services"]["tcp_edge"]
    assert edge["environment"]["CHAT_EDGE_WORKERS"] == "2"
    assert edge["ports"][0]["host_ip"] == "127.0.0.1"
    backend = with_env["services"]["auth"]["environment"]
    assert backend["CHAT_DB_PASSWORD_FILE"] == "/run/secrets/db_password"


# --- the rendered compose stack ---------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict:
    return render_compose(tmp_path_factory.mktemp("compose"), "compose.yaml", "compose.tls.yaml")


def _locked_down_and_rotating(svc: dict) -> None:
    """A read-only root, no capabilities, no privilege gain, a tmpfs /tmp, rotated logs
    and CPU and memory limits (compose.yaml's x-hardened, and compose.galera.yaml's)."""
    assert svc.get("read_only") is True
    assert svc.get("cap_drop") == ["ALL"]
    assert "no-new-privileges:true" in svc.get("security_opt", [])
    assert "/tmp" in svc.get("tmpfs", [])
    logging = svc.get("logging", {})
    assert logging.get("driver") == "json-file"
    assert _bytes(logging["options"]["max-size"]) <= 100 * MIB
    assert 1 <= int(logging["options"]["max-file"]) <= 10
    limits = svc["deploy"]["resources"]["limits"]
    assert _bytes(limits["memory"]) > 0 and float(limits["cpus"]) > 0


@pytest.mark.parametrize("service", ("db", *SERVER_SERVICES))
def test_every_container_is_locked_down_and_rotates_its_logs(stack, service):
    svc = stack["services"][service]
    _locked_down_and_rotating(svc)
    if service in SERVER_SERVICES:
        assert svc.get("cap_add") is None, "the server processes need no capability"
    else:  # the database entrypoint: read the secrets as root, chown, drop to mysql
        assert set(svc["cap_add"]) <= {"CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"}


GALERA_NODES = ("galera-1", "galera-2", "galera-3")


@pytest.fixture(scope="module")
def galera_stack(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("galera")
    return render_compose(workdir, "compose.yaml", "compose.galera.yaml")


@pytest.mark.parametrize("service", ("db", *GALERA_NODES))
def test_galera_containers_are_locked_down_and_checked(galera_stack, service):
    svc = galera_stack["services"][service]
    _locked_down_and_rotating(svc)
    assert svc["networks"] == {"backend": None}, "no node or proxy outside the backend"
    assert "ports" not in svc
    assert svc["healthcheck"]["test"][0] == "CMD"
    if service == "db":  # HAProxy: nothing of the single database's is left
        assert svc.get("cap_add") is None
        assert not svc.get("environment") and not svc.get("secrets")
        assert not svc.get("volumes")
    else:  # the entrypoint: read the password as root, chown, drop to mysql
        assert set(svc["cap_add"]) <= {"CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"}
        assert svc["volumes"][0]["source"] == f"{service}-data"


def test_galera_services_reach_the_writer_through_the_proxy(galera_stack):
    services = galera_stack["services"]
    for name in ("migrate", "auth", "social", "media"):
        assert "@db:3306/" in services[name]["environment"]["CHAT_DB_URL"], name
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    # The nodes start 1, 2, 3 and stop 3, 2, 1, one at a time: galera-1 is left safe to
    # bootstrap.
    for before, node in zip(GALERA_NODES, GALERA_NODES[1:], strict=False):
        assert services[node]["depends_on"] == {
            before: {"condition": "service_started", "required": True}
        }
    peers = {services[n]["environment"]["GALERA_PEERS"] for n in GALERA_NODES}
    assert peers == {",".join(GALERA_NODES)}
    config_text = (ROOT / "db" / "haproxy" / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+):3306 check( backup)?$", config_text, re.M)
    assert servers == [(n, n, "" if n == "galera-1" else " backup") for n in GALERA_NODES]
    assert "stick-table type integer size 1 nopurge" in config_text


def test_edge_may_hold_the_benchmarks_connections(stack):
    nofile = stack["services"]["tcp_edge"]["ulimits"]["nofile"]
    # 50,000 idle connections over 3 workers: ~16,700 descriptors per process.
    assert nofile["soft"] == nofile["hard"] >= 20_000


def test_memory_limits_fit_the_configured_work(stack):
    s = config.Settings()
    auth = _bytes(stack["services"]["auth"]["deploy"]["resources"]["limits"]["memory"])
    # Every worker thread may be hashing a password at once (argon2 memory each).
    argon2_peak = s.worker_threads * s.argon2_memory_kib * 1024
    assert auth >= PROCESS_BASE_BYTES + argon2_peak, (auth / MIB, argon2_peak / MIB)
    media = _bytes(stack["services"]["media"]["deploy"]["resources"]["limits"]["memory"])
    decode_peak = s.avatar_decode_workers * 16 * s.avatar_max_pixels
    assert media >= PROCESS_BASE_BYTES + decode_peak, (media / MIB, decode_peak / MIB)


def test_drain_fits_in_the_stop_grace_period(stack):
    drain = config.Settings().drain_timeout_s
    for service in SERVER_SERVICES:
        grace = stack["services"][service]["stop_grace_period"]
        assert float(str(grace).rstrip("s")) > drain, service


# --- Kubernetes (deploy/k8s, rendered by kubectl kustomize) ----------------------------

SCALED = ("auth", "social", "media")
SERVER_WORKLOADS = ("bus", "auth", "social", "media", "tcp-edge")


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    yaml = pytest.importorskip("yaml")
    proc = subprocess.run(
        [_need("kubectl"), "kustomize", str(ROOT / "deploy" / "k8s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _workloads(k8s: dict) -> dict[str, dict]:
    return {name: doc for (kind, name), doc in k8s.items() if kind in ("Deployment", "StatefulSet")}


def _command(probe: dict) -> list:
    return probe.get("exec", {}).get("command") or [f"tcp:{probe.get('tcpSocket')}"]


def test_k8s_has_every_component(k8s):
    assert set(_workloads(k8s)) == {"db", *SERVER_WORKLOADS}
    assert k8s[("Service", "tcp-edge")]["spec"]["type"] == "LoadBalancer"
    assert ("Service", "bus") in k8s and ("Service", "db") in k8s


def test_k8s_probes_tell_alive_from_ready(k8s):
    """A database outage must take replicas out of service, not restart them: liveness
    never runs the readiness check that includes the database round trip."""
    for name, doc in _workloads(k8s).items():
        for c in doc["spec"]["template"]["spec"]["containers"]:
            ready, live = c["readinessProbe"], c["livenessProbe"]
            if name in SCALED:
                assert _command(ready) == ["chatroom", "health", name], name
                # Alive: the replica's event loop answers; the database is not asked.
                assert _command(live)[:4] == [*_command(ready)[:3], "--live"], name
                assert live["timeoutSeconds"] * live["failureThreshold"] >= 30, name


def test_k8s_resources_security_and_grace(k8s):
    config_map = k8s[("ConfigMap", "chatroom-config")]["data"]
    drain = float(config_map.get("CHAT_DRAIN_TIMEOUT_S", config.Settings().drain_timeout_s))
    for name, doc in _workloads(k8s).items():
        pod = doc["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > drain, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            res = c["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res[kind]), (name, kind)
            sec = c["securityContext"]
            assert sec["readOnlyRootFilesystem"] is True, name
            assert sec["allowPrivilegeEscalation"] is False, name
            assert sec["capabilities"]["drop"] == ["ALL"], name
    auth = k8s[("Deployment", "auth")]["spec"]["template"]["spec"]["containers"][0]
    s = config.Settings()
    peak = PROCESS_BASE_BYTES + s.worker_threads * s.argon2_memory_kib * 1024
    limit = auth["resources"]["limits"]["memory"]
    assert _bytes(limit.replace("Mi", "m").replace("Gi", "g")) >= peak


def test_k8s_disruption_budgets_and_autoscalers(k8s):
    budgets = {
        doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for (kind, _), doc in k8s.items()
        if kind == "PodDisruptionBudget"
    }
    assert {"auth", "social", "media", "tcp-edge", "db", "bus"} <= budgets
    scaled = {
        doc["spec"]["scaleTargetRef"]["name"]
        for (kind, _), doc in k8s.items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert scaled == set(SCALED)
    for name in SCALED:
        hpa = k8s[("HorizontalPodAutoscaler", name)]["spec"]
        assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]


def test_k8s_runs_two_buses_on_different_nodes_and_everyone_connects_to_both(k8s):
    """No single bus (docs/past-one-host.md): the StatefulSet's pods are named in
    CHAT_BUS_HOSTS through the headless Service, and prefer different nodes."""
    bus = k8s[("StatefulSet", "bus")]["spec"]
    assert bus["replicas"] >= 2 and bus["serviceName"] == "bus"
    service = k8s[("Service", "bus")]["spec"]
    assert service["clusterIP"] == "None"
    hosts = k8s[("ConfigMap", "chatroom-config")]["data"]["CHAT_BUS_HOSTS"].split(",")
    assert hosts == [f"bus-{n}.bus" for n in range(bus["replicas"])]
    spread = bus["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = spread["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "bus"}
    # The settings every component reads accept the list.
    settings = config_env.load({"CHAT_BUS_HOSTS": ",".join(hosts)})
    assert [host for host, _ in settings.bus_peers()] == hosts


def test_k8s_pods_hold_only_their_own_bus_key(k8s):
    for name in ("auth", "social", "media", "tcp-edge"):
        pod = k8s[("Deployment", name)]["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "bus-keys")
        secrets = {i["key"] for i in volume["secret"]["items"] if i["key"].endswith("_secret")}
        role = "edge" if name == "tcp-edge" else name
        extra = {"admin.key_secret"} if name == "auth" else set()
        assert secrets == {f"{role}.key_secret", *extra}, name


def _release_checkout(tmp_path: Path) -> Path:
    """A git checkout holding what scripts/image-tag.sh reads (the script and pyproject)."""
    (tmp_path / "scripts").mkdir()
    for script in ("image-tag.sh", "env-set.sh"):
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release"], check=True)
    return tmp_path


def _image_tag(checkout: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "CHATROOM_VERSION"}
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "image-tag.sh")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_image_tag_names_the_release_and_keeps_it_in_env(tmp_path):
    checkout = _release_checkout(tmp_path)
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short=7", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (checkout / ".env").write_text("CHAT_EDGE_WORKERS=2\nCHATROOM_VERSION=0.0.1-gold\n")
    for _ in range(2):  # idempotent: one line, replaced
        run = _image_tag(checkout)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == f"{chatroom_version()}-g{commit}"
    lines = (checkout / ".env").read_text().splitlines()
    assert lines == ["CHAT_EDGE_WORKERS=2", f"CHATROOM_VERSION={chatroom_version()}-g{commit}"]
    # An operator's own name wins; a name Docker would refuse is refused with the rule.
    assert _image_tag(checkout, CHATROOM_VERSION="site-2").stdout.strip() == "site-2"
    bad = _image_tag(checkout, CHATROOM_VERSION="1.0 beta")
    assert bad.returncode == 2 and "not a valid image tag" in bad.stderr
    assert "CHATROOM_VERSION=site-2" in (checkout / ".env").read_text()
